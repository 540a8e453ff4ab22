"""The extractive summarizer (no language model): what a group of captions shares.

:func:`summarize_captions` counts, deterministically, which sources (the phrases of a caption's
source sentence) and which qualities (adjectives, noun phrases and verbs of the rest) the
captions share, and states only what at least ``min_share`` of them have, each with its count;
:func:`andlib.text.caption_parse.caption_attributes` is the spaCy parse behind it (memoized
per caption text). The ``extractive`` LLM backend (:mod:`andlib.text.llm`) and the summarize
stage (:mod:`andlib.describe.summarize`) both call it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from andlib.config import LLMConfig
from andlib.text.caption_parse import (
    ARTICLES,
    KIND_ORDER,
    VAGUE_NOUNS,
    Attribute,
    caption_attributes,
    is_parsed,
)


def _series(items: Sequence[str], conj: str = "and") -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {conj} " + items[-1]


# ---- what the clips share -------------------------------------------------------------------

SOURCE_CUES = ("most likely", "the sound of", "probably", "likely", "perhaps", "possibly", "maybe")
"""Words that open a caption's source sentence ("Most likely a dog barking, possibly a rooster
crowing.", "Perhaps a dog barking or a rooster crowing; the source is unclear.", "The sound of
a dog barking."); the phrases after them (and after "or") name sources."""
LEAD_CUES = frozenset({"most likely", "the sound of", "probably", "likely"})
"""Cues that name a caption's leading source; "perhaps"/"possibly"/"maybe" only hedge."""
_SOURCE_START = re.compile(r"\s*(?:" + "|".join(SOURCE_CUES) + r")\b", re.I)
_SOURCE_CUE = re.compile(r"\b(" + "|".join(SOURCE_CUES) + r"|or)\b", re.I)
SYNONYMS = (
    (re.compile(r"\benergy\b"), "content"),
    (re.compile(r"\bbrief gaps\b"), "short silences"),
)
"""Equivalent wordings of the acoustic captioner, counted as one ("low-frequency energy" =
"low-frequency content")."""
NOTHING_SHARED = "The clips share no clear source or quality."


@dataclass(slots=True)
class _Shared:
    """One source or quality and the clips (caption indices) that have it."""

    attr: Attribute
    order: int  # first appearance, over all captions
    clips: set[int]
    leads: set[int]  # sources: the clips that name it first and unhedged ("Most likely X")

    @property
    def n(self) -> int:
        return len(self.clips)


def source_phrases(caption: str) -> tuple[list[tuple[str, bool]], str]:
    """The sources a caption's opening source sentence names, and the rest of the caption.

    ``"Most likely a dog barking, possibly a rooster crowing. A loud ..."`` gives
    ``([("a dog barking", True), ("a rooster crowing", False)], "A loud ...")``: each phrase
    after a cue of :data:`SOURCE_CUES` (or after "or"), with ``True`` for the lead source (the
    first phrase, after "Most likely" or "The sound of"), ``False`` for hedged ones ("possibly",
    "perhaps", "or"). A phrase ends at a comma or "with" ("a dog barking, with birds" -> "a dog
    barking"); what follows a semicolon ("; the source is unclear") is dropped. A caption
    that does not open with a cue gives ``([], caption)``.
    """
    if not _SOURCE_START.match(caption):
        return [], caption
    first, _, rest = caption.strip().partition(". ")
    head = re.split(r"[;:!?]", first.rstrip("."), maxsplit=1)[0]
    found: list[tuple[str, bool]] = []
    cue = ""  # the first cue since the last phrase: "Perhaps the sound of X" stays hedged
    for piece in _SOURCE_CUE.split(head):
        if piece.lower() in SOURCE_CUES or piece.lower() == "or":
            cue = cue or piece.lower()
            continue
        phrase = " ".join(re.split(r",|\bwith\b", piece.strip(" ,;:"), maxsplit=1)[0].split())
        if phrase and re.search(r"[A-Za-z]", phrase):
            found.append((phrase[0].lower() + phrase[1:], not found and cue in LEAD_CUES))
            cue = ""
    return found, rest.strip()


