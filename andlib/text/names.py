"""Names compared loosely: concept and class names, case- and separator-insensitively.

:func:`normalize_label` is the one normaliser of class and probing-set labels (the label ->
class mapping of the evaluation and the phrase a caption says for a label);
:func:`normalize_concept` that of concept names."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from andlib.store import split_list

_NUMERIC_PREFIX = re.compile(r"^\s*\d+(?:\s*[-_.:)\]]\s*|\s+)(?=\S)")


def normalize_label(name: Any) -> str:
    """A class or probing-set label as compared and as said: lowercase, without a numeric
    prefix, and punctuation and underscores as spaces. ``"001 - Dog bark"`` -> ``"dog bark"``,
    ``"Crying_Baby"`` -> ``"crying baby"``."""
    text = _NUMERIC_PREFIX.sub("", str(name).strip(), count=1)
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def normalize_concept(name: Any) -> str:
    """Concept names compared case- and separator-insensitively: ``Water_Drops`` -> ``water drops``."""
    return " ".join(w for w in re.split(r"[\s_\-]+", str(name).strip().lower()) if w)


def ranked_concepts(row: Mapping[str, Any], method: str) -> list[str]:
    """A neuron's ranked concepts for one method (a :func:`concept_columns` name) from its
    ``neurons.csv`` row: its top-1 column first, then its ``_top5`` list, at most 5."""
    top1 = str(row.get(method, "") or "").strip()
    rest = split_list(row.get(f"{method}_top5", ""))
    ranked = [top1] if top1 else []
    ranked += [c for c in rest if normalize_concept(c) not in map(normalize_concept, ranked)]
    return ranked[:5]
