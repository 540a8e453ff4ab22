"""A strategies comparison one training seed at a time: small per-seed tables, kept in the
repository, and the comparison over every seed they hold.

:func:`seed_tables` reduces the runs of one seed (one run directory per strategy) to the
tables of :data:`andlib.layout.SEED_TABLES`: the scalar measures with their within-run
intervals (:func:`strategy_measures`), the per-layer class purity and polysemantic fraction,
and how each model was trained (accuracy, time, threads, device). :func:`write_seed_tables`
writes them with their provenance (stage keys, date, commit) into ``results/<config>/seed<k>/``.

:func:`committed_comparison` reads every seed folder (:func:`andlib.layout.read_seed_tables`),
refuses seeds made from other stage keys than the newest seed for the same measure
(:class:`StaleSeedsError`, naming the command that re-runs them), and aggregates the rest
with :mod:`andlib.report.seeds`: mean, SD, min-max per model and measure, and the orderings
that hold in every seed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from andlib.config import PROJECT_ROOT
from andlib.layout import PROVENANCE, SEED_TABLES, layer_depths, read_seed_tables
from andlib.report.comparison import run_metrics
from andlib.report.seeds import (
    run_measures,
    seed_orderings,
    seed_summary,
    seed_verdict,
    wilson_interval,
)
from andlib.store import ArtifactError, RunDir, atomic_write_text, read_model_info, read_table

MEASURE_COLUMNS = ["strategy", "measure", "value", "ci_low", "ci_high", "n", "interval"]
PER_LAYER_COLUMNS = ["strategy", "metric", "layer", "depth", "value"]
PER_LAYER_METRICS = ("class_purity", "class_purity_chance", "polysemantic_fraction")
"""The per-layer metrics of :func:`andlib.report.comparison.run_metrics` a seed keeps."""
TRAINING_COLUMNS = [
    "strategy",
    "seed",
    "heldout_accuracy",
    "n_heldout",
    "train_accuracy",
    "train_seconds",
    "pretrain_seconds",
    "num_threads",
    "device",
]
"""``training.csv``: what ``model.json`` records of how each strategy's model was trained."""

DISSECTION = ("train", "record", "caption", "summarize", "concepts")
"""The stages every dissection measure comes through."""
TABLE_STAGES = {
    "measures.csv": (*DISSECTION, "evaluate", "prune", "analysis"),
    "per_layer.csv": (*DISSECTION, "analysis"),
    "training.csv": ("train", "record"),
}
"""The stages each table comes from (recorded in its provenance)."""


def measure_stages(measure: str) -> tuple[str, ...]:
    """The stages a measure of ``measures.csv`` comes from: its seeds are comparable when
    these stages' recipes (:data:`andlib.layout.PROVENANCE`) are equal."""
    if measure == "heldout_accuracy":
        return ("train",)
    if measure.startswith(("class_purity", "polysemantic")):
        return (*DISSECTION, "analysis")
    if measure.startswith("pruning"):
        return (*DISSECTION, "prune")
    return (*DISSECTION, "evaluate")


# --------------------------------------------------------------------------------------------
# One seed's tables, from its runs
# --------------------------------------------------------------------------------------------


def strategy_measures(run: RunDir, db_method: str, confidence: float = 0.95) -> pd.DataFrame:
    """One run's scalar measures (``measure, value, ci_low, ci_high, n, interval``):
    :func:`andlib.report.seeds.run_measures`, plus the hidden-layer measure (``hidden_top1:
    db_<fn>``: top-1 of the default DB concepts against the class a neuron's top clips share,
    all hidden layers pooled, Wilson interval) and pruning (``pruning: <selection>``: mean
    ΔA − ΔR over classes with its bootstrap interval, ``pruning_summary.csv``)."""
    m = run_measures(run, confidence)
    rows: list[dict[str, Any]] = []
    hidden = read_table(run, "hidden_layer_accuracy.csv", required=False)
    if hidden is not None and len(hidden):
        method = f"db_{db_method}"
        pooled = hidden[(hidden["layer"] == "all hidden") & (hidden["method"] == method)]
        for r in pooled.itertuples():
            stats = wilson_interval(float(r.top1), int(r.n_neurons), confidence)
            rows.append({"measure": f"hidden_top1: {method}", **stats, "interval": "wilson"})
    prune = read_table(run, "pruning_summary.csv", required=False)
    if prune is not None and len(prune):
        for r in prune.itertuples():
            rows.append(
                {
                    "measure": f"pruning: {r.strategy}",
                    "value": float(r.delta_a_minus_r_mean),
                    "ci_low": float(r.ci_low),
                    "ci_high": float(r.ci_high),
                    "n": int(r.n_concepts),
                    "interval": "bootstrap over classes",
                }
            )
    extra = pd.DataFrame(rows, columns=list(m.columns))
    return pd.concat([m, extra], ignore_index=True) if len(extra) else m


def seed_tables(
    runs: Mapping[str, RunDir], db_method: str, confidence: float = 0.95
) -> dict[str, pd.DataFrame]:
    """The tables of :data:`andlib.layout.SEED_TABLES` for one seed's runs
    (``{strategy: RunDir}``): see the module docstring."""
    measures, per_layer, training = [], [], []
    for strategy, run in runs.items():
        measures.append(strategy_measures(run, db_method, confidence).assign(strategy=strategy))
        metrics = run_metrics(run)
        layers = metrics[metrics["metric"].isin(PER_LAYER_METRICS)]
        per_layer.append(layers.assign(strategy=strategy))
        info = read_model_info(run)
        training.append({"strategy": strategy, **{c: info.get(c) for c in TRAINING_COLUMNS[1:]}})
    per = pd.concat(per_layer, ignore_index=True) if per_layer else pd.DataFrame()
    if len(per):
        per["depth"] = per["layer"].map(layer_depths(per["layer"]))
    return {
        "measures.csv": (
            pd.concat(measures, ignore_index=True)[MEASURE_COLUMNS]
            if measures
            else pd.DataFrame(columns=MEASURE_COLUMNS)
        ),
        "per_layer.csv": per.reindex(columns=PER_LAYER_COLUMNS),
        "training.csv": pd.DataFrame(training, columns=TRAINING_COLUMNS),
    }


