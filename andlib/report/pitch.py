"""The comparison of several pitch networks (the parent run of ``configs/pitch.yaml``).

Each network's run is scored by :mod:`andlib.evaluate.pitch`; :func:`compare` puts the
per-model tables side by side in ``analysis/pitch_comparison.csv`` and
``analysis/pitch_last_layer.csv`` and draws the figures ``pitch_comparison`` (selectivity,
polysemantic fraction and simulation score against relative depth, one line per model) and
``pitch_output_layer`` (stated against true pitch of every output neuron). :func:`run_stage`
is the second half of the ``pitch`` CLI stage: it compares on a parent run and does nothing
on a single network's run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from andlib.config import Config
from andlib.data.notes import hz_to_midi
from andlib.evaluate.pitch import PRIMARY, pitch_runs
from andlib.report import plots
from andlib.store import RunDir, read_table

STAGE = "pitch_comparison"


def run_stage(cfg: Config, run: RunDir) -> dict[str, Any]:
    """:func:`compare` on the parent run of a comparison config (``strategies``); nothing on a
    single network's run (always recomputed: it only gathers the runs' own tables)."""
    return compare(cfg, run) if cfg.strategies else {}


COMPARED = (
    "selectivity_semitones",
    "polysemantic_fraction",
    "simulation_pearson",
    "states_preferred_f0",
)


def compare(cfg: Config, run: RunDir) -> dict[str, Any]:
    """The parent run of a comparison config: ``analysis/pitch_comparison.csv`` (``model,
    layer, depth, metric, value``), ``analysis/pitch_last_layer.csv`` and the figures."""
    import matplotlib.pyplot as plt

    runs = pitch_runs(cfg)
    if not runs:
        return {"pitch_comparison": "no pitch runs", "missing": list(cfg.strategies)}
    comparison, last = comparison_tables(runs)
    run.write_csv("analysis/pitch_comparison.csv", comparison)
    run.write_csv("analysis/pitch_last_layer.csv", last)
    figs = comparison_figures(cfg, runs, comparison)
    for fig in figs.values():
        plt.close(fig)
    return {"models": list(runs), "figures": sorted(figs), "last_layer": last.to_dict("records")}


def comparison_tables(runs: Mapping[str, RunDir]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long per-layer metrics of every run and the output-layer results side by side."""
    frames, last = [], []
    for model, r in runs.items():
        if not r.exists("pitch_layers.csv"):
            continue
        layers = read_table(r, "pitch_layers.csv")
        long = layers.melt(
            id_vars=["layer", "depth"],
            value_vars=[c for c in layers.columns if c not in ("layer", "depth", "top_attribute")],
            var_name="metric",
        )
        long.insert(0, "model", model)
        frames.append(long)
        report = r.read_json("pitch_last_layer.json")
        for method, scores in report["methods"].items():
            last.append({"model": model, "method": method, **scores})
    comparison = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["model", "layer", "depth", "metric", "value"])
    )
    comparison["value"] = pd.to_numeric(comparison["value"], errors="coerce")
    return comparison, pd.DataFrame(last)


def comparison_figures(
    cfg: Config, runs: Mapping[str, RunDir], comparison: pd.DataFrame | None = None
) -> dict[str, Any]:
    """``pitch_comparison`` (three panels against relative depth) and ``pitch_output_layer``
    (stated against true pitch per output neuron, one panel per model); saved."""
    import matplotlib.pyplot as plt

    comparison = comparison_tables(runs)[0] if comparison is None else comparison
    titles = {
        "selectivity_semitones": "pitch selectivity\n(spread of the top-K notes' f0, semitones)",
        "polysemantic_fraction": "polysemantic fraction",
        "simulation_pearson": "simulation score (mean Pearson r)",
        "states_preferred_f0": "description states the preferred f0\n(f0-driven neurons, ±1 semitone)",
    }
    chance_of = {
        "selectivity_semitones": ("selectivity_chance", "random K notes"),
        "states_preferred_f0": ("states_preferred_f0_chance", "shuffled descriptions"),
    }
    fig, axes = plt.subplots(1, len(COMPARED), figsize=(3.9 * len(COMPARED), 3.4))
    for ax, metric in zip(axes, COMPARED, strict=True):
        for model, rows in comparison[comparison["metric"] == metric].groupby("model", sort=False):
            rows = rows.sort_values("depth")
            ax.plot(rows["depth"], rows["value"], marker="o", label=model)
        if metric in chance_of:
            name, label = chance_of[metric]
            chance = comparison[comparison["metric"] == name]["value"].dropna()
            if len(chance):
                ax.axhline(float(chance.mean()), color="grey", ls=":", lw=1, label=label)
                ax.legend(fontsize=7)
        ax.set(xlabel="relative depth (0 = first layer, 1 = output)", title=titles[metric])
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    figs = {"pitch_comparison": fig}
    fig2, axes2 = plt.subplots(1, len(runs), figsize=(4.0 * len(runs), 3.6), squeeze=False)
    for ax, (model, r) in zip(axes2[0], runs.items(), strict=True):
        if not r.exists("pitch_output_neurons.csv"):
            continue
        t = read_table(r, "pitch_output_neurons.csv")
        t = t[t["in_range"].astype(str) == "True"]
        true = pd.to_numeric(t["bin_hz"])
        stated = pd.to_numeric(t[f"{PRIMARY}_hz"], errors="coerce")
        ax.scatter(hz_to_midi(true), hz_to_midi(stated), s=6, alpha=0.6)
        lo, hi = float(hz_to_midi(true.min())), float(hz_to_midi(true.max()))
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
        within = float(np.mean(np.abs(hz_to_midi(stated) - hz_to_midi(true)) <= 1.0))
        ax.set(
            xlabel="output bin (MIDI)",
            ylabel="pitch the description states (MIDI)",
            title=f"{model}: {within:.0%} within 1 semitone",
        )
    fig2.tight_layout()
    figs["pitch_output_layer"] = fig2
    for name, f in figs.items():
        plots.save_figure(f, name, cfg)
    return figs
