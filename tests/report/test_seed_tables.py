"""andlib.report.seed_tables: one seed's tables from its runs, and the comparison over every
seed kept (planted tables in temporary folders)."""

from __future__ import annotations

import pandas as pd
import pytest

from andlib.layout import read_seed_tables
from andlib.report import seed_tables as st
from andlib.store import RunDir

LAYERS = ["layers.0.mlp", "layers.1.mlp", "classifier"]


def planted_run(path, purity: float, slope: float, top1: float = 0.4) -> RunDir:
    """A strategy run with the files the seed tables read: ``model.json``, the per-neuron and
    per-layer analysis tables, the hidden-layer accuracy and the pruning summary."""
    run = RunDir(path)
    run.write_json(
        "model.json",
        {
            "model_id": "trained:x",
            "heldout_accuracy": purity,
            "n_heldout": 400,
            "train_accuracy": 0.8,
            "train_seconds": 12.5,
            "num_threads": 2,
            "device": "cpu",
            "seed": 0,
        },
    )
    rows = []
    for block, layer in enumerate(LAYERS):
        for neuron in range(4):
            value = purity + slope * block + 0.01 * neuron
            rows.append({"layer": layer, "neuron": neuron, "purity": value, "polysemantic": 0})
    df = pd.DataFrame(rows)
    run.write_csv("analysis/class_purity.csv", df)
    run.write_csv("analysis/neuron_polysemanticity.csv", df)
    run.write_csv(
        "analysis/class_purity_per_layer.csv",
        pd.DataFrame({"layer": LAYERS, "depth": [0, 1, 2], "mean_purity": purity, "chance": 0.2}),
    )
    run.write_csv(
        "analysis/polysemantic_per_layer.csv",
        pd.DataFrame({"layer": LAYERS, "depth": [0, 1, 2], "fraction": 0.3}),
    )
    run.write_csv(
        "hidden_layer_accuracy.csv",
        pd.DataFrame(
            {
                "layer": ["all hidden", "layers.0.mlp"],
                "method": ["db_soft_wpmi", "db_soft_wpmi"],
                "n_neurons": [50, 25],
                "top1": [top1, 0.5],
                "top5": [0.7, 0.7],
                "chance_top1": [0.1, 0.1],
                "chance_top5": [0.3, 0.3],
            }
        ),
    )
    run.write_csv(
        "pruning_summary.csv",
        pd.DataFrame(
            {
                "strategy": ["db", "random"],
                "n_concepts": [10, 10],
                "n_pruned_mean": [5.0, 5.0],
                "delta_a_minus_r_mean": [0.3, 0.0],
                "ci_low": [0.1, -0.1],
                "ci_high": [0.5, 0.1],
            }
        ),
    )
    return run


def test_seed_tables_hold_every_measure_the_comparison_needs(tmp_path):
    runs = {
        "supervised": planted_run(tmp_path / "a", 0.5, 0.02),
        "ssl-frozen": planted_run(tmp_path / "b", 0.4, 0.0),
    }
    tables = st.seed_tables(runs, "soft_wpmi")
    m = tables["measures.csv"]
    sup = m[m["strategy"] == "supervised"].set_index("measure")
    assert sup.loc["heldout_accuracy", "value"] == 0.5 and sup.loc["heldout_accuracy", "n"] == 400
    assert sup.loc["class_purity_slope", "value"] == pytest.approx(0.02)
    assert sup.loc["hidden_top1: db_soft_wpmi", "value"] == 0.4
    assert sup.loc["hidden_top1: db_soft_wpmi", "n"] == 50
    assert sup.loc["pruning: db", "value"] == 0.3 and sup.loc["pruning: db", "ci_low"] == 0.1
    assert {"polysemantic_hidden", "polysemantic_slope"} <= set(sup.index)
    per = tables["per_layer.csv"]
    assert set(per["metric"]) == set(st.PER_LAYER_METRICS)
    assert per.loc[per["layer"] == "classifier", "depth"].eq(2).all()
    training = tables["training.csv"].set_index("strategy")
    assert training.loc["ssl-frozen", "device"] == "cpu"
    assert training.loc["ssl-frozen", "num_threads"] == 2
    assert training.loc["supervised", "train_seconds"] == 12.5


def plant_seed(root, seed: int, purities: dict[str, float], recipe: str = "r1", date: str = ""):
    """Write a seed folder as :func:`strategies_seed` would, from planted runs."""
    runs = {
        s: planted_run(root / "runs" / f"{s}{seed}", p, 0.01 * (i + 1))
        for i, (s, p) in enumerate(purities.items())
    }
    provenance = {
        "seed": seed,
        "date": date or f"2026-12-0{seed + 1} 10:00:00 UTC",
        "commit": "abc",
        "config": "configs/strategies.yaml",
        "keys": {s: {"train": f"k{seed}"} for s in runs},
        "recipe": {
            s: {stage: "same" for stage in st.TABLE_STAGES["measures.csv"]} | {"analysis": recipe}
            for s in runs
        },
    }
    return st.write_seed_tables(
        root / "tables" / f"seed{seed}", st.seed_tables(runs, "soft_wpmi"), provenance
    )


