"""Figures in one consistent style; each written to ``figures/`` as PNG and PDF.

Every figure function takes tidy data (a DataFrame or arrays produced by another stage) and
returns a ``matplotlib.figure.Figure``; :func:`save_figure` writes it under a stable name.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt

from andlib.config import Config

if TYPE_CHECKING:
    import pandas as pd

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def use_style() -> None:
    from matplotlib.rcsetup import cycler

    rc: Any = plt.rcParams  # typed with literal keys only
    rc.update(STYLE)
    rc["axes.prop_cycle"] = cycler(color=PALETTE)


def save_figure(fig: plt.Figure, name: str, cfg: Config | str | Path) -> list[Path]:
    """Write ``<figures_dir>/<name>.png`` and ``.pdf``; return both paths."""
    folder = cfg.figures_path if isinstance(cfg, Config) else Path(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.pdf"]
    for p in paths:
        fig.savefig(p)
    return paths


def save_and_close(fig: plt.Figure, name: str, cfg: Config | str | Path) -> list[Path]:
    """:func:`save_figure`, then close the figure (stages that only write figures)."""
    paths = save_figure(fig, name, cfg)
    plt.close(fig)
    return paths


use_style()

# --- evaluation & pruning figures (andlib.evaluate.scores / andlib.evaluate.prune) ---


def last_layer_table(results: dict) -> plt.Figure:
    """Paper Table 2 as a figure: Top-1 / Top-5 accuracy and cosine per captioner and method.

    ``results`` is ``last_layer.json``: ``{captioner: {method: {top1, top5, cos, n_neurons}}}``.
    An LLM's ``icl`` shows its Top-5 on its own picks (``top5_llm_only``) beside the padded
    one; the title counts the class neurons left out (``n_left_out``: not in the probing set).
    """

    def top5(s: dict) -> str:
        text = f"{s['top5'] * 100:.1f}"
        if s.get("top5_llm_only") is not None:
            text += f" ({s['top5_llm_only'] * 100:.1f} LLM's own)"
        return text

    rows = [
        [cap, method, f"{s['top1'] * 100:.1f}", top5(s), f"{s['cos']:.3f}"]
        for cap, methods in results.items()
        for method, s in methods.items()
    ]
    n = next((s["n_neurons"] for m in results.values() for s in m.values()), 0)
    left_out = next((s.get("n_left_out", 0) for m in results.values() for s in m.values()), 0)
    fig, ax = plt.subplots(figsize=(7.0, 0.45 + 0.3 * max(len(rows), 1)))
    ax.axis("off")
    if rows:
        table = ax.table(
            cellText=rows,
            colLabels=["captioner", "method", "Top-1 (%)", "Top-5 (%)", "cos"],
            loc="center",
            cellLoc="center",
        )
        table.auto_set_font_size(False)
        table.set_fontsize(9)
        table.scale(1.0, 1.25)
    scored = f"{n} class neurons" + (
        f"; {left_out} whose class is not in the probing set left out" if left_out else ""
    )
    ax.set_title(f"Last-layer dissection accuracy ({scored})")
    return fig


def caption_quality(sweep) -> plt.Figure:
    """Last-layer top-1 against caption accuracy, one line per method (``caption_quality.csv``).

    The corrupted ``metadata+acoustic`` captions draw the lines; the measured captioners
    (``tagger+acoustic`` at its cross-fitted accuracy, ``acoustic`` with no source at 0) are
    marked points in the method's colour.
    """
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    lines = sweep[sweep["captioner"] == "metadata+acoustic (corrupted)"]
    colours: dict[str, Any] = {}
    for method, rows in lines.groupby("method", sort=False):
        rows = rows.sort_values("caption_accuracy")
        (line,) = ax.plot(rows["caption_accuracy"], rows["top1"], "-o", ms=3, label=method)
        colours[str(method)] = line.get_color()
    markers = {"tagger+acoustic": "*", "acoustic": "s"}
    for captioner, rows in sweep[sweep["captioner"] != "metadata+acoustic (corrupted)"].groupby(
        "captioner"
    ):
        for _, r in rows.iterrows():
            ax.scatter(
                r["caption_accuracy"],
                r["top1"],
                marker=markers.get(str(captioner), "D"),
                s=90 if captioner == "tagger+acoustic" else 40,
                color=colours.get(str(r["method"]), "k"),
                edgecolor="k",
                zorder=3,
            )
        ax.scatter(
            [],
            [],
            marker=markers.get(str(captioner), "D"),
            color="w",
            edgecolor="k",
            label=f"{captioner} (measured)",
        )
    ax.plot([0, 1], [0, 1], ":", color="0.6", lw=1)
    ax.set_xlabel("caption accuracy (share of clips whose caption names the right source)")
    ax.set_ylabel("last-layer top-1")
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("How good must captions be?")
    return fig


def simulation_by_layer(scores, scorer: str = "simulation") -> plt.Figure:
    """Mean score per layer, one line per variant (own description and its baselines and
    sanity variants), one panel per metric of ``scorer``.

    ``scores`` is ``scores.csv`` (``layer, neuron, scorer, metric, variant, value, n``).
    """
    import pandas as pd

    s = scores[scores["scorer"].astype(str) == scorer]
    s = s.assign(value=pd.to_numeric(s["value"], errors="coerce"))
    layers = list(dict.fromkeys(s["layer"]))
    metrics = list(dict.fromkeys(s["metric"]))
    order = ["own", "random", "label", "oracle", "missing_label", "extra_label"]
    variants = [v for v in order if v in set(s["variant"])]
    fig, axes = plt.subplots(
        1,
        max(1, len(metrics)),
        figsize=(max(7.0, (0.55 * len(layers) + 1.5) * max(1, len(metrics))), 3.6),
        squeeze=False,
    )
    for ax, metric in zip(axes[0], metrics, strict=False):
        for i, variant in enumerate(variants):
            sub = s[(s["metric"] == metric) & (s["variant"] == variant)]
            g = sub.groupby("layer", sort=False)["value"]
            mean, sem = g.mean().reindex(layers), g.sem().reindex(layers)
            style = "-" if variant == "own" else "--"
            ax.errorbar(
                range(len(layers)),
                mean.values,
                yerr=sem.values,
                fmt=style + "o",
                ms=3,
                capsize=2,
                label=variant,
                color=PALETTE[i % len(PALETTE)],
            )
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(range(len(layers)))
        ax.set_xticklabels(layers, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{metric} (held-out clips)")
    axes[0][0].set_ylabel("mean over sampled neurons")
    axes[0][-1].legend(loc="best", fontsize=7)
    fig.suptitle(f"Explanation scoring: {scorer}")
    fig.tight_layout()
    return fig


def pruning_summary_bars(summary) -> plt.Figure:
    """ΔA − ΔR per pruning strategy (confidence drops; higher = more concept-specific).

    ``summary`` is :func:`andlib.evaluate.prune.pruning_summary`'s table: every strategy over the same
    classes; the logit panel shows the bootstrap interval (``ci_low``/``ci_high``), each bar
    the mean neurons pruned and how many classes the strategy acted on.
    """
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.4))
    x = list(range(len(summary)))
    mean = summary["delta_a_minus_r_mean"].to_numpy(float)
    err = [mean - summary["ci_low"].to_numpy(float), summary["ci_high"].to_numpy(float) - mean]
    for ax, col, title, yerr in [
        (axes[0], "delta_a_minus_r_mean", "logit", err),
        (axes[1], "specificity_acc", "accuracy", None),
    ]:
        bars = ax.bar(
            x, summary[col], yerr=yerr, capsize=3, color=[PALETTE[i % len(PALETTE)] for i in x]
        )
        ax.set_xticks(x)
        ax.set_xticklabels(summary["strategy"])
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(f"ΔA − ΔR ({title} drop)")
        notes = zip(bars, summary["n_pruned_mean"], summary["n_acted"], strict=True)
        for bar, n, acted in notes:
            ax.annotate(
                f"{n:.0f} n.\n{acted} cl.",
                (bar.get_x() + bar.get_width() / 2, 0),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    n_classes = int(summary["n_concepts"].max()) if len(summary) else 0
    fig.suptitle(
        f"Concept-specific pruning, mean over the same {n_classes} classes "
        "(n. = neurons pruned, cl. = classes acted on; 95 % bootstrap CI)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def pruning_concept_bars(rows, concept: str) -> plt.Figure:
    """Accuracy before/after pruning one concept, on its class (A) and on the rest (R)."""
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.4), sharey=True)
    x = list(range(len(rows)))
    w = 0.38
    for ax, side, title in [(axes[0], "a", f"class '{concept}' (A)"), (axes[1], "r", "other (R)")]:
        ax.bar([i - w / 2 for i in x], rows[f"acc_{side}_before"], w, label="before")
        ax.bar([i + w / 2 for i in x], rows[f"acc_{side}_after"], w, label="after")
        ax.set_xticks(x)
        labels = zip(rows["strategy"], rows["n_pruned"], strict=True)
        ax.set_xticklabels([f"{s}\n({n} n.)" for s, n in labels])
        ax.set_title(f"accuracy on {title}")
    axes[0].set_ylabel("accuracy")
    axes[0].legend()
    fig.suptitle(f"Pruning the neurons of '{concept}'")
    fig.tight_layout()
    return fig


def draw_spectrogram(ax: plt.Axes, audio: Any, sample_rate: int, n_mels: int = 64) -> None:
    """A clip's log-mel spectrogram (dB below its peak, up to Nyquist) on ``ax``, no ticks."""
    import librosa
    import numpy as np

    mel = librosa.feature.melspectrogram(
        y=np.asarray(audio, dtype=np.float32), sr=sample_rate, n_mels=n_mels, fmax=sample_rate // 2
    )
    ax.imshow(librosa.power_to_db(mel, ref=np.max), origin="lower", aspect="auto", cmap="magma")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


