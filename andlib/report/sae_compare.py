"""Neurons against SAE latents on the same layer: the same clips, captions, scorers and tables.

For each virtual layer ``sae.<layer>.k<k>`` of the run (:mod:`andlib.models.sae_layer`) and
the recorded ``<layer>`` it encodes, every measure is computed per unit from the files the
ordinary stages wrote for both, then the two groups are compared:

- ``simulation``: the simulation scorer's Pearson correlation of the unit's description
  (``scores.csv``, variant ``own``), and ``simulation_over_random`` (own minus the ``random``
  baseline: another unit's description); ``detection`` and ``detection_over_random``, the
  same for the detection scorer's AUROC;
- ``class_purity_over_chance``: the share of its top-K clips in their most common class
  (``analysis/class_purity.csv``) minus the chance purity of random K-sets;
- ``polysemantic``: 1 when its top clips span at least ``analysis.polysemantic_threshold``
  caption clusters (``analysis/neuron_polysemanticity.csv``);
- ``names_source``: 1 when its description (``calibrated_summary``, else ``high_summary``)
  holds every word of a class name of the probing set (stemmed, :func:`names_source`);
- ``hidden_top1``: the hidden-layer measure (``hidden_layer_accuracy.csv``, the run's
  default closed-set method): among the units whose top clips share a class, the share whose
  top-1 concept names it. It exists per layer only: its interval is a normal one for the
  difference of two proportions.

Each row gives both means, the difference (latents minus neurons) and a 95 % percentile
bootstrap interval over units (each group resampled on its own, seeded): the two groups are
the same layer's units seen through the same pipeline, not the same units, so the comparison is
paired by layer, clips and scorers and unpaired over units. :func:`verdict` says in words which
differences exclude zero.

Public surface: :data:`MEASURES`, :func:`names_source`, :func:`unit_measures`,
:func:`compare`, :func:`hidden_rows`, :func:`verdict`, :func:`comparison_figure`,
:data:`SPEC`, :func:`run_stage` (stage ``sae_compare``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from andlib.config import Config, rng
from andlib.layout import ANALYSIS_DIR, is_sae_layer, sae_base_layer
from andlib.layout import read_table as read_analysis
from andlib.store import (
    RunDir,
    Stage,
    activation_index,
    read_clips,
    read_neurons,
    read_scores,
    read_table,
)
from andlib.text.names import stems

STAGE = "sae_compare"
VERSION = 2
TABLE = "sae_comparison.csv"
VERDICT = "sae_verdict.txt"
FIGURE = "sae_neurons_vs_latents"
MEASURES: dict[str, tuple[str, bool]] = {
    "simulation": ("simulation Pearson r", True),
    "simulation_over_random": ("simulation r over a random description", True),
    "detection": ("detection AUROC", True),
    "detection_over_random": ("detection AUROC over a random description", True),
    "class_purity_over_chance": ("class purity of the top-K clips over chance", True),
    "polysemantic": ("polysemantic share", False),
    "names_source": ("share of descriptions naming a source", True),
    "hidden_top1": ("hidden-layer top-1 (shared class named)", True),
}
"""Measure -> (label, whether higher reads as more interpretable)."""
SCORED = (("simulation", "pearson"), ("detection", "auroc"))
"""The scorers of ``scores.csv`` compared, each by one metric (and its ``random`` baseline)."""
COLUMNS = [
    "layer",
    "sae_layer",
    "measure",
    "n_neurons",
    "n_latents",
    "neurons",
    "latents",
    "difference",
    "ci_low",
    "ci_high",
    "interval",
]


def names_source(text: Any, class_stems: Sequence[set[str]]) -> bool:
    """True when ``text`` holds every (stemmed) word of one of the class names."""
    words = set(stems(str(text or "")))
    return any(c and c <= words for c in class_stems)


def _per_unit(df: pd.DataFrame | None, column: str, measure: str) -> pd.DataFrame:
    if df is None or not len(df):
        return pd.DataFrame(columns=["layer", "neuron", "measure", "value"])
    out = df[["layer", "neuron"]].copy()
    out["measure"] = measure
    out["value"] = pd.to_numeric(df[column], errors="coerce").astype(float)
    return out


def unit_measures(
    scores: pd.DataFrame | None,
    purity: pd.DataFrame | None,
    chance: float,
    poly: pd.DataFrame | None,
    neurons: pd.DataFrame | None,
    class_names: Iterable[str],
) -> pd.DataFrame:
    """``layer, neuron, measure, value``: every per-unit measure of :data:`MEASURES` that the
    given tables allow (a missing table adds no rows)."""
    frames = []
    for scorer, metric in SCORED:
        if scores is None or not len(scores):
            break
        rows = scores[(scores["scorer"] == scorer) & (scores["metric"] == metric)]
        if not len(rows):
            continue
        wide = rows.pivot_table(index=["layer", "neuron"], columns="variant", values="value")
        wide = wide.reset_index()
        if "own" in wide:
            frames.append(_per_unit(wide, "own", scorer))
            if "random" in wide:
                wide["over"] = wide["own"] - wide["random"]
                frames.append(_per_unit(wide, "over", f"{scorer}_over_random"))
    if purity is not None and len(purity):
        p = purity.assign(over=pd.to_numeric(purity["purity"], errors="coerce") - chance)
        frames.append(_per_unit(p, "over", "class_purity_over_chance"))
    if poly is not None and len(poly):
        p = poly.assign(flag=poly["polysemantic"].astype(str).str.lower().eq("true").astype(float))
        frames.append(_per_unit(p, "flag", "polysemantic"))
    if neurons is not None and len(neurons):
        class_stems = [set(stems(c)) for c in class_names if str(c).strip()]
        text = neurons.get("calibrated_summary", neurons["high_summary"])
        text = text.where(text.astype(str).str.strip() != "", neurons["high_summary"])
        n = neurons.assign(flag=[float(names_source(t, class_stems)) for t in text])
        frames.append(_per_unit(n, "flag", "names_source"))
    if not frames:
        return pd.DataFrame(columns=["layer", "neuron", "measure", "value"])
    out = pd.concat(frames, ignore_index=True)
    out["layer"] = out["layer"].astype(str)
    return out.dropna(subset=["value"]).reset_index(drop=True)


def _bootstrap(a: np.ndarray, b: np.ndarray, draws: int, gen: np.random.Generator) -> tuple:
    """95 % percentile interval of ``mean(b) - mean(a)``, each group resampled on its own."""
    if len(a) < 2 or len(b) < 2:
        return float("nan"), float("nan")
    ia = gen.integers(0, len(a), size=(draws, len(a)))
    ib = gen.integers(0, len(b), size=(draws, len(b)))
    diffs = b[ib].mean(1) - a[ia].mean(1)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def pairs(layers: Iterable[str]) -> list[tuple[str, str]]:
    """``(recorded layer, SAE layer)`` for every SAE layer whose base layer is recorded."""
    names = set(layers)
    return [
        (sae_base_layer(x), x)
        for x in sorted(names)
        if is_sae_layer(x) and sae_base_layer(x) in names
    ]


def compare(
    measures: pd.DataFrame, layer_pairs: Sequence[tuple[str, str]], draws: int, seed: int
) -> pd.DataFrame:
    """One row per layer pair and per-unit measure: :data:`COLUMNS`."""
    rows: list[list[Any]] = []
    for layer, sae_layer in layer_pairs:
        for measure in MEASURES:
            m = measures[measures["measure"] == measure]
            a = m.loc[m["layer"] == layer, "value"].to_numpy(float)
            b = m.loc[m["layer"] == sae_layer, "value"].to_numpy(float)
            if not len(a) or not len(b):
                continue
            gen = np.random.default_rng([seed, len(rows)])
            low, high = _bootstrap(a, b, draws, gen)
            rows.append(
                [layer, sae_layer, measure, len(a), len(b), a.mean(), b.mean()]
                + [b.mean() - a.mean(), low, high, "bootstrap over units"]
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def hidden_rows(
    hidden: pd.DataFrame | None, layer_pairs: Sequence[tuple[str, str]], method: str
) -> pd.DataFrame:
    """The hidden-layer measure (``top1`` of ``method``) of each pair, as :data:`COLUMNS` rows
    (a normal interval for the difference of two proportions)."""
    rows: list[list[Any]] = []
    if hidden is None or not len(hidden):
        return pd.DataFrame(rows, columns=COLUMNS)
    h = hidden[hidden["method"] == method].set_index("layer")
    for layer, sae_layer in layer_pairs:
        if layer not in h.index or sae_layer not in h.index:
            continue
        na, nb = int(h.at[layer, "n_neurons"]), int(h.at[sae_layer, "n_neurons"])
        pa, pb = float(h.at[layer, "top1"]), float(h.at[sae_layer, "top1"])
        if not na or not nb:
            continue
        se = np.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
        d = pb - pa
        rows.append(
            [layer, sae_layer, "hidden_top1", na, nb, pa, pb, d, d - 1.96 * se, d + 1.96 * se]
            + ["normal, two proportions"]
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def verdict(table: pd.DataFrame) -> str:
    """The comparison in words: per pair and measure, whether latents or neurons read better
    (the interval excludes zero) or neither does; one side beats the other only where it reads
    better on most measures and worse on none (one measure alone never decides)."""
    lines = []
    for (layer, sae_layer), g in table.groupby(["layer", "sae_layer"], sort=False):
        better, worse, tied = [], [], []
        for r in g.itertuples():
            label, higher = MEASURES[str(r.measure)]
            if np.isnan(r.ci_low) or r.ci_low <= 0 <= r.ci_high:
                tied.append(label)
            elif (r.difference > 0) == higher:
                better.append(label)
            else:
                worse.append(label)
        lines.append(f"{sae_layer} against the neurons of {layer}:")
        lines.append(f"  latents read better on: {', '.join(better) or 'none'}")
        lines.append(f"  neurons read better on: {', '.join(worse) or 'none'}")
        lines.append(f"  no difference shown on: {', '.join(tied) or 'none'}")
        most = len(g) / 2
        overall = (
            "latents beat neurons here: better on most measures, worse on none"
            if len(better) > most and not worse
            else "neurons beat latents here: better on most measures, worse on none"
            if len(worse) > most and not better
            else "neither beats the other here: no side is better on most measures and worse on none"
        )
        lines.append(f"  {overall} (95 % intervals).")
    return "\n".join(lines) + ("\n" if lines else "")


def comparison_figure(table: pd.DataFrame) -> Any:
    """One panel per layer pair: each measure's difference (latents minus neurons) with its
    interval; right of zero reads better for latents where higher is better."""
    import matplotlib.pyplot as plt

    groups = list(table.groupby(["layer", "sae_layer"], sort=False))
    fig, axes = plt.subplots(
        1, max(1, len(groups)), figsize=(6 * max(1, len(groups)), 0.6 * len(MEASURES) + 1.5)
    )
    axes = np.atleast_1d(axes)
    for ax, ((layer, sae_layer), g) in zip(axes, groups, strict=False):
        y = np.arange(len(g))
        err = np.vstack([g["difference"] - g["ci_low"], g["ci_high"] - g["difference"]])
        ax.errorbar(g["difference"], y, xerr=np.nan_to_num(err), fmt="o", capsize=3)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(y, [MEASURES[m][0] for m in g["measure"]])
        ax.set_xlabel("latents minus neurons (95 % interval)")
        ax.set_title(f"{sae_layer} vs {layer}")
    fig.tight_layout()
    return fig


SPEC = Stage(
    STAGE,
    sections=("seed", "k", "analysis.polysemantic_threshold", "concepts.db_default"),
    upstream=("record", "concepts", "evaluate", "analysis"),
    version=VERSION,
)
"""The comparison's key: the stages whose tables it reads and the settings it reads."""

