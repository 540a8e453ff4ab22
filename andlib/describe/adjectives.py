"""Module B of AND: the sound adjectives of a calibrated summary, and the spaCy pass that
Module C (:mod:`andlib.describe.open_set`) shares.

The adjectives of the calibrated summary (spaCy POS tags, hyphenated compounds as one word,
negated ones and a stop list skipped) are kept when they describe sound: the LLM is asked
about each distinct adjective once (cached) with a generative backend, the shipped lexicon
``resources/sound_adjectives.txt`` decides otherwise.

The stage that runs it is :mod:`andlib.describe.concepts`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from andlib.describe.extractive import hyphenated_spans
from andlib.store import resource_path
from andlib.text.nlp import load_spacy

ADJECTIVE_LEXICON = "sound_adjectives.txt"
"""The shipped sound-adjective lexicon (a file in :func:`andlib.store.resource_dir`)."""

STOP_ADJECTIVES = frozenset(
    """other same many several different similar various most few some any all each every
    another both either neither such more less much little certain possible likely specific
    general main whole entire single multiple particular overall own next last first second
    third fourth fifth only additional further related actual common everyday usual typical
    same-sounding used recorded meant designed detailed suitable due best good bad well-defined
    identifiable distinct distinguishable noticeable present consistent unclear unknown
    new old real natural human mobile external personal kitchen heard described captured
    played produced made mixed given shown based followed accompanied combined mentioned
    included featured characterized filled composed done known called compared""".split()
)
"""Adjectives that never describe a neuron (quantifiers, vague or meta words; after AND's list)."""
NEGATORS = frozenset({"not", "n't", "no", "never", "without", "nor", "neither", "none", "hardly"})
CLAUSE_BREAKS = frozenset({"but", "while", "whereas", "although", "though", "yet", "however"})
NEGATION_WINDOW = 4
"""An adjective is negated by a negator among the 4 words before it in the same clause (AND)."""
GENERIC_WORDS = frozenset(
    """sound noise clip audio recording record sample excerpt track file description summary
    feature quality level type kind thing way part example time second moment lot bit amount
    range series content character component element aspect background variety number
    presence degree instance case portion segment section duration one other others
    be have do make get go come seem appear contain include hear describe mention indicate
    suggest share vary differ use take give show occur become remain consist involve
    characterize capture say tell know think let help need want like can""".split()
)
"""Lemmas that are never open-set concepts: the vocabulary of describing a clip itself."""
_ADJ_TAGS = frozenset({"JJ", "JJR", "JJS"})
_NOMINAL_DEPS = frozenset({"nsubj", "nsubjpass", "dobj", "pobj", "compound", "poss", "agent"})
_ACOUSTIC_SUFFIXES = ("-pitched", "-toned", "-sounding", "-frequency")


def _nlp() -> Any:
    """The shared spaCy pipeline (:func:`andlib.text.nlp.load_spacy`)."""
    return load_spacy()


@dataclass(frozen=True)
class _Words:
    adjectives: tuple[str, ...]
    concepts: tuple[str, ...]


def _units(doc: Any) -> list[list[Any]]:
    """Tokens grouped into words, hyphenated compounds (``high - pitched``) as one word."""
    starts = dict(hyphenated_spans(doc))
    units: list[list[Any]] = []
    i = 0
    while i < len(doc):
        end = starts.get(i, i + 1)
        units.append([doc[t] for t in range(i, end)])
        i = end
    return units


def _negated(doc: Any, i: int) -> bool:
    for j in range(i - 1, max(-1, i - 1 - NEGATION_WINDOW), -1):
        tok = doc[j]
        if (tok.is_punct and tok.text != "-") or tok.lower_ in CLAUSE_BREAKS:
            return False
        if tok.lower_ in NEGATORS or tok.lemma_ == "lack":
            return True
    return False


def _lexicon_form(word: str, lexicon: frozenset[str]) -> str | None:
    """``word`` if listed, else the listed base of a comparative/superlative (quieter -> quiet)."""
    if word in lexicon:
        return word
    for suffix in ("est", "er"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            stem = word[: -len(suffix)]
            for base in (
                stem,
                stem[:-1] + "y" if stem.endswith("i") else None,
                stem[:-1],
                stem + "e",
            ):
                if base and base in lexicon:
                    return base
    return None


def _adjective(unit: list[Any], word: str, lexicon: frozenset[str]) -> str | None:
    """The adjective a word is (lemmatized comparatives), or ``None`` when it is not one.

    Adjectives are words tagged JJ/JJR/JJS, past participles (VBN, as in AND), and any word
    in an adjective's slot (``amod``, ``acomp``, ``oprd``: the small model tags "shrill" in
    "shrill barking" as a noun). Lexicon words also count in any non-nominal slot, which
    recovers the small model's mistags ("is muffled" as a verb, "are quieter" as a noun).
    """
    if len(unit) > 1:  # hyphenated compound: adjectival if a part is or it sits in a modifier slot
        parts = unit[::2]
        if (
            word in lexicon
            or any(t.tag_ in _ADJ_TAGS | {"VBN"} for t in parts)
            or unit[-1].dep_ in ("amod", "acomp", "oprd")
        ):
            return word
        return None
    tok = unit[0]
    if tok.pos_ in ("DET", "NUM", "PRON", "ADP", "AUX", "PART", "CCONJ", "SCONJ", "PUNCT"):
        return None
    if tok.tag_ in ("JJR", "JJS"):
        return tok.lemma_.lower()
    if tok.tag_ in ("JJ", "VBN") or tok.dep_ in ("amod", "acomp", "oprd"):
        return word
    base = _lexicon_form(word, lexicon)
    return base if base is not None and tok.dep_ not in _NOMINAL_DEPS else None


OPEN_POS = ("NOUN", "PROPN", "VERB")
"""Parts of speech of open-set concepts (``concepts.open_concepts_verbs`` false drops VERB)."""


def _analyse(texts: Sequence[str], lexicon: frozenset[str], verbs: bool = True) -> list[_Words]:
    """Adjective candidates and open concepts of each text (spaCy over distinct texts once);
    open concepts are nouns, and verbs unless ``verbs`` is false."""
    open_pos = OPEN_POS if verbs else tuple(p for p in OPEN_POS if p != "VERB")
    distinct = list(dict.fromkeys(str(t) for t in texts))
    found: dict[str, _Words] = {}
    todo = [t for t in distinct if t.strip()]
    docs = _nlp().pipe([t.lower() for t in todo], batch_size=256) if todo else []
    for text, doc in zip(todo, docs, strict=True):
        adjectives: list[str] = []
        nouns: list[str] = []
        for unit in _units(doc):
            first = unit[0]
            word = "".join(t.text for t in unit).lower() if len(unit) > 1 else first.lower_
            if not re.fullmatch(r"[a-z][a-z-]*", word) or _negated(doc, first.i):
                continue
            adjective = _adjective(unit, word, lexicon)
            if adjective is not None:
                if adjective not in STOP_ADJECTIVES and len(adjective) > 1:
                    adjectives.append(adjective)
                continue
            head = unit[-1]
            if head.pos_ in open_pos and not (len(unit) == 1 and first.is_stop):
                lemma = word if len(unit) > 1 else first.lemma_.lower()
                if len(lemma) > 2 and lemma not in GENERIC_WORDS and lemma.isascii():
                    nouns.append(lemma)
        found[text] = _Words(tuple(dict.fromkeys(adjectives)), tuple(dict.fromkeys(nouns)))
    empty = _Words((), ())
    return [found.get(str(t), empty) for t in texts]


def load_adjective_lexicon(path: str | os.PathLike | None = None) -> frozenset[str]:
    """The sound-adjective lexicon (shipped ``resources/sound_adjectives.txt`` by default;
    a path is found as :func:`andlib.store.resource_path` finds it)."""
    p = resource_path(path if path is not None else ADJECTIVE_LEXICON)
    if not p.is_file():
        raise FileNotFoundError(f"adjective lexicon {p} does not exist")
    words = (ln.strip().lower() for ln in p.read_text(encoding="utf-8").splitlines())
    return frozenset(w for w in words if w and not w.startswith("#"))


def is_sound_adjective(word: str, lexicon: frozenset[str]) -> bool:
    """Lexicon decision: listed, or a hyphenated word whose last part is listed or that ends in
    ``-pitched``, ``-toned``, ``-sounding`` or ``-frequency``."""
    w = word.lower()
    if w in lexicon:
        return True
    return "-" in w and (w.rsplit("-", 1)[1] in lexicon or w.endswith(_ACOUSTIC_SUFFIXES))


def judge_adjectives(
    words: Sequence[str],
    llm: Any = None,
    lexicon: frozenset[str] | None = None,
    wording: str = "acoustic",
) -> dict[str, bool]:
    """Whether each distinct word describes sound: asked to a generative ``llm`` once per word
    (its replies are cached on disk), else decided by the lexicon.

    ``wording`` (``concepts.adjective_prompt``) picks the question
    (:func:`andlib.text.prompts.adjective_messages`): ``acoustic`` or AND's ``tone_emotion``.
    An LLM reply that says neither yes nor no falls back to the lexicon too.
    """
    lexicon = load_adjective_lexicon() if lexicon is None else lexicon
    distinct = list(dict.fromkeys(words))
    verdict = {w: is_sound_adjective(w, lexicon) for w in distinct}
    if distinct and llm is not None and getattr(llm, "generative", False):
        from andlib.text.prompts import adjective_messages, parse_yes_no

        replies = llm.complete_many(
            [adjective_messages(w, wording) for w in distinct],
            [f"adjective {w!r}" for w in distinct],
        )
        for w, reply in zip(distinct, replies, strict=True):
            answer = parse_yes_no(reply)
            if answer is None:
                m = re.search(r"\b(yes|no)\b", str(reply).lower())
                answer = None if m is None else m.group(1) == "yes"
            if answer is not None:
                verdict[w] = answer
    return verdict


def extract_adjectives(texts: Sequence[str]) -> list[list[str]]:
    """Adjective candidates of each text: POS-tagged adjectives (and participles in adjective
    lists), hyphenated compounds as one word, comparatives lemmatized, negated ones ("not
    loud", "no clear pitch") and :data:`STOP_ADJECTIVES` skipped; in order, de-duplicated."""
    return [list(w.adjectives) for w in _analyse(texts, load_adjective_lexicon())]


def acoustic_adjectives_many(
    texts: Sequence[str],
    llm: Any = None,
    lexicon: frozenset[str] | None = None,
    wording: str = "acoustic",
) -> list[list[str]]:
    """:func:`acoustic_adjectives` of many texts; each distinct adjective is judged once."""
    lexicon = load_adjective_lexicon() if lexicon is None else lexicon
    candidates = [list(w.adjectives) for w in _analyse(texts, lexicon)]
    verdict = judge_adjectives([a for adjs in candidates for a in adjs], llm, lexicon, wording)
    return [[a for a in adjs if verdict[a]] for adjs in candidates]


def acoustic_adjectives(
    text: str, llm: Any = None, lexicon: frozenset[str] | None = None, wording: str = "acoustic"
) -> list[str]:
    """Module B: the adjectives of ``text`` that describe sound (see :func:`extract_adjectives`
    and :func:`judge_adjectives`)."""
    return acoustic_adjectives_many([text], llm, lexicon, wording)[0]