# --- recording and captioning figures (notebooks 01 and 02) ---


def activation_histograms(layers: dict[str, Any]) -> plt.Figure:
    """One log-count histogram per layer of all its activations (every clip and neuron);
    ``layers``: layer key -> ``[clips, neurons]`` array."""
    import numpy as np

    fig, axes = plt.subplots(1, len(layers), figsize=(3.3 * len(layers), 2.8), squeeze=False)
    for ax, (layer, acts) in zip(axes[0], layers.items(), strict=True):
        values = np.asarray(acts)
        ax.hist(values.ravel(), bins=80, log=True)
        ax.set_title(f"{layer} ({values.shape[1]} neurons)")
        ax.set_xlabel("activation")
    axes[0, 0].set_ylabel("count (clips × neurons)")
    fig.tight_layout()
    return fig


def neuron_top_clips(rows: list[list[tuple[str, Any]]], sample_rate: int) -> plt.Figure:
    """A grid of spectrograms: one row per neuron, one ``(title, audio)`` panel per top clip."""
    n_cols = max((len(r) for r in rows), default=1)
    fig, axes = plt.subplots(
        len(rows), n_cols, figsize=(3.3 * n_cols, 2.4 * len(rows)), squeeze=False
    )
    for row, panels in enumerate(rows):
        for col, (title, audio) in enumerate(panels):
            draw_spectrogram(axes[row, col], audio, sample_rate)
            axes[row, col].set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def clip_spectrogram(audio: Any, sample_rate: int, title: str) -> plt.Figure:
    """A wide linear-frequency spectrogram of one clip (time in s, Hz)."""
    fig, ax = plt.subplots(figsize=(7, 1.8))
    ax.specgram(audio, Fs=sample_rate, NFFT=512, noverlap=384, cmap="magma")
    ax.set(xlabel="time (s)", ylabel="Hz", title=title)
    ax.grid(False)
    return fig


