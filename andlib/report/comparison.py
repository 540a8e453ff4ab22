"""Training strategies compared, over training seeds: does an ordering survive a retrain?

The parent run of a ``strategies`` config (:func:`run_comparison`, called by the analysis
stage): :func:`compare_runs` gathers per-layer metrics of several runs (one per model) into one
tidy table for :func:`andlib.report.plots.plot_strategies_comparison`, :func:`depth_trends`
regresses them on depth. Over training seeds (``seeds``): :func:`compare_seed_runs` and
:func:`seed_trends` do the same for every seed, and :mod:`andlib.report.seeds` says which
orderings of the models' measures hold in every seed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from andlib.config import Config
from andlib.layout import (
    ANALYSIS_DIR,
    analysis_file,
    layer_depths,
    read_table,
    seed_runs,
    strategy_trains,
)
from andlib.report.model_table import model_table, models_layers, plot_models, reference_runs
from andlib.report.seeds import (
    per_neuron_measures,
    seed_measures,
    seed_orderings,
    seed_summary,
    seed_verdict,
)
from andlib.report.tables import (
    adjective_counts,
    adjectives_per_layer,
    balance_per_layer,
    description_balance,
    linear_trend,
)
from andlib.store import (
    RunDir,
    atomic_write_text,
    read_model_info,
    read_neurons,
    read_scores,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Strategies compared
# --------------------------------------------------------------------------------------------


def run_metrics(run: RunDir) -> pd.DataFrame:
    """One run's comparable metrics as ``metric, layer, value`` rows.

    Per layer: ``polysemantic_fraction`` and ``feature_r2_median`` (from ``analysis/``),
    ``mean_adjectives`` and ``acoustic_share`` (from ``analysis/`` or ``neurons.csv``),
    ``simulation_pearson`` (mean Pearson r of the own description by the ``simulation``
    scorer in ``scores.csv``), ``class_purity`` (and ``class_purity_chance``). Per
    captioner/method (as ``layer``): ``last_layer_top1`` and ``last_layer_top5`` from
    ``last_layer.json``. ``heldout_accuracy`` (layer ``model``): the model's own held-out
    classification accuracy from ``model.json``. Missing inputs add no rows.
    """
    rows: list[pd.DataFrame] = []

    def add(metric: str, layers: pd.Series, values: pd.Series) -> None:
        rows.append(
            pd.DataFrame(
                {
                    "metric": metric,
                    "layer": layers.astype(str).to_numpy(),
                    "value": values.to_numpy(dtype=float),
                }
            )
        )

    poly = read_table(run, "polysemantic_per_layer.csv")
    if poly is not None:
        add("polysemantic_fraction", poly["layer"], poly["fraction"])
    adj = read_table(run, "adjectives_per_layer.csv")
    bal = read_table(run, "acoustic_vs_concepts.csv")
    if (adj is None or bal is None) and run.exists("neurons.csv"):
        neurons = read_neurons(run)
        adj = adj if adj is not None else adjectives_per_layer(neurons)
        bal = bal if bal is not None else balance_per_layer(description_balance(neurons))
    if adj is not None:
        add("mean_adjectives", adj["layer"], adj["mean_adjectives"])
    if bal is not None:
        add("acoustic_share", bal["layer"], bal["acoustic"])
    r2 = read_table(run, "feature_r2_per_layer.csv")
    if r2 is not None:
        add("feature_r2_median", r2["layer"], r2["median_r2"])
    purity = read_table(run, "class_purity_per_layer.csv")
    if purity is not None:
        add("class_purity", purity["layer"], purity["mean_purity"])
        add("class_purity_chance", purity["layer"], purity["chance"])
    held = read_model_info(run).get("heldout_accuracy")
    if held is not None:
        add("heldout_accuracy", pd.Series(["model"]), pd.Series([held]))
    sim = read_scores(run, scorer="simulation", metric="pearson", variant="own")
    if sim is not None:
        mean = sim.groupby(sim["layer"])["value"].mean()
        add("simulation_pearson", mean.index.to_series(), mean)
    if run.exists("last_layer.json"):
        for captioner, methods in run.read_json("last_layer.json").items():
            for method, scores in methods.items():
                for top in ("top1", "top5"):
                    if scores.get(top) is not None:
                        add(
                            f"last_layer_{top}",
                            pd.Series([f"{captioner} / {method}"]),
                            pd.Series([scores[top]]),
                        )
    if not rows:
        return pd.DataFrame(columns=["metric", "layer", "value"])
    return pd.concat(rows, ignore_index=True)


PER_LAYER_METRICS = (
    "polysemantic_fraction",
    "mean_adjectives",
    "acoustic_share",
    "feature_r2_median",
    "simulation_pearson",
    "class_purity",
    "class_purity_chance",
)


def compare_runs(run_dirs: Mapping[str, RunDir]) -> pd.DataFrame:
    """Side-by-side metrics of several runs: ``model, metric, layer, depth, value``.

    ``run_dirs`` maps a model name (e.g. the training strategy) to its run directory; see
    :func:`run_metrics` for the metrics. ``depth`` is the layer's position in the depth order
    of all runs' layers together (NaN for the last-layer accuracy rows, whose ``layer`` is
    ``"<captioner> / <method>"``).
    """
    frames = []
    for model, run in run_dirs.items():
        m = run_metrics(run)
        m.insert(0, "model", model)
        frames.append(m)
    if not frames:
        return pd.DataFrame(columns=["model", "metric", "layer", "depth", "value"])
    return _add_depth(pd.concat(frames, ignore_index=True))


def _add_depth(df: pd.DataFrame) -> pd.DataFrame:
    """Insert ``depth`` before ``value``: the layer's position in the depth order of all the
    table's per-layer rows (NaN for the other metrics)."""
    per_layer = df["metric"].isin(PER_LAYER_METRICS)
    depths = layer_depths(df.loc[per_layer, "layer"])
    df.insert(df.columns.get_loc("value"), "depth", df["layer"].map(depths).where(per_layer))
    return df


