"""The analysis stage's figures (:mod:`andlib.report.analysis`): adjectives, polysemantic
neurons, acoustic features against concepts, class purity, and the strategies compared over
their seeds. Each takes the tables the analysis wrote and returns a ``matplotlib`` figure;
:mod:`andlib.report.plots` re-exports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt

from andlib.report.style import PALETTE

if TYPE_CHECKING:
    import pandas as pd

# --- analysis figures (andlib.report.analysis) ---


def _layer_label(layer: object) -> str:
    """``layers.3.mlp`` -> ``3.mlp``; other keys unchanged."""
    s = str(layer)
    return s[len("layers.") :] if s.startswith("layers.") else s


def _layer_ticks(ax: plt.Axes, depths: list[int], layers: list[str]) -> None:
    ax.set_xticks(depths)
    rotate = len(layers) > 6
    ax.set_xticklabels(
        [_layer_label(x) for x in layers],
        rotation=45 if rotate else 0,
        ha="right" if rotate else "center",
        fontsize=8 if rotate else None,
    )
    ax.set_xlabel("layer (shallow → deep)")


def _no_data(ax: plt.Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes, alpha=0.6)
    ax.set_xticks([])
    ax.set_yticks([])


def _titled(fig: plt.Figure, title: str, subtitle: str | None) -> None:
    fig.suptitle(f"{title} — {subtitle}" if subtitle else title)


def plot_adjective_distribution(
    counts: pd.DataFrame, top_n: int = 20, title: str | None = None
) -> plt.Figure:
    """Paper Fig. 3: the ``top_n`` most frequent acoustic adjectives (``adjective, count``,
    optionally ``fraction``) as horizontal bars; one panel per ``model`` when that column exists.
    """
    models = list(dict.fromkeys(counts["model"])) if "model" in counts else [None]
    rows = (
        counts["model"].value_counts().max() if "model" in counts and len(counts) else len(counts)
    )
    shown = max(1, min(top_n, int(rows)))
    height = 1.4 + 0.24 * shown
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models) + 0.8, height))
    axes = [axes] if len(models) == 1 else list(axes)
    for i, (ax, model) in enumerate(zip(axes, models, strict=True)):
        sub = counts if model is None else counts[counts["model"] == model]
        sub = sub.sort_values(["count", "adjective"], ascending=[False, True]).head(top_n)
        if sub.empty:
            _no_data(ax, "adjectives")
        else:
            ax.barh(sub["adjective"].astype(str)[::-1], sub["count"][::-1], color=PALETTE[i % 8])
            ax.set_axisbelow(True)
            ax.tick_params(axis="y", labelsize=8)
            ax.grid(axis="y", visible=False)
        ax.set_xlabel("neurons using the adjective")
        if model is not None:
            ax.set_title(str(model))
    _titled(fig, f"Acoustic adjectives (top {shown})", title)
    fig.tight_layout()
    return fig


def plot_adjectives_per_layer(
    per_layer: pd.DataFrame, trend: dict | None = None, title: str | None = None
) -> plt.Figure:
    """Paper Fig. 5: mean adjectives per neuron for each layer (± s.e.m.) with the fitted
    regression line, its confidence band and its slope with confidence interval."""
    import numpy as np
    from scipy import stats

    df = per_layer.sort_values("depth")
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(df) + 2), 3.6))
    if df.empty:
        _no_data(ax, "described neurons")
        _titled(fig, "Acoustic adjectives per layer", title)
        return fig
    sem = df["sem"].fillna(0) if "sem" in df else None
    ax.errorbar(
        df["depth"], df["mean_adjectives"], yerr=sem, fmt="o", capsize=3, label="layer mean"
    )
    if trend and np.isfinite(trend.get("slope", np.nan)):
        x = np.linspace(df["depth"].min(), df["depth"].max(), 100)
        y = trend["slope"] * x + trend["intercept"]
        conf = trend.get("confidence", 0.95)
        label = f"slope {trend['slope']:+.3f}/layer"
        if np.isfinite(trend.get("ci_low", np.nan)):
            label += f" ({conf:.0%} CI [{trend['ci_low']:+.3f}, {trend['ci_high']:+.3f}])"
        ax.plot(x, y, color=PALETTE[3], label=label)
        if np.isfinite(trend.get("resid_std", np.nan)) and trend.get("sxx", 0) > 0:
            t = stats.t.ppf((1 + conf) / 2, trend["n"] - 2)
            half = (
                t
                * trend["resid_std"]
                * np.sqrt(1 / trend["n"] + (x - trend["x_mean"]) ** 2 / trend["sxx"])
            )
            ax.fill_between(x, y - half, y + half, color=PALETTE[3], alpha=0.15, lw=0)
    _layer_ticks(ax, df["depth"].tolist(), df["layer"].tolist())
    ax.set_ylabel("acoustic adjectives per neuron")
    ax.legend(fontsize=8)
    _titled(fig, "Acoustic adjectives per layer", title)
    fig.tight_layout()
    return fig


def plot_polysemantic_neurons(
    per_layer: pd.DataFrame,
    spread: pd.DataFrame | None = None,
    threshold: int | None = None,
    title: str | None = None,
) -> plt.Figure:
    """Paper Fig. 6: fraction of polysemantic neurons per layer (bars, annotated with counts)
    and, when ``spread`` (``n_clusters`` per neuron) is given, the distribution of the number
    of caption clusters among each neuron's top clips."""
    df = per_layer.sort_values("depth")
    ncols = 2 if spread is not None else 1
    fig, axes = plt.subplots(
        1, ncols, figsize=(max(5.0, 0.45 * len(df) + 2) + 3.5 * (ncols - 1), 3.6), squeeze=False
    )
    ax = axes[0, 0]
    if df.empty:
        _no_data(ax, "neurons")
    else:
        ax.bar(df["depth"], df["fraction"], color=PALETTE[0])
        ax.set_axisbelow(True)
        for d, f, k, n in zip(
            df["depth"], df["fraction"], df["n_polysemantic"], df["n_neurons"], strict=True
        ):
            ax.text(d, f, f"{k}/{n}", ha="center", va="bottom", fontsize=7)
        _layer_ticks(ax, df["depth"].tolist(), df["layer"].tolist())
        ax.set_ylabel("polysemantic fraction")
        ax.set_ylim(0, min(1.05, max(0.1, df["fraction"].max() * 1.2)))
    if spread is not None:
        ax2 = axes[0, 1]
        values = spread["n_clusters"].astype(int)
        lo, hi = (int(values.min()), int(values.max())) if len(values) else (1, 1)
        bins = range(min(lo, 1), hi + 2)
        ax2.hist(values, bins=[b - 0.5 for b in bins], color=PALETTE[1], rwidth=0.85)
        ax2.set_axisbelow(True)
        if threshold is not None:
            ax2.axvline(threshold - 0.5, color=PALETTE[3], ls="--", label=f"≥ {threshold}")
            ax2.legend(fontsize=8)
        ax2.set_xlabel("caption clusters among top-K clips")
        ax2.set_ylabel("neurons")
    _titled(fig, "Polysemantic neurons", title)
    fig.tight_layout()
    return fig


