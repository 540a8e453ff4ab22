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
:func:`caption_quality_sweep`, :data:`SPEC`, :func:`run_stage`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from andlib.config import Config, ConfigError, rng
from andlib.evaluate.hidden import HIDDEN_COLUMNS, hidden_layer_report
from andlib.evaluate.labels import _stems as _stems
from andlib.evaluate.labels import match_class as match_class
from andlib.evaluate.labels import normalize_label as normalize_label
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
    CONTROLS,
    ActivationCache,
    RunDir,
    Stage,
    activation_index,
    concept_columns,
    control_run_path,
    read_clips,
    read_neurons,
    read_scores,
)
from andlib.text.concept_sets import load_concept_set
from andlib.text.names import normalize_concept, ranked_concepts

STAGE = "evaluate"
VERSION = 3
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
# Reading the run directory (documented formats; shared with andlib.evaluate.prune)
# --------------------------------------------------------------------------------------------


def _config_labels(source: str) -> list[str] | None:
    """``id2label`` of a model's ``config.json`` (local folder or Hugging Face cache), if named."""
    path: Any = Path(source) / "config.json"
    if not path.exists():
        try:
            from huggingface_hub import try_to_load_from_cache

            path = try_to_load_from_cache(source, "config.json")
        except Exception:
            path = None
        if not isinstance(path, str | Path) or not Path(path).exists():
            return None
    try:
        id2label = json.loads(Path(path).read_text()).get("id2label") or {}
    except (OSError, ValueError):
        return None
    if not id2label or all(re.fullmatch(r"LABEL_\d+", str(v)) for v in id2label.values()):
        return None
    return [str(id2label[k]) for k in sorted(id2label, key=int)]


GENERIC_CLASS_NAME = re.compile(r"(?:label|class)[ _-]?\d+|\d+", re.I)
"""A class name that names nothing: ``LABEL_3`` (a hub checkpoint without ``id2label``),
``class_3``, ``3``."""


def generic_names(names: Sequence[Any] | None) -> bool:
    """Whether every class name is a placeholder (:data:`GENERIC_CLASS_NAME`)."""
    return bool(names) and all(GENERIC_CLASS_NAME.fullmatch(str(n).strip()) for n in names or ())


def _model_json_names(info: dict[str, Any]) -> list[str] | None:
    for key in ("label_names", "labels", "class_names"):
        if isinstance(info.get(key), list) and info[key]:
            return [str(x) for x in info[key]]
    if isinstance(info.get("id2label"), dict) and info["id2label"]:
        return [str(info["id2label"][k]) for k in sorted(info["id2label"], key=int)]
    return None


def class_names(run: RunDir, n_classes: int | None = None) -> list[str] | None:
    """The classifier's class names, in output order.

    Looked up in ``model.json`` (``label_names``/``id2label``), then the model's own config
    (``model.json``'s ``source``, a local folder or a cached hub id), then ``clips.csv``'s
    ``label -> category`` mapping (right for a model trained on the probing set's labels; used
    only when it names every output ``0 .. n_classes - 1``). Generic names (``LABEL_0``,
    :func:`generic_names`) count as none: they would score 0 against any concept.
    """
    info = run.read_json("model.json") if run.exists("model.json") else {}
    names = _model_json_names(info)
    if generic_names(names):
        names = None
    if names is None and info.get("source"):
        names = _config_labels(str(info["source"]))
    if names is None and run.exists("clips.csv"):
        clips = read_clips(run)
        if {"label", "category"} <= set(clips.columns):
            pairs = clips[(clips["category"].astype(str) != "")][["label", "category"]]
            pairs = pairs[pd.to_numeric(pairs["label"], errors="coerce") >= 0]
            mapping = {int(a): str(b) for a, b in pairs.drop_duplicates("label").values}
            n = n_classes or (max(mapping) + 1 if mapping else 0)
            if mapping and all(i in mapping for i in range(n)):
                names = [mapping[i] for i in range(n)]
    if names is not None and n_classes is not None and len(names) != n_classes:
        log.warning(
            "%d class names for %d classifier neurons; ignoring them", len(names), n_classes
        )
        return None
    return names


# --------------------------------------------------------------------------------------------
# Which output neurons the probing set can test: its labels mapped onto the model's classes
# --------------------------------------------------------------------------------------------


class LabelMapError(ConfigError):
    """The probing set's labels cannot be mapped onto the classifier's classes with certainty;
    the message says how to supply the mapping (``evaluate.label_map``)."""


