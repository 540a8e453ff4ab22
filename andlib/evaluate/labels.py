"""Probing-set labels compared with class and concept names, with certainty or not at all
(names normalised and stemmed by :mod:`andlib.text.names`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from andlib.text.names import normalize_label, stems


def _stems(name: Any) -> frozenset[str]:
    return frozenset(stems(normalize_label(name)))


def match_class(label: Any, classes: Sequence[str]) -> int | None:
    """The index of the one class of ``classes`` a probing-set label certainly names, else None.

    Certain means: equal after :func:`~andlib.text.names.normalize_label`; else equal word stems (``baby cry`` /
    ``crying_baby``); else a unique containment of word stems (``dog bark`` contains ``dog``,
    and no other class). Two or more candidates at the first level that has any: None.
    """
    norm = normalize_label(label)
    if not norm:
        return None
    words = _stems(label)
    tests = [
        lambda c: normalize_label(c) == norm,
        lambda c: _stems(c) == words,
        lambda c: bool(_stems(c)) and (_stems(c) <= words or words <= _stems(c)),
    ]
    for test in tests:
        hits = [i for i, c in enumerate(classes) if test(c)]
        if hits:
            return hits[0] if len(hits) == 1 else None
    return None