def plot_acoustic_vs_concepts(per_layer: pd.DataFrame, title: str | None = None) -> plt.Figure:
    """Finding i: per layer, the share of neurons whose description has more acoustic
    adjectives than concept nouns, more nouns, or as many (stacked bars)."""
    df = per_layer.sort_values("depth")
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(df) + 2.5), 3.6))
    if df.empty:
        _no_data(ax, "described neurons")
    else:
        bottom = 0
        ax.set_axisbelow(True)
        names = {"acoustic": "acoustic adjectives", "concept": "concept nouns", "tie": "tie"}
        for i, (col, label) in enumerate(names.items()):
            ax.bar(df["depth"], df[col], bottom=bottom, label=label, color=PALETTE[[0, 1, 7][i]])
            bottom = bottom + df[col].to_numpy()
        _layer_ticks(ax, df["depth"].tolist(), df["layer"].tolist())
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of neurons")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="dominated by")
    _titled(fig, "Acoustic adjectives vs concept nouns", title)
    fig.tight_layout()
    return fig


def plot_acoustic_feature_r2(r2: pd.DataFrame, title: str | None = None) -> plt.Figure:
    """Finding i: cross-validated R² of predicting each neuron's activation from the
    captioner's acoustic measurements; a box per layer (``layer, depth, neuron, r2``) with
    the mean marked."""
    df = r2.dropna(subset=["r2"]).sort_values("depth")
    layers = df.drop_duplicates("layer")[["layer", "depth"]]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(layers) + 2), 3.6))
    if df.empty:
        _no_data(ax, "R² values")
    else:
        groups = [df.loc[df["layer"] == layer, "r2"].to_numpy() for layer in layers["layer"]]
        ax.boxplot(groups, positions=layers["depth"].tolist(), widths=0.6, showfliers=False)
        ax.plot(
            layers["depth"], [g.mean() for g in groups], "D", color=PALETTE[3], ms=4, label="mean"
        )
        ax.axhline(0, color="black", lw=0.8, alpha=0.5)
        _layer_ticks(ax, layers["depth"].tolist(), layers["layer"].tolist())
        ax.set_ylabel("cross-validated R²")
        ax.legend(fontsize=8)
    _titled(fig, "Activation explained by acoustic measurements", title)
    fig.tight_layout()
    return fig


