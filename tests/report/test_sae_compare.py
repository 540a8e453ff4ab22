"""Neurons against SAE latents: per-unit measures, the comparison, its verdict and figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from andlib.report import sae_compare as sc

LAYER, SAE = "layers.2.out", "sae.layers.2.out.k32"


def test_a_description_names_a_source_when_it_holds_a_class_names_words():
    classes = [set(sc.stems(c)) for c in ("dog", "crying_baby", "water_drops")]
    assert sc.names_source("Most likely dogs barking.", classes)
    assert sc.names_source("A baby is crying loudly", classes)
    assert not sc.names_source("A loud, high-pitched sound with water", classes)
    assert not sc.names_source("", classes)


def test_pairs_match_each_sae_layer_with_its_recorded_layer():
    assert sc.pairs([LAYER, SAE, "layers.0.out", "sae.layers.9.out.k4"]) == [(LAYER, SAE)]


def scores_table(own: dict[str, list[float]], random: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for variant, by_layer in (("own", own), ("random", random)):
        for layer, values in by_layer.items():
            for neuron, v in enumerate(values):
                rows.append((layer, neuron, "simulation", "pearson", variant, v, 10))
    cols = ["layer", "neuron", "scorer", "metric", "variant", "value", "n"]
    return pd.DataFrame(rows, columns=cols)


def test_unit_measures_read_every_table():
    scores = scores_table({LAYER: [0.2, 0.4], SAE: [0.5]}, {LAYER: [0.1, 0.1], SAE: [0.0]})
    purity = pd.DataFrame({"layer": [LAYER, SAE], "neuron": [0, 0], "purity": [0.4, 1.0]})
    poly = pd.DataFrame({"layer": [SAE], "neuron": [0], "polysemantic": [True]})
    neurons = pd.DataFrame(
        {
            "layer": [LAYER, SAE],
            "neuron": [0, 0],
            "high_summary": ["a dog", "noise"],
            "calibrated_summary": ["", "a rooster crowing"],
        }
    )
    m = sc.unit_measures(scores, purity, 0.25, poly, neurons, ["dog", "rooster"])
    value = m.set_index(["layer", "neuron", "measure"])["value"]
    assert value[(LAYER, 1, "simulation")] == pytest.approx(0.4)
    assert value[(LAYER, 1, "simulation_over_random")] == pytest.approx(0.3)
    assert not (m["measure"] == "detection").any()  # no detection rows: no detection measure
    assert value[(SAE, 0, "class_purity_over_chance")] == pytest.approx(0.75)
    assert value[(SAE, 0, "polysemantic")] == 1.0
    assert value[(LAYER, 0, "names_source")] == 1.0  # the empty calibrated summary falls back
    assert value[(SAE, 0, "names_source")] == 1.0


def test_compare_finds_a_planted_difference_and_none_where_there_is_none():
    gen = np.random.default_rng(0)
    rows = []
    for layer, shift in ((LAYER, 0.0), (SAE, 0.3)):
        for neuron in range(60):
            rows.append((layer, neuron, "simulation", 0.2 + shift + 0.05 * gen.standard_normal()))
            rows.append((layer, neuron, "polysemantic", float(neuron % 2)))
    measures = pd.DataFrame(rows, columns=["layer", "neuron", "measure", "value"])
    table = sc.compare(measures, [(LAYER, SAE)], draws=500, seed=0)
    sim = table.set_index("measure").loc["simulation"]
    assert sim["difference"] == pytest.approx(0.3, abs=0.03)
    assert 0 < sim["ci_low"] < 0.3 < sim["ci_high"]
    poly = table.set_index("measure").loc["polysemantic"]
    assert poly["difference"] == 0 and poly["ci_low"] <= 0 <= poly["ci_high"]
    text = sc.verdict(table)
    assert "latents read better on: simulation Pearson r" in text
    assert "no difference shown on: polysemantic share" in text
    assert "neither beats the other here" in text  # one measure of two never decides


def test_latents_beat_neurons_only_when_better_on_most_measures_and_worse_on_none():
    def row(measure, difference):
        return [LAYER, SAE, measure, 50, 50, 0.5, 0.5 + difference, difference]

    def table(*rows):
        cols = sc.COLUMNS
        full = [r + [r[-1] - 0.05, r[-1] + 0.05, "bootstrap over units"] for r in rows]
        return pd.DataFrame(full, columns=cols)

    most = table(row("simulation", 0.2), row("names_source", 0.2), row("polysemantic", 0.0))
    assert "latents beat neurons here" in sc.verdict(most)
    mixed = table(row("simulation", 0.2), row("names_source", 0.2), row("polysemantic", 0.3))
    assert "neither beats the other here" in sc.verdict(mixed)


def test_a_higher_polysemantic_share_reads_worse_for_latents():
    table = pd.DataFrame(
        [[LAYER, SAE, "polysemantic", 50, 50, 0.1, 0.6, 0.5, 0.3, 0.7, "bootstrap over units"]],
        columns=sc.COLUMNS,
    )
    assert "neurons read better on: polysemantic share" in sc.verdict(table)
    assert "neurons beat latents here" in sc.verdict(table)


def test_hidden_rows_compare_two_proportions():
    hidden = pd.DataFrame(
        {
            "layer": [LAYER, SAE, LAYER],
            "method": ["db_soft_wpmi", "db_soft_wpmi", "db_cos"],
            "n_neurons": [100, 100, 100],
            "top1": [0.2, 0.5, 0.9],
        }
    )
    row = sc.hidden_rows(hidden, [(LAYER, SAE)], "db_soft_wpmi").iloc[0]
    assert row["difference"] == pytest.approx(0.3)
    se = np.sqrt(0.2 * 0.8 / 100 + 0.5 * 0.5 / 100)
    assert row["ci_low"] == pytest.approx(0.3 - 1.96 * se)
    assert sc.hidden_rows(None, [(LAYER, SAE)], "db_soft_wpmi").empty


def test_the_figure_draws_one_panel_per_pair():
    table = pd.DataFrame(
        [[LAYER, SAE, "simulation", 5, 5, 0.1, 0.2, 0.1, 0.0, 0.2, "bootstrap over units"]],
        columns=sc.COLUMNS,
    )
    fig = sc.comparison_figure(table)
    assert len(fig.axes) == 1 and SAE in fig.axes[0].get_title()


def test_the_stage_does_nothing_without_sae_layers(tmp_cfg):
    from andlib.store import RunDir, write_json

    cfg = tmp_cfg()
    run = RunDir(cfg.run_path)
    assert sc.run_stage(cfg, run) == {"sae_compare": "no recording"}
    write_json(run.path / "activations" / "index.json", {"clip_ids": [], "layers": {LAYER: {}}})
    assert sc.run_stage(cfg, run) == {"sae_compare": "no SAE layers"}


def test_detection_is_compared_by_its_auroc():
    scores = scores_table({SAE: [0.9]}, {SAE: [0.6]})
    scores = scores.assign(scorer="detection", metric="auroc")
    m = sc.unit_measures(scores, None, 0.0, None, None, [])
    value = m.set_index(["measure"])["value"]
    assert value["detection"] == pytest.approx(0.9)
    assert value["detection_over_random"] == pytest.approx(0.3)
