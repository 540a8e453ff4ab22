"""The classifier's classes and which of them the probing set can test.

:func:`class_names` reads the classifier's class names from the run directory (``model.json``,
the model's own config, ``clips.csv``); :func:`classifier_truth` maps the probing set's labels
onto them (by name when the match is certain, :func:`andlib.evaluate.labels.match_class`, or by
``evaluate.label_map``) and says which output neurons are left out, and why. Read by the
evaluate stage (:mod:`andlib.evaluate.scores`, which re-exports these names).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from andlib.config import Config, ConfigError
from andlib.evaluate.labels import match_class
from andlib.store import RunDir, read_clips, read_model_info
from andlib.text.names import normalize_label

log = logging.getLogger(__name__)

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
    info = read_model_info(run)
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
            found = _model_json_names(read_model_info(run))
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
