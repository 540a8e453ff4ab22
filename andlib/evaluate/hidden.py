"""A ground-truth check of closed-set concepts on hidden layers.

The classifier layer is the one layer whose neurons have a known concept (their class). A
hidden neuron has none, but many hidden neurons fire most on clips of one class: when at least
a strict majority of a neuron's top-``k`` clips (3 of 5) carry one label of the probing set,
that class is what the neuron's top clips share, and a closed-set method that reads the
captions of those clips (never their labels) should name it.

:func:`shared_classes` finds those neurons and their class; :func:`hidden_layer_accuracy`
reports, per layer and method, the share of them whose top-1 concept, and whose top-5
concepts, hold the class, beside chance: the same predictions scored against the classes
shuffled across those neurons (``n_shuffles`` seeded permutations, averaged). The evaluate
stage writes it as ``hidden_layer_accuracy.csv`` (:data:`HIDDEN_COLUMNS`; one ``all hidden``
row per method pools the layers).

The labels also say how far a layer's neurons share one class: ``label_top_class`` is the
class that most of the layer's neurons share (:func:`label_spread`) and ``label_top_share``
the share of all the layer's neurons (``n_layer``) that share it. A method that names one
concept for more of the layer than that (``concept_spread.csv``) names it beyond what the
labels support; one that names it for about as many follows the neurons.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from andlib.evaluate.labels import match_class
from andlib.text.names import normalize_concept, ranked_concepts

HIDDEN_COLUMNS = [
    "layer",
    "method",
    "n_layer",
    "n_neurons",
    "top1",
    "top5",
    "chance_top1",
    "chance_top5",
    "label_top_class",
    "label_top_share",
]
ALL_HIDDEN = "all hidden"
"""The ``layer`` of the rows that pool every hidden layer."""


def majority(k: int) -> int:
    """The fewest of ``k`` top clips that make a shared class: a strict majority (3 of 5)."""
    return int(k) // 2 + 1


def shared_classes(
    top_clips: np.ndarray, clip_concepts: Sequence[str | None], min_count: int
) -> list[str | None]:
    """Each neuron's shared class: the concept that at least ``min_count`` of its top clips carry.

    ``top_clips`` is ``[n_neurons, k]`` clip rows (:meth:`andlib.store.ActivationCache.topk`);
    ``clip_concepts[j]`` is clip ``j``'s label as a concept name (``None``: unlabelled, or a
    label that names no concept). A neuron without such a class gets ``None``. With
    ``min_count`` a strict majority of ``k`` at most one class can qualify.
    """
    if min_count * 2 <= top_clips.shape[1]:
        raise ValueError(f"min_count {min_count} is no strict majority of {top_clips.shape[1]}")
    out: list[str | None] = []
    for row in np.asarray(top_clips):
        counts: dict[str, int] = {}
        for j in row:
            c = clip_concepts[int(j)]
            if c is not None:
                counts[c] = counts.get(c, 0) + 1
        best = max(counts.items(), key=lambda kv: kv[1], default=(None, 0))
        out.append(best[0] if best[1] >= min_count else None)
    return out


def _hits(ranked: Sequence[Sequence[str]], truth: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``[n_neurons, n_classes]`` boolean tables: is class ``c`` neuron ``i``'s top-1 / in its
    top 5, for the distinct classes of ``truth`` (sorted)."""
    classes = sorted(set(truth))
    col = {c: i for i, c in enumerate(classes)}
    top1 = np.zeros((len(ranked), len(classes)), dtype=bool)
    top5 = np.zeros_like(top1)
    for i, r in enumerate(ranked):
        names = [normalize_concept(x) for x in r[:5]]
        if names and names[0] in col:
            top1[i, col[names[0]]] = True
        for n in names:
            if n in col:
                top5[i, col[n]] = True
    return top1, top5


def accuracy_and_chance(
    ranked: Sequence[Sequence[str]],
    truth: Sequence[str],
    generator: np.random.Generator,
    n_shuffles: int = 100,
) -> dict[str, float]:
    """Top-1 and top-5 accuracy of ``ranked`` concepts (best first) against ``truth``, and
    their chance levels: the mean accuracy over ``n_shuffles`` permutations of ``truth``
    drawn from ``generator``. Names are compared by :func:`normalize_concept`."""
    if len(ranked) != len(truth):
        raise ValueError(f"{len(ranked)} ranked lists for {len(truth)} classes")
    if not truth:
        nan = float("nan")
        return {"top1": nan, "top5": nan, "chance_top1": nan, "chance_top5": nan}
    norm = [normalize_concept(t) for t in truth]
    classes = sorted(set(norm))
    idx = np.array([classes.index(t) for t in norm])
    top1, top5 = _hits(ranked, norm)
    rows = np.arange(len(idx))
    perms = np.stack([generator.permutation(idx) for _ in range(max(1, n_shuffles))])
    return {
        "top1": float(top1[rows, idx].mean()),
        "top5": float(top5[rows, idx].mean()),
        "chance_top1": float(top1[rows, perms].mean()),
        "chance_top5": float(top5[rows, perms].mean()),
    }


