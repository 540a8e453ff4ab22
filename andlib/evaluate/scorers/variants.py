"""The texts scored in place of a neuron's description: baselines and sanity variants.

- ``random``: the description of a random other neuron of the same layer (seeded);
- ``label``: the class name most of the neuron's top clips carry (its majority class; the
  first of the top clips' order on ties), as the whole description;
- ``missing_label``: the description with its source phrase removed (:func:`remove_source`):
  the first phrase of the description that names a source the captions name
  (:func:`source_vocabulary`) or a class, with its count (a source after it keeps its hedge,
  "possibly", and loses its "or"). Only
  where the description names a source; a description that was nothing but its source
  becomes :data:`EMPTY_DESCRIPTION`;
- ``extra_label``: the description with a wrong source added as a sentence of its own
  (:func:`add_source`): the phrase of a seeded random other class (:func:`class_phrases`: the
  source phrase its clips' captions name most, else its name), never the neuron's majority
  class nor a source the description names. Without labels, the other sources are the
  phrases the captions name.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from andlib.config import Config, rng
from andlib.text.names import normalize_concept

EMPTY_DESCRIPTION = "A sound."
"""What is left of a description that named only its source once that is removed."""
ARTICLES = ("a", "an", "the")


def _core(phrase: str) -> str:
    """``"A dog barking"`` -> ``"dog barking"`` (lowercase, no leading article, one space)."""
    words = phrase.lower().split()
    while words and words[0] in ARTICLES:
        words = words[1:]
    return " ".join(words)


def source_vocabulary(captions: Sequence[str], classes: Sequence[str] = ()) -> list[str]:
    """The source phrases the captions name (their opening source sentence,
    :func:`andlib.text.extractive.source_phrases`) and the class names, without articles,
    lowercase, longest first."""
    from andlib.text.extractive import source_phrases

    found: set[str] = set()
    for caption in dict.fromkeys(captions):
        for phrase, _ in source_phrases(str(caption))[0]:
            found.add(_core(phrase))
    found |= {_core(normalize_concept(c)) for c in classes if str(c).strip()}
    found.discard("")
    return sorted(found, key=lambda p: (-len(p), p))


def source_pattern(vocabulary: Sequence[str]) -> re.Pattern[str] | None:
    """One regex finding any phrase of ``vocabulary`` (whole words, any case), with its
    article, a leading "or"/"possibly", and a count in parentheses after it."""
    if not vocabulary:
        return None
    cores = "|".join(r"\s+".join(map(re.escape, p.split())) for p in vocabulary)
    return re.compile(
        r"(?:\bor\s+)?(?:\b(?:possibly|perhaps|probably)\s+)?(?:\b(?:a|an|the)\s+)?"
        rf"\b(?:{cores})\b(?:\s*\([^)]*\))?",
        re.IGNORECASE,
    )


def _tidy(text: str) -> str:
    """Whitespace, orphaned "or"s and empty sentences cleaned up; sentences capitalized."""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([.,;:])", r"\1", text)
    text = re.sub(r"(^|[.;]\s*)or\s+(?=\S)", r"\1", text, flags=re.I)
    text = re.sub(r"\s*\bor\s*(?=[.;,]|$)", "", text, flags=re.I)
    sentences = [s.strip(" ,;:") for s in re.split(r"(?<=\.)\s+|^\.\s*", text.strip())]
    sentences = [s for s in sentences if re.search(r"[A-Za-z]", s)]
    out = []
    for s in sentences:
        s = s[0].upper() + s[1:]
        out.append(s if s.endswith((".", "!", "?")) else s + ".")
    return " ".join(out)


def find_source(description: str, pattern: re.Pattern[str] | None) -> re.Match[str] | None:
    """The first phrase of ``description`` that names a source (:func:`source_pattern`)."""
    return pattern.search(description) if pattern is not None else None


def remove_source(description: str, pattern: re.Pattern[str] | None) -> str:
    """The description without its first source phrase ("" when it names none)."""
    m = find_source(description, pattern)
    if m is None:
        return ""
    rest = _tidy(description[: m.start()] + " " + description[m.end() :])
    return rest or EMPTY_DESCRIPTION


def add_source(description: str, phrase: str) -> str:
    """The description with ``phrase`` added as a sentence of its own."""
    phrase = phrase.strip().rstrip(".")
    return f"{description.rstrip()} {phrase[:1].upper()}{phrase[1:]}."


def class_phrases(captions: Sequence[str], categories: Sequence[str]) -> dict[str, str]:
    """``{class: phrase}``: the lead source phrase its clips' captions name most often (the
    first such on ties), else the class name (``water_drops`` -> ``water drops``)."""
    from andlib.text.extractive import source_phrases

    counts: dict[str, Counter[str]] = {}
    for caption, cat in zip(captions, categories, strict=True):
        if not cat:
            continue
        counts.setdefault(cat, Counter())
        found = source_phrases(str(caption))[0]
        if found and found[0][1]:
            counts[cat][found[0][0]] += 1
    return {
        cat: (c.most_common(1)[0][0] if c else normalize_concept(cat))
        for cat, c in sorted(counts.items())
    }


def majority_class(clip_ids: Sequence[str], category_of: Mapping[str, str]) -> str:
    """The class most of ``clip_ids`` carry (first in their order on ties); "" when none has one."""
    cats = [category_of.get(str(c), "") for c in clip_ids]
    cats = [c for c in cats if c]
    if not cats:
        return ""
    counts = Counter(cats)
    best = max(counts.values())
    return next(c for c in cats if counts[c] == best)


def random_others(
    cfg: Config, layer: str, picked: Sequence[int], described: Sequence[int]
) -> list[int]:
    """For each picked neuron a seeded random other described neuron of the layer."""
    gen = rng(cfg, "simulation", layer, "random_description")
    others = []
    for n in picked:
        choice = described[int(gen.integers(len(described) - 1))]
        others.append(choice if choice != n else described[-1])
    return others


def sanity_variants(
    cfg: Config,
    layer: str,
    descriptions: Sequence[str],
    majority: Sequence[str],
    phrases: Mapping[str, str],
    vocabulary: Sequence[str],
) -> tuple[list[str], list[str], dict[str, str]]:
    """``(missing_label, extra_label, reasons)`` texts, one per description ("" where the
    variant is undefined; ``reasons[variant]`` says why).

    ``majority[j]`` is neuron j's majority class ("" unknown), ``phrases`` the classes'
    phrases (:func:`class_phrases`), ``vocabulary`` the source phrases (:func:`source_vocabulary`).
    The extra source is drawn from ``phrases`` (other than the majority class), else, without
    classes, from ``vocabulary``; never one the description already names. Seeded by layer.
    """
    pattern = source_pattern(vocabulary)
    missing = [remove_source(d, pattern) for d in descriptions]
    gen = rng(cfg, "sanity", layer, "extra_label")
    pool = sorted(phrases.items()) if phrases else [(p, p) for p in vocabulary]
    extra = []
    for d, own in zip(descriptions, majority, strict=True):
        low = d.lower()
        options = [p for c, p in pool if c != own and _core(p) not in low]
        extra.append(add_source(d, options[int(gen.integers(len(options)))]) if options else "")
    reasons = {
        "missing_label": (
            "the description names no source" if vocabulary else "the captions name no sources"
        ),
        "extra_label": "no other class or source phrase to add",
    }
    return missing, extra, reasons


def majority_classes(
    top_clips: Sequence[Sequence[str]], category_of: Mapping[str, str]
) -> list[str]:
    """:func:`majority_class` of each neuron's top clips."""
    return [majority_class(clips, category_of) for clips in top_clips]


def label_texts(majority: Sequence[str]) -> list[str]:
    """The ``label`` baseline: the majority class name as the description ("" unknown)."""
    return [normalize_concept(c) if c else "" for c in majority]


def class_sizes(categories: Sequence[str], usable: np.ndarray) -> np.ndarray:
    """Per clip, how many usable clips share its class (0 for an unlabelled clip)."""
    cats = np.asarray(list(categories), dtype=object)
    out = np.zeros(len(cats), dtype=np.int64)
    labelled = (cats != "") & usable
    counts = Counter(cats[labelled].tolist())
    for i, c in enumerate(cats):
        out[i] = counts.get(c, 0) if c else 0
    return out