def _class_index(value: Any, names: Sequence[str] | None, n_classes: int, key: str) -> int:
    """An ``evaluate.label_map`` value as an output index: an index (``3``, ``"3"``,
    ``"LABEL_3"``) or a class name of the model."""
    text = str(value).strip()
    if isinstance(value, int) or GENERIC_CLASS_NAME.fullmatch(text):
        index = int(re.sub(r"\D", "", text))
        if not 0 <= index < n_classes:
            raise LabelMapError(
                f"evaluate.label_map[{key!r}]: output {index} does not exist (the classifier "
                f"has {n_classes} outputs)"
            )
        return index
    if names is None:
        raise LabelMapError(
            f"evaluate.label_map[{key!r}]: {value!r} names a class, but the classifier's class "
            f"names are unknown or generic; give its output index instead"
        )
    hits = [i for i, c in enumerate(names) if normalize_label(c) == normalize_label(text)]
    if len(hits) != 1:
        raise LabelMapError(
            f"evaluate.label_map[{key!r}]: {value!r} is not a class of the model (classes: "
            f"{', '.join(names[:8])}{', ...' if len(names) > 8 else ''})"
        )
    return hits[0]


def probing_labels(run: RunDir) -> list[str]:
    """The distinct non-empty labels (``category`` of ``clips.csv``) of the probing set, sorted."""
    if not run.exists("clips.csv"):
        return []
    clips = read_clips(run)
    if "category" not in clips.columns:
        return []
    return sorted({str(c) for c in clips["category"].fillna("") if str(c).strip()})


@dataclasses.dataclass
class ClassifierTruth:
    """The true concept of each classifier output neuron, as far as the probing set can test it.

    ``names[i]`` is output ``i``'s class name, ``None`` when the class does not occur in the
    probing set (no probing-set label maps to it): such a neuron is left out of the last-layer
    scores, ``left_out_reason`` says why. ``mapping`` is probing-set label -> output index
    (``None``: the label is no class of the model).
    """

    names: list[str | None]
    left_out_reason: str = ""
    mapping: dict[str, int | None] = dataclasses.field(default_factory=dict)

    @property
    def n_left_out(self) -> int:
        return sum(n is None for n in self.names)


def _how_to_map(labels: Sequence[str]) -> str:
    example = labels[0] if labels else "dog"
    return (
        f"set evaluate.label_map, probing-set label -> the model's class name or output index, "
        f'e.g. in the config `evaluate: {{label_map: {{"{example}": 0}}}}` or '
        f"--set 'evaluate.label_map={{\"{example}\": 0}}'"
    )