def depth_trends(run_dirs: Mapping[str, RunDir], confidence: float = 0.95) -> pd.DataFrame:
    """How each model's neurons change with depth, over its hidden layers (the classifier,
    whose neurons are the classes, is left out): per neuron ``class_purity`` and
    ``polysemantic`` (0/1) regressed on the layer's block index (``layers.<i>``).

    Returns ``model, metric, mean, slope, ci_low, ci_high, p_value, n`` (the slope per block,
    with its confidence interval); a model without the per-neuron tables adds no rows.
    """
    rows = []
    for model, run in run_dirs.items():
        for metric, df in per_neuron_measures(run):
            df = df.dropna(subset=["block", "value"])
            fit = linear_trend(df["block"], df["value"], confidence)
            rows.append(
                {
                    "model": model,
                    "metric": metric,
                    "mean": float(df["value"].mean()) if len(df) else float("nan"),
                    **{k: fit[k] for k in ("slope", "ci_low", "ci_high", "p_value", "n")},
                }
            )
    columns = ["model", "metric", "mean", "slope", "ci_low", "ci_high", "p_value", "n"]
    return pd.DataFrame(rows, columns=columns)


def seed_comparison(cfg: Config) -> dict[str, Any]:
    """The strategies over their seeds (:func:`seed_runs`), computed (nothing written):
    ``runs``, ``comparison`` (:func:`compare_runs`, with a ``seed`` column when ``cfg.seeds``
    is set), ``trends`` (likewise), ``per_seed`` (:func:`seed_measures`), ``summary``
    (:func:`seed_summary`), ``orderings`` (:func:`seed_orderings`) and ``verdict``
    (:func:`seed_verdict`)."""
    runs = seed_runs(cfg)
    confidence = cfg.analysis.confidence
    if cfg.seeds:
        comparison = compare_seed_runs(runs)
        trends = seed_trends(runs, confidence)
    else:
        single = {model: next(iter(by_seed.values())) for model, by_seed in runs.items()}
        comparison = compare_runs(single)
        trends = depth_trends(single, confidence)
    per_seed = seed_measures(runs, confidence)
    orderings = seed_orderings(per_seed)
    summary = seed_summary(per_seed, orderings)
    return {
        "runs": runs,
        "comparison": comparison,
        "trends": trends,
        "per_seed": per_seed,
        "orderings": orderings,
        "summary": summary,
        "verdict": seed_verdict(summary, orderings),
    }


SEED_TABLES = {
    "per_seed": "strategies_seed_measures.csv",
    "summary": "strategies_seed_summary.csv",
    "orderings": "strategies_orderings.csv",
}
"""The seed tables :func:`run_comparison` writes under ``<run>/analysis/``."""


