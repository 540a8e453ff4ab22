"""andlib.report.seeds: measures over training seeds and the orderings that hold in every seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from andlib.report import analysis as an
from andlib.report import measures
from andlib.store import RunDir


def _strategy_run(
    path, frac: list[float], adj: list[float], top1: float, sim: list[float]
) -> RunDir:
    run = RunDir(path)
    layers = ["layers.0.mlp", "layers.1.mlp"]
    run.write_csv(
        "analysis/polysemantic_per_layer.csv",
        pd.DataFrame(
            {
                "layer": layers,
                "depth": [0, 1],
                "n_neurons": 4,
                "n_polysemantic": 0,
                "fraction": frac,
            }
        ),
    )
    run.write_csv(
        "analysis/adjectives_per_layer.csv",
        pd.DataFrame({"layer": layers, "depth": [0, 1], "n_neurons": 4, "mean_adjectives": adj}),
    )
    run.write_json(
        "last_layer.json",
        {"acoustic": {"soft_wpmi": {"top1": top1, "top5": 1.0, "cos": 0.5, "n_neurons": 50}}},
    )
    run.write_json("model.json", {"model_id": "trained:x", "heldout_accuracy": 0.55})
    run.write_csv(
        "analysis/class_purity_per_layer.csv",
        pd.DataFrame({"layer": layers, "depth": [0, 1], "mean_purity": 0.6, "chance": 0.22}),
    )
    run.write_csv(
        "scores.csv",
        pd.DataFrame(
            {
                "layer": [layers[0], layers[0], layers[1], layers[1]],
                "neuron": [0, 1, 0, 0],
                "scorer": "simulation",
                "metric": "pearson",
                "variant": ["own", "own", "own", "random"],
                "value": [sim[0] - 0.1, sim[0] + 0.1, sim[1], 0.9],
                "n": 10,
            }
        ),
    )
    run.write_csv(
        "neurons.csv",
        pd.DataFrame(
            {
                "layer": layers,
                "neuron": [0, 0],
                "adjectives": ["loud", "loud;soft"],
                "open_concepts": "",
            }
        ),
    )
    return run


def _seed_run(path, purity_slope: float, heldout: float, sim: float) -> RunDir:
    """A strategy run of one seed: the comparison metrics of :func:`_strategy_run`, plus
    per-neuron class purity rising by ``purity_slope`` per block (four neurons a block, two
    classifier neurons), a flat polysemantic flag and ``heldout`` accuracy on 400 clips."""
    run = _strategy_run(path, [0.1, 0.05], [2.0, 1.0], 0.8, [sim, sim])
    layers = ["layers.0.mlp"] * 4 + ["layers.1.mlp"] * 4 + ["classifier"] * 2
    base = [0.38, 0.40, 0.42, 0.40]
    purity = base + [p + purity_slope for p in base] + [0.9, 1.0]
    run.write_csv(
        "analysis/class_purity.csv",
        pd.DataFrame({"layer": layers, "neuron": range(10), "purity": purity}),
    )
    run.write_csv(
        "analysis/neuron_polysemanticity.csv",
        pd.DataFrame({"layer": layers, "neuron": range(10), "polysemantic": [True, False] * 5}),
    )
    run.write_json(
        "model.json", {"model_id": "trained:x", "heldout_accuracy": heldout, "n_heldout": 400}
    )
    return run


# supervised narrows faster than ssl-frozen in both seeds; held-out accuracy swaps order
SEED_RUNS = {
    ("supervised", 0): (0.20, 0.55, 0.10),
    ("supervised", 1): (0.30, 0.50, 0.20),
    ("ssl-frozen", 0): (0.05, 0.52, 0.15),
    ("ssl-frozen", 1): (0.10, 0.58, 0.25),
}


def test_seed_runs_are_aggregated_with_their_spread_and_orderings_that_hold_in_every_seed(
    tmp_cfg,
):
    cfg = tmp_cfg({"strategies": ["supervised", "ssl-frozen"], "seeds": [0, 1]})
    for (model, seed), args in SEED_RUNS.items():
        _seed_run(cfg.run_path / model / f"seed{seed}", *args)
    _seed_run(cfg.run_path / "supervised", 9.0, 0.99, 0.9)  # a run without seeds: not read
    runs = an.seed_runs(cfg)
    assert {m: sorted(r) for m, r in runs.items()} == {"supervised": [0, 1], "ssl-frozen": [0, 1]}

    parent = RunDir.from_config(cfg)
    result = an.run_stage(cfg, parent)
    assert result["seeds"] == {"supervised": [0, 1], "ssl-frozen": [0, 1]}
    assert result["missing"] == []
    out = parent.path / "analysis"
    summary = pd.read_csv(out / "strategies_seed_summary.csv")
    # one row per model and measure, with the mean and the spread between seeds
    assert not summary.duplicated(["model", "measure"]).any()
    assert set(summary["model"]) == {"supervised", "ssl-frozen"}
    for column in ("mean", "sd", "min", "max", "spread", "within_half_width"):
        assert summary[column].notna().all(), column
    row = summary.set_index(["model", "measure"])
    slope = row.loc[("supervised", "class_purity_slope")]
    assert slope["n_seeds"] == 2 and slope["seeds"] == "0;1"
    assert slope["mean"] == pytest.approx(0.25) and slope["spread"] == pytest.approx(0.10)
    assert slope["min"] == pytest.approx(0.20) and slope["max"] == pytest.approx(0.30)
    assert slope["sd"] == pytest.approx(np.std([0.20, 0.30], ddof=1))
    held = row.loc[("ssl-frozen", "heldout_accuracy")]
    assert held["mean"] == pytest.approx(0.55)
    assert 0.03 < held["within_half_width"] < 0.06  # Wilson interval on 400 clips
    # an ordering is stated only where it holds in every seed
    assert bool(slope["holds_in_every_seed"]) and slope["rank"] == 1
    assert row.loc[("ssl-frozen", "class_purity_slope"), "rank"] == 2
    assert not row.loc[("supervised", "heldout_accuracy"), "holds_in_every_seed"]
    assert np.isnan(row.loc[("supervised", "heldout_accuracy"), "rank"])
    orderings = pd.read_csv(out / "strategies_orderings.csv").set_index("measure")
    assert orderings.loc["class_purity_slope", "higher"] == "supervised"
    assert bool(orderings.loc["class_purity_slope", "holds_in_every_seed"])
    assert not orderings.loc["heldout_accuracy", "holds_in_every_seed"]
    assert orderings.loc["heldout_accuracy", "share_of_pairs"] == pytest.approx(0.75)
    # simulation: the seed ranges overlap (0.10-0.20 vs 0.15-0.25): no ordering
    assert not orderings.loc["simulation_pearson", "holds_in_every_seed"]
    # the verdict says which hold, and that the others do not
    verdict = (out / "strategies_verdict.txt").read_text()
    assert verdict == result["verdict"] + "\n"
    lines = {line.split(":")[0].lstrip("- "): line for line in verdict.splitlines()[1:]}
    assert "supervised (mean 0.25" in lines[measures.MEASURES["class_purity_slope"]]
    assert "> ssl-frozen (mean 0.075" in lines[measures.MEASURES["class_purity_slope"]]
    assert lines[measures.MEASURES["heldout_accuracy"]].endswith("no ordering holds in every seed.")
    # the per-seed tables keep every seed
    per_seed = pd.read_csv(out / "strategies_seed_measures.csv")
    assert len(per_seed[per_seed["measure"] == "class_purity_slope"]) == 4
    comparison = pd.read_csv(out / "strategies_comparison.csv")
    assert set(comparison["seed"]) == {0, 1}
    assert set(pd.read_csv(out / "strategies_trends.csv")["seed"]) == {0, 1}
    for name in ("strategies_comparison", "strategies_seeds"):
        assert (cfg.figures_path / f"{name}.png").exists()


def test_one_run_per_model_states_no_ordering(tmp_cfg):
    cfg = tmp_cfg({"strategies": ["supervised", "ssl-frozen"]})
    _seed_run(cfg.run_path / "supervised", 0.30, 0.55, 0.1)
    _seed_run(cfg.run_path / "ssl-frozen", 0.05, 0.30, 0.1)
    result = an.seed_comparison(cfg)
    assert "seed" not in result["comparison"] and "seed" not in result["trends"]
    summary = result["summary"]
    assert (summary["n_seeds"] == 1).all() and summary["sd"].isna().all()
    assert not summary["holds_in_every_seed"].any()
    assert not result["orderings"]["holds_in_every_seed"].any()
    assert result["verdict"].startswith("One run per model: no ordering is stated")


def test_seeds_tied_at_float_precision_do_not_order_two_models():
    from andlib.report.seeds import seed_orderings

    per_seed = pd.DataFrame(
        {
            "model": ["frozen"] * 3 + ["finetuned"] * 3,
            "seed": [0, 1, 2] * 2,
            "measure": "polysemantic_slope",
            "value": [0.009, 0.0015625000000000036, 0.022, -0.027, -0.051, 0.0015625],
        }
    )
    row = seed_orderings(per_seed).iloc[0]
    assert row["higher"] == "frozen" and not row["holds_in_every_seed"]
    assert row["share_of_pairs"] == pytest.approx(8 / 9)
    per_seed.loc[5, "value"] = 0.0015
    assert seed_orderings(per_seed).iloc[0]["holds_in_every_seed"]