def plot_class_purity(per_layer: pd.DataFrame, title: str | None = None) -> plt.Figure:
    """How narrow neurons are by the known labels: per layer, the mean share of a neuron's
    top-K clips in their most common class and the share of neurons whose top clips are all
    one class (``layer, depth, mean_purity, share_pure, chance``), chance dashed."""
    df = per_layer.sort_values("depth")
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(df) + 2), 3.6))
    if df.empty:
        _no_data(ax, "layers")
    else:
        ax.plot(df["depth"], df["mean_purity"], "o-", color=PALETTE[0], label="mean purity")
        ax.plot(df["depth"], df["share_pure"], "s--", color=PALETTE[1], ms=4, label="all one class")
        ax.axhline(float(df["chance"].mean()), ls=":", color="grey", label="chance (mean purity)")
        _layer_ticks(ax, df["depth"].tolist(), df["layer"].tolist())
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("share of top-K clips / of neurons")
        ax.legend(fontsize=8)
    _titled(fig, "Class purity of each neuron's top clips", title)
    fig.tight_layout()
    return fig


SEED_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _seeds_of(df: pd.DataFrame) -> list[Any]:
    """The distinct ``seed`` values of a table (``[None]`` without the column)."""
    if "seed" not in df:
        return [None]
    return list(dict.fromkeys(None if _isna(s) else s for s in df["seed"]))


def _isna(value: Any) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def _rows_of_seed(df: pd.DataFrame, seed: Any) -> pd.DataFrame:
    if "seed" not in df:
        return df
    return df[df["seed"].isna()] if seed is None else df[df["seed"] == seed]


def plot_strategies_comparison(comparison: pd.DataFrame, title: str | None = None) -> plt.Figure:
    """Models side by side (``model, metric, layer, depth, value`` from
    :func:`andlib.report.analysis.compare_runs`). Per layer, one line per model: polysemantic
    fraction, acoustic adjectives per neuron, mean simulation score and class purity of the
    top-K clips (chance dashed). Bars: last-layer description accuracy (top-1) and the
    model's own held-out classification accuracy.

    With a ``seed`` column (:func:`andlib.report.analysis.compare_seed_runs`) every seed is drawn: one
    thin line per seed, one marker shape per seed, in its model's colour, and the bars are
    the mean over seeds with one marker per seed on them."""
    import numpy as np

    models = list(dict.fromkeys(comparison["model"]))
    colors = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}
    seeds = _seeds_of(comparison)
    markers = {s: SEED_MARKERS[i % len(SEED_MARKERS)] for i, s in enumerate(seeds)}
    several = len(seeds) > 1
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    lines = [
        (axes[0, 0], "polysemantic_fraction", "polysemantic fraction"),
        (axes[0, 1], "mean_adjectives", "acoustic adjectives per neuron"),
        (axes[0, 2], "class_purity", "class purity of the top-K clips"),
        (axes[1, 2], "simulation_pearson", "mean simulation score (Pearson r)"),
    ]
    for ax, metric, label in lines:
        sub = comparison[comparison["metric"] == metric].dropna(subset=["depth"])
        if sub.empty:
            _no_data(ax, label)
        else:
            for model in models:
                labelled = False
                for seed in seeds:
                    m = _rows_of_seed(sub[sub["model"] == model], seed).sort_values("depth")
                    if not len(m):
                        continue
                    ax.plot(
                        m["depth"],
                        m["value"],
                        marker=markers[seed],
                        ms=4,
                        lw=1 if several else 1.5,
                        alpha=0.75 if several else 1.0,
                        label=None if labelled else model,
                        color=colors[model],
                    )
                    labelled = True
            if metric == "class_purity":
                chance = comparison.loc[comparison["metric"] == "class_purity_chance", "value"]
                if len(chance):
                    ax.axhline(float(chance.mean()), ls="--", color="grey", lw=1, label="chance")
            ticks = sub.drop_duplicates("layer").sort_values("depth")
            _layer_ticks(ax, ticks["depth"].astype(int).tolist(), ticks["layer"].tolist())
            ax.legend(fontsize=8)
        ax.set_title(label)
    bars = [
        (axes[1, 0], "last_layer_top1", "last-layer description accuracy (top-1)"),
        (axes[1, 1], "heldout_accuracy", "held-out classification accuracy"),
    ]
    for ax, metric, label in bars:
        acc = comparison[comparison["metric"] == metric]
        if acc.empty:
            _no_data(ax, label)
            ax.set_title(label)
            continue
        groups = list(dict.fromkeys(acc["layer"]))
        width = 0.8 / max(len(models), 1)
        for i, model in enumerate(models):
            rows = acc[acc["model"] == model]
            mean = rows.groupby("layer")["value"].mean().reindex(groups)
            x = np.arange(len(groups)) + (i - (len(models) - 1) / 2) * width
            ax.bar(x, mean.to_numpy(), width=width, label=model, color=colors[model])
            if several:
                for seed in seeds:
                    per = _rows_of_seed(rows, seed).set_index("layer")["value"]
                    per = per[~per.index.duplicated()].reindex(groups)
                    ax.scatter(
                        x, per.to_numpy(), marker=markers[seed], s=14, color="black", zorder=3
                    )
        ax.set_axisbelow(True)
        ax.set_xticks(np.arange(len(groups)))
        ax.set_xticklabels(
            groups,
            rotation=45 if len(groups) > 1 else 0,
            ha="right" if len(groups) > 1 else "center",
            fontsize=8,
        )
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        ax.set_title(label)
    if several:
        named = [s for s in seeds if s is not None]
        subtitle = f"seeds {', '.join(str(s) for s in named)}: one marker shape per seed"
        fig.suptitle(f"{title or 'Training strategies compared'} ({subtitle})")
    else:
        fig.suptitle(title or "Training strategies compared")
    fig.tight_layout()
    return fig


