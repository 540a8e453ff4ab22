"""Caption parsing for the extractive summarizer: the countable attributes of a caption.

:func:`caption_attributes` parses each caption with the shared spaCy pipeline
(:func:`andlib.text.nlp.load_spacy`) into :class:`Attribute` s: its sources, the adjectives that
describe the whole sound, its noun phrases and its verbs (memoized per caption text;
:func:`is_parsed`). :func:`hyphenated_spans` finds the hyphenated compounds spaCy splits.
:mod:`andlib.text.extractive` counts what a group of captions shares.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

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


def is_parsed(caption: str) -> bool:
    """Whether :func:`caption_attributes` has this caption's parse in memory."""
    return caption in _parsed
