"""Module A of AND, in-context learning (ICL): closed-set concepts an LLM picks.

The LLM reads the neuron's high summary and names the best concept (or the ``top`` best);
replies are parsed leniently (:func:`parse_icl_reply`) and mapped onto the concept set,
exactly when a name matches and otherwise by embedding similarity of ``"This is an audio about
<x>"`` (AND's mapping). The offline ``extractive`` backend is not a language model: then the
concepts are ranked by the embedding similarity between the summary and the concepts instead,
and the result is reported under its own method name, ``icl_embedding`` (columns
``icl_embedding`` and ``icl_embedding_top5`` of ``neurons.csv``, never ``icl``). With an LLM a
reply naming fewer than 5 concepts is completed with embedding neighbours; ``icl_llm_slots``
counts the slots of each neuron's top 5 the LLM named itself.

The stage that runs it is :mod:`andlib.describe.concepts`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from andlib.describe.calibration import comparable, sentence_weight, split_sentences
from andlib.describe.closed_set import _default_embedder
from andlib.text.concept_sets import display_name
from andlib.text.names import normalize_concept

ICL_TEMPLATE = "This is an audio about {}"
"""How ICL replies, summaries and concepts are embedded for matching (AND's template)."""
ICL_FALLBACK = "icl_embedding"
"""The method name of ICL without a generative LLM (concepts ranked by embedding similarity)."""


class ICLResult(NamedTuple):
    """Concepts picked for each summary (best first) and how: ``icl`` (an LLM picked) or
    ``icl_embedding`` (:data:`ICL_FALLBACK`: ranked by embedding similarity, no LLM).

    ``llm_slots[i]`` (``icl`` only, else ``None``): how many of ``concepts[i]`` the LLM's
    reply named itself (mapped onto the set); the slots after them are embedding neighbours
    that complete a short reply (:func:`map_to_concepts`).
    """

    concepts: list[list[str]]
    method: str
    llm_slots: list[int] | None = None


_ANSWER = re.compile(
    r"\b(?:final\s+)?(?:answer|answers|class(?:\s*name)?s?)\s*(?:(?:is|are)\b\s*:?|:)\s*", re.I
)
_LIST_ITEM = re.compile(r"^\s*(?:\(?\d{1,2}\s*[.):\]]|[-*•·])\s+(.+?)\s*$")
_QUOTED = re.compile(r"[\"“‘'`]([^\"”’'`\n]{1,60})[\"”’'`]")
_CUT = re.compile(r"\s+(?:-|–|—|because|since|as it|as the|which|\()\s*|:\s+|\.\s", re.I)
_LEAD = re.compile(
    r"^(?:the\s+)?(?:(?:class(?:\s*name)?|concept|label|category)\b)?\s*[:=]?\s*", re.I
)


def _clean_item(item: str) -> str:
    item = re.sub(r"[*_`]{2,}", "", item).strip(" \t:;,-")  # markdown emphasis, stray marks
    item = _CUT.split(item, maxsplit=1)[0]
    item = item.strip(" \t\"'“”‘’`*.,;:!?()[]{}")
    item = _LEAD.sub("", item)
    item = re.sub(r"^(?:a|an|the)\s+", "", item, flags=re.I)
    return normalize_concept(item)


def _split_items(segment: str, known: Mapping[str, str]) -> list[str]:
    lines = [ln for ln in segment.splitlines() if ln.strip()]
    listed = [m.group(1) for ln in lines if (m := _LIST_ITEM.match(ln))]
    if listed:
        return listed
    if len(lines) > 1 and all(len(ln.split()) <= 5 for ln in lines):
        return lines
    first = lines[0] if lines else ""
    quoted = _QUOTED.findall(first)
    if quoted:
        return quoted
    items = [p for p in re.split(r"\s*(?:[,;/|]|\bor\b)\s*", first) if p.strip()]
    # "dog and cat" is two answers unless a concept is called that.
    return [
        q for p in items for q in ([p] if _clean_item(p) in known else re.split(r"\s+and\s+", p))
    ]


def parse_icl_reply(reply: str, concepts: Sequence[str] = ()) -> list[str]:
    """Candidate concept phrases in a free-form ICL reply, best first (normalised, de-duplicated).

    Handles ``Answer: dog, cat``, numbered or bulleted lists, comma lists, quoted names
    (``the class is 'dog'``), markdown, any casing and ``water_drops`` vs ``water drops``. When
    the reply is prose without any of these, the ``concepts`` it mentions (in order of
    appearance) are the candidates, else its first line.
    """
    text = str(reply or "").strip()
    if not text:
        return []
    known = {normalize_concept(c): c for c in concepts}
    answers = list(_ANSWER.finditer(text))
    if answers:
        items = _split_items(text[answers[-1].end() :], known)
    elif any(_LIST_ITEM.match(ln) for ln in text.splitlines()):
        items = _split_items(text, known)
    elif _QUOTED.search(text):
        items = _QUOTED.findall(text)
    else:  # prose: the concepts it mentions, in order
        words = f" {normalize_concept(re.sub(r'[^A-Za-z0-9_ -]+', ' ', text))} "
        found = []
        for norm in known:
            hits = [p for form in (norm, norm + "s") if (p := words.find(f" {form} ")) >= 0]
            if norm and hits:
                found.append((min(hits), norm))
        items = [n for _, n in sorted(found)] or _split_items(text, known)
    return list(dict.fromkeys(c for c in (_clean_item(i) for i in items) if c))


def _match_exact(phrase: str, by_norm: Mapping[str, str]) -> str | None:
    if phrase in by_norm:
        return by_norm[phrase]
    for variant in (phrase[:-1] if phrase.endswith("s") else None, phrase + "s"):
        if variant and variant in by_norm:
            return by_norm[variant]
    # A concept named inside a longer phrase ("a dog barking loudly" -> dog): longest first.
    padded = f" {phrase} "
    for norm in sorted(by_norm, key=len, reverse=True):
        if f" {norm} " in padded:
            return by_norm[norm]
    return None


def map_to_concepts(
    phrases: Sequence[str], concepts: Sequence[str], embedder: Any = None, top: int = 5
) -> list[str]:
    """Map candidate phrases onto the concept set, keeping their order.

    A phrase maps to a concept it names (case, ``_``/``-``/space and a plural ``s`` ignored;
    "a dog barking" names ``dog``), otherwise to the concept whose ``"This is an audio about
    <x>"`` embedding is nearest. When fewer than ``top`` distinct concepts result, the list is
    completed with the concepts nearest to the phrases on average (padding:
    :func:`map_to_concepts_marked` says how many slots the phrases filled themselves).
    """
    return map_to_concepts_marked(phrases, concepts, embedder, top)[0]


def map_to_concepts_marked(
    phrases: Sequence[str], concepts: Sequence[str], embedder: Any = None, top: int = 5
) -> tuple[list[str], int]:
    """:func:`map_to_concepts` and the number of its leading slots the phrases named; the
    slots after them are padding (the concepts nearest to the phrases on average)."""
    concepts = list(concepts)
    by_norm = {normalize_concept(c): c for c in concepts}
    picked = [_match_exact(p, by_norm) for p in phrases]
    if all(m is not None for m in picked) and len(set(picked)) >= top:
        out = list(dict.fromkeys(m for m in picked if m is not None))[:top]
        return out, len(out)
    embedder = _default_embedder(embedder)
    con = embedder.encode([ICL_TEMPLATE.format(display_name(c)) for c in concepts])
    sims = embedder.encode([ICL_TEMPLATE.format(p) for p in phrases]) @ con.T
    named = [m if m is not None else concepts[int(sims[i].argmax())] for i, m in enumerate(picked)]
    out = list(dict.fromkeys(named))[:top]
    n_named = len(out)
    for j in np.argsort(-sims.mean(axis=0), kind="stable"):
        if len(out) >= top:
            break
        if concepts[j] not in out:
            out.append(concepts[j])
    return out, n_named


def icl_answer(
    reply: str, concepts: Sequence[str], embedder: Any = None, top: int = 5
) -> list[str]:
    """One ICL reply -> up to ``top`` concepts of the set, best first (``[]`` for an empty reply)."""
    return icl_answer_marked(reply, concepts, embedder, top)[0]


def icl_answer_marked(
    reply: str, concepts: Sequence[str], embedder: Any = None, top: int = 5
) -> tuple[list[str], int]:
    """:func:`icl_answer` and how many of its leading concepts the reply named itself
    (:func:`map_to_concepts_marked`; the rest pad a short reply)."""
    phrases = parse_icl_reply(reply, concepts)
    return map_to_concepts_marked(phrases, concepts, embedder, top) if phrases else ([], 0)


def embed_summaries(texts: Sequence[str], embedder: Any = None) -> np.ndarray:
    """``[n, d]`` unit-norm embeddings of summaries: the mean of their sentences' embeddings.

    Sentences are embedded without their clip-count subject (:func:`comparable`) and weighted
    by the clips they speak for (:func:`sentence_weight`), so "Most clips (4 of 5) are dogs
    barking" outweighs "Only one clip is wind". Long summaries would exceed the embedder's
    window, and calibration has already embedded every sentence (the embedder remembers
    them), so this costs almost nothing in the stage. An empty text gives a zero row.
    """
    embedder = _default_embedder(embedder)
    texts = list(texts)
    row = {t: i for i, t in enumerate(dict.fromkeys(texts))}  # each distinct text once
    sentences = [split_sentences(t) for t in row]
    form = {x: comparable(x) for group in sentences for x in group}
    flat = sorted(set(form.values()))
    vec = dict(zip(flat, embedder.encode(flat), strict=True)) if flat else {}
    dim = next(iter(vec.values())).shape[0] if vec else 0
    weight = {x: sentence_weight(x) for x in form}
    distinct = np.zeros((len(row), dim), dtype=np.float32)
    for i, group in enumerate(sentences):
        if group:
            weights = np.array([weight[x] for x in group], dtype=np.float32)
            m = weights @ np.stack([vec[form[x]] for x in group])
            distinct[i] = m / max(float(np.linalg.norm(m)), 1e-12)
    return distinct[[row[t] for t in texts]] if texts else distinct


def rank_by_embedding(
    texts: Sequence[str], concepts: Sequence[str], embedder: Any = None, top: int = 5
) -> list[list[str]]:
    """Concepts ranked by cosine between each text (:func:`embed_summaries`) and ``"This is an
    audio about <concept>"``: the ICL fallback of the non-generative backend. Empty texts get
    ``[]``."""
    embedder = _default_embedder(embedder)
    con = embedder.encode([ICL_TEMPLATE.format(display_name(c)) for c in concepts])
    emb = embed_summaries(texts, embedder)
    out: list[list[str]] = [[] for _ in texts]
    if emb.shape[1]:
        order = np.argsort(-(emb @ con.T), axis=1, kind="stable")[:, :top]
        for i, row in enumerate(order):
            if np.any(emb[i]):
                out[i] = [concepts[j] for j in row]
    return out


def icl_concepts(
    summaries: Sequence[str],
    concepts: Sequence[str],
    llm: Any,
    top: int = 5,
    embedder: Any = None,
    labels: Sequence[str] | None = None,
) -> ICLResult:
    """ICL: the LLM picks the ``top`` concepts (best first) that match each summary.

    With a generative ``llm`` (``llm.generative`` true) every non-empty summary is one call
    (:func:`andlib.text.prompts.icl_messages`; all sent as one batch, cached by the LLM) and the
    reply is mapped onto the set by :func:`icl_answer`. With ``llm=None`` or the
    non-generative ``extractive`` backend no model can pick: the concepts are ranked by
    embedding similarity to the summary instead (:func:`rank_by_embedding`) and the method
    is ``icl_embedding`` (:data:`ICL_FALLBACK`). ``labels`` name the requests in LLM error
    messages. With an LLM, :attr:`ICLResult.llm_slots` counts the concepts of each list the
    reply named itself (the rest are embedding neighbours padding a short reply).
    """
    concepts = list(concepts)
    if llm is None or not getattr(llm, "generative", True):
        return ICLResult(rank_by_embedding(summaries, concepts, embedder, top), ICL_FALLBACK)
    from andlib.text.prompts import icl_messages

    asked = [i for i, s in enumerate(summaries) if str(s).strip()]
    names = list(labels) if labels is not None else [f"summary {i}" for i in range(len(summaries))]
    replies = llm.complete_many(
        [icl_messages(str(summaries[i]), [display_name(c) for c in concepts], top) for i in asked],
        [f"{names[i]} (icl)" for i in asked],
    )
    embedder = _prewarm_icl(replies, concepts, embedder, top)
    out: list[list[str]] = [[] for _ in summaries]
    slots = [0 for _ in summaries]
    for i, reply in zip(asked, replies, strict=True):
        out[i], slots[i] = icl_answer_marked(reply, concepts, embedder, top)
    return ICLResult(out, "icl", slots)


def _prewarm_icl(replies: Sequence[str], concepts: list[str], embedder: Any, top: int) -> Any:
    """Embed, in one call, every phrase :func:`map_to_concepts_marked` will embed for these
    replies (those of replies that do not name ``top`` concepts outright), so mapping 10^4
    replies costs one embedder call, not one per neuron; the mapping then finds them in the
    embedder's memory. Returns the embedder (the default one when ``embedder`` is None)."""
    by_norm = {normalize_concept(c): c for c in concepts}
    need: set[str] = set()
    for reply in replies:
        phrases = parse_icl_reply(reply, concepts)
        picked = [_match_exact(p, by_norm) for p in phrases]
        if phrases and not (all(m is not None for m in picked) and len(set(picked)) >= top):
            need.update(ICL_TEMPLATE.format(p) for p in phrases)
    if not need:
        return embedder
    embedder = _default_embedder(embedder)
    embedder.encode([ICL_TEMPLATE.format(display_name(c)) for c in concepts])
    embedder.encode(sorted(need))
    return embedder
