"""andlib.report.comparison: the strategies compared side by side, per depth and over seeds."""

from __future__ import annotations

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


def test_compare_runs_collects_metrics_side_by_side(tmp_path):
    runs = {
        "supervised": _strategy_run(tmp_path / "sup", [0.1, 0.05], [2.0, 1.0], 0.8, [0.4, 0.3]),
        "ssl-frozen": _strategy_run(tmp_path / "ssl", [0.3, 0.4], [1.5, 1.5], 0.5, [0.2, 0.1]),
    }
    df = an.compare_runs(runs)
    assert list(df.columns) == ["model", "metric", "layer", "depth", "value"]

    def value(model, metric, layer):
        sel = df[(df.model == model) & (df.metric == metric) & (df.layer == layer)]
        assert len(sel) == 1
        return float(sel["value"].iloc[0])

    assert value("ssl-frozen", "polysemantic_fraction", "layers.1.mlp") == 0.4
    assert value("supervised", "mean_adjectives", "layers.0.mlp") == 2.0
    assert value("supervised", "simulation_pearson", "layers.0.mlp") == pytest.approx(0.4)
    assert value("supervised", "simulation_pearson", "layers.1.mlp") == pytest.approx(0.3)
    assert value("ssl-frozen", "last_layer_top1", "acoustic / soft_wpmi") == 0.5
    assert value("supervised", "acoustic_share", "layers.1.mlp") == 1.0  # from neurons.csv
    assert value("supervised", "heldout_accuracy", "model") == 0.55
    assert value("ssl-frozen", "class_purity", "layers.0.mlp") == 0.6
    assert df.loc[df.metric == "last_layer_top1", "depth"].isna().all()
    assert df.loc[df.layer == "layers.1.mlp", "depth"].eq(1).all()


def test_depth_trends_regress_purity_and_polysemanticity_on_block_over_hidden_layers(tmp_path):
    run = RunDir(tmp_path / "run")
    layers = ["layers.0.mlp"] * 4 + ["layers.1.mlp"] * 4 + ["classifier"] * 2
    run.write_csv(
        "analysis/class_purity.csv",
        pd.DataFrame(
            {"layer": layers, "neuron": range(10), "purity": [0.2] * 4 + [0.6] * 4 + [1.0] * 2}
        ),
    )
    run.write_csv(
        "analysis/neuron_polysemanticity.csv",
        pd.DataFrame(
            {
                "layer": layers,
                "neuron": range(10),
                "polysemantic": [True, True, False, False] * 2 + [True, True],
            }
        ),
    )
    trends = an.depth_trends({"m": run}).set_index("metric")
    purity = trends.loc["class_purity"]
    assert purity["slope"] == pytest.approx(0.4) and purity["n"] == 8  # classifier left out
    assert purity["mean"] == pytest.approx(0.4)
    assert trends.loc["polysemantic", "slope"] == pytest.approx(0.0)
    assert an.depth_trends({"empty": RunDir(tmp_path / "none")}).empty


def test_run_comparison_on_a_strategies_config(tmp_cfg):
    cfg = tmp_cfg({"strategies": ["supervised", "ssl-frozen", "ssl-finetuned"]})
    _strategy_run(cfg.run_path / "supervised", [0.1, 0.05], [2.0, 1.0], 0.8, [0.4, 0.3])
    _strategy_run(cfg.run_path / "ssl-frozen", [0.3, 0.4], [1.5, 1.5], 0.5, [0.2, 0.1])
    parent = RunDir.from_config(cfg)
    summary = an.run_stage(cfg, parent)  # no neurons.csv of its own: compares the strategies
    assert summary["comparison_models"] == ["supervised", "ssl-frozen"]
    assert summary["missing"] == ["ssl-finetuned"]
    assert not (cfg.run_path / "ssl-finetuned").exists()  # looking does not create it
    table = pd.read_csv(parent / "analysis" / "strategies_comparison.csv")
    assert (parent / "analysis" / "strategies_trends.csv").exists()
    assert set(table["model"]) == {"supervised", "ssl-frozen"}
    for name in ("strategies_comparison", "strategies_adjective_distribution"):
        assert (cfg.figures_path / f"{name}.png").exists() and (
            cfg.figures_path / f"{name}.pdf"
        ).exists()


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


def test_the_comparison_figures_show_every_seed(tmp_cfg):
    import matplotlib.pyplot as plt

    from andlib.report import plots

    cfg = tmp_cfg({"strategies": ["supervised", "ssl-frozen"], "seeds": [0, 1]})
    for (model, seed), args in SEED_RUNS.items():
        _seed_run(cfg.run_path / model / f"seed{seed}", *args)
    result = an.seed_comparison(cfg)
    fig = plots.plot_strategies_comparison(result["comparison"])
    purity_ax = fig.axes[2]  # class purity per layer: one line per model and seed + chance
    drawn = [ln for ln in purity_ax.get_lines() if len(ln.get_xdata()) > 1 and ln.get_ls() == "-"]
    assert len(drawn) == 4 and len({ln.get_marker() for ln in drawn}) == 2
    plt.close(fig)
    fig = plots.plot_seed_measures(result["per_seed"])
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    slope_ax = fig.axes[titles.index(measures.MEASURES["class_purity_slope"])]
    points = [ln for ln in slope_ax.get_lines() if ln.get_marker() not in ("None", "", None)]
    points = [ln for ln in points if ln.get_marker() in plots.SEED_MARKERS]
    assert len(points) == 4  # two models x two seeds, one marker each
    plt.close(fig)