def _source_key(phrase: str) -> str:
    """``"A dog barking"`` -> ``"dog barking"``: as :func:`caption_attributes` keys sources."""
    words = re.findall(r"[a-z0-9]+(?:['-][a-z0-9]+)*", phrase.lower())
    return " ".join(w for w in words if w not in ARTICLES)


def _normalized(a: Attribute) -> Attribute:
    """``a`` with its :data:`SYNONYMS` unified; ``words`` from the key ("not tonal" has "not")."""
    key = a.key
    for pattern, repl in SYNONYMS:
        key = pattern.sub(repl, key)
    return Attribute(key, a.text, a.kind, frozenset(key.split()), a.singular)


_items: dict[str, tuple[str, tuple[tuple[Attribute, bool], ...]]] = {}
"""caption -> (the rest after its source sentence, its sources and qualities with their lead
flags): what :func:`_shared` counts, worked out once per distinct caption."""


def _caption_items(captions: Sequence[str]) -> list[tuple[tuple[Attribute, bool], ...]]:
    """Each caption's sources (its source sentence's first) and normalized qualities, in
    order, each with whether it counts as a lead; remembered per caption while its parse is
    (:func:`~andlib.text.caption_parse.is_parsed`), so a caption is split and normalized once,
    not once per neuron."""
    new = [c for c in dict.fromkeys(captions) if c not in _items or not is_parsed(_items[c][0])]
    if new:
        split = [source_phrases(c) for c in new]
        parsed = caption_attributes(rest for _, rest in split)
        for caption, (named, rest), attrs in zip(new, split, parsed, strict=True):
            items: list[tuple[Attribute, bool]] = []
            for phrase, lead in named:
                key = _source_key(phrase)
                if key:
                    items.append((Attribute(key, phrase, "source", frozenset(key.split())), lead))
            items.extend((_normalized(a), a.kind == "source") for a in attrs)
            _items[caption] = (rest, tuple(items))
    return [_items[c][1] for c in captions]


def _shared(captions: Sequence[str]) -> tuple[list[_Shared], list[_Shared]]:
    """``(sources, qualities)`` of ``captions`` with the clips having each, in first-seen order.

    Sources are the phrases of each caption's source sentence (:func:`source_phrases`) and the
    sources :func:`caption_attributes` finds in the rest ("the sound of X" mid-caption, "dog
    sounds"; counted as leads); qualities are the rest's adjectives, noun phrases and verbs.
    """
    found: dict[str, _Shared] = {}
    get = found.get
    for i, items in enumerate(_caption_items(captions)):
        for a, lead in items:
            s = get(a.key)
            if s is None:  # first seen: its order is the number of keys before it
                s = found[a.key] = _Shared(a, len(found), {i}, {i} if lead else set())
            else:
                s.clips.add(i)
                if lead:
                    s.leads.add(i)
    sources = [s for s in found.values() if s.attr.kind == "source"]
    return sources, [s for s in found.values() if s.attr.kind != "source"]


def _count(count: int, k: int, clips: bool = False) -> str:
    """ "(4 of 5 clips)", "(all 5)", "(both clips)": how many of the K clips a phrase holds for
    (``clips``: name the unit, as the first count of a sentence does)."""
    unit = " clips" if clips else ""
    if count == k:
        return "(both clips)" if k == 2 and clips else ("(both)" if k == 2 else f"(all {k}{unit})")
    return f"({count} of {k}{unit})"


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _phrase(attrs: Sequence[Attribute], plural: bool, head: bool = True) -> str:
    """What a group of clips sounds like, in a caption's own words: "loud, sharp sounds with
    bright high-frequency content that fade away" ("a quiet sound with a hum" for one clip;
    without the ``head`` noun "sharp, with a click", as a summary's later clauses say it)."""
    texts = {kind: [a.text for a in attrs if a.kind == kind] for kind in KIND_ORDER}
    adjs, nps = texts["adj"], texts["phrase"]
    parts = []
    if head:
        noun = "sounds" if plural else "sound"
        noun = f"{', '.join(adjs)} {noun}" if adjs else noun
        parts.append(noun if plural else ("an " if noun[:1] in "aeiou" else "a ") + noun)
    elif adjs:
        parts.append(", ".join(adjs) + ("," if nps or texts["action"] or texts["verb"] else ""))
    if nps:
        parts.append(f"with {_series(nps)}")
    if texts["action"]:
        parts.append(f"involving {_series(texts['action'])}")
    if texts["verb"]:
        verbs = texts["verb"] if plural else [a.singular for a in attrs if a.kind == "verb"]
        parts.append(f"that {_series(verbs)}")
    return " ".join(parts)


