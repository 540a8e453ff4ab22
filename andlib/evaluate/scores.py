"""Evaluation: last-layer dissection accuracy (paper Table 2) and explanation scoring by simulation.

**Last-layer accuracy.** The classifier's output neurons are the classes, so their true concept
is known. For every concept-identification method in ``neurons.csv`` (DB with each similarity
function, ``db_<fn>``; TAB; ICL: ``icl`` with an LLM, ``icl_embedding`` without one) we score
the identified concept against the class name: Top-1
and Top-5 accuracy (:func:`topk_accuracy`) and the mean cosine similarity of the top-1 concept and
the class name in the sentence embedder's space (:func:`concept_cosine`). Only the output
neurons whose class occurs in the probing set are scored: the probing set's labels are mapped
onto the model's classes by name when the match is certain (``001 - Dog bark`` -> ``dog``,
:func:`match_class`) or by ``evaluate.label_map``; ``last_layer.json`` then counts the others
in ``n_left_out`` with a ``left_out_reason``, and a probing set none of whose labels maps is an
error (:class:`LabelMapError`), as are generic class names (``LABEL_n``) that cannot be mapped. Both captioners of
``evaluate.captioners`` are reported: ``neurons.csv`` holds the configured captioner's results;
for another captioner the classifier layer alone was dissected again in a control run
``<run>/last_layer/<captioner>/``, an ordinary run of the caption, summarize and concepts stages
that :mod:`andlib.pipeline` makes before this stage (:func:`control_captioners`,
:func:`read_controls`); this module runs no other stage. TAB uses CLAP audio embeddings, not
captions, so its scores are shared by every captioner.

**Explanation scores** (beyond the paper) are computed by the scorers of
:mod:`andlib.evaluate.scorers` (simulation, detection, intruder), each on the same seeded
sample of neurons per layer, with baselines and sanity variants: ``scores.csv`` (``layer,
neuron, scorer, metric, variant, value, n``, read with :func:`andlib.store.read_scores`),
``score_sanity.csv``, ``score_baselines.csv`` and ``score_missing.csv`` (what was left out,
and why). A probing set whose labels do not map to the model's classes leaves the last-layer
table out (its reason in ``score_missing.csv``); every scorer still runs.

Outputs: ``last_layer.json``, ``caption_quality.csv``, ``hidden_layer_accuracy.csv`` and the
score tables above; :mod:`andlib.report.figures` draws their figures.

Public surface: :func:`topk_accuracy`, :func:`concept_cosine`, :func:`last_layer_scores`,
:func:`last_layer_accuracy`, :func:`last_layer_frame`, :func:`simulation_summary` (and,
from the scorers, :func:`pearson`, :func:`spearman`, :func:`heldout_mask`,
:func:`description_of`, :func:`label_oracle`), :func:`control_captioners`, :func:`sweep_rates`, :func:`read_controls`,
:func:`caption_quality_sweep`, :data:`SPEC`, :func:`run_stage`. The class names and the
classifier truth (:mod:`andlib.evaluate.classes`) and the control-run readers
(:mod:`andlib.evaluate.controls_read`) stay importable from here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from andlib.config import Config, rng
from andlib.evaluate.classes import GENERIC_CLASS_NAME as GENERIC_CLASS_NAME
from andlib.evaluate.classes import ClassifierTruth as ClassifierTruth
from andlib.evaluate.classes import LabelMapError as LabelMapError
from andlib.evaluate.classes import class_names as class_names
from andlib.evaluate.classes import classifier_truth as classifier_truth
from andlib.evaluate.classes import generic_names as generic_names
from andlib.evaluate.classes import probing_labels as probing_labels
from andlib.evaluate.controls_read import _control_rows
from andlib.evaluate.controls_read import control_captioners as control_captioners
from andlib.evaluate.controls_read import read_controls as read_controls
from andlib.evaluate.controls_read import sweep_control as sweep_control
from andlib.evaluate.controls_read import sweep_rates as sweep_rates
from andlib.evaluate.hidden import HIDDEN_COLUMNS, hidden_layer_report
from andlib.evaluate.labels import _stems as _stems
from andlib.evaluate.labels import match_class as match_class
from andlib.evaluate.scorers.base import VARIANTS
from andlib.evaluate.scorers.base import description_clips as description_clips
from andlib.evaluate.scorers.base import description_of as description_of
from andlib.evaluate.scorers.base import heldout_mask as heldout_mask
from andlib.evaluate.scorers.base import label_oracle as label_oracle
from andlib.evaluate.scorers.base import sample_neurons as sample_neurons
from andlib.evaluate.scorers.metrics import pearson as pearson
from andlib.evaluate.scorers.metrics import spearman as spearman
from andlib.evaluate.scorers.simulation import parse_ratings as parse_ratings
from andlib.store import (
    ActivationCache,
    RunDir,
    Stage,
    activation_index,
    concept_columns,
    control_run_path,
    read_clips,
    read_neurons,
    read_scores,
    read_table,
)
from andlib.text.concept_sets import load_concept_set
from andlib.text.names import normalize_concept, ranked_concepts
from andlib.text.names import normalize_label as normalize_label

STAGE = "evaluate"
VERSION = 4
"""Algorithm version of the evaluate stage (part of its cache key): raise it when a change of
the code changes its outputs for the same inputs."""
OUTPUTS = [
    "last_layer.json",
    "caption_quality.csv",
    "hidden_layer_accuracy.csv",
    "scores.csv",
    "score_sanity.csv",
    "score_baselines.csv",
    "score_missing.csv",
]

log = logging.getLogger(__name__)


class TextEncoder(Protocol):
    """Anything with ``encode(texts) -> [n, d]`` unit-norm vectors (an :class:`Embedder`)."""

    def encode(self, texts: list[str]) -> np.ndarray: ...


# --------------------------------------------------------------------------------------------
# Last-layer dissection accuracy
# --------------------------------------------------------------------------------------------


def topk_accuracy(predicted_top5: list[list[str]], truth: list[str]) -> tuple[float, float]:
    """Top-1 and Top-5 accuracy of ranked concept lists against the true concept names.

    ``predicted_top5[i]`` is neuron *i*'s ranked concepts (best first; may be empty or
    shorter than 5). Names are compared by :func:`normalize_concept`. Empty input gives NaN.
    """
    if len(predicted_top5) != len(truth):
        raise ValueError(f"{len(predicted_top5)} predictions for {len(truth)} true concepts")
    if not truth:
        return float("nan"), float("nan")
    hits1 = hits5 = 0
    for preds, true in zip(predicted_top5, truth, strict=True):
        norm = [normalize_concept(p) for p in preds[:5]]
        t = normalize_concept(true)
        hits1 += bool(norm) and norm[0] == t
        hits5 += t in norm
    return hits1 / len(truth), hits5 / len(truth)


def concept_cosine(predicted: list[str], truth: list[str], embedder: TextEncoder) -> float:
    """Mean cosine similarity of each predicted concept and its true concept.

    Both are embedded as words (``water_drops`` -> ``water drops``). A missing prediction
    (empty string) scores 0. The embedder must return unit-norm vectors.
    """
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predictions for {len(truth)} true concepts")
    if not truth:
        return float("nan")
    pred = [normalize_concept(p) for p in predicted]
    true = [normalize_concept(t) for t in truth]
    texts = sorted({*pred, *true} - {""})
    vecs = dict(zip(texts, np.asarray(embedder.encode(texts), dtype=np.float64), strict=True))
    cos = [
        float(np.clip(vecs[p] @ vecs[t], -1.0, 1.0)) if p and t else 0.0
        for p, t in zip(pred, true, strict=True)
    ]
    return float(np.mean(cos))


ICL_METHODS = ("icl", "icl_embedding")
"""ICL's method names: ``icl`` (an LLM picked), ``icl_embedding`` (no LLM: ranked by embedding
similarity, :data:`andlib.describe.concepts.ICL_FALLBACK`)."""


def concept_methods(neurons: pd.DataFrame) -> list[str]:
    """The concept columns of ``neurons.csv`` that hold results: ``db_<fn>``..., ``tab``,
    ``icl`` or ``icl_embedding``."""
    cols = concept_columns(neurons.columns)
    filled = [c for c in cols if (neurons[c].astype(str).str.strip() != "").any()]
    return filled


def last_layer_scores(
    layer_rows: pd.DataFrame,
    names: Sequence[str | None],
    embedder: TextEncoder,
    left_out_reason: str = "",
) -> dict[str, dict[str, Any]]:
    """``{method: {top1, top5, cos, n_neurons}}`` for the classifier layer's ``neurons.csv`` rows.

    ``names[i]`` is output ``i``'s class; a ``None`` one (a class the probing set does not
    hold, :class:`ClassifierTruth`) is left out, and then every method also reports
    ``n_left_out`` and ``left_out_reason``. ``n_neurons`` counts the neurons scored. With an
    LLM, ``icl`` also reports ``top5_llm_only`` (Top-5 on the concepts the LLM named itself,
    without the embedding neighbours padding a short reply; ``icl_llm_slots``) and
    ``n_padded`` (neurons whose top 5 was padded).
    """
    scored = layer_rows["neuron"].astype(int).map(lambda n: n < len(names) and names[n] is not None)
    rows = layer_rows[scored].sort_values("neuron")
    truth = [str(names[int(n)]) for n in rows["neuron"]]
    n_left_out = sum(n is None for n in names)
    out: dict[str, dict[str, Any]] = {}
    for method in concept_methods(rows):
        ranked = [ranked_concepts(r, method) for _, r in rows.iterrows()]
        top1, top5 = topk_accuracy(ranked, truth)
        cos = concept_cosine([r[0] if r else "" for r in ranked], truth, embedder)
        out[method] = {"top1": top1, "top5": top5, "cos": cos, "n_neurons": len(truth)}
        if method == "icl" and "icl_llm_slots" in rows.columns:
            slots = pd.to_numeric(rows["icl_llm_slots"], errors="coerce").fillna(0).astype(int)
            own = [r[:s] for r, s in zip(ranked, slots, strict=True)]
            out[method]["top5_llm_only"] = topk_accuracy(own, truth)[1]
            out[method]["n_padded"] = sum(len(o) < len(r) for o, r in zip(own, ranked, strict=True))
        if n_left_out:
            out[method]["n_left_out"] = n_left_out
            out[method]["left_out_reason"] = left_out_reason
    return out


# --------------------------------------------------------------------------------------------
# How good must captions be? (the caption-quality sweep)
# --------------------------------------------------------------------------------------------


SWEEP_COLUMNS = ["captioner", "caption_accuracy", "method", "top1", "top5", "cos"]


def caption_quality_sweep(
    cfg: Config,
    run: RunDir,
    names: Sequence[str | None],
    embedder: TextEncoder,
    measured: dict[str, dict[str, dict[str, Any]]],
    controls: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Last-layer accuracy against caption accuracy: ``caption_quality.csv``.

    For each rate p of :func:`sweep_rates`, ``controls[sweep-<p>]`` holds the classifier
    concepts named from the ``metadata+acoustic`` captions with the source of a seeded share p
    of the clips replaced by a wrong class (the control run ``last_layer/sweep-<p>/``, made by
    :mod:`andlib.pipeline`); caption accuracy is 1 - p. The measured captioners of ``measured``
    (``last_layer.json``) join as points: ``tagger+acoustic`` at its cross-fitted top-1,
    ``acoustic`` (no source) at 0.
    """
    rates = sweep_rates(cfg)
    if not rates:
        return pd.DataFrame(columns=SWEEP_COLUMNS)
    records = []
    for rate in rates:
        rows = _control_rows(controls, sweep_control(rate))
        for method, s in last_layer_scores(rows, names, embedder).items():
            records.append(
                {"captioner": "metadata+acoustic (corrupted)", "caption_accuracy": 1 - rate}
                | {"method": method, "top1": s["top1"], "top5": s["top5"], "cos": s["cos"]}
            )
    for captioner, methods in measured.items():
        if captioner == "acoustic":
            acc = 0.0
        elif captioner == "tagger+acoustic":
            report = _caption_report(cfg, run, captioner)
            acc = float(report.get("top1", np.nan))
        else:
            continue
        for method, s in methods.items():
            records.append(
                {"captioner": captioner, "caption_accuracy": acc, "method": method}
                | {"top1": s["top1"], "top5": s["top5"], "cos": s["cos"]}
            )
    return pd.DataFrame(records, columns=SWEEP_COLUMNS)