def plot_seed_measures(
    per_seed: pd.DataFrame,
    measures: list[str] | None = None,
    title: str | None = None,
    db_method: str | None = None,
) -> plt.Figure:
    """Each model's scalar measures over its training seeds (``model, seed,
    measure, value, ci_low, ci_high`` from :func:`andlib.report.analysis.seed_measures`). One panel
    per measure, the models along x: one marker per seed (its shape names the seed) with
    that run's within-run interval as an error bar, and a horizontal line at the mean over
    the seeds. ``measures``: which (default: every measure but the last-layer accuracies of
    methods other than ``db_method``, the default config's ``concepts.db_default`` unless
    given)."""
    import math

    import numpy as np
    from matplotlib.lines import Line2D

    from andlib.report.measures import measure_label, measure_order

    if measures is None:
        from andlib.config import Config

        db = db_method or Config().concepts.db_default
        measures = [
            m
            for m in measure_order(per_seed["measure"])
            if not m.startswith("last_layer_top1") or m.endswith(f"/ {db}")
        ]
    models = list(dict.fromkeys(per_seed["model"]))
    colors = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}
    seeds = _seeds_of(per_seed)
    markers = {s: SEED_MARKERS[i % len(SEED_MARKERS)] for i, s in enumerate(seeds)}
    n_cols = min(4, max(1, len(measures)))
    n_rows = max(1, math.ceil(len(measures) / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4 * n_cols, 3.4 * n_rows), squeeze=False)
    for ax in axes.flat[len(measures) :]:
        ax.set_visible(False)
    offsets = {s: (j - (len(seeds) - 1) / 2) * 0.12 for j, s in enumerate(seeds)}
    for ax, measure in zip(axes.flat, measures, strict=False):
        sub = per_seed[per_seed["measure"] == measure]
        for i, model in enumerate(models):
            rows = sub[sub["model"] == model]
            if rows.empty:
                continue
            for seed in seeds:
                r = _rows_of_seed(rows, seed)
                if r.empty:
                    continue
                value = float(r["value"].iloc[0])
                low, high = float(r["ci_low"].iloc[0]), float(r["ci_high"].iloc[0])
                err = None
                if np.isfinite(low) and np.isfinite(high):
                    err = [[max(value - low, 0.0)], [max(high - value, 0.0)]]
                ax.errorbar(
                    [i + offsets[seed]],
                    [value],
                    yerr=err,
                    fmt=markers[seed],
                    ms=5,
                    color=colors[model],
                    ecolor=colors[model],
                    elinewidth=0.8,
                    capsize=2,
                )
            mean = float(rows["value"].mean())
            ax.hlines(mean, i - 0.3, i + 0.3, color=colors[model], lw=1.5)
        if "slope" in measure:
            ax.axhline(0.0, color="grey", lw=0.8, ls=":")
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, rotation=20, ha="right", fontsize=8)
        ax.set_title(measure_label(measure), fontsize=9)
    handles = [
        Line2D([], [], ls="", marker=markers[s], color="black", label=f"seed {s}")
        for s in seeds
        if s is not None
    ]
    if handles:
        fig.legend(handles=handles, loc="lower right", fontsize=8)
    fig.suptitle(
        title
        or "Training strategies over seeds: one marker per seed (bar: its within-run "
        "interval; line: mean over seeds)"
    )
    fig.tight_layout()
    return fig