def _sources_sentence(sources: Sequence[_Shared], k: int) -> str:
    """ "A dog barking (4 of 5 clips)." / "A dog barking (3 of 5 clips) or possibly a rooster
    crowing (3 of 5)." ("possibly": a source most of whose clips only hedge it)."""

    def hedge(s: _Shared) -> str:
        return "possibly " if 2 * len(s.leads) < s.n else ""

    named = [
        f"{hedge(s)}{s.attr.text}" + ("" if k == 1 else f" {_count(s.n, k, clips=i == 0)}")
        for i, s in enumerate(sources)
    ]
    return _capitalized(_series(named, "or")) + "."


_STATED_PITCH = re.compile(r"\babout (\d+(?:\.\d+)?) Hz \(([A-G]#?-?\d)\)")
"""A precisely stated pitch, as ``captioner.precise_pitch`` words it: "at about 440 Hz (A4)"
(the default wording, "(about 440 Hz)", names no note and is not matched)."""


def shared_pitch(captions: Sequence[str], need: int) -> tuple[float, int] | None:
    """``(hz, n)``: the pitch that the most captions state within a semitone of each other,
    when at least ``need`` do (``hz`` the median of theirs), else ``None``. Only precisely
    stated pitches count (:data:`_STATED_PITCH`)."""
    import numpy as np

    stated = []
    for caption in captions:
        m = _STATED_PITCH.search(str(caption))
        if m:
            stated.append(float(m.group(1)))
    if len(stated) < max(1, need):
        return None
    semis = 12.0 * np.log2(np.asarray(stated))
    close = np.abs(semis[:, None] - semis[None, :]) <= 1.0
    counts = close.sum(axis=1)
    spread = np.where(close, np.abs(semis[:, None] - semis[None, :]), 0.0).sum(axis=1)
    best = int(np.lexsort((spread, -counts))[0])
    if counts[best] < need:
        return None
    return float(np.median(np.asarray(stated)[close[best]])), int(counts[best])


def _pitch_sentence(hz: float, n: int, k: int, clips: bool) -> str:
    """ "A pitch of about 440 Hz, the note A4 (4 of 5 clips)." """
    from andlib.data.notes import note_name

    value = f"{hz:.1f}" if hz < 100 else f"{hz:.0f}"
    count = "" if k == 1 else f" {_count(n, k, clips=clips)}"
    return f"A pitch of about {value} Hz, the note {note_name(hz)}{count}."


