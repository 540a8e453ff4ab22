"""Module C of AND: open-set concepts.

The nouns and verbs of the calibrated summary, lemmatized, de-duplicated, without generic
words ("sound", "clip", ...); ``concepts.open_concepts_verbs: false`` keeps the nouns only, as
the paper does. The parse is the one of :mod:`andlib.describe.adjectives`.

The stage that runs it is :mod:`andlib.describe.concepts`.
"""

from __future__ import annotations

from collections.abc import Sequence

from andlib.describe.adjectives import _analyse, load_adjective_lexicon


def open_concepts_many(texts: Sequence[str], verbs: bool = True) -> list[list[str]]:
    """:func:`open_concepts` of many texts (spaCy parses each distinct text once)."""
    return [list(w.concepts) for w in _analyse(texts, load_adjective_lexicon(), verbs)]


def open_concepts(calibrated_summary: str, verbs: bool = True) -> list[str]:
    """Module C: nouns and verbs of the calibrated summary, lemmatized, de-duplicated, in order.

    ``verbs`` false (``concepts.open_concepts_verbs``, AND's "nouns") keeps the nouns only.
    Skipped: adjectives (and nouns used as adjectives), negated words ("no speech"), stop
    words, words of two letters or fewer and :data:`andlib.describe.adjectives.GENERIC_WORDS` ("sound", "clip",
    "noise", "feature", "contain", ...).
    """
    return open_concepts_many([calibrated_summary], verbs)[0]