def _caption_report(cfg: Config, run: RunDir, captioner: str) -> dict[str, Any]:
    """``caption_accuracy.json`` of ``captioner``: the run's own, or its control run's."""
    if captioner == cfg.captioner.name and run.exists("caption_accuracy.json"):
        return dict(run.read_json("caption_accuracy.json"))
    report = control_run_path(run, captioner) / "caption_accuracy.json"
    return dict(json.loads(report.read_text())) if report.exists() else {}


def last_layer_accuracy(
    cfg: Config,
    run: RunDir,
    embedder: TextEncoder | None = None,
    controls: Mapping[str, pd.DataFrame] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{captioner: {method: {top1, top5, cos, n_neurons}}}`` for the classifier layer.

    The configured captioner is read from ``neurons.csv``; every other captioner of
    ``evaluate.captioners`` (:func:`control_captioners`) from ``controls[captioner]``, the
    classifier rows of its control run (:func:`read_controls`); a missing one is an error.
    Only the output neurons whose class occurs in the probing set are scored (:func:`classifier_truth`; the others are counted in
    ``n_left_out`` with a ``left_out_reason``); :class:`LabelMapError` when the class names
    are unknown or generic and cannot be mapped, or when no probing-set label maps to a
    class. Empty when the classifier layer was not dissected, and for a pitch network
    (:mod:`andlib.models.pitch`), whose output neurons are pitch bins, not classes: those are
    scored against their frequencies by :mod:`andlib.evaluate.pitch` (``pitch_last_layer.json``).
    """
    from andlib.models.families.registry import family_of

    if family_of(cfg.model.name).outputs == "pitch":
        log.info("pitch network: its output bins are scored by andlib.evaluate.pitch instead")
        return {}
    layer = cfg.evaluate.classifier_layer
    neurons = read_neurons(run)
    rows = neurons[neurons["layer"] == layer]
    if rows.empty:
        log.warning("no neurons of layer %r in neurons.csv: no last-layer accuracy", layer)
        return {}
    index = activation_index(run) if run.exists("activations/index.json") else {"layers": {}}
    n_classes = index["layers"].get(layer, {}).get("n_neurons") or int(rows["neuron"].max()) + 1
    truth = classifier_truth(cfg, run, int(n_classes))  # LabelMapError when nothing maps
    if truth.n_left_out:
        log.warning("last layer: %s; they are left out of the scores", truth.left_out_reason)
    if embedder is None:
        from andlib.text.embeddings import get_embedder

        embedder = get_embedder(cfg)

    captioners = [cfg.captioner.name] + [
        c for c in cfg.evaluate.captioners if c != cfg.captioner.name
    ]
    results: dict[str, dict[str, dict[str, float]]] = {}
    for captioner in captioners:
        if captioner == cfg.captioner.name:
            layer_rows = rows
        else:
            # The leakage control and the ablations are part of the result: a missing one
            # fails the stage (no silent drop).
            layer_rows = _control_rows(controls, captioner)
            if "tab" in rows.columns:  # TAB reads no captions: the configured run's result
                tab = rows.set_index("neuron")[["tab", "tab_top5"]]
                layer_rows = layer_rows.drop(columns=["tab", "tab_top5"], errors="ignore")
                layer_rows = layer_rows.join(tab, on="neuron")
                layer_rows[["tab", "tab_top5"]] = layer_rows[["tab", "tab_top5"]].fillna("")
        results[captioner] = last_layer_scores(
            layer_rows, truth.names, embedder, truth.left_out_reason
        )
    return results


def _classifier_names(run: RunDir, cfg: Config) -> list[str | None] | None:
    """:attr:`ClassifierTruth.names` of the classifier layer (``None`` entries: left out)."""
    layer = cfg.evaluate.classifier_layer
    index = activation_index(run) if run.exists("activations/index.json") else {"layers": {}}
    n_classes = index["layers"].get(layer, {}).get("n_neurons")
    if n_classes is None:
        names = class_names(run)
        return list(names) if names else None
    return classifier_truth(cfg, run, int(n_classes)).names


def last_layer_frame(results: dict[str, dict[str, dict[str, Any]]]) -> pd.DataFrame:
    """``last_layer.json`` as a table: one row per (captioner, method)."""
    records = [
        {"captioner": cap, "method": method, **scores}
        for cap, methods in results.items()
        for method, scores in methods.items()
    ]
    cols = ["captioner", "method", "top1", "top5", "cos", "n_neurons"]
    return pd.DataFrame(records, columns=cols)


# --------------------------------------------------------------------------------------------
# Explanation scores (the scorers of andlib.evaluate.scorers)
# --------------------------------------------------------------------------------------------


def simulation_summary(scores: pd.DataFrame, scorer: str = "simulation") -> pd.DataFrame:
    """Mean value per layer, metric and variant of one scorer's rows of ``scores.csv``
    (layers in recording order, variants in report order), with ``n_neurons``."""
    s = scores[scores["scorer"].astype(str) == scorer]
    s = s.assign(value=pd.to_numeric(s["value"], errors="coerce"))
    order = list(dict.fromkeys(s["layer"]))
    grouped = s.groupby(["layer", "metric", "variant"], sort=False)["value"]
    out = grouped.mean().reset_index()
    out["n_neurons"] = grouped.size().values
    out["layer"] = pd.Categorical(out["layer"], categories=order, ordered=True)
    variants = [v for v in VARIANTS if v in set(out["variant"])]
    out["variant"] = pd.Categorical(out["variant"], categories=variants, ordered=True)
    return out.sort_values(["layer", "metric", "variant"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Stage
# --------------------------------------------------------------------------------------------


def _summary(run: RunDir, cfg: Config) -> dict[str, Any]:
    out: dict[str, Any] = {}
    results = run.read_json("last_layer.json") if run.exists("last_layer.json") else {}
    for cap, methods in results.items():
        for method, s in methods.items():
            out[f"last_layer[{cap}].{method}"] = (
                f"top1={s['top1']:.3f} top5={s['top5']:.3f} cos={s['cos']:.3f}"
            )
    scores = read_scores(run)
    if scores is not None and not scores.empty:
        means = scores.groupby(["scorer", "metric", "variant"], sort=False)["value"].mean()
        for (scorer, metric, variant), value in means.items():
            if metric in HEADLINE_METRICS:
                out[f"{scorer}.{metric}.{variant}"] = f"{value:.3f}"
    if run.exists("score_sanity.csv"):
        sanity = read_table(run, "score_sanity.csv")
        failing = sanity[sanity["passes"].astype(str) != "True"]
        out["sanity_failures"] = (
            ", ".join(f"{r.scorer}.{r.metric} ({r.variant})" for r in failing.itertuples())
            or "none"
        )
    out["outputs"] = ", ".join(str(run / o) for o in OUTPUTS)
    return out


HEADLINE_METRICS = ("pearson", "auroc", "balanced_accuracy", "accuracy")
"""The metrics the stage's summary lists per scorer and variant."""


SPEC = Stage(
    STAGE,
    sections=("evaluate", "embedder", "seed", "llm"),
    upstream=("concepts", "controls"),
    resources=("prompts:simulate", "prompts:detect"),
    version=VERSION,
    inputs=("neurons.csv", "captions.csv", "clips.csv", "activations/index.json"),
)
"""The evaluate stage's cache key: the ``evaluate``, ``embedder``, ``seed`` and ``llm``
settings, the concepts stage key (which covers the concept set, lexicon and prompts), the
``controls`` record of its control runs (:func:`andlib.pipeline.run_controls`), the inputs'
fingerprints, :data:`VERSION` and the simulation and detection prompts."""


def hidden_layer_table(cfg: Config, run: RunDir) -> pd.DataFrame:
    """``hidden_layer_accuracy.csv`` (:mod:`andlib.evaluate.hidden`) of every recorded layer
    but the classifier, for every concept column of ``neurons.csv``: the share of neurons whose
    top-``k`` clips share a class (by ``category`` of ``clips.csv``) whose concept is that
    class, beside its shuffled chance level (``evaluate.hidden_shuffles`` permutations, seeded
    per layer and method). Empty when the probing set has no labels."""
    cache = ActivationCache.load(run)
    clips = read_clips(run, cache.clip_ids)
    if "category" not in clips.columns:
        log.info("hidden-layer accuracy: the probing set has no labels (no category column)")
        return pd.DataFrame(columns=HIDDEN_COLUMNS)
    neurons = read_neurons(run)
    hidden = [la for la in cache.layers if la != cfg.evaluate.classifier_layer]
    return hidden_layer_report(
        neurons,
        {la: cache.topk(la, cfg.k).high for la in hidden},
        clips["category"].tolist(),
        load_concept_set(cfg.concepts.concept_set),
        concept_methods(neurons),
        cfg.k,
        lambda layer, method: rng(cfg, "hidden", layer, method),
        cfg.evaluate.hidden_shuffles,
    )


def run_stage(cfg: Config, run: RunDir) -> dict[str, Any]:
    """Write ``last_layer.json``, ``caption_quality.csv``, ``hidden_layer_accuracy.csv``
    (:func:`hidden_layer_table`), ``scores.csv``,
    ``score_sanity.csv``, ``score_baselines.csv`` and ``score_missing.csv``.
    Reads the control runs as they are (:func:`read_controls`): run it through
    :mod:`andlib.pipeline`, which makes them (or finds them fresh) first.

    When the probing set's labels cannot be mapped onto the classifier's classes
    (:class:`LabelMapError`), the last-layer table is left out (``last_layer.json`` empty, the
    reason in ``score_missing.csv``) and every scorer still runs."""
    from andlib.evaluate.scorers.registry import resolve_scorers
    from andlib.evaluate.scorers.runner import score_run
    from andlib.evaluate.scorers.sanity import baseline_table, sanity_table

    resolve_scorers(cfg.evaluate.scorers)  # a bad name fails before any work
    key = SPEC.key(cfg, run)
    logger = run.logger(STAGE)
    if run.is_fresh(STAGE, key):
        logger.info("evaluate: up to date")
        return _summary(run, cfg)
    from andlib.text.embeddings import get_embedder

    embedder = get_embedder(cfg)
    controls = read_controls(cfg, run)
    left_out: list[dict[str, Any]] = []
    try:
        results = last_layer_accuracy(cfg, run, embedder, controls)
    except LabelMapError as exc:
        logger.warning("last layer left out: %s", exc)
        results = {}
        left_out.append(
            {
                "layer": cfg.evaluate.classifier_layer,
                "scorer": "last_layer",
                "variant": "",
                "reason": f"the probing set's labels do not map to the model's classes: {exc}",
                "n_neurons": 0,
            }
        )
    run.write_json("last_layer.json", results)
    logger.info("last-layer accuracy: %s", json.dumps(results))
    sweep = pd.DataFrame(columns=SWEEP_COLUMNS)
    names = _classifier_names(run, cfg) if results else None
    if results and names:  # empty without a sweep (sweep_rates)
        sweep = caption_quality_sweep(cfg, run, names, embedder, results, controls)
    run.write_csv("caption_quality.csv", sweep)
    hidden = hidden_layer_table(cfg, run)
    run.write_csv("hidden_layer_accuracy.csv", hidden)
    logger.info("hidden-layer accuracy (shared class of the top clips):\n%s", hidden.to_string())

    scores, missing, seconds = score_run(cfg, run, embedder)
    missing = pd.concat([pd.DataFrame(left_out, columns=missing.columns), missing])
    run.write_csv("scores.csv", scores)
    run.write_csv("score_missing.csv", missing.reset_index(drop=True))
    run.write_csv("score_sanity.csv", sanity_table(scores))
    run.write_csv("score_baselines.csv", baseline_table(scores))
    logger.info(
        "scores: %d rows, %d layers; seconds %s",
        len(scores),
        scores["layer"].nunique(),
        {k: round(v, 2) for k, v in seconds.items()},
    )
    run.mark_done(STAGE, key, outputs=OUTPUTS, seconds=seconds)
    return _summary(run, cfg)
