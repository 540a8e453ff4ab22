"""Figures in one consistent style; each written to ``figures/`` as PNG and PDF.

Every figure function takes tidy data (a DataFrame or arrays produced by another stage) and
returns a ``matplotlib.figure.Figure``; :func:`save_figure` writes it under a stable name. The
analysis stage's figures are :mod:`andlib.report.analysis_figures` (importable from here), the
style :mod:`andlib.report.style`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np

from andlib.config import Config
from andlib.report.analysis_figures import SEED_MARKERS as SEED_MARKERS
from andlib.report.analysis_figures import plot_acoustic_feature_r2 as plot_acoustic_feature_r2
from andlib.report.analysis_figures import plot_acoustic_vs_concepts as plot_acoustic_vs_concepts
from andlib.report.analysis_figures import (
    plot_adjective_distribution as plot_adjective_distribution,
)
from andlib.report.analysis_figures import plot_adjectives_per_layer as plot_adjectives_per_layer
from andlib.report.analysis_figures import plot_class_purity as plot_class_purity
from andlib.report.analysis_figures import plot_polysemantic_neurons as plot_polysemantic_neurons
from andlib.report.analysis_figures import plot_seed_measures as plot_seed_measures
from andlib.report.analysis_figures import plot_strategies_comparison as plot_strategies_comparison
from andlib.report.style import PALETTE as PALETTE
from andlib.report.style import STYLE as STYLE
from andlib.report.style import use_style as use_style

if TYPE_CHECKING:
    import pandas as pd


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


def probe_accuracy(cv: dict[str, float], heldout: dict[str, float], chosen: str) -> plt.Figure:
    """A probe head's accuracy per block: cross-validated inside the training folds (what
    chooses the block) and on the held-out fold (reported, never used to choose)."""
    layers = list(cv)
    x = np.arange(len(layers))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(layers) + 2), 3.4))
    ax.plot(x, [cv[la] for la in layers], marker="o", label="CV inside the training folds")
    ax.plot(x, [heldout.get(la, np.nan) for la in layers], marker="s", label="held-out fold")
    ax.axvline(layers.index(chosen), color="grey", ls=":", label=f"chosen: {chosen}")
    ax.set_xticks(x, layers, rotation=20)
    ax.set(ylabel="accuracy", title="Probe head per block", ylim=(0, 1))
    ax.legend(fontsize=8)
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