BOOTSTRAP_DRAWS = 2000


def run_stage(cfg: Config, run: RunDir) -> dict[str, Any]:
    """Compare each SAE layer with its recorded layer; write ``analysis/sae_comparison.csv``,
    ``analysis/sae_verdict.txt`` and the figure. Nothing to do without SAE layers."""
    if not run.exists("activations/index.json"):
        return {"sae_compare": "no recording"}
    layer_pairs = pairs(activation_index(run)["layers"])
    if not layer_pairs:
        return {"sae_compare": "no SAE layers"}
    key = SPEC.key(cfg, run)
    outputs = [f"{ANALYSIS_DIR}/{TABLE}", f"{ANALYSIS_DIR}/{VERDICT}"]
    if run.is_fresh(STAGE, key):
        return {"sae_compare": "reused"}
    t0 = time.time()
    clips = read_clips(run)
    cats = clips["category"].astype(str) if "category" in clips else pd.Series(dtype=str)
    purity_layers = read_analysis(run, "class_purity_per_layer.csv")
    chance = float(purity_layers["chance"].iloc[0]) if purity_layers is not None else np.nan
    measures = unit_measures(
        read_scores(run),
        read_analysis(run, "class_purity.csv"),
        chance,
        read_analysis(run, "neuron_polysemanticity.csv"),
        read_neurons(run) if run.exists("neurons.csv") else None,
        sorted(set(cats) - {""}),
    )
    table = pd.concat(
        [
            compare(measures, layer_pairs, BOOTSTRAP_DRAWS, int(rng(cfg, STAGE).integers(2**31))),
            hidden_rows(
                read_table(run, "hidden_layer_accuracy.csv", required=False),
                layer_pairs,
                f"db_{cfg.concepts.db_default}",
            ),
        ],
        ignore_index=True,
    )
    run.write_csv(f"{ANALYSIS_DIR}/{TABLE}", table)
    text = verdict(table)
    (run.path / ANALYSIS_DIR / VERDICT).write_text(text)
    from andlib.report.plots import save_and_close

    save_and_close(comparison_figure(table), FIGURE, cfg)
    run.mark_done(STAGE, key, outputs, seconds=round(time.time() - t0, 1))
    return {"sae_compare": len(table)}