def run_comparison(cfg: Config, run: RunDir) -> dict[str, Any]:
    """Compare the per-strategy runs of ``cfg.strategies`` (each of ``cfg.seeds``, when set):
    write ``analysis/strategies_comparison.csv``, ``strategies_trends.csv``, the seed tables
    (:data:`SEED_TABLES`), ``strategies_verdict.txt``, the ``strategies_*`` figures and the
    models table and figure (:func:`models_figure`)."""
    import matplotlib.pyplot as plt

    result = seed_comparison(cfg)
    runs = result["runs"]
    if not runs:
        log.warning("no per-strategy run directories under %s", cfg.run_path)
        return {"comparison": "no strategy runs", "missing": list(cfg.strategies)}
    run.write_csv(f"{ANALYSIS_DIR}/strategies_comparison.csv", result["comparison"])
    run.write_csv(f"{ANALYSIS_DIR}/strategies_trends.csv", result["trends"])
    for key, name in SEED_TABLES.items():
        run.write_csv(f"{ANALYSIS_DIR}/{name}", result[key])
    atomic_write_text(analysis_file(run, "strategies_verdict.txt"), result["verdict"] + "\n")
    first = {model: next(iter(by_seed.values())) for model, by_seed in runs.items()}
    figs = comparison_figures(cfg, first, result["comparison"], result["per_seed"])
    figs |= models_figure(cfg, run, first)
    for fig in figs.values():
        plt.close(fig)
    missing = [
        f"{s}/seed{k}" if k is not None else s
        for s in cfg.strategies
        for k in (cfg.seeds if cfg.seeds and strategy_trains(cfg, s) else [None])
        if k not in runs.get(s, {})
    ]
    return {
        "comparison_models": list(runs),
        "seeds": {m: [k for k in by_seed if k is not None] for m, by_seed in runs.items()},
        "missing": missing,
        "figures": sorted(figs),
        "verdict": result["verdict"],
    }


def models_figure(cfg: Config, run: RunDir, runs: Mapping[str, RunDir]) -> dict[str, Any]:
    """The models compared on the paper's measures (:mod:`andlib.report.model_table`), the
    runs of ``cfg.reference_runs`` first: writes ``analysis/models_table.csv`` and
    ``analysis/models_layers.csv`` and saves the ``models_comparison`` figure."""
    from andlib.report import plots

    everything = reference_runs(cfg) | dict(runs)
    table = model_table(everything, cfg.concepts.db_default)
    layers = models_layers(everything)
    run.write_csv(f"{ANALYSIS_DIR}/models_table.csv", table)
    run.write_csv(f"{ANALYSIS_DIR}/models_layers.csv", layers)
    fig = plot_models(table, layers)
    plots.save_figure(fig, "models_comparison", cfg)
    return {"models_comparison": fig}


def comparison_figures(
    cfg: Config,
    runs: Mapping[str, RunDir],
    comparison: pd.DataFrame | None = None,
    per_seed: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The comparison figures (saved): ``strategies_comparison`` (four panels; one line per
    seed when ``comparison`` has a ``seed`` column), ``strategies_adjective_distribution``
    (one bar chart per model) and, given ``per_seed`` (:func:`seed_measures`),
    ``strategies_seeds`` (one panel per measure, one marker per seed)."""
    from andlib.report import plots

    comparison = compare_runs(runs) if comparison is None else comparison
    figs = {"strategies_comparison": plots.plot_strategies_comparison(comparison)}
    if per_seed is not None and not per_seed.empty:
        figs["strategies_seeds"] = plots.plot_seed_measures(
            per_seed, db_method=cfg.concepts.db_default
        )
    counts = []
    for model, run in runs.items():
        table = read_table(run, "adjective_counts.csv")
        if table is None and run.exists("neurons.csv"):
            table = adjective_counts(read_neurons(run))
        if table is not None:
            counts.append(table.assign(model=model))
    if counts:
        figs["strategies_adjective_distribution"] = plots.plot_adjective_distribution(
            pd.concat(counts, ignore_index=True), top_n=cfg.analysis.top_n_adjectives
        )
    for name, fig in figs.items():
        plots.save_figure(fig, name, cfg)
    return figs


def compare_seed_runs(runs: Mapping[str, Mapping[int | None, RunDir]]) -> pd.DataFrame:
    """:func:`compare_runs` over every seed: ``model, seed, metric, layer, depth, value``."""
    frames = []
    for model, by_seed in runs.items():
        for seed, run in by_seed.items():
            m = run_metrics(run)
            m.insert(0, "model", model)
            m.insert(1, "seed", pd.array([seed] * len(m), dtype="Int64"))
            frames.append(m)
    if not frames:
        return pd.DataFrame(columns=["model", "seed", "metric", "layer", "depth", "value"])
    return _add_depth(pd.concat(frames, ignore_index=True))


def seed_trends(
    runs: Mapping[str, Mapping[int | None, RunDir]], confidence: float = 0.95
) -> pd.DataFrame:
    """:func:`depth_trends` of every seed, with a ``seed`` column after ``model``."""
    frames = []
    for model, by_seed in runs.items():
        for seed, run in by_seed.items():
            t = depth_trends({model: run}, confidence)
            t.insert(1, "seed", pd.array([seed] * len(t), dtype="Int64"))
            frames.append(t)
    if not frames:
        return depth_trends({}, confidence).assign(seed=pd.Series(dtype="Int64"))
    return pd.concat(frames, ignore_index=True)