def git_commit() -> str:
    """The short commit of the code (``unknown`` outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def write_seed_tables(
    folder: Path, tables: Mapping[str, pd.DataFrame], provenance: Mapping[str, Any]
) -> list[Path]:
    """Write one seed's tables and its :data:`andlib.layout.PROVENANCE` record (with each
    table's stages, :data:`TABLE_STAGES`) into ``folder``; returns the files written."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SEED_TABLES:
        path = folder / name
        atomic_write_text(path, tables[name].to_csv(index=False))
        written.append(path)
    record = {**provenance, "tables": {n: {"stages": list(TABLE_STAGES[n])} for n in SEED_TABLES}}
    atomic_write_text(folder / PROVENANCE, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return [*written, folder / PROVENANCE]


# --------------------------------------------------------------------------------------------
# The comparison over every committed seed
# --------------------------------------------------------------------------------------------


class StaleSeedsError(ArtifactError):
    """Committed seeds made from other stage keys than the newest seed, for the same measure."""


def rerun_command(config: str, seeds: list[int], overrides: list[str] | None = None) -> str:
    """The command(s) that re-run ``seeds`` of a strategies config (with its ``--set``
    overrides)."""
    import shlex

    sets = "".join(f" --set {shlex.quote(o)}" for o in overrides or [])
    return " && ".join(
        f"python -m andlib strategies-seed --config {config} --seed {k}{sets}" for k in seeds
    )


def _signature(record: Mapping[str, Any], stages: tuple[str, ...]) -> dict[str, Any]:
    """``{strategy: {stage: recipe key}}`` of ``stages`` in a seed's provenance."""
    recipes = record.get("recipe", {})
    return {s: {st: keys.get(st) for st in stages} for s, keys in sorted(recipes.items())}


def _command(record: Mapping[str, Any], config: str, seed: int) -> str:
    """The command a seed's provenance says re-runs it (else the plain one)."""
    return str(record.get("command") or rerun_command(config, [seed]))


def check_recipes(found: Mapping[int, Mapping[str, Any]], config: str) -> None:
    """Raise :class:`StaleSeedsError` when, for any measure, a seed's stages were keyed
    differently from the newest seed's (latest ``date``; a strategy in one seed only is not
    compared); the message names the stale seeds and the command that re-runs them."""
    if len(found) < 2:
        return
    newest = max(found, key=lambda k: (str(found[k]["provenance"].get("date", "")), k))
    ref = found[newest]["provenance"]
    stale: dict[int, set[str]] = {}
    for seed, tables in found.items():
        if seed == newest:
            continue
        mine = tables["provenance"]
        measures = set(tables["measures.csv"].get("measure", pd.Series(dtype=str)))
        for measure in measures:
            stages = measure_stages(str(measure))
            a, b = _signature(mine, stages), _signature(ref, stages)
            shared = set(a) & set(b)
            for strategy in shared:
                differ = [st for st in stages if a[strategy][st] != b[strategy][st]]
                if differ:
                    stale.setdefault(seed, set()).update(differ)
    if stale:
        seeds = sorted(stale)
        changed = sorted(set().union(*stale.values()))
        raise StaleSeedsError(
            f"seeds {', '.join(map(str, seeds))} were made from other stage keys "
            f"({', '.join(changed)}) than seed {newest} of {ref.get('date', '?')}: re-run them "
            f"with `{' && '.join(_command(found[k]['provenance'], config, k) for k in seeds)}`"
        )


def committed_comparison(root: Path, config: str) -> dict[str, Any]:
    """The comparison over every seed committed under ``root``: ``seeds``, ``per_seed``
    (``model, seed, measure, value, ci_low, ci_high, n, interval``), ``summary``,
    ``orderings``, ``verdict`` (:mod:`andlib.report.seeds`) and ``training`` (every seed's
    ``training.csv``, with ``date`` and ``commit``); :class:`StaleSeedsError` when seeds of one
    measure come from different stage keys (:func:`check_recipes`). Empty tables when no
    seed is committed."""
    found = read_seed_tables(root)
    check_recipes(found, config)
    frames, training = [], []
    for seed, tables in found.items():
        m = tables["measures.csv"]
        if len(m):
            m = m.rename(columns={"strategy": "model"})
            m.insert(1, "seed", pd.array([seed] * len(m), dtype="Int64"))
            frames.append(m)
        t = tables["training.csv"]
        if len(t):
            prov = tables["provenance"]
            t = t.assign(seed=seed, date=prov.get("date"), commit=prov.get("commit"))
            training.append(t)
    columns = ["model", "seed", "measure", "value", "ci_low", "ci_high", "n", "interval"]
    per_seed = (
        pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    )
    orderings = seed_orderings(per_seed)
    summary = seed_summary(per_seed, orderings)
    return {
        "seeds": list(found),
        "per_seed": per_seed,
        "summary": summary,
        "orderings": orderings,
        "verdict": seed_verdict(summary, orderings),
        "training": pd.concat(training, ignore_index=True) if training else pd.DataFrame(),
    }
