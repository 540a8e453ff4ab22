"""Names compared loosely: the one name normaliser, the one stemmer, a neuron's ranked concepts.

:func:`normalize_concept` is how every concept, class and label name is compared (case- and
separator-insensitively); :func:`normalize_label` is the same after taking off what a
probing-set label adds (a numeric prefix, punctuation): the label -> class mapping of the
evaluation and the phrase a caption says for a label both use it. :func:`stem` is the light stemmer that
lets word forms meet (``drops``/``drop``, ``crying``/``cries``/``cry``), used by the label
matching of the evaluation and the open-concept matching of pruning alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from andlib.store import decode_list

_NUMERIC_PREFIX = re.compile(r"^\s*\d+(?:\s*[-_.:)\]]\s*|\s+)(?=\S)")


def normalize_concept(name: Any) -> str:
    """Concept names compared case- and separator-insensitively: ``Water_Drops`` -> ``water drops``."""
    return " ".join(w for w in re.split(r"[\s_\-]+", str(name).strip().lower()) if w)


def normalize_label(name: Any) -> str:
    """A class or probing-set label as compared: :func:`normalize_concept` of the label without
    its numeric prefix, punctuation read as spaces. ``"001 - Dog bark"`` -> ``"dog bark"``,
    ``"Crying_Baby"`` -> ``"crying baby"``."""
    text = _NUMERIC_PREFIX.sub("", str(name).strip(), count=1)
    return normalize_concept(re.sub(r"[\W_]+", " ", text))


_SUFFIXES = [
    ("sses", "ss"),
    ("shes", "sh"),
    ("ches", "ch"),
    ("xes", "x"),
    ("ies", "y"),
    ("ied", "y"),
    ("ing", ""),
    ("ed", ""),
    ("s", ""),
]


def stem(word: str) -> str:
    """A light, deterministic stemmer so inflections meet: drops/drop, crying/cry/cries,
    dripping/drip, sneezing/sneeze, glasses/glass (final ``e`` and doubled consonants dropped)."""
    w = word.lower().strip()
    for suffix, repl in _SUFFIXES:
        if not w.endswith(suffix) or (suffix == "s" and w.endswith("ss")):
            continue
        base = w[: -len(suffix)] + repl
        if len(base) >= 3:
            if suffix in ("ing", "ed") and len(base) >= 4 and base[-1] == base[-2]:
                if base[-1] not in "lsz":
                    base = base[:-1]
            w = base
        break
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


def stems(name: Any) -> list[str]:
    """The stemmed words of a name, in order: ``water_drops`` -> ``["water", "drop"]``."""
    return [stem(w) for w in normalize_concept(name).split()]


def ranked_concepts(row: Mapping[str, Any], method: str) -> list[str]:
    """A neuron's ranked concepts for one method (a :func:`concept_columns` name) from its
    ``neurons.csv`` row: its top-1 column first, then its ``_top5`` list, at most 5."""
    top1 = str(row.get(method, "") or "").strip()
    rest = decode_list(row.get(f"{method}_top5", ""))
    ranked = [top1] if top1 else []
    ranked += [c for c in rest if normalize_concept(c) not in map(normalize_concept, ranked)]
    return ranked[:5]