def caption_vocabulary(vocabulary: pd.Series, captioner: str) -> plt.Figure:
    """Horizontal bars: how many captions use each word (most used on top)."""
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.barh(vocabulary.index[::-1], vocabulary.to_numpy()[::-1])
    ax.set(xlabel="captions using the word", title=f"Caption vocabulary ({captioner})")
    return fig


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
    """Issue 8: models side by side (``model, metric, layer, depth, value`` from
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
    per_seed: pd.DataFrame, measures: list[str] | None = None, title: str | None = None
) -> plt.Figure:
    """Issue 18: each model's scalar measures over its training seeds (``model, seed,
    measure, value, ci_low, ci_high`` from :func:`andlib.report.analysis.seed_measures`). One panel
    per measure, the models along x: one marker per seed (its shape names the seed) with
    that run's within-run interval as an error bar, and a horizontal line at the mean over
    the seeds. ``measures``: which (default: every measure but the last-layer accuracies of
    methods other than ``soft_wpmi``)."""
    import math

    import numpy as np
    from matplotlib.lines import Line2D

    from andlib.report.measures import measure_label, measure_order

    if measures is None:
        measures = [
            m
            for m in measure_order(per_seed["measure"])
            if not m.startswith("last_layer_top1") or m.endswith("/ soft_wpmi")
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


def show_figures(figures: dict[str, plt.Figure] | list[plt.Figure]) -> None:
    """Display figures inline as PNG images and close them, so none is shown twice.

    The PNG is rendered here rather than left to the notebook's matplotlib backend, so figures
    also appear in notebooks executed under ``MPLBACKEND=Agg`` (``make reproduce``).
    """
    import io

    from IPython.display import Image, display

    for fig in figures.values() if isinstance(figures, dict) else figures:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=fig.dpi)
        display(Image(data=buf.getvalue(), format="png"))
        plt.close(fig)
