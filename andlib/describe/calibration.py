"""Module B of AND: summary calibration.

Sentences of the high summary whose embedding cosine to any sentence of the low summary
reaches ``concepts.calibration_threshold`` (0.5, AND's default) are dropped: they describe
what high and low clips share. Sentences are compared without their clip counts ("(4 of 5
clips)", "Most clips (4 of 5)"), and (``concepts.calibration_keep_contrasts``, on by default)
a matched sentence is kept when it names a sound adjective or a concept word its low
counterparts do not, because the embedder scores "are loud." and "are quiet." 0.81 alike.

The stage that runs it is :mod:`andlib.describe.concepts`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from andlib.describe.adjectives import _lexicon_form, is_sound_adjective, load_adjective_lexicon
from andlib.describe.closed_set import _default_embedder
from andlib.text.names import normalize_concept

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])|\s*\n+\s*")
_BULLET = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•·])\s+")
_SUBJECT = re.compile(
    r"^(?:(?:all|both|most|many|several|some|few|only|each|every)\b(?:\s+(?:of|the|these|\d+|one|"
    r"two|three|four|five))*\s+|the\s+|these\s+|this\s+)?(?:audio\s+)?"
    r"(?:clips?|recordings?|samples?|excerpts?|audios?)\b\s*(?:\(\s*\d+\s+of\s+\d+\s*\)\s*)?",
    re.I,
)
_CHATTER = re.compile(
    r"^(?:sure|certainly|of course|here (?:is|are)|i hope|let me know|feel free|hope this)\b", re.I
)

_COUNT = re.compile(
    r"\(\s*(\d+)\s+of\s+\d+(?:\s+clips)?\s*\)|\(\s*all\s+(\d+)(?:\s+clips)?\s*\)"
    r"|\(\s*(both)(?:\s+clips)?\s*\)|^\s*all\s+(\d+)\s+clips\b|^\s*(both)\s+clips\b",
    re.I,
)
_COUNTS = re.compile(r"\s*\(\s*(?:\d+\s+of\s+\d+|all\s+\d+|both)(?:\s+clips)?\s*\)", re.I)


def sentence_weight(sentence: str) -> float:
    """How many clips a sentence speaks for: its first count, 4 for "A dog barking (4 of 5
    clips).", 5 for "... (all 5)" or "All 5 clips ...", 2 for "(both clips)" or "Both clips
    ...", else 1 (the extractive summarizer's wording, and common LLM phrasings)."""
    m = _COUNT.search(sentence)
    if m is None:
        return 1.0
    if m.group(3) or m.group(5):
        return 2.0
    return float(m.group(1) or m.group(2) or m.group(4))


def split_sentences(text: str) -> list[str]:
    """Sentences (and list items) of a summary, stripped of bullets; empty ones dropped."""
    parts = (_BULLET.sub("", p).strip() for p in _SENTENCE_END.split(str(text or "").strip()))
    return [p for p in parts if p and re.search(r"[A-Za-z0-9]", p)]


def comparable(sentence: str) -> str:
    """The part of a sentence calibration compares: without its clip-count subject and counts.

    ``"Most clips (4 of 5) are loud."`` -> ``"are loud."``, ``"Loud sounds (4 of 5 clips);
    sharp (3 of 5)."`` -> ``"Loud sounds; sharp."``: such subjects (most LLMs open sentences
    with them) and counts alone make unrelated high and low sentences look alike to a sentence
    embedder (cosine ~0.7 to 0.9).
    """
    rest = _COUNTS.sub("", _SUBJECT.sub("", sentence.strip(), count=1)).strip()
    return rest or sentence.strip()


def _telling_words(sentence: str, vocabulary: frozenset[str]) -> frozenset[str]:
    """The words of ``vocabulary`` a sentence names (comparatives and plurals as their base),
    and the notes it names (``note:A4``): two sentences stating different pitches differ in
    what they say however alike their embeddings are."""
    from andlib.data.notes import NOTE_PATTERN

    out = {f"note:{''.join(m.groups())}" for m in NOTE_PATTERN.finditer(sentence)}
    for w in re.findall(r"[a-z]+(?:-[a-z]+)*", sentence.lower()):
        form = _lexicon_form(w, vocabulary) or (w if is_sound_adjective(w, vocabulary) else None)
        if form is None and w.endswith("s") and w[:-1] in vocabulary:
            form = w[:-1]
        if form:
            out.add(form)
    return frozenset(out)


