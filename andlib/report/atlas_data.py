"""The atlas's data (:mod:`andlib.report.atlas`): the run's facts and headline numbers, the
per-layer overview, every neuron's record and its row of the neuron table, built from the run
directory's documented files. Pure functions of the run; :func:`andlib.report.atlas.build_atlas`
writes them out.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from andlib.config import Config
from andlib.layout import ANALYSIS_DIR
from andlib.layout import read_table as read_analysis_table
from andlib.store import (
    RunDir,
    concept_columns,
    decode_list,
    read_model_info,
    read_scores,
    read_table,
)

HIST_BINS = 40


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _num(value: Any, digits: int = 4) -> float | None:
    """A finite float rounded to ``digits`` significant-ish decimals, else ``None``."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(x):
        return None
    return round(x, digits)


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return str(value).strip()


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def media_name(clip_id: str) -> str:
    """A file-name stem for a clip id: the id when it is plain, else a cleaned id plus a short
    hash (two ids never share a stem)."""
    clean = _UNSAFE.sub("_", clip_id)[:80]
    if clean == clip_id and clean and not clean.startswith("."):
        return clean
    import hashlib

    return f"{clean.strip('.') or 'clip'}-{hashlib.sha1(clip_id.encode()).hexdigest()[:8]}"


def _js_assign(target: str, obj: Any) -> str:
    """``<target> = <json>;`` as a JavaScript file (JSON is valid JavaScript)."""
    return f"{target} = {json.dumps(obj, ensure_ascii=False, separators=(',', ':'))};\n"


def _read_csv(run: RunDir, name: str) -> pd.DataFrame | None:
    """A CSV artifact by its reader (an analysis table: :func:`andlib.layout.read_table`),
    ``None`` when it is missing or unreadable."""
    analysis = f"{ANALYSIS_DIR}/"
    try:
        if name.startswith(analysis):
            return read_analysis_table(run, name[len(analysis) :])
        return read_table(run, name, required=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return None


def _read_json(run: RunDir, name: str) -> Any:
    if not run.exists(name):
        return None
    try:
        return run.read_json(name)
    except (json.JSONDecodeError, OSError):
        return None


def _records(df: pd.DataFrame | None) -> list[dict[str, Any]]:
    if df is None:
        return []
    out = []
    for row in df.to_dict("records"):
        out.append(
            {
                k: (_num(v) if isinstance(v, (int, float, np.number)) else _text(v))
                for k, v in row.items()
            }
        )
    return out


# --------------------------------------------------------------------------------------------
# Run facts (index header) and the headline numbers
# --------------------------------------------------------------------------------------------


def primary_concept_column(columns: Iterable[str], cfg: Config | None = None) -> str | None:
    """The closed-set column the table shows: ``db_<concepts.db_default>`` (of ``cfg``, else of
    the default config), else the first DB column, else ``icl``/``icl_embedding``/``tab``."""
    cols = concept_columns(columns)
    default = f"db_{(cfg or Config()).concepts.db_default}"
    if default in cols:
        return default
    for c in cols:
        if c.startswith("db_"):
            return c
    for c in ("icl", "icl_embedding", "tab"):
        if c in cols:
            return c
    return None


SIM_NAMES = {"own": "description", "random": "random_description", "label": "label"}
SIM_NAMES |= {"oracle": "label_oracle", "missing_label": "missing_label"}
SIM_NAMES |= {"extra_label": "extra_label"}
"""``scores.csv`` variants of the simulation scorer as the atlas names them."""


def _simulation_rows(run: RunDir) -> pd.DataFrame | None:
    """The simulation Pearson rows of ``scores.csv`` with a ``method`` column (the atlas's
    names: :data:`SIM_NAMES`, ``llm`` for the LLM simulator) and ``pearson``."""
    try:
        scores = read_scores(run, metric="pearson")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, KeyError):
        return None
    if scores is None:
        return None
    sim = scores[scores["scorer"].isin(["simulation", "simulation_llm"])]
    method = sim["variant"].map(SIM_NAMES).where(sim["scorer"] == "simulation", "llm")
    return sim.assign(method=method, pearson=sim["value"])


def _simulation_means(sim: pd.DataFrame | None) -> dict[str, dict[str, float | None]]:
    """``{layer: {method: mean pearson}}`` plus ``"all"``."""
    if sim is None or not len(sim) or "method" not in sim:
        return {}
    sim = sim.copy()
    sim["pearson"] = pd.to_numeric(sim["pearson"], errors="coerce")
    out: dict[str, dict[str, float | None]] = {}
    for (layer, method), v in sim.groupby(["layer", "method"])["pearson"].mean().items():
        out.setdefault(str(layer), {})[str(method)] = _num(v)
    for method, v in sim.groupby("method")["pearson"].mean().items():
        out.setdefault("all", {})[str(method)] = _num(v)
    return out


