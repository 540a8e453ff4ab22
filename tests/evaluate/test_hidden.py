"""The hidden-layer measure: neurons whose top clips share a class, and chance by shuffling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from andlib.evaluate.hidden import (
    ALL_HIDDEN,
    accuracy_and_chance,
    clip_concepts,
    hidden_layer_accuracy,
    hidden_layer_report,
    label_spread,
    majority,
    shared_classes,
)


def test_majority_is_a_strict_majority_of_k():
    assert [majority(k) for k in (1, 2, 3, 4, 5, 10)] == [1, 2, 2, 3, 3, 6]


def test_shared_class_needs_a_strict_majority_of_the_top_clips():
    concepts = ["dog", "dog", "dog", "rain", "rain", None, "cat"]
    top = np.array(
        [
            [0, 1, 2, 3, 4],  # 3 dog
            [0, 1, 3, 4, 6],  # 2 dog, 2 rain: none
            [5, 5, 5, 0, 1],  # 3 unlabelled, 2 dog: none
            [3, 4, 3, 4, 0],  # 4 rain
        ]
    )
    assert shared_classes(top, concepts, 3) == ["dog", None, None, "rain"]
    with pytest.raises(ValueError, match="strict majority"):
        shared_classes(top, concepts, 2)


def test_accuracy_and_chance_hand_computed():
    # Every neuron predicts dog first and rain second; one of four shares dog, three rain.
    ranked = [["dog", "rain"]] * 4
    truth = ["dog", "rain", "rain", "rain"]
    out = accuracy_and_chance(ranked, truth, np.random.default_rng(0), n_shuffles=50)
    # Top-1 right for the one dog neuron; top-5 (dog or rain) right for all. Any shuffle of
    # the truth keeps one dog among four, so chance equals the same figures exactly.
    assert out == {"top1": 0.25, "top5": 1.0, "chance_top1": 0.25, "chance_top5": 1.0}


def test_chance_is_the_mean_over_seeded_shuffles():
    ranked = [["dog"], ["rain"], ["cat"], ["dog"]]
    truth = ["dog", "rain", "cat", "cat"]
    a = accuracy_and_chance(ranked, truth, np.random.default_rng(3), n_shuffles=4000)
    b = accuracy_and_chance(ranked, truth, np.random.default_rng(3), n_shuffles=4000)
    assert a == b  # seeded
    assert a["top1"] == 0.75
    # Exact expectation over uniform permutations: mean over neurons of the share of truth
    # entries equal to its prediction: (1/4 + 1/4 + 2/4 + 1/4) / 4 = 0.3125.
    assert a["chance_top1"] == pytest.approx(0.3125, abs=0.01)


def test_names_compare_loosely_and_empty_input_is_nan():
    out = accuracy_and_chance([["Water_Drops"]], ["water drops"], np.random.default_rng(0), 1)
    assert out["top1"] == 1.0
    empty = accuracy_and_chance([], [], np.random.default_rng(0), 1)
    assert all(np.isnan(v) for v in empty.values())


def test_table_scores_only_neurons_with_a_shared_class_and_pools_layers():
    ranked = {"db_cos": {"a": [["dog"], ["rain"], ["cat"]], "b": [["rain"], ["dog"]]}}
    truth = {"a": ["dog", None, "dog"], "b": ["rain", "rain"]}
    table = hidden_layer_accuracy(ranked, truth, lambda *_: np.random.default_rng(0), 10)
    rows = table.set_index("layer")
    assert rows.loc["a", "n_layer"] == 3 and rows.loc["a", "n_neurons"] == 2
    assert rows.loc["a", "top1"] == 0.5
    assert rows.loc["b", "top1"] == 0.5
    assert rows.loc[ALL_HIDDEN, "n_neurons"] == 4 and rows.loc[ALL_HIDDEN, "top1"] == 0.5


def test_report_reads_top_clips_labels_and_concept_columns():
    neurons = pd.DataFrame(
        {
            "layer": ["h", "h"],
            "neuron": [0, 1],
            "db_cos": ["dog", "rain"],
            "db_cos_top5": ["dog;rain", "rain;dog"],
        }
    )
    top = {"h": np.array([[0, 1, 2], [3, 4, 0]])}
    labels = ["Dog", "dog", "rain", "rain", "rain"]
    table = hidden_layer_report(
        neurons, top, labels, ["dog", "rain"], ["db_cos"], 3, lambda *_: np.random.default_rng(0)
    )
    assert table["n_neurons"].tolist() == [2] and table["top1"].tolist() == [1.0]


def test_clip_labels_map_to_concepts_or_none():
    assert clip_concepts(["001 - Dog bark", "", None, "glorp"], ["dog", "rain"]) == [
        "dog",
        None,
        None,
        None,
    ]


def test_label_spread_is_the_most_shared_class_over_all_the_layers_neurons():
    assert label_spread(["dog", None, "rain", "dog", None]) == {
        "label_top_class": "dog",
        "label_top_share": 0.4,
    }
    assert label_spread(["rain", "dog"])["label_top_class"] == "dog"  # ties: sorted order
    assert label_spread([None, None]) == {"label_top_class": "", "label_top_share": 0.0}