def label_spread(classes: Sequence[str | None]) -> dict[str, Any]:
    """The class that most of ``classes`` (each neuron's shared class, ``None``: none) name and
    the share of all the neurons that share it (ties: the first name in sorted order)."""
    named = pd.Series([c for c in classes if c is not None], dtype=object)
    if named.empty or not len(classes):
        return {"label_top_class": "", "label_top_share": 0.0}
    counts = named.value_counts()
    best = sorted(c for c in counts.index if counts[c] == counts.iloc[0])[0]
    return {"label_top_class": str(best), "label_top_share": float(counts[best] / len(classes))}


def hidden_layer_accuracy(
    ranked: Mapping[str, Mapping[str, Sequence[Sequence[str]]]],
    truth: Mapping[str, Sequence[str | None]],
    generator_for: Any,
    n_shuffles: int = 100,
) -> pd.DataFrame:
    """The hidden-layer table (:data:`HIDDEN_COLUMNS`).

    ``ranked[method][layer]`` is every neuron's ranked concepts in the order of
    ``truth[layer]``, each neuron's shared class (:func:`shared_classes`; ``None``: none).
    ``generator_for(layer, method)`` gives the seeded generator of that row's shuffles; the
    pooled rows use ``generator_for("all hidden", method)``. Only neurons with a shared class
    are scored (``n_neurons`` of ``n_layer``).
    """
    rows: list[dict[str, Any]] = []
    for method, by_layer in ranked.items():
        pooled_r: list[Sequence[str]] = []
        pooled_t: list[str] = []
        n_all = 0
        for layer, classes in truth.items():
            keep = [i for i, c in enumerate(classes) if c is not None]
            r = [by_layer[layer][i] for i in keep]
            t = [str(classes[i]) for i in keep]
            pooled_r += r
            pooled_t += t
            n_all += len(classes)
            acc = accuracy_and_chance(r, t, generator_for(layer, method), n_shuffles)
            rows.append(
                {"layer": layer, "method": method, "n_layer": len(classes), "n_neurons": len(t)}
                | acc
                | label_spread(classes)
            )
        if len(truth) > 1:
            acc = accuracy_and_chance(
                pooled_r, pooled_t, generator_for(ALL_HIDDEN, method), n_shuffles
            )
            rows.append(
                {
                    "layer": ALL_HIDDEN,
                    "method": method,
                    "n_layer": n_all,
                    "n_neurons": len(pooled_t),
                }
                | acc
                | label_spread([c for cs in truth.values() for c in cs])
            )
    return pd.DataFrame(rows, columns=HIDDEN_COLUMNS)


def clip_concepts(labels: Sequence[Any], concepts: Sequence[str]) -> list[str | None]:
    """Each clip's label as a name of ``concepts`` (matched as the last layer matches labels
    to classes, :func:`andlib.evaluate.scores.match_class`); ``None`` for an empty label or
    one that names no concept with certainty."""
    names = list(concepts)
    out: list[str | None] = []
    memo: dict[str, str | None] = {}
    for label in labels:
        text = "" if label is None or (isinstance(label, float) and np.isnan(label)) else str(label)
        if text not in memo:
            i = match_class(text, names) if text.strip() else None
            memo[text] = None if i is None else names[i]
        out.append(memo[text])
    return out


def hidden_layer_report(
    neurons: pd.DataFrame,
    top_clips: Mapping[str, np.ndarray],
    labels: Sequence[Any],
    concepts: Sequence[str],
    methods: Sequence[str],
    k: int,
    generator_for: Any,
    n_shuffles: int = 100,
) -> pd.DataFrame:
    """:func:`hidden_layer_accuracy` from a run's tables.

    ``neurons`` is ``neurons.csv`` (the hidden layers' rows are scored: those of
    ``top_clips``), ``top_clips[layer]`` each neuron's top-``k`` clip rows
    (``[n_neurons, k]``), ``labels`` the clips' labels in activation row order (``category``
    of ``clips.csv``), ``methods`` the concept columns to score (:func:`ranked_concepts`).
    """
    per_clip = clip_concepts(labels, concepts)
    truth: dict[str, list[str | None]] = {}
    ranked: dict[str, dict[str, list[list[str]]]] = {m: {} for m in methods}
    for layer, group in neurons.groupby("layer", sort=False):
        if layer not in top_clips:
            continue
        ids = group["neuron"].astype(int).to_numpy()
        classes = shared_classes(np.asarray(top_clips[layer])[ids, :k], per_clip, majority(k))
        truth[str(layer)] = classes
        records = group.to_dict("records")
        for m in methods:
            ranked[m][str(layer)] = [ranked_concepts(r, m) for r in records]
    return hidden_layer_accuracy(ranked, truth, generator_for, n_shuffles)