def classifier_truth(cfg: Config, run: RunDir, n_classes: int) -> ClassifierTruth:
    """Map the probing set's labels onto the classifier's ``n_classes`` outputs.

    The model's class names come from :func:`class_names`. ``evaluate.label_map`` (probing-set
    label -> the model's class name or output index; ``null``: no class) decides the labels it
    names; every other label is matched by name (:func:`match_class`). Outputs whose class no
    label maps to are left out (``None``). Raises :class:`LabelMapError`, saying how to set
    ``evaluate.label_map``, when the class names are unknown or generic (``LABEL_n``) and no
    mapping is given, or when the probing set has labels and none maps to a class. A probing
    set without labels scores every output (which classes occur is unknown).
    """
    names = class_names(run, n_classes)
    labels = probing_labels(run)
    label_map = dict(cfg.evaluate.label_map or {})
    by_norm = {normalize_label(lbl): lbl for lbl in labels}
    mapping: dict[str, int | None] = {}
    for key, value in label_map.items():
        label = str(key) if str(key) in labels else by_norm.get(normalize_label(key))
        if label is None:
            log.warning("evaluate.label_map: %r is not a label of the probing set", key)
            continue
        mapping[label] = None if value is None else _class_index(value, names, n_classes, key)
    if names is None:
        if not any(i is not None for i in mapping.values()):
            info = run.read_json("model.json") if run.exists("model.json") else {}
            found = _model_json_names(info)
            what = (
                f"generic ({', '.join(found[:3])}, ...)"
                if generic_names(found) and found
                else "unknown"
            )
            raise LabelMapError(
                f"the class names of the classifier layer {cfg.evaluate.classifier_layer!r} are "
                f"{what}, and the probing set's labels cannot be matched to its {n_classes} "
                f"outputs with certainty (they are not its output indices 0..{n_classes - 1}); "
                + _how_to_map(labels)
            )
        truth: list[str | None] = [None] * n_classes
        for label, index in mapping.items():
            if index is not None and truth[index] is None:
                truth[index] = label
        reason = "no probing-set label is mapped to them (evaluate.label_map)"
        return ClassifierTruth(truth, reason if None in truth else "", mapping)
    if not labels:
        log.warning("the probing set has no labels: every classifier output is scored")
        return ClassifierTruth(list(names), "", mapping)
    for label in labels:
        if label not in mapping:
            mapping[label] = match_class(label, names)
    occurring = {i for i in mapping.values() if i is not None}
    unmapped = [lbl for lbl, i in mapping.items() if i is None]
    if not occurring:
        raise LabelMapError(
            f"none of the probing set's {len(labels)} labels ({', '.join(labels[:4])}"
            f"{', ...' if len(labels) > 4 else ''}) matches a class of the model "
            f"({', '.join(names[:4])}{', ...' if len(names) > 4 else ''}), so the last layer "
            f"cannot be scored; " + _how_to_map(labels)
        )
    if unmapped:
        log.warning(
            "%d probing-set labels match no class of the model: %s",
            len(unmapped),
            ", ".join(unmapped),
        )
    renamed = {lbl: names[i] for lbl, i in mapping.items() if i is not None and lbl != names[i]}
    if renamed:
        log.info("probing-set labels mapped onto the model's classes: %s", renamed)
    truth = [n if i in occurring else None for i, n in enumerate(names)]
    n_out = truth.count(None)
    reason = ""
    if n_out:
        reason = (
            f"{n_out} of the model's {len(names)} classes do not occur in the probing set "
            f"(no probing-set label maps to them)"
        )
        if unmapped:
            reason += f"; {len(unmapped)} probing-set labels match no class: {', '.join(unmapped)}"
    return ClassifierTruth(truth, reason, mapping)


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
# The control runs the evaluate stage reads (made by andlib.pipeline before this stage)
# --------------------------------------------------------------------------------------------


def control_captioners(cfg: Config) -> list[str]:
    """The captioners of ``evaluate.captioners`` other than the configured one: the classifier
    layer of each is read from its control run ``<run>/last_layer/<captioner>/``. None for a
    pitch network (its output bins are scored by :mod:`andlib.evaluate.pitch`)."""
    from andlib.models.families.registry import family_of

    if family_of(cfg.model.name).outputs == "pitch":
        return []
    return list(dict.fromkeys(c for c in cfg.evaluate.captioners if c != cfg.captioner.name))


def sweep_rates(cfg: Config) -> list[float]:
    """The caption-quality sweep's rates (``evaluate.caption_sweep_rates``), each read from the
    control run ``<run>/last_layer/sweep-<rate>/``; empty when ``metadata+acoustic`` is
    neither the configured captioner nor one of ``evaluate.captioners``, and for a pitch
    network."""
    from andlib.models.families.registry import family_of

    if family_of(cfg.model.name).outputs == "pitch":
        return []
    if "metadata+acoustic" not in [*cfg.evaluate.captioners, cfg.captioner.name]:
        return []
    return list(cfg.evaluate.caption_sweep_rates)


def sweep_control(rate: float) -> str:
    """The name of the sweep's control run at ``rate`` (``sweep-0.25``)."""
    return f"sweep-{rate:g}"


def read_controls(cfg: Config, run: RunDir) -> dict[str, pd.DataFrame]:
    """``{control name: its classifier-layer rows of neurons.csv}`` of the control runs of
    :func:`control_captioners` and :func:`sweep_rates` that hold a ``neurons.csv``."""
    layer = cfg.evaluate.classifier_layer
    names = [*control_captioners(cfg), *map(sweep_control, sweep_rates(cfg))]
    out = {}
    for name in names:
        path = control_run_path(run, name)
        if (path / "neurons.csv").exists():
            rows = read_neurons(RunDir(path))
            out[name] = rows[rows["layer"] == layer]
    return out


def _control_rows(controls: Mapping[str, pd.DataFrame] | None, name: str) -> pd.DataFrame:
    if not controls or name not in controls:
        raise FileNotFoundError(
            f"the control run {name!r} of the evaluate stage (in {CONTROLS}/) has no "
            "neurons.csv: run the evaluate stage through andlib.pipeline (python -m andlib "
            "evaluate, or pipeline.run_stage('evaluate', cfg)), which makes its control runs first"
        )
    return controls[name]


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
        sanity = run.read_csv("score_sanity.csv")
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
