"""Models compared on the paper's measures: one table and one figure.

The parent run of a config whose ``strategies`` name models (``configs/whisper.yaml``) compares
its per-model runs with each other and with the runs of ``reference_runs`` (other configs'
runs, read from their own run directories and never re-run; the default AST for the Whisper
comparison). Per model, :func:`model_row` reads from the run's own files:

- ``heldout_accuracy``: the model's held-out accuracy (``model.json``; a probe head's on
  fold 5);
- ``table2_<captioner>``: last-layer top-1 of the default DB function (``last_layer.json``),
  for every captioner the run evaluated;
- ``hidden_top1`` and ``hidden_chance``: the hidden-layer measure of the default DB function
  over all hidden layers (``hidden_layer_accuracy.csv``);
- ``simulation_own`` and ``simulation_random``: the simulation scorer's mean Pearson r of the
  neurons' own descriptions and of a random other neuron's (``score_baselines.csv``), with the
  interval of their difference (``simulation_diff_ci_low``, ``simulation_diff_ci_high``);
- ``prune_db_vs_random`` with ``prune_ci_low`` and ``prune_ci_high``: DB pruning's ΔA−ΔR
  minus random pruning's, paired over classes, with its bootstrap interval
  (``pruning_summary.csv``);
- ``class_purity``, ``class_purity_chance`` and ``polysemantic_share``: means over the hidden
  layers (``analysis/``).

:func:`layer_rows` gives class purity and the polysemantic share per layer (by relative
depth), and :func:`plot_models` draws both tables as one figure. A measure a run lacks is left
empty.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from andlib.config import Config, ConfigError, find_config_file, load_config
from andlib.layout import read_table as read_analysis_table
from andlib.store import RunDir, read_model_info, read_pruning_summary, read_table

log = logging.getLogger(__name__)

ALL_HIDDEN = "all hidden"
REQUIRED = ("model.json", "neurons.csv")
"""Files a reference run must have to be compared."""


def reference_runs(cfg: Config) -> dict[str, RunDir]:
    """The runs of ``cfg.reference_runs`` (name -> config file) that exist. A missing run is
    left out with one warning naming the command that makes it."""
    out: dict[str, RunDir] = {}
    for name, path in cfg.reference_runs.items():
        try:
            ref = load_config(find_config_file(path))
        except (ConfigError, FileNotFoundError) as exc:
            raise ConfigError(f"reference_runs.{name}: {exc}") from None
        run = RunDir(ref.run_path)
        missing = [f for f in REQUIRED if not run.exists(f)]
        if missing:
            log.warning(
                "reference run %r: %s has no %s; make it with: make reproduce CONFIG=%s",
                name,
                run.path,
                ", ".join(missing),
                path,
            )
            continue
        out[name] = run
    return out


def model_row(name: str, run: RunDir, db_default: str) -> dict[str, Any]:
    """One model's measures (see the module docstring); ``db_default`` names the DB function
    (``wpmi``: column ``db_wpmi``)."""
    method = f"db_{db_default}"
    row: dict[str, Any] = {"model": name}
    info = read_model_info(run)
    row["model_id"] = info.get("model_id", "")
    row["heldout_accuracy"] = info.get("heldout_accuracy")
    if run.exists("last_layer.json"):
        for captioner, methods in run.read_json("last_layer.json").items():
            row[f"table2_{captioner}"] = (methods.get(method) or {}).get("top1")
    hidden = read_table(run, "hidden_layer_accuracy.csv", required=False)
    if hidden is not None:
        pooled = hidden[(hidden["layer"] == ALL_HIDDEN) & (hidden["method"] == method)]
        if len(pooled):
            row["hidden_top1"] = float(pooled["top1"].iloc[0])
            row["hidden_chance"] = float(pooled["chance_top1"].iloc[0])
    base = read_table(run, "score_baselines.csv", required=False)
    if base is not None:
        sim = base[
            (base["layer"] == "all")
            & (base["scorer"] == "simulation")
            & (base["metric"] == "pearson")
            & (base["variant"] == "random")
        ]
        if len(sim):
            r = sim.iloc[0]
            row |= {
                "simulation_own": float(r["own_mean"]),
                "simulation_random": float(r["baseline_mean"]),
                "simulation_diff_ci_low": float(r["ci_low"]),
                "simulation_diff_ci_high": float(r["ci_high"]),
            }
    prune = read_pruning_summary(run)
    if prune is not None:
        db = prune[prune["strategy"] == "db"]
        if len(db):
            r = db.iloc[0]
            row |= {
                "prune_db_vs_random": float(r["vs_random_mean"]),
                "prune_ci_low": float(r["vs_random_ci_low"]),
                "prune_ci_high": float(r["vs_random_ci_high"]),
                "prune_share": float(r["share_pruned_mean"]),
            }
    layers = layer_rows(name, run)
    if len(layers):
        row["class_purity"] = float(layers["class_purity"].mean())
        row["class_purity_chance"] = float(layers["class_purity_chance"].mean())
        row["polysemantic_share"] = float(layers["polysemantic_share"].mean())
    return row


def layer_rows(name: str, run: RunDir, classifier: str = "classifier") -> pd.DataFrame:
    """``model, layer, depth, relative_depth, class_purity, class_purity_chance,
    polysemantic_share`` for the hidden layers of ``run`` (``relative_depth``: the layer's
    depth over the deepest hidden layer's, so that models of different depth share an axis)."""
    cols = [
        "model",
        "layer",
        "depth",
        "relative_depth",
        "class_purity",
        "class_purity_chance",
        "polysemantic_share",
    ]
    purity = read_analysis_table(run, "class_purity_per_layer.csv")
    poly = read_analysis_table(run, "polysemantic_per_layer.csv")
    if purity is None or poly is None:
        return pd.DataFrame(columns=cols)
    table = purity[["layer", "depth", "mean_purity", "chance"]].merge(
        poly[["layer", "fraction"]], on="layer", how="inner"
    )
    table = table[table["layer"] != classifier]
    if table.empty:
        return pd.DataFrame(columns=cols)
    deepest = max(float(table["depth"].max()), 1.0)
    return pd.DataFrame(
        {
            "model": name,
            "layer": table["layer"].astype(str).to_numpy(),
            "depth": table["depth"].to_numpy(),
            "relative_depth": table["depth"].to_numpy(dtype=float) / deepest,
            "class_purity": table["mean_purity"].to_numpy(dtype=float),
            "class_purity_chance": table["chance"].to_numpy(dtype=float),
            "polysemantic_share": table["fraction"].to_numpy(dtype=float),
        },
        columns=cols,
    )


def model_table(runs: Mapping[str, RunDir], db_default: str) -> pd.DataFrame:
    """:func:`model_row` of every run, in order."""
    return pd.DataFrame([model_row(name, run, db_default) for name, run in runs.items()])


def models_layers(runs: Mapping[str, RunDir]) -> pd.DataFrame:
    """:func:`layer_rows` of every run, stacked."""
    frames = [layer_rows(name, run) for name, run in runs.items()]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else layer_rows("", RunDir("."))


def plot_models(table: pd.DataFrame, layers: pd.DataFrame) -> Any:
    """Six panels: held-out accuracy, Table 2 per captioner, the hidden-layer measure beside
    chance, simulation beside its random baseline, DB pruning against random (interval), and
    class purity and the polysemantic share per layer over relative depth."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    models = table["model"].astype(str).tolist()
    x = np.arange(len(models))

    def bars(ax: Any, cols: list[str], labels: list[str], title: str) -> None:
        width = 0.8 / max(len(cols), 1)
        for i, (col, label) in enumerate(zip(cols, labels, strict=True)):
            vals = pd.to_numeric(table.get(col, pd.Series([np.nan] * len(table))), errors="coerce")
            ax.bar(x + (i - (len(cols) - 1) / 2) * width, vals.fillna(0.0), width, label=label)
        ax.set_xticks(x, models, rotation=15)
        ax.set_title(title)
        if len(cols) > 1:
            ax.legend(fontsize=8)

    bars(axes[0, 0], ["heldout_accuracy"], ["held-out"], "held-out accuracy (fold 5)")
    table2 = [c for c in table.columns if c.startswith("table2_")]
    bars(axes[0, 1], table2, [c[len("table2_") :] for c in table2], "Table 2: last-layer top-1")
    bars(
        axes[0, 2],
        ["hidden_top1", "hidden_chance"],
        ["top-1", "chance"],
        "hidden layers: concept = shared class",
    )
    bars(
        axes[1, 0],
        ["simulation_own", "simulation_random"],
        ["own", "random neuron's"],
        "simulation (Pearson r)",
    )
    ax = axes[1, 1]
    if "prune_db_vs_random" in table:
        mean = pd.to_numeric(table["prune_db_vs_random"], errors="coerce")
        low = mean - pd.to_numeric(table["prune_ci_low"], errors="coerce")
        high = pd.to_numeric(table["prune_ci_high"], errors="coerce") - mean
        ax.bar(x, mean.fillna(0.0), yerr=np.vstack([low.fillna(0.0), high.fillna(0.0)]))
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xticks(x, models, rotation=15)
    ax.set_title("pruning: DB (ΔA−ΔR) minus random")
    ax = axes[1, 2]
    for model, group in layers.groupby("model", sort=False):
        ax.plot(group["relative_depth"], group["class_purity"], marker="o", label=f"{model} purity")
        ax.plot(
            group["relative_depth"],
            group["polysemantic_share"],
            marker="x",
            ls="--",
            label=f"{model} polysemantic",
        )
    ax.set_xlabel("relative depth")
    ax.set_title("class purity and polysemantic share per layer")
    if len(layers):
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