def contrast_vocabulary(
    lexicon: frozenset[str] | None = None, concepts: Sequence[str] = ()
) -> frozenset[str]:
    """Words whose presence makes a sentence distinct for calibration's ``keep_contrasts``:
    the sound adjectives of the lexicon and the words of the concept names (singular too)."""
    words = {w for c in concepts for w in normalize_concept(c).split() if len(w) > 2}
    words |= {w[:-1] for w in words if w.endswith("s") and not w.endswith("ss")}
    return (load_adjective_lexicon() if lexicon is None else lexicon) | frozenset(words)


def calibrate_many(
    high_summaries: Sequence[str],
    low_summaries: Sequence[str],
    embedder: Any = None,
    threshold: float = 0.5,
    keep_contrasts: bool = True,
    vocabulary: frozenset[str] | None = None,
    strip_counts: bool = True,
) -> list[str]:
    """:func:`calibrate` for many neurons; every distinct sentence is embedded once.

    ``vocabulary`` is the word list of ``keep_contrasts`` (default: the sound-adjective
    lexicon; :func:`andlib.describe.concepts.run_stage` adds the concept names, see :func:`contrast_vocabulary`).
    ``strip_counts`` (``concepts.calibration_strip_counts``) compares sentences as
    :func:`comparable` gives them; false compares whole sentences, as AND does.
    """
    if len(high_summaries) != len(low_summaries):
        raise ValueError(f"{len(high_summaries)} high summaries for {len(low_summaries)} low")
    comparable_form = comparable if strip_counts else str.strip
    # Summaries of 10^4 neurons repeat their sentences: split each distinct summary, and
    # work out each distinct sentence's comparable form and telling words, once.
    split = {t: split_sentences(t) for t in dict.fromkeys((*high_summaries, *low_summaries))}
    highs = [[s for s in split[h] if not _CHATTER.match(s)] for h in high_summaries]
    lows = [split[lo] for lo in low_summaries]
    form = {s: comparable_form(s) for group in split.values() for s in group}
    texts = sorted({form[s] for group in (*highs, *lows) for s in group})
    if not texts:
        return ["" for _ in highs]
    embedder = _default_embedder(embedder)
    vec = dict(zip(texts, embedder.encode(texts), strict=True))
    words: frozenset[str] = frozenset()
    if keep_contrasts:
        words = contrast_vocabulary() if vocabulary is None else vocabulary
    telling: dict[str, frozenset[str]] = {}

    def telling_words(sentence: str) -> frozenset[str]:
        found = telling.get(sentence)
        if found is None:
            found = telling[sentence] = _telling_words(sentence, words)
        return found

    out = []
    for hs, ls in zip(highs, lows, strict=True):
        if hs and ls:
            sims = np.stack([vec[form[s]] for s in hs]) @ np.stack([vec[form[s]] for s in ls]).T
            kept = []
            for s, row in zip(hs, sims, strict=True):
                matches = [lo for lo, sim in zip(ls, row, strict=True) if sim >= threshold]
                if matches and keep_contrasts:
                    said = frozenset().union(*(telling_words(m) for m in matches))
                    if telling_words(s) - said:
                        matches = []  # it names a quality or a source they do not
                if not matches:
                    kept.append(s)
            hs = kept
        out.append(" ".join(hs))
    return out


def calibrate(
    high_summary: str,
    low_summary: str,
    embedder: Any = None,
    threshold: float = 0.5,
    keep_contrasts: bool = True,
    concepts: Sequence[str] = (),
    strip_counts: bool = True,
) -> str:
    """Module B: the high summary without the sentences the low summary also says.

    Both summaries are split into sentences; a high sentence is dropped when its embedding
    cosine to a low sentence is ``>= threshold`` (AND's rule; compared without the "Most
    clips (4 of 5)"-like subject, see :func:`comparable`, unless ``strip_counts`` is false,
    AND's whole sentences). Conversational filler ("Sure, here is ...") is dropped too.
    Returns the kept sentences joined by spaces.

    ``keep_contrasts`` (on by default; off gives AND's plain rule) keeps a matched high
    sentence when it names a sound adjective of the lexicon, or a word of a concept name in
    ``concepts``, that none of its matching low sentences names: sentence embedders barely
    tell antonyms apart (all-MiniLM-L6-v2 gives "are loud." / "are quiet." a cosine of 0.81)
    and short sentences score ~0.5 on their shared wording alone ("are sounds of dog." /
    "are low-pitched."), while a contrast in quality or source is what calibration must keep.
    """
    vocabulary = contrast_vocabulary(None, concepts) if keep_contrasts else None
    return calibrate_many(
        [high_summary], [low_summary], embedder, threshold, keep_contrasts, vocabulary, strip_counts
    )[0]
