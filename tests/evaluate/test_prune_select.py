"""andlib.evaluate.prune_select: choosing a concept's neurons by strategy."""

from __future__ import annotations

import pandas as pd
import pytest

from andlib.config import rng
from andlib.evaluate.prune import (
    concept_words,
    layer_cap,
    matches_open_concepts,
    random_neurons,
    select_neurons,
    stem,
)
from andlib.store import ArtifactError


def test_stemming_and_concept_words():
    assert concept_words("water_drops") == ["water", "drop"]
    for a, b in [
        ("drops", "drop"),
        ("crying", "cry"),
        ("cries", "cry"),
        ("dripping", "drip"),
        ("sneezing", "sneeze"),
        ("glasses", "glass"),
        ("bells", "bell"),
        ("knocking", "knock"),
    ]:
        assert stem(a) == stem(b), (a, b)
    assert stem("bus") == "bus" and stem("glass") == "glass"


def test_open_concept_matching_rules():
    have = ["water", "drops", "sound"]
    assert matches_open_concepts(have, "water_drops", "all")
    assert not matches_open_concepts(["water", "sound"], "water_drops", "all")
    assert matches_open_concepts(["water", "sound"], "water_drops", "any")
    assert not matches_open_concepts(["water", "sound"], "water_drops", "head")
    assert matches_open_concepts(["drops"], "water_drops", "head")
    assert not matches_open_concepts([], "dog")
    with pytest.raises(ValueError):
        matches_open_concepts(have, "dog", "most")


def test_selection_strategies_on_a_hand_made_table():
    neurons = pd.DataFrame(
        {
            "layer": ["a", "a", "a", "b", "b", "c"],
            "neuron": [0, 1, 2, 0, 1, 0],
            "open_concepts": ["dog;bark", "water;drop", "water", "drops;water", "", "dog"],
            "db_soft_wpmi": ["dog", "rain", "water_drops", "rain", "dog", "dog"],
            "db_soft_wpmi_top5": [
                "dog;rain;wind",
                "rain;wind;water_drops",
                "water_drops;dog",
                "rain;wind;sea_waves;water_drops",
                "dog",
                "dog",
            ],
            "tab": ["", "water_drops", "", "", "", ""],
            "tab_top5": ["", "water_drops;rain", "", "", "", ""],
        }
    )
    kw = {"layers": ["a", "b"], "top_n": 3}
    assert select_neurons(neurons, "water_drops", "ocp", **kw) == {"a": [1], "b": [0]}
    assert select_neurons(neurons, "water_drops", "ocp", ocp_match="any", **kw) == {
        "a": [1, 2],
        "b": [0],
    }
    assert select_neurons(neurons, "water_drops", "db", **kw) == {"a": [1, 2]}  # b/0: 4th
    assert select_neurons(neurons, "water_drops", "db", layers=["a"], top_n=1) == {"a": [2]}
    assert select_neurons(neurons, "Water Drops", "tab", **kw) == {"a": [1]}
    assert select_neurons(neurons, "dog", "db", **kw) == {"a": [0, 2], "b": [1]}  # not layer c
    assert select_neurons(neurons, "dog", "db", top_n=3) == {"a": [0, 2], "b": [1], "c": [0]}
    with pytest.raises(ValueError):
        select_neurons(neurons, "dog", "random")


def test_random_control_uses_the_seed(tmp_cfg):
    counts, sizes = {"a": 3, "b": 2, "c": 0}, {"a": 50, "b": 40, "c": 10}
    same = [random_neurons(counts, sizes, rng(tmp_cfg({"seed": 0}), "prune", "dog")) for _ in "ab"]
    assert same[0] == same[1]
    assert {k: len(v) for k, v in same[0].items()} == {"a": 3, "b": 2}
    other_seed = random_neurons(counts, sizes, rng(tmp_cfg({"seed": 1}), "prune", "dog"))
    other_concept = random_neurons(counts, sizes, rng(tmp_cfg({"seed": 0}), "prune", "rain"))
    assert other_seed != same[0] and other_concept != same[0]


def test_db_selection_is_capped_per_layer_keeping_the_best_scores():
    neurons = pd.DataFrame(
        {
            "layer": ["a"] * 5 + ["b"] * 2,
            "neuron": [0, 1, 2, 3, 4, 0, 1],
            "db_cos": ["dog"] * 7,
            "db_cos_top5": ["dog;rain"] * 7,
            "db_cos_top5_scores": ["0.1;0", "0.5;0", "0.3;0", "0.5;0", "0.2;0", "0.4;0", "0.9;0"],
        }
    )
    sizes = {"a": 5, "b": 2}
    kw = {"db_similarity": "cos", "layer_sizes": sizes}
    assert select_neurons(neurons, "dog", "db", **kw) == {"a": [0, 1, 2, 3, 4], "b": [0, 1]}
    # 40 % of 5 = 2 in a (the two best: 1 and 3 tie at 0.5, kept in neuron order), 0.8 -> 1 in b
    assert select_neurons(neurons, "dog", "db", max_share=0.4, **kw) == {"a": [1, 3], "b": [1]}
    assert select_neurons(neurons, "dog", "db", max_share=0.01, **kw) == {"a": [1], "b": [1]}
    assert layer_cap(512, 0.05) == 25 and layer_cap(10, 0.05) == 1 and layer_cap(5, None) is None


def test_the_cap_needs_the_concept_scores():
    neurons = pd.DataFrame(
        {"layer": ["a"], "neuron": [0], "db_cos": ["dog"], "db_cos_top5": ["dog"]}
    )
    with pytest.raises(ArtifactError, match="db_cos_top5_scores"):
        select_neurons(
            neurons, "dog", "db", db_similarity="cos", max_share=0.5, layer_sizes={"a": 1}
        )
