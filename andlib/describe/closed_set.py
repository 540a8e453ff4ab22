"""Module A of AND, description-based (DB): closed-set concepts from the clips' captions.

Every clip's caption is embedded with the sentence embedder and compared with every concept
name, ``concept_probs = softmax(100 * cos)`` over concepts (AND's DB, 100 being CLIP's logit
scale), and the chosen similarity functions (:mod:`andlib.describe.similarity`) score these
against the layer's activations. The functions get the full ``[n_clips, n_concepts]`` and
``[n_clips, n_neurons]`` matrices and restrict themselves to each neuron's top clips as
CLIP-Dissect does (soft-WPMI its top 100, WPMI its top 28, rank-reorder its top 5 %; the
cosines use every clip): this is the paper's definition (``[v_c]_j = e_c . e_{d_j}`` over all
clips ``j`` of the probing set). AND's code instead scores each neuron alone on its K=5 top
clips, where soft-WPMI's ``p(c)`` normalisation over a single neuron cancels out (with
``lam = 1`` every score is 0): ``concepts.db_clips: top_k`` does that (:func:`db_scores`).
The functions' constants are ``concepts.similarity_params``.

The stage that runs it is :mod:`andlib.describe.concepts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from andlib.describe.similarity import get_similarity, top_concepts
from andlib.text.concept_sets import display_name

DB_LOGIT_SCALE = 100.0
"""DB's caption-concept probabilities: ``softmax(DB_LOGIT_SCALE * cosine)`` (AND uses CLIP's 100)."""

ArrayLike = np.ndarray | torch.Tensor


def _default_embedder(embedder: Any) -> Any:
    if embedder is not None:
        return embedder
    from andlib.text.embeddings import get_embedder

    return get_embedder()


def _softmax(x: np.ndarray, scale: float) -> np.ndarray:
    return torch.softmax(torch.as_tensor(x, dtype=torch.float32) * scale, dim=1).numpy()


def caption_concept_probs(
    captions: Sequence[str],
    concepts: Sequence[str],
    embedder: Any = None,
    logit_scale: float = DB_LOGIT_SCALE,
    template: str = "{}",
) -> np.ndarray:
    """``[n_clips, n_concepts]``: ``softmax(logit_scale * cos(caption, concept))``, each
    concept embedded as ``template`` filled with its name (``concepts.db_template``)."""
    embedder = _default_embedder(embedder)
    cap = embedder.encode([str(c) for c in captions])
    con = embedder.encode([template.format(display_name(c)) for c in concepts])
    return _softmax(cap @ con.T, logit_scale)


def _as_list(similarity: str | Sequence[str]) -> list[str]:
    return [similarity] if isinstance(similarity, str) else list(similarity)


DB_CLIPS = ("all", "top_k")
"""``concepts.db_clips``: score on every clip (default) or, as AND's code, on each neuron's top K."""


def db_scores(
    concept_probs: ArrayLike,
    activations: ArrayLike,
    similarity: str = "soft_wpmi",
    clips: str = "all",
    k: int = 5,
    params: Any = None,
    neurons: Sequence[int] | None = None,
) -> torch.Tensor:
    """DB scores ``[n_neurons, n_concepts]`` of one layer (rows ``neurons`` only, when given).

    ``clips="all"`` (``concepts.db_clips``' default): the similarity function gets every
    clip and the whole layer at once (it restricts itself to each neuron's top clips, and
    WPMI's ``p(c)`` is the mean over the layer's neurons). ``clips="top_k"``: AND's code,
    each neuron is scored alone on its own ``k`` most activating clips (``concept_probs`` rows
    of those clips against the neuron's activations on them); WPMI's ``p(c)`` is then that
    one neuron's, so with soft-WPMI's ``lam = 1`` every score is 0. ``params`` is
    ``concepts.similarity_params`` (``None``: the functions' defaults).
    """
    fn = get_similarity(similarity, params)
    if clips == "all":
        scores = fn(concept_probs, activations)
        return scores if neurons is None else scores[torch.as_tensor(np.asarray(neurons))]
    if clips != "top_k":
        raise ValueError(f"unknown db_clips {clips!r}; choose from {', '.join(DB_CLIPS)}")
    probs = torch.as_tensor(np.array(concept_probs, dtype=np.float32))
    acts = torch.as_tensor(np.array(activations, dtype=np.float32))
    top = torch.topk(acts, k=min(max(int(k), 1), acts.shape[0]), dim=0).indices  # [k, n]
    cols = range(acts.shape[1]) if neurons is None else [int(n) for n in neurons]
    rows = [fn(probs[top[:, n]], acts[top[:, n], n : n + 1])[0] for n in cols]
    return torch.stack(rows) if rows else torch.empty(0, probs.shape[1])


def db_concepts(
    captions: Sequence[str],
    concepts: Sequence[str],
    activations: ArrayLike,
    embedder: Any = None,
    similarity: str | Sequence[str] = ("soft_wpmi",),
    top: int = 5,
    logit_scale: float = DB_LOGIT_SCALE,
    clips: str = "all",
    k: int = 5,
    params: Any = None,
    template: str = "{}",
) -> dict[str, list[list[str]]]:
    """Description-based concepts of every neuron of one layer.

    ``captions[j]`` describes clip ``j`` = row ``j`` of ``activations`` (``[n_clips,
    n_neurons]``, one layer: WPMI-type scores are normalised over the neurons scored
    together). Returns ``{similarity name: [[best concept, ...top] per neuron]}``.
    ``clips``, ``k`` and ``params`` are those of :func:`db_scores`; ``template`` that of
    :func:`caption_concept_probs`.

    Note that plain ``cos`` is blind to the scale of a concept's probability column: a
    concept that is improbable everywhere but least improbable on a neuron's clips scores as
    high as the right one (with AND's sharp ``logit_scale`` of 100 such columns are common).
    ``cos3`` avoids this through its minimum norm; the WPMI functions work on probabilities.
    """
    acts = np.asarray(activations, dtype=np.float32)
    if len(captions) != acts.shape[0]:
        raise ValueError(f"{len(captions)} captions for {acts.shape[0]} activation rows")
    probs = caption_concept_probs(captions, concepts, embedder, logit_scale, template)
    names = list(concepts)
    return {
        fn: top_concepts(db_scores(probs, acts, fn, clips, k, params), names, top)
        for fn in _as_list(similarity)
    }