def _neuron_scores(run: RunDir) -> dict[tuple[str, int], dict[str, dict[str, float | None]]]:
    """``{(layer, neuron): {"<scorer> <metric>": {variant: value}}}`` from ``scores.csv``."""
    try:
        scores = read_scores(run)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, KeyError):
        return {}
    out: dict[tuple[str, int], dict[str, dict[str, float | None]]] = {}
    if scores is None:
        return out
    for r in scores.itertuples():
        cell = out.setdefault((r.layer, int(r.neuron)), {})
        cell.setdefault(f"{r.scorer} {r.metric}", {})[str(r.variant)] = _num(r.value)
    return out


def headline(run: RunDir | str | os.PathLike, cfg: Config | None = None) -> dict[str, Any]:
    """The run's headline numbers (each ``None`` when its stage has not run):
    ``heldout_accuracy`` (model.json), ``caption_top1`` (the tagger's cross-fitted top-1),
    ``last_layer_top1`` (``{captioner: top-1 of the primary DB method}``), ``primary_method``,
    ``simulation`` (``{method: mean pearson}``: description and its baselines) and
    ``pruning`` (``{strategy: mean ΔA−ΔR}``)."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    if cfg is None and run.exists("config.yaml"):
        from andlib.report.browser import RunView

        cfg = RunView(run).config
    model = read_model_info(run)
    caption = _read_json(run, "caption_accuracy.json") or {}
    last = _read_json(run, "last_layer.json") or {}
    methods = sorted({m for v in last.values() if isinstance(v, dict) for m in v})
    primary = primary_concept_column(methods, cfg)
    last_top1 = {}
    for captioner, by_method in last.items():
        if isinstance(by_method, dict) and primary in by_method:
            last_top1[captioner] = _num(by_method[primary].get("top1"))
    sim = _simulation_means(_simulation_rows(run)).get("all", {})
    pruning = {}
    summary = _read_csv(run, "pruning_summary.csv")
    if summary is not None and "delta_a_minus_r_mean" in summary:
        for r in summary.itertuples():
            pruning[str(r.strategy)] = _num(r.delta_a_minus_r_mean)
    return {
        "heldout_accuracy": _num(model.get("heldout_accuracy")),
        "caption_top1": _num(caption.get("top1")),
        "primary_method": primary,
        "last_layer_top1": last_top1,
        "simulation": sim,
        "pruning": pruning,
    }


def run_facts(run: RunDir, view: Any, cfg: Config) -> dict[str, Any]:
    """Everything the index page's header shows."""
    model = read_model_info(run)
    clips = view.clips
    probing: dict[str, Any] = {
        "dataset": cfg.data.dataset,
        "n_clips": len(view.clip_ids) or len(clips),
        "sample_rate": cfg.data.sample_rate,
        "duration": cfg.data.duration,
    }
    if "category" in clips and len(clips):
        probing["n_classes"] = int(clips["category"].nunique())
    if "fold" in clips and len(clips):
        probing["folds"] = sorted({_text(f) for f in clips["fold"]})
    skipped = _read_csv(run, "skipped.csv")
    probing["n_skipped"] = 0 if skipped is None else len(skipped)
    model_facts = {
        k: model.get(k)
        for k in (
            "model_id",
            "model_type",
            "kind",
            "strategy",
            "n_parameters",
            "train_accuracy",
            "heldout_accuracy",
            "heldout_fold",
            "epochs",
            "pooling",
        )
        if model.get(k) is not None
    }
    last = _read_json(run, "last_layer.json") or {}
    captioners = {
        str(c): {
            str(m): {k: _num(v.get(k)) for k in ("top1", "top5", "cos", "n_neurons")}
            for m, v in by_method.items()
            if isinstance(v, dict)
        }
        for c, by_method in last.items()
        if isinstance(by_method, dict)
    }
    caption = _read_json(run, "caption_accuracy.json") or {}
    tagger = {
        k: (_num(v) if isinstance(v, (int, float)) else v)
        for k, v in caption.items()
        if k in ("captioner", "tagger", "cross_fitting", "top1", "top3", "n_clips", "source")
    }
    pruning = _records(_read_csv(run, "pruning_summary.csv"))
    keep = ("strategy", "n_concepts", "n_pruned_mean", "delta_a_minus_r_mean", "ci_low", "ci_high")
    return {
        "name": cfg.name,
        "captioner": cfg.captioner.name,
        "k": cfg.k,
        "model": model_facts,
        "probing": probing,
        "last_layer": captioners,
        "tagger": tagger,
        "pruning": [{k: r.get(k) for k in keep if k in r} for r in pruning],
        "headline": headline(run, cfg),
        "built": time.strftime("%Y-%m-%d %H:%M"),
    }


