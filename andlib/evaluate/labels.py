"""Probing-set labels compared with class and concept names, with certainty or not at all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from andlib.text.names import normalize_label as normalize_label


def _stem(word: str) -> str:
    """A crude stem so that word forms compare equal: ``crying``/``cry``, ``waves``/``wave``,
    ``sneezing``/``sneeze``, ``crackling``/``crackle``."""
    if word.endswith("ing") and len(word) > 5:
        word = word[:-3]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        word = word[:-1]
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def _stems(name: Any) -> frozenset[str]:
    return frozenset(_stem(w) for w in normalize_label(name).split())


def match_class(label: Any, classes: Sequence[str]) -> int | None:
    """The index of the one class of ``classes`` a probing-set label certainly names, else None.

    Certain means: equal after :func:`normalize_label`; else equal word stems (``baby cry`` /
    ``crying_baby``); else a unique containment of word stems (``dog bark`` contains ``dog``,
    and no other class). Two or more candidates at the first level that has any: None.
    """
    norm = normalize_label(label)
    if not norm:
        return None
    stems = _stems(label)
    tests = [
        lambda c: normalize_label(c) == norm,
        lambda c: _stems(c) == stems,
        lambda c: bool(_stems(c)) and (_stems(c) <= stems or stems <= _stems(c)),
    ]
    for test in tests:
        hits = [i for i, c in enumerate(classes) if test(c)]
        if hits:
            return hits[0] if len(hits) == 1 else None
    return None