def test_the_comparison_aggregates_every_committed_seed(tmp_path):
    for seed, shift in ((0, 0.0), (1, 0.02), (2, 0.04)):
        plant_seed(tmp_path, seed, {"supervised": 0.6 + shift, "ssl-frozen": 0.3 + shift})
    found = read_seed_tables(tmp_path / "tables")
    assert list(found) == [0, 1, 2]
    assert found[1]["provenance"]["tables"]["training.csv"]["stages"] == ["train", "record"]
    result = st.committed_comparison(tmp_path / "tables", "configs/strategies.yaml")
    assert result["seeds"] == [0, 1, 2]
    summary = result["summary"].set_index(["model", "measure"])
    held = summary.loc[("supervised", "heldout_accuracy")]
    assert held["n_seeds"] == 3 and held["seeds"] == "0;1;2"
    assert held["mean"] == pytest.approx(0.62) and held["sd"] == pytest.approx(0.02)
    assert (held["min"], held["max"]) == (pytest.approx(0.6), pytest.approx(0.64))
    orderings = result["orderings"].set_index("measure")
    row = orderings.loc["heldout_accuracy"]
    assert row["higher"] == "supervised" and bool(row["holds_in_every_seed"])
    assert "supervised" in result["verdict"] and "0, 1, 2" in result["verdict"]
    training = result["training"]
    assert len(training) == 6 and set(training["device"]) == {"cpu"}
    assert set(training["date"]) == {f"2026-12-0{k} 10:00:00 UTC" for k in (1, 2, 3)}


def test_a_seed_from_other_stage_keys_is_refused_with_the_command_that_reruns_it(tmp_path):
    plant_seed(tmp_path, 0, {"supervised": 0.6, "ssl-frozen": 0.3}, recipe="old")
    plant_seed(tmp_path, 1, {"supervised": 0.6, "ssl-frozen": 0.3}, recipe="new")
    plant_seed(tmp_path, 2, {"supervised": 0.6, "ssl-frozen": 0.3}, recipe="new")
    with pytest.raises(st.StaleSeedsError) as err:
        st.committed_comparison(tmp_path / "tables", "configs/strategies.yaml")
    message = str(err.value)
    assert "seeds 0 were made from other stage keys (analysis) than seed 2" in message
    assert "python -m andlib strategies-seed --config configs/strategies.yaml --seed 0" in message
    assert "--seed 1" not in message and "\n" not in message


def test_the_newest_seed_sets_the_stage_keys_the_others_must_match(tmp_path):
    plant_seed(tmp_path, 0, {"supervised": 0.6}, recipe="new", date="2026-12-09 10:00:00 UTC")
    plant_seed(tmp_path, 1, {"supervised": 0.6}, recipe="old", date="2026-12-01 10:00:00 UTC")
    with pytest.raises(st.StaleSeedsError, match=r"seeds 1 .* than seed 0 .*--seed 1`$"):
        st.committed_comparison(tmp_path / "tables", "configs/strategies.yaml")


def test_a_measure_is_checked_only_against_the_stages_it_comes_from(tmp_path):
    """Held-out accuracy comes from training alone: a changed analysis does not refuse it."""
    for seed, recipe in ((0, "old"), (1, "new")):
        folder = tmp_path / "tables" / f"seed{seed}"
        plant_seed(tmp_path, seed, {"supervised": 0.6}, recipe=recipe)
        m = pd.read_csv(folder / "measures.csv")
        m[m["measure"] == "heldout_accuracy"].to_csv(folder / "measures.csv", index=False)
    result = st.committed_comparison(tmp_path / "tables", "configs/strategies.yaml")
    assert list(result["per_seed"]["measure"].unique()) == ["heldout_accuracy"]
    assert result["per_seed"]["seed"].tolist() == [0, 1]


def test_the_rerun_command_carries_the_seeds_overrides():
    command = st.rerun_command("configs/s.yaml", [0, 2], ["k=3", "data.root=/a b"])
    assert command == (
        "python -m andlib strategies-seed --config configs/s.yaml --seed 0 --set k=3"
        " --set 'data.root=/a b' && python -m andlib strategies-seed --config configs/s.yaml"
        " --seed 2 --set k=3 --set 'data.root=/a b'"
    )


def test_no_committed_seed_gives_empty_tables(tmp_path):
    result = st.committed_comparison(tmp_path / "none", "configs/strategies.yaml")
    assert result["seeds"] == [] and result["per_seed"].empty and result["training"].empty
    assert result["summary"].empty and result["verdict"] == "No strategy runs to compare yet."
