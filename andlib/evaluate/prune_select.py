"""Choosing the neurons of a concept for pruning (:mod:`andlib.evaluate.prune`).

``ocp`` matches the neuron's open concepts against the concept's words (light stemming,
:func:`andlib.text.names.stem`; ``prune.ocp_match``), ``db`` and ``tab`` look for the concept among the neuron's
top closed-set concepts (at most ``prune.max_share`` of a layer, :func:`layer_cap`, those with
the highest score kept), and ``random`` draws as many neurons per layer as a strategy chose
(:func:`random_neurons`). :class:`Selector` reads ``neurons.csv`` once for every concept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from andlib.store import ArtifactError, decode_list
from andlib.text.names import normalize_concept, ranked_concepts, stems
from andlib.text.names import stem as stem


def concept_words(concept: str) -> list[str]:
    """Stemmed words of a concept name: ``water_drops`` -> ``["water", "drop"]``."""
    return stems(concept)


def _open_words(open_concepts: Sequence[str]) -> set[str]:
    return {w for c in open_concepts for w in stems(c)}


def _ocp_hit(have: set[str], concept: str, how: str) -> bool:
    words = concept_words(concept)
    if how not in ("all", "any", "head"):
        raise ValueError(f"prune.ocp_match: {how!r} is not one of all, any, head")
    if not words or not have:
        return False
    if how == "all":
        return all(w in have for w in words)
    if how == "any":
        return any(w in have for w in words)
    return words[-1] in have


def matches_open_concepts(open_concepts: Sequence[str], concept: str, how: str = "all") -> bool:
    """Whether a neuron's open concepts name ``concept`` (``how``: ``all``, ``any``, ``head``)."""
    return _ocp_hit(_open_words(open_concepts), concept, how)


def layer_cap(size: int, max_share: float | None) -> int | None:
    """The most neurons of a layer of ``size`` that one concept may prune (``prune.max_share``
    of it, rounded down, at least 1); ``None`` without a cap."""
    return None if max_share is None else max(1, math.floor(max_share * size + 1e-9))


class Selector:
    """Picks the neurons of any concept for one strategy (``ocp``, ``db`` or ``tab``).

    Each neuron's concepts (its stemmed open-concept words, or its top-``top_n`` DB/TAB
    concepts with their scores) are read from ``neurons.csv`` once; ``selector(concept)`` is
    then a quick scan. With ``max_share`` and ``layer_sizes``, DB and TAB keep at most
    :func:`layer_cap` neurons of a layer: those whose score for the concept is highest (ties
    by neuron order). OCP has no score and is not capped.
    """

    def __init__(
        self,
        neurons: pd.DataFrame,
        strategy: str,
        *,
        layers: Sequence[str] | None = None,
        top_n: int = 3,
        db_similarity: str = "soft_wpmi",
        ocp_match: str = "all",
        max_share: float | None = None,
        layer_sizes: Mapping[str, int] | None = None,
    ):
        if strategy not in ("ocp", "db", "tab"):
            raise ValueError(f"unknown selection strategy {strategy!r}; use ocp, db or tab")
        if ocp_match not in ("all", "any", "head"):
            raise ValueError(f"prune.ocp_match: {ocp_match!r} is not one of all, any, head")
        rows = neurons if layers is None else neurons[neurons["layer"].isin(list(layers))]
        self.strategy, self.ocp_match = strategy, ocp_match
        self.keys = list(zip(rows["layer"].astype(str), rows["neuron"].astype(int), strict=True))
        self.caps: dict[str, int | None] = {}
        if strategy != "ocp" and max_share is not None:
            if layer_sizes is None:
                raise ValueError("Selector: max_share needs layer_sizes")
            self.caps = {la: layer_cap(int(n), max_share) for la, n in layer_sizes.items()}
        records = rows.to_dict("records")
        self.scores: list[dict[str, float]] = []
        if strategy == "ocp":
            self.concepts = [_open_words(decode_list(r.get("open_concepts", ""))) for r in records]
        else:
            method = f"db_{db_similarity}" if strategy == "db" else "tab"
            if method not in rows.columns:
                raise ArtifactError(
                    f"neurons.csv has no {method} column (concepts.db_default: "
                    f"{db_similarity}): re-run the concepts stage (python -m andlib summarize)"
                )
            self.concepts = [
                {normalize_concept(c) for c in ranked_concepts(r, method)[:top_n]} for r in records
            ]
            if self.caps:
                self.scores = [concept_scores(r, method) for r in records]

    def _hit(self, have: set[str], concept: str) -> bool:
        if self.strategy == "ocp":
            return _ocp_hit(have, concept, self.ocp_match)
        return normalize_concept(concept) in have

    def __call__(self, concept: str) -> dict[str, list[int]]:
        """``{layer: [neuron, ...]}`` chosen for ``concept`` (layers in table order)."""
        hits: dict[str, list[int]] = {}
        for i, ((layer, _), have) in enumerate(zip(self.keys, self.concepts, strict=True)):
            if self._hit(have, concept):
                hits.setdefault(layer, []).append(i)
        name = normalize_concept(concept)
        out = {}
        for layer, rows in hits.items():
            cap = self.caps.get(layer)
            if cap is not None and len(rows) > cap:  # best scores first; stable: neuron order
                rows = sorted(rows, key=lambda i: -self.scores[i][name])[:cap]
            out[layer] = sorted(self.keys[i][1] for i in rows)
        return out


def concept_scores(row: Mapping[str, Any], method: str) -> dict[str, float]:
    """A neuron's score for each of its top-5 concepts of ``method`` (``db_<fn>`` or ``tab``),
    by normalised name, from ``<method>_top5`` and ``<method>_top5_scores`` of ``neurons.csv``."""
    if f"{method}_top5_scores" not in row:
        raise ArtifactError(
            f"neurons.csv has no {method}_top5_scores column: re-run the concepts stage "
            f"(python -m andlib summarize --config ...)"
        )
    names = decode_list(row.get(f"{method}_top5", ""))
    values = [float(v) for v in decode_list(row.get(f"{method}_top5_scores", ""))]
    if len(names) != len(values):
        raise ValueError(f"neurons.csv: {len(names)} {method} concepts but {len(values)} scores")
    return {normalize_concept(n): v for n, v in zip(names, values, strict=True)}


def select_neurons(
    neurons: pd.DataFrame, concept: str, strategy: str, **options: Any
) -> dict[str, list[int]]:
    """``{layer: [neuron, ...]}`` that ``strategy`` (``ocp``, ``db``, ``tab``) picks for ``concept``.

    ``neurons`` is ``neurons.csv``; ``options`` are :class:`Selector`'s (``layers``, ``top_n``,
    ``db_similarity``, ``ocp_match``, ``max_share`` with ``layer_sizes``). For many concepts
    build one :class:`Selector` per strategy instead.
    """
    return Selector(neurons, strategy, **options)(concept)


def random_neurons(
    counts: Mapping[str, int], layer_sizes: Mapping[str, int], generator: np.random.Generator
) -> dict[str, list[int]]:
    """``counts[layer]`` distinct neurons drawn uniformly from each layer (layers in sorted order)."""
    out = {}
    for layer in sorted(counts):
        k = min(int(counts[layer]), int(layer_sizes[layer]))
        if k > 0:
            out[layer] = sorted(generator.choice(int(layer_sizes[layer]), size=k, replace=False))
            out[layer] = [int(n) for n in out[layer]]
    return out


def _count(selection: Mapping[str, Sequence[int]]) -> int:
    return sum(len(v) for v in selection.values())