def layer_overview(
    run: RunDir,
    layers: list[str],
    n_neurons: dict[str, int],
    neurons: pd.DataFrame | None,
    primary: str | None = None,
) -> list[dict[str, Any]]:
    """One row per layer: ``layer, n_neurons, n_described, sim_description, sim_random,
    polysemantic, adjectives, purity, purity_chance`` (+ ``pitch_selectivity``), the spread of
    the concepts (``concept_spread.csv``): ``spread`` (``{method: top_share}``) and, of the
    ``primary`` method, ``top_concept``, ``top_share`` and ``entropy_bits``, and its
    hidden-layer accuracy (``hidden_layer_accuracy.csv``): ``hidden_top1``,
    ``hidden_chance``, ``hidden_n``."""
    sim = _simulation_means(_simulation_rows(run))
    spread = _read_csv(run, "concept_spread.csv")
    hidden = _read_csv(run, "hidden_layer_accuracy.csv")
    poly = _read_csv(run, "analysis/polysemantic_per_layer.csv")
    purity = _read_csv(run, "analysis/class_purity_per_layer.csv")
    adjectives = _read_csv(run, "analysis/adjectives_per_layer.csv")
    pitch = _read_csv(run, "pitch_layers.csv")

    def lookup(df: pd.DataFrame | None, layer: str, column: str) -> float | None:
        if df is None or column not in df or "layer" not in df:
            return None
        hit = df.loc[df["layer"].astype(str) == layer, column]
        return _num(hit.iloc[0]) if len(hit) else None

    rows = []
    for layer in layers:
        described = neurons[neurons["layer"] == layer] if neurons is not None else None
        adj = lookup(adjectives, layer, "mean_adjectives")
        if adj is None and described is not None and len(described) and "adjectives" in described:
            adj = _num(np.mean([len(decode_list(v)) for v in described["adjectives"]]))
        row = {
            "layer": layer,
            "n_neurons": n_neurons.get(layer, 0),
            "n_described": 0 if described is None else len(described),
            "sim_description": sim.get(layer, {}).get("description"),
            "sim_random": sim.get(layer, {}).get("random_description"),
            "polysemantic": lookup(poly, layer, "fraction"),
            "adjectives": adj,
            "purity": lookup(purity, layer, "mean_purity"),
            "purity_chance": lookup(purity, layer, "chance"),
        }
        if pitch is not None:
            row["pitch_selectivity"] = lookup(pitch, layer, "selectivity_semitones")
        if spread is not None and len(spread):
            mine = spread[spread["layer"].astype(str) == layer]
            row["spread"] = {
                str(m): _num(s) for m, s in zip(mine["method"], mine["top_share"], strict=True)
            }
            own = mine[mine["method"] == primary]
            if len(own):
                row["top_concept"] = _text(own["top_concept"].iloc[0])
                row["top_share"] = _num(own["top_share"].iloc[0])
                row["entropy_bits"] = _num(own["entropy_bits"].iloc[0])
        if hidden is not None and len(hidden):
            own = hidden[(hidden["layer"].astype(str) == layer) & (hidden["method"] == primary)]
            if len(own):
                row["hidden_top1"] = _num(own["top1"].iloc[0])
                row["hidden_chance"] = _num(own["chance_top1"].iloc[0])
                row["hidden_n"] = int(own["n_neurons"].iloc[0])
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# Neurons
# --------------------------------------------------------------------------------------------


def closed_columns(columns: Iterable[str]) -> list[str]:
    """Top-1 closed-set columns of ``neurons.csv``: ``db_*`` then TAB then ICL."""
    return concept_columns(columns)


def _histogram(values: np.ndarray, bins: int) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return {"lo": None, "hi": None, "counts": []}
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        hi = lo + 1e-6
    counts, _ = np.histogram(finite, bins=bins, range=(lo, hi))
    return {"lo": _num(lo, 5), "hi": _num(hi, 5), "counts": counts.astype(int).tolist()}


def _topk_lookup(view: Any) -> dict[tuple[str, int, str], list[tuple[str, float]]]:
    t = view.topk
    if t is None or not len(t):
        return {}
    t = t.sort_values(["layer", "neuron", "end", "rank"])
    out: dict[tuple[str, int, str], list[tuple[str, float]]] = {}
    for (layer, neuron, end), g in t.groupby(["layer", "neuron", "end"], sort=False):
        out[(str(layer), int(neuron), str(end))] = list(
            zip(g["clip_id"].astype(str), g["activation"].astype(float), strict=True)
        )
    return out