def summarize_captions(
    captions: Sequence[str],
    max_items: int = 5,
    min_share: float | None = None,
    max_sources: int = 2,
    source_share: float | None = None,
) -> str:
    """Deterministic, non-generative summary: the sources, then the qualities, the clips share.

    Only what at least ``min_share`` of the K captions have is said (default
    :attr:`~andlib.config.LLMConfig.summary_min_share`, 0.5: at least half), and a source
    when at least ``source_share`` of them name it (default ``min_share``; the configured
    default :attr:`~andlib.config.LLMConfig.summary_source_share` is 0.4, two of five), with
    honest counts (and never what only one of several clips has), in at most two sentences
    (three with a shared precise pitch), e.g.::

        A dog barking (4 of 5 clips). Loud, sharp sounds with bright high-frequency content
        (all 5); impulsive (3 of 5).

    **Sources** come from each caption's opening source sentence (:func:`source_phrases`:
    "Most likely X, possibly Y.", "Perhaps X or Y; ...", "The sound of X."). A clip counts
    for a source when its source sentence names it anywhere, lead or hedged; the sources
    most clips name come first (ties: the one more clips name as their lead), at most
    ``max_sources`` of them, and one that most of its clips only hedge is written "possibly".
    **Qualities** (adjectives, noun phrases, verbs of the rest of the captions) follow, most
    shared first, one clause per set of clips sharing them ("; impulsive, with a click (3 of
    5)": the same three clips are impulsive and have a click), at most ``max_items`` of
    them: of those found in equally many clips, longer phrases come first, and a quality
    whose words an earlier one already says ("high-frequency content" after "bright
    high-frequency content" or after "high-frequency"; vague nouns such as "content" do not
    count) is left out. A pitch that enough captions state precisely, within a semitone of
    each other (``captioner.precise_pitch``: "at about 440 Hz (A4)"), gets its own sentence
    after the sources (:func:`shared_pitch`: "A pitch of about 440 Hz, the note A4 (4 of 5
    clips)."); captions without such statements, the default's, are unaffected. When
    nothing is shared enough the summary says so
    (:data:`NOTHING_SHARED`). An empty caption list gives ``""``.
    """
    share = LLMConfig().summary_min_share if min_share is None else float(min_share)
    if not 0.0 < share <= 1.0:
        raise ValueError(f"llm.summary_min_share: must be in (0, 1], got {min_share!r}")
    captions = [str(c) for c in captions]
    k = len(captions)
    if k == 0:
        return ""
    need = max(min(2, k), math.ceil(share * k - 1e-9))  # what one clip has is not shared
    src_share = share if source_share is None else float(source_share)
    if not 0.0 < src_share <= 1.0:
        raise ValueError(f"llm.summary_source_share: must be in (0, 1], got {source_share!r}")
    src_need = max(min(2, k), math.ceil(src_share * k - 1e-9))
    sources, qualities = _shared(captions)
    sources = sorted(
        (s for s in sources if s.n >= src_need), key=lambda s: (-s.n, -len(s.leads), s.order)
    )[: max(0, max_sources)]
    rank = {kind: i for i, kind in enumerate(KIND_ORDER)}
    candidates = sorted(
        (q for q in qualities if q.n >= need),
        key=lambda q: (-q.n, -len(q.attr.words), rank[q.attr.kind], q.order),
    )
    chosen: list[_Shared] = []
    said: set[str] = set()
    for q in candidates:
        if len(chosen) >= max_items:
            break
        words = q.attr.words - VAGUE_NOUNS  # "low-frequency content" says "low-frequency"
        if words <= said:
            continue
        chosen.append(q)
        said |= words
    sentences = [_sources_sentence(sources, k)] if sources else []
    pitch = shared_pitch(captions, need)  # only with precisely stated pitches
    if pitch is not None:
        sentences.append(_pitch_sentence(*pitch, k, clips=not sources))
    groups: dict[frozenset[int], list[_Shared]] = {}  # one clause per set of clips
    for q in sorted(chosen, key=lambda q: (-q.n, q.order)):
        groups.setdefault(frozenset(q.clips), []).append(q)
    clauses: list[str] = []
    for group in groups.values():
        n = group[0].n
        attrs = [q.attr for q in sorted(group, key=lambda q: q.order)]
        count = "" if k == 1 else f" {_count(n, k, clips=not clauses and not sources)}"
        clauses.append(_phrase(attrs, n > 1, head=not clauses) + count)
    if clauses:
        sentences.append(_capitalized("; ".join(clauses)) + ".")
    if not sentences:
        return NOTHING_SHARED if k > 1 else "The clip has no clear source or quality."
    return " ".join(sentences)
