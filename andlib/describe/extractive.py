"""The extractive summarizer (no language model): what a group of captions shares.

:func:`summarize_captions` counts, deterministically, which sources (the phrases of a caption's
source sentence) and which qualities (adjectives, noun phrases and verbs of the rest) the
captions share, and states only what at least ``min_share`` of them have, each with its count;
:func:`caption_attributes` is the spaCy parse behind it (memoized per caption text). The
``extractive`` LLM backend (:mod:`andlib.text.llm`) and the summarize stage
(:mod:`andlib.describe.summarize`) both call it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from andlib.config import LLMConfig
from andlib.text.nlp import load_spacy

# --------------------------------------------------------------------------------------------
# The extractive summarizer (no language model)
# --------------------------------------------------------------------------------------------

GENERIC_NOUNS = frozenset({"sound", "clip", "recording", "audio", "sample", "excerpt"})
"""Heads that say nothing by themselves: "a loud sound" counts as the attribute "loud", and
"the sound of X" / "X sounds" make X a source."""
VAGUE_NOUNS = GENERIC_NOUNS | {
    "content", "character", "quality", "energy", "component", "texture", "timbre", "level",
    "part", "thing", "way", "amount", "range", "type", "kind", "lot", "bit", "time", "moment",
    "series", "spectrum", "background",
}  # fmt: skip
"""Nouns never counted alone; adjectives on them describe the whole sound ("bright")."""
STOP_ADJECTIVES = frozenset({
    "other", "same", "different", "such", "many", "few", "several", "more", "most", "much",
    "certain", "various", "overall", "main", "whole", "entire", "possible", "likely", "own",
    "next", "last", "first", "second", "single", "similar", "general", "specific",
})  # fmt: skip
LIGHT_VERBS = frozenset({
    "be", "have", "do", "go", "get", "make", "become", "seem", "sound", "contain", "feature",
    "include", "come", "occur", "appear", "hear", "say", "describe",
})  # fmt: skip
INTENSIFIERS = frozenset({
    "very", "extremely", "quite", "rather", "fairly", "really", "highly", "strongly",
    "especially", "mostly", "predominantly", "mainly", "so", "too",
})  # fmt: skip
TIME_ADVERBS = frozenset({"then", "also", "too", "again", "still", "now", "later", "first"})
ARTICLES = frozenset({"a", "an", "the"})
NP_MODIFIERS = frozenset({"det", "amod", "compound", "nummod", "poss", "nmod", "advmod"})
DETAIL_DEPS = frozenset({"pobj", "dobj", "conj", "appos", "npadvmod"})
KIND_ORDER = ("source", "adj", "phrase", "verb", "action")

_parsed: dict[str, tuple[Attribute, ...]] = {}  # caption text -> its attributes


@dataclass(frozen=True)
class Attribute:
    """One countable thing a caption says."""

    key: str
    """Normalized text: what is counted across captions."""
    text: str
    """How a summary writes it (its first occurrence; for verbs the plural form)."""
    kind: str
    """``source`` (what makes the sound), ``adj`` (an attribute of the whole sound),
    ``phrase`` (a noun phrase: "rich harmonics"), ``verb`` ("fade away") or ``action``
    ("barking")."""
    words: frozenset[str]
    singular: str = ""
    """For verbs: the third-person singular form ("fades away")."""


_PITCH_PHRASE = re.compile(r"\s*\bat about \d+(?:\.\d+)? Hz \([A-G]#?-?\d\)")
"""The precise pitch phrase of ``captioner.precise_pitch`` ("... tone at about 440 Hz (A4)")."""


def _spacy():
    """The shared spaCy pipeline (:func:`andlib.text.nlp.load_spacy`)."""
    return load_spacy()


def caption_attributes(captions: Iterable[str]) -> list[tuple[Attribute, ...]]:
    """The attributes of each caption (parsed once per distinct caption, then remembered).

    A caption is lower-cased, stripped of parenthetical asides ("(about 120 Hz)") and of
    precisely stated pitches ("at about 440 Hz (A4)", which :func:`shared_pitch` counts
    instead), and cut into clauses at ``. ; : ! ?`` before parsing: the small spaCy parser
    attaches words across a semicolon, and captions are often terse fragments.
    """
    captions = [str(c) for c in captions]
    new = list(dict.fromkeys(c for c in captions if c not in _parsed))
    if new:
        owners, clauses = [], []
        for caption in new:
            text = re.sub(r"\([^)]*\)", " ", _PITCH_PHRASE.sub("", caption))
            for clause in re.split(r"[.;:!?]+(?:\s+|$)", " ".join(text.split()).lower()):
                if clause.strip(" ,"):
                    owners.append(caption)
                    clauses.append(clause.strip(" ,"))
        found: dict[str, dict[str, Attribute]] = {c: {} for c in new}
        for owner, doc in zip(owners, _spacy().pipe(clauses, batch_size=256), strict=True):
            for a in _attributes_of(doc):
                found[owner].setdefault(a.key, a)
        for caption in new:
            _parsed[caption] = tuple(found[caption].values())
    return [_parsed[c] for c in captions]


def hyphenated_spans(doc) -> list[tuple[int, int]]:
    """``(start, end)`` token ranges of hyphenated compounds written without spaces
    (``low-pitched``, ``high-frequency-rich``), which spaCy splits into ``low - pitched``."""
    spans, i = [], 0
    while i + 2 < len(doc):
        j = i
        while (
            j + 2 < len(doc)
            and doc[j + 1].text == "-"
            and not doc[j].whitespace_
            and not doc[j + 1].whitespace_
            and doc[j].is_alpha
            and doc[j + 2].is_alpha
        ):
            j += 2
        if j > i:
            spans.append((i, j + 1))
            i = j + 1
        else:
            i += 1
    return spans


def _merge_hyphenated(doc) -> None:
    """``low - pitched`` -> one token ``low-pitched``, an adjective unless it heads a noun phrase."""
    spans = [doc[start:end] for start, end in hyphenated_spans(doc)]
    with doc.retokenize() as retok:
        for span in spans:
            root = span.root
            before_noun = span.end < len(doc) and doc[span.end].pos_ in ("NOUN", "PROPN")
            heads_np = root.pos_ in ("NOUN", "PROPN") and root.dep_ not in ("compound", "amod")
            heads_np = heads_np and not before_noun
            pos, tag = ("NOUN", "NN") if heads_np else ("ADJ", "JJ")
            retok.merge(span, attrs={"POS": pos, "TAG": tag, "LEMMA": span.text})


def _words(tokens) -> frozenset[str]:
    return frozenset(t.lower_ for t in tokens if t.lower_ not in ARTICLES and not t.is_punct)


def _key(tokens) -> str:
    return " ".join(t.lower_ for t in tokens if t.lower_ not in ARTICLES and not t.is_punct)


def _text(tokens) -> str:
    if tokens and tokens[0].lower_ == "the":
        tokens = tokens[1:]
    return "".join(t.text_with_ws for t in tokens).strip(" ,;:")


def _is_adjective(tok) -> bool:
    """Adjectives, participles used as modifiers ("a rising pitch"), and bare nouns or verbs
    in a list of adjectives ("loud, noisy and broadband")."""
    if tok.pos_ == "ADJ" or (tok.dep_ == "amod" and tok.tag_ in ("VBG", "VBN")):
        return True
    return (
        tok.pos_ in ("NOUN", "PROPN", "VERB")
        and tok.dep_ == "conj"
        and tok.head.pos_ == "ADJ"
        and not any(c.dep_ in ("det", "amod", "compound", "dobj") for c in tok.children)
    )


def _negation(tok) -> str | None:
    """``"not"`` for "is not tonal", ``"no"`` for "no clear pitch" / "without a clear pitch"."""
    node = tok
    while node.dep_ == "conj" and node.head is not node:
        node = node.head
    before = tok.doc[node.i - 1].lower_ if node.i > 0 else ""
    if (
        before in ("not", "n't", "never")
        or any(c.dep_ == "neg" for c in node.children)
        or (node.dep_ in ("acomp", "attr") and any(c.dep_ == "neg" for c in node.head.children))
    ):
        return "not"
    while node.dep_ in ("amod", "compound", "advmod", "conj") and node.head is not node:
        node = node.head
    if any(c.dep_ == "det" and c.lower_ == "no" for c in node.children) or (
        node.dep_ == "pobj" and node.head.lower_ == "without"
    ):
        return "no"
    return None


def _numeric(tok) -> bool:
    """A token with a number in it or next to it ("800", "800 hz")."""
    near = [tok, *tok.children] + ([tok.doc[tok.i - 1]] if tok.i else [])
    return any(ch.isdigit() for t in near for ch in t.text)


def _modified_noun(tok):
    """The noun an attributive adjective modifies ("rich" -> "harmonics"), else ``None``."""
    node = tok
    while node.dep_ in ("conj", "amod", "compound") and node.head is not node:
        node = node.head
        if node.pos_ in ("NOUN", "PROPN"):
            return node
    return None


def _source_span(obj):
    """What follows "the sound of": the object and its participle ("a siren wailing",
    "water being poured"), up to a comma or "with"."""
    doc, end = obj.doc, obj.right_edge.i + 1
    while end < len(doc) and doc[end].text != "," and doc[end].lower_ != "with":
        end += 1
    return doc[obj.left_edge.i : end]


def _with_article(noun, tokens) -> str:
    """``tokens`` as text, with "a"/"an" in front when the noun had one ("a hum")."""
    text = _text(tokens)
    had = any(c.dep_ == "det" and c.lower_ in ("a", "an") for c in noun.lefts)
    if not had or tokens[0].lower_ in ARTICLES:
        return text
    return ("an " if text[:1] in "aeiou" else "a ") + text


def _core(noun) -> list:
    return [c for c in noun.lefts if c.dep_ == "compound"] + [noun]


class _Found:
    """The attributes found so far in one clause, and the tokens already used by them."""

    def __init__(self) -> None:
        self.by_key: dict[str, Attribute] = {}
        self.taken: set[int] = set()

    def add(self, kind: str, tokens, text: str | None = None, key: str | None = None, **kw):
        key = key or _key(tokens)
        if key and key not in self.by_key:
            self.by_key[key] = Attribute(key, text or _text(tokens), kind, _words(tokens), **kw)


def _attributes_of(doc) -> tuple[Attribute, ...]:
    """Sources, noun phrases, adjectives and verbs of one parsed (lower-cased) clause."""
    _merge_hyphenated(doc)
    found = _Found()
    for step in (_sources, _noun_phrases, _adjectives, _verbs):
        step(doc, found)
    return tuple(found.by_key.values())


def _sources(doc, found: _Found) -> None:
    """Sources: "the sound of a dog barking" -> a dog barking; "dog sounds" -> dog."""
    for tok in doc:
        if tok.pos_ != "NOUN" or tok.lemma_ not in GENERIC_NOUNS:
            continue
        spans = [
            _source_span(obj)
            for prep in tok.rights
            if prep.dep_ == "prep" and prep.lower_ == "of"
            for obj in prep.children
            if obj.dep_ == "pobj"
        ]
        compounds = [c for c in tok.lefts if c.dep_ == "compound"]
        if compounds:  # "dog sounds": the nouns only, not "a loud dog sound"'s adjective
            spans.append(doc[compounds[0].i : tok.i])
        for span in spans:
            found.add("source", list(span))
            found.taken.update(range(span.start, span.end))


def _noun_phrases(doc, found: _Found) -> None:
    """A noun with its left modifiers and a trailing "between bursts"-like phrase; the main
    noun of a caption ("a loud, sharp click") without its adjectives, which describe the
    whole sound."""
    for tok in doc:
        if tok.pos_ not in ("NOUN", "PROPN") or tok.dep_ in ("compound", "amod"):
            continue
        if tok.i in found.taken or tok.lemma_ in GENERIC_NOUNS or _is_adjective(tok):
            continue
        if tok.dep_ == "pobj" and tok.head.head.pos_ == "VERB":
            continue  # "fades away into silence", "barking in the distance"
        detail = tok.dep_ in DETAIL_DEPS  # "with rich harmonics", "it has rich harmonics"
        start = tok.i
        for child in reversed(list(tok.lefts)):  # nearest modifier first; stop at a gap
            if child.right_edge.i != start - 1 or not (
                child.dep_ in NP_MODIFIERS or (child.dep_ == "punct" and child.text == ",")
            ):
                break
            if any(t.dep_ == "cc" for t in child.subtree):
                break  # a misparsed coordination: "a timbre and high-frequency content"
            start = child.left_edge.i
        if not detail:  # the main noun: its adjectives describe the whole sound
            start = _core(tok)[0].i
        end = tok.i + 1
        for child in tok.rights:  # "silences between bursts", "series of clicks"
            objects = [c for c in child.children if c.dep_ == "pobj" and c.pos_ != "PRON"]
            if child.dep_ == "prep" and child.i == end and child.lower_ != "with" and objects:
                end = objects[0].i + 1
        tokens = list(doc[start:end])
        while (
            tokens
            and tokens[0].i != tok.i
            and (
                tokens[0].is_punct
                or tokens[0].pos_ in ("CCONJ", "ADV", "ADP")
                or tokens[0].dep_ == "poss"  # "its energy"
                or (tokens[0].pos_ == "DET" and tokens[0].lower_ not in ARTICLES | {"no"})
            )
        ):
            tokens.pop(0)
        found.taken.update(range(start, end))
        if _numeric(tok) or any(_numeric(t) for t in tokens):
            continue  # "800 hz": exact numbers are rarely shared
        if len(tokens) == 1 and tok.lemma_ in VAGUE_NOUNS:
            continue
        if _negation(tok) == "no" and tokens[0].lower_ != "no":
            body = [t for t in tokens if t.lower_ not in ARTICLES]
            found.add("phrase", body, text="no " + _text(body), key="no " + _key(body))
            continue
        found.add("phrase", tokens, text=_with_article(tok, tokens))
        core = _core(tok)
        if len(core) < len(tokens) and tokens[0].lower_ != "no":
            if len(core) > 1 or tok.lemma_ not in VAGUE_NOUNS:
                found.add("phrase", core, text=_with_article(tok, core))


def _adjectives(doc, found: _Found) -> None:
    """Adjectives of the whole sound ("loud", "very loud", "not tonal"), or with their noun
    ("rich harmonics") when they modify a detail; those in "no clear pitch" stay there."""
    for tok in doc:
        if not _is_adjective(tok):
            continue
        if tok.lower_ in STOP_ADJECTIVES or not tok.lower_[:1].isalpha() or _numeric(tok):
            continue
        if tok.dep_ in ("acomp", "oprd") and tok.head.pos_ == "VERB" and tok.head.lemma_ != "be":
            continue  # "grows louder": part of the verb phrase
        if any(a.kind == "source" and tok.lower_ in a.words for a in found.by_key.values()):
            continue
        neg = _negation(tok)
        noun = _modified_noun(tok)
        if neg == "no":
            continue
        if noun is not None and noun.dep_ in DETAIL_DEPS and noun.lemma_ not in VAGUE_NOUNS:
            if neg is None and noun.lemma_ not in GENERIC_NOUNS:
                found.add("phrase", [tok, *_core(noun)])
            continue
        if neg == "not":
            found.add("adj", [tok], text=f"not {tok.lower_}", key=f"not {tok.lower_}")
            continue
        adverbs = [c for c in tok.lefts if c.dep_ == "advmod" and c.pos_ == "ADV"]
        if adverbs:  # "very loud" (also counted as loud), "partly tonal" (not counted as tonal)
            found.add("adj", [*adverbs, tok])
        if all(a.lower_ in INTENSIFIERS for a in adverbs):
            found.add("adj", [tok])


def _verbs(doc, found: _Found) -> None:
    """Verbs: "it fades away" -> fade away; actions: "a dog is barking" -> barking."""
    for tok in doc:
        if tok.pos_ != "VERB" or tok.lemma_ in LIGHT_VERBS or _is_adjective(tok):
            continue
        if tok.i in found.taken:  # inside a source: "a dog barking"
            continue
        if tok.dep_ in ("amod", "compound", "aux", "auxpass", "acl") or _negation(tok) == "not":
            continue
        if any(c.dep_ == "nsubj" and c.lemma_ in VAGUE_NOUNS for c in tok.children):
            continue  # "energy spread across the spectrum" says where, not what happens
        if tok.tag_ == "VBG":
            if tok.lower_ not in found.by_key:  # not already an adjective
                found.add("action", [tok], key=tok.lemma_)
        elif tok.tag_ in ("VBZ", "VBP", "VBD"):
            extra = [
                c
                for c in tok.rights
                if c.dep_ in ("prt", "acomp", "oprd")
                or (c.dep_ == "advmod" and c.lower_ not in TIME_ADVERBS)
            ]
            rest = "".join(" " + c.lower_ for c in extra)
            found.add(
                "verb",
                [tok, *extra],
                text=tok.lemma_ + rest,
                key=tok.lemma_ + rest,
                singular=_third_person(tok.lemma_) + rest,
            )


def _third_person(verb: str) -> str:
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


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
    (:data:`_parsed`), so a caption is split and normalized once, not once per neuron."""
    new = [c for c in dict.fromkeys(captions) if c not in _items or _items[c][0] not in _parsed]
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