def neuron_records(
    view: Any,
    layer: str,
    k: int,
    topk: dict[tuple[str, int, str], list[tuple[str, float]]] | None = None,
    sims: dict[tuple[str, int], dict[str, float | None]] | None = None,
    bins: int = HIST_BINS,
    scores: dict[tuple[str, int], dict[str, dict[str, float | None]]] | None = None,
) -> dict[int, dict[str, Any]]:
    """``{neuron: record}`` of one layer, the neuron page's data.

    A record: ``h, l, c`` (high, low, calibrated summary), ``adj``, ``open`` (lists),
    ``closed`` (``{column: [top-1, top-5 list]}``), ``sim`` (``{method: pearson}``), ``scores``
    (``{"<scorer> <metric>": {variant: value}}``: every scorer beside its baselines), ``hist``
    (``{lo, hi, counts}``), ``top`` / ``bot`` (``[[clip_id, activation], ...]``, most extreme
    first; the clips the description was made from, else ``neuron_topk.csv``, else the
    activation extremes)."""
    acts = view.layer_activations(layer)
    described = view.neurons
    rows: dict[int, dict[str, Any]] = {}
    if described is not None:
        sub = described[described["layer"] == layer]
        for r in sub.to_dict("records"):
            rows[int(r["neuron"])] = r
    n = int(acts.shape[1]) if acts is not None else (max(rows) + 1 if rows else 0)
    index = view.clip_index
    topk = topk or {}
    sims = sims or {}
    closed = closed_columns(described.columns) if described is not None else []
    out: dict[int, dict[str, Any]] = {}
    for j in range(n):
        row = rows.get(j, {})
        values = acts[:, j] if acts is not None else None

        def activation(clip_id: str, fallback: float | None, values=values) -> float | None:
            if values is not None and clip_id in index:
                return _num(values[index[clip_id]])
            return _num(fallback)

        def ends(end: str, row=row, j=j, values=values) -> list[list[Any]]:
            column = "top_clips" if end == "high" else "bottom_clips"
            ids = decode_list(row.get(column))
            if ids:
                return [[c, activation(c, None)] for c in ids[:k]]
            hit = topk.get((layer, j, end))
            if hit:
                return [[c, activation(c, a)] for c, a in hit[:k]]
            if values is not None:
                order = np.argsort(-values if end == "high" else values, kind="stable")[:k]
                return [[view.clip_ids[i], _num(values[i])] for i in order]
            return []

        rec: dict[str, Any] = {
            "d": bool(row),
            "h": _text(row.get("high_summary")),
            "l": _text(row.get("low_summary")),
            "c": _text(row.get("calibrated_summary")),
            "adj": decode_list(row.get("adjectives")),
            "open": decode_list(row.get("open_concepts")),
            "closed": {
                c: [_text(row.get(c)), decode_list(row.get(f"{c}_top5"))]
                for c in closed
                if _text(row.get(c))
            },
            "sim": sims.get((layer, j), {}),
            "scores": (scores or {}).get((layer, j), {}),
            "top": ends("high"),
            "bot": ends("low"),
        }
        if values is not None:
            rec["hist"] = _histogram(np.asarray(values, dtype=np.float64), bins)
        out[j] = rec
    return out


def table_row(layer: str, neuron: int, rec: dict[str, Any], primary: str | None) -> list[Any]:
    """A neuron table row: ``[layer, neuron, concept, calibrated summary, adjectives (;),
    description simulation score, other concepts (space-joined, for search), high summary,
    {"<scorer> <metric>": the description's own score}]``: the index sorts by any of them.

    The other concepts are every method's top-1 and the open-set concepts, not the top-5
    lists: with six methods those name most of the concept set, and a search for ``wind``
    would keep nearly every neuron."""
    concept = rec["closed"].get(primary, [""])[0] if primary else ""
    if not concept and rec["closed"]:
        concept = next(iter(rec["closed"].values()))[0]
    others = sorted({top1 for top1, _ in rec["closed"].values() if top1} | set(rec["open"]))
    return [
        layer,
        neuron,
        concept,
        rec["c"] or rec["h"],
        ";".join(rec["adj"]),
        rec["sim"].get("description"),
        " ".join(others),
        rec["h"] if rec["c"] and rec["h"] != rec["c"] else "",
        {
            name: v.get("own")
            for name, v in rec.get("scores", {}).items()
            if v.get("own") is not None
        },
    ]
