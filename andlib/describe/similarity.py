"""Similarity functions between neurons and concepts (CLIP-Dissect / AND definitions).

Every function has the signature ::

    f(concept_probs[n_clips, n_concepts], activations[n_clips, n_neurons]) -> scores[n_neurons, n_concepts]

``concept_probs[j, c]`` says how much clip *j* is about concept *c* (for DB: the softmax over
concepts of caption-concept similarities; for TAB: the same from CLAP audio-text
similarities); ``activations[j, n]`` is neuron *n*'s response to clip *j*. A higher score means
a better match; a neuron's concept is ``scores[n].argmax()``.

The definitions are those of CLIP-Dissect (Oikarinen & Weng, 2023), which AND reuses,
reimplemented as tensor operations over all neurons at once. The default constants are
CLIP-Dissect's except where :class:`andlib.config.SimilarityConfig` says why not (WPMI's and
soft-WPMI's top sets scale with the probing set, and their ``p(c)`` comes from its clips):

- :func:`cos_similarity`: cosine between each neuron's activation column and each concept
  column, over all clips.
- :func:`cos_similarity_cubed`: the same after centring each column over clips and cubing it
  (emphasises the extremes).
- :func:`rank_reorder`: on each neuron's top clips, how much the activations change when the
  clips are reordered by a concept's score (lower error is better; returned negated).
- :func:`wpmi`: weighted pointwise mutual information,
  ``log p(c | top clips) - lam * log p(c)``, with ``p(c | top clips)`` the product of the top
  clips' (sharpened) concept probabilities and ``p(c)`` its mean over the layer's neurons.
- :func:`soft_wpmi`: WPMI with soft top-clip membership: clip of rank *r* counts with
  probability ``p_r`` falling linearly from ``p_start`` to ``p_end``, so
  ``log p(c | top) = sum_r log(1 + p_r (P[c] - 1))``.

``wpmi``/``soft_wpmi``/``rank_reorder`` restrict themselves to each neuron's top clips (``top_k``
is clamped to ``n_clips``), and ``wpmi``/``soft_wpmi`` normalise by ``p(c)`` across the
neurons scored together, so call them once per layer with the whole layer's activation matrix.

Functions accept NumPy arrays or tensors, compute in float32 (float64 when given float64) on
the input's device, and never modify their inputs. :data:`SIMILARITY_FUNCTIONS` maps the config
names (``concepts.similarity``) to the functions.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = np.ndarray | torch.Tensor

# Per-chunk working tables (soft-WPMI's (rank, clip) table, rank-reorder's gathered scores)
# stay below about this many bytes; the default sizes (2000 clips, 50 concepts) need one or a
# few chunks, so there are few parallel regions even on an oversubscribed CPU.
_TABLE_BYTES = 32 << 20


def _tensor(x: ArrayLike) -> torch.Tensor:
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x = np.array(x)  # e.g. a read-only memmap: torch wants writable memory
    return torch.as_tensor(x)


def _inputs(concept_probs: ArrayLike, activations: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    acts = _tensor(activations)
    probs = _tensor(concept_probs)
    dtype = torch.float64 if torch.float64 in (probs.dtype, acts.dtype) else torch.float32
    acts = acts.to(dtype)
    probs = probs.to(device=acts.device, dtype=dtype)
    if probs.ndim != 2 or acts.ndim != 2:
        raise ValueError(
            f"expected 2-D concept_probs [n_clips, n_concepts] and activations "
            f"[n_clips, n_neurons], got {tuple(probs.shape)} and {tuple(acts.shape)}"
        )
    if probs.shape[0] != acts.shape[0]:
        raise ValueError(
            f"concept_probs has {probs.shape[0]} clips but activations has {acts.shape[0]}"
        )
    if acts.shape[0] == 0:
        raise ValueError("no clips: cannot score neurons against concepts")
    return probs, acts


PRIORS = ("neurons", "clips")
"""How WPMI and soft-WPMI estimate ``log p(c)``: ``neurons`` (CLIP-Dissect's), ``log`` of the
mean of ``p(c | top)`` over the neurons scored together; ``clips``, the expected
``log p(c | top)`` of a top set of random clips of the probing set."""


def top_count(n_clips: int, top_k: int, top_fraction: float | None) -> int:
    """A top set's size: ``top_fraction`` of the clips (rounded) but at least ``top_k`` when a
    fraction is given, else ``top_k``; at least 1 and at most ``n_clips``."""
    k = int(top_k)
    if top_fraction is not None:
        if not 0 < top_fraction <= 1:
            raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}")
        k = max(k, round(top_fraction * n_clips))
    return min(max(1, k), n_clips)


def _wpmi_normalise(
    log_p_c_given_top: torch.Tensor, lam: float, log_p_c: torch.Tensor | None = None
) -> torch.Tensor:
    """``log p(c|top) - lam * log p(c)``; ``p(c)`` the mean of ``p(c|top)`` over neurons
    unless ``log_p_c`` (``[1, n_concepts]``, the ``clips`` prior) is given."""
    if log_p_c is None:
        n = log_p_c_given_top.shape[0]
        log_p_c = torch.logsumexp(log_p_c_given_top, dim=0, keepdim=True) - math.log(n)
    return log_p_c_given_top - lam * log_p_c


def _check_prior(prior: str) -> None:
    if prior not in PRIORS:
        raise ValueError(f"unknown prior {prior!r}; choose from {', '.join(PRIORS)}")


@torch.no_grad()
def cos_similarity(concept_probs: ArrayLike, activations: ArrayLike) -> torch.Tensor:
    """Cosine similarity between each neuron's activations and each concept, over all clips.

    A column of zeros (a dead neuron) scores 0 against every concept.
    """
    probs, acts = _inputs(concept_probs, activations)
    tiny = torch.finfo(acts.dtype).tiny
    probs = probs / probs.norm(dim=0, keepdim=True).clamp_min(tiny)
    acts = acts / acts.norm(dim=0, keepdim=True).clamp_min(tiny)
    return acts.T @ probs


@torch.no_grad()
def cos_similarity_cubed(
    concept_probs: ArrayLike, activations: ArrayLike, min_norm: float = 1e-3
) -> torch.Tensor:
    """Cosine similarity after centring each column over clips and cubing it.

    Cubing keeps the sign and stresses clips far from the mean. Column norms are clamped at
    ``min_norm`` (CLIP-Dissect's constant), so near-constant columns score near 0.
    """
    probs, acts = _inputs(concept_probs, activations)

    def centred_cubed(x: torch.Tensor) -> torch.Tensor:
        x = (x - x.mean(dim=0, keepdim=True)) ** 3
        return x / x.norm(dim=0, keepdim=True).clamp_min(min_norm)

    return centred_cubed(acts).T @ centred_cubed(probs)


@torch.no_grad()
def wpmi(
    concept_probs: ArrayLike,
    activations: ArrayLike,
    top_k: int = 5,
    a: float = 2.0,
    lam: float = 0.6,
    min_prob: float = 1e-7,
    top_fraction: float | None = 0.0025,
    prior: str = "clips",
) -> torch.Tensor:
    """Weighted pointwise mutual information over each neuron's top clips.

    ``P = softmax(a * concept_probs)`` over concepts; ``log p(c|top) = sum over the top clips of
    log(P[clip, c] + min_prob)``; the score is ``log p(c|top) - lam * log p(c)``, ``p(c)`` the
    mean of ``p(c|top)`` over the neurons scored together (``prior="neurons"``) or the expected
    ``log p(c|top)`` of as many random clips (``prior="clips"``: ``k`` times the mean over clips
    of ``log(P[clip, c] + min_prob)``). The top set is ``top_k`` clips, or ``top_fraction`` of
    the clips when that is given.

    All neurons' sums are one fused gather-and-sum (``embedding_bag``) over the clips' log
    probabilities: no ``top_k x n_neurons x n_concepts`` temporary.
    """
    _check_prior(prior)
    probs, acts = _inputs(concept_probs, activations)
    k = top_count(acts.shape[0], top_k, top_fraction)
    log_p = torch.log(torch.softmax(a * probs, dim=1) + min_prob)  # [n_clips, n_concepts]
    top = torch.topk(acts, k=k, dim=0).indices  # [k, n_neurons]
    log_p_c = k * log_p.mean(dim=0, keepdim=True) if prior == "clips" else None
    return _wpmi_normalise(F.embedding_bag(top.T.contiguous(), log_p, mode="sum"), lam, log_p_c)


@torch.no_grad()
def soft_wpmi(
    concept_probs: ArrayLike,
    activations: ArrayLike,
    top_k: int = 5,
    a: float = 10.0,
    lam: float = 1.0,
    min_prob: float = 1e-7,
    p_start: float = 0.998,
    p_end: float = 0.97,
    chunk_size: int | None = None,
    top_fraction: float | None = 0.0025,
    prior: str = "clips",
) -> torch.Tensor:
    """Soft WPMI: WPMI where the clip of rank ``r`` is in the top set with probability ``p_r``.

    ``p_r = p_start - r / k * (p_start - p_end)`` for ``r = 0 .. k-1`` (``k = min(top_k,
    n_clips)``, as in AND's version, or ``top_fraction`` of the clips when given);
    ``log p(c|top) = sum_r log(1 + p_r * (P[clip_r, c] - 1) + min_prob)`` with
    ``P = softmax(a * concept_probs)``; score ``= log p(c|top) - lam * log p(c)`` as in
    :func:`wpmi`. With ``prior="clips"``, ``log p(c)`` is the same sum's expectation when
    every rank holds a random clip: ``sum_r mean_j log(1 + p_r * (P[j, c] - 1) + min_prob)``.

    The term depends only on the pair (rank, clip), so each distinct pair among a chunk of
    neurons is computed once (in place) and every neuron's sum is a fused gather-and-sum
    (``embedding_bag``) over that table. Gathering every neuron's top clips first would
    allocate ``top_k x n_neurons x n_concepts`` temporaries and run slower than a per-neuron
    loop; here the table is at most ``_TABLE_BYTES`` (chunks of neurons bound it).
    ``chunk_size`` (neurons per chunk) overrides the automatic choice.
    """
    _check_prior(prior)
    probs, acts = _inputs(concept_probs, activations)
    n_clips, n_neurons = acts.shape
    n_concepts = probs.shape[1]
    k = top_count(n_clips, top_k, top_fraction)
    sharp = torch.softmax(a * probs, dim=1)
    top = torch.topk(acts, k=k, dim=0).indices  # [k, n_neurons]
    # p_r and 1 - p_r + min_prob in float64: 1 - p_r is small (~0.002) and would lose digits.
    p64 = p_start - torch.arange(k, dtype=torch.float64, device=probs.device) / k * (
        p_start - p_end
    )
    p, shift = p64.to(probs.dtype), (1.0 - p64 + min_prob).to(probs.dtype)
    # One id per (rank, clip) pair.
    pair = top + (torch.arange(k, device=top.device) * n_clips).unsqueeze(1)

    out = torch.empty(n_neurons, n_concepts, dtype=probs.dtype, device=probs.device)
    step = chunk_size or max(1, _TABLE_BYTES // (k * n_concepts * probs.element_size()))
    for start in range(0, n_neurons, step):
        ids, inverse = torch.unique(pair[:, start : start + step], return_inverse=True)
        rank, clip = ids // n_clips, ids % n_clips
        # log(1 + p_r (P - 1) + min_prob) = log(p_r P + (1 - p_r + min_prob)): no cancellation.
        table = sharp.index_select(0, clip).mul_(p[rank, None]).add_(shift[rank, None]).log_()
        out[start : start + step] = F.embedding_bag(inverse.T.contiguous(), table, mode="sum")
    log_p_c = None
    if prior == "clips":  # sum over ranks of the mean over clips, one rank at a time
        log_p_c = torch.zeros(1, n_concepts, dtype=probs.dtype, device=probs.device)
        for r in range(k):
            log_p_c += (sharp * p[r] + shift[r]).log_().mean(dim=0, keepdim=True)
    return _wpmi_normalise(out, lam, log_p_c)


def stable_argsort(x: torch.Tensor) -> torch.Tensor:
    """``torch.argsort(x, dim=-1, stable=True)``, faster for float32 on the CPU.

    Rank reorder sorts ``n_neurons x n_concepts`` short rows (10^6 of them at 10^4 neurons),
    where torch's stable sort costs ~20 us a row. Each float32 becomes an integer with the
    same order (``-0.0`` counted as ``0.0``, as comparisons do), its position in the row goes
    in the low 32 bits, and NumPy's (vectorized) sort of these distinct int64 keys gives
    exactly the stable order: equal values keep their positions. Other dtypes or devices,
    rows of 2^31 or more, and NaNs take torch's stable sort.
    """
    n = x.shape[-1] if x.ndim else 0
    if x.dtype != torch.float32 or x.device.type != "cpu" or x.numel() == 0 or n >= 2**31:
        return torch.argsort(x, dim=-1, stable=True)
    a = np.add(x.numpy(), np.float32(0.0))  # a contiguous copy, -0.0 made 0.0
    low = a.min()
    if np.isnan(low):
        return torch.argsort(x, dim=-1, stable=True)
    bits = a.view(np.int32)
    if low < 0:  # negative floats: reverse their order (non-negative ones sort as they are)
        bits ^= (bits >> 31) & 0x7FFFFFFF
    keys = np.left_shift(bits, 32, dtype=np.int64)
    keys |= np.arange(n, dtype=np.int64)
    keys.sort(axis=-1)
    keys &= 0xFFFFFFFF
    return torch.from_numpy(keys)


@torch.no_grad()
def rank_reorder(
    concept_probs: ArrayLike,
    activations: ArrayLike,
    top_k: int | None = None,
    top_fraction: float = 0.05,
    p: float = 3.0,
    scale_p: float = 0.5,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Rank reorder: does sorting a neuron's top clips by a concept preserve its activations?

    On each neuron's top clips (``top_k`` of them, or ``top_fraction`` of all clips as in
    CLIP-Dissect when ``top_k`` is None; at least 2 when there are 2 clips), every clip gets
    the activation of the same rank in the concept's order (the clip with the highest concept
    score gets the highest activation). The error is ``mean |a - a_reordered|^p`` divided by
    the error of a random order and by ``mean concept score on the top clips ** scale_p``;
    the score is its negation.

    Two deliberate departures from CLIP-Dissect's code, neither of which changes a neuron's
    concept ranking: the random-order baseline is its exact expectation
    ``mean_ij |a_i - a_j|^p`` (CLIP-Dissect draws five random permutations, so its scores
    vary from run to run), and the mean concept score is clamped at a tiny positive value
    (AND clamps it at 0), so negative inputs cannot produce NaN. Ties are broken stably.

    Vectorised over chunks of neurons (``chunk_size`` overrides the automatic size): one sort
    per (neuron, concept) along a contiguous axis; the clip sorted to place ``j`` is compared
    with the ``j``-th smallest activation, which equals CLIP-Dissect's double-argsort ranks.
    """
    probs, acts = _inputs(concept_probs, activations)
    n_clips, n_neurons = acts.shape
    n_concepts = probs.shape[1]
    k = int(top_k) if top_k is not None else int(n_clips * top_fraction)
    k = min(max(k, 2), n_clips)
    vals, top = torch.topk(acts, k=k, dim=0)  # descending, [k, n_neurons]
    vals_t = vals.T.contiguous()  # [n_neurons, k]
    asc_t = vals_t.flip(1)  # ascending activations
    tiny = torch.finfo(probs.dtype).tiny
    probs_t = probs.T.contiguous()  # [n_concepts, n_clips]

    out = torch.empty(n_neurons, n_concepts, dtype=probs.dtype, device=probs.device)
    step = chunk_size or max(1, _TABLE_BYTES // (4 * k * n_concepts * probs.element_size()))
    for start in range(0, n_neurons, step):
        v, asc = vals_t[start : start + step], asc_t[start : start + step]  # [c, k]
        c = v.shape[0]
        idx = top[:, start : start + step].T.reshape(-1)
        scores = probs_t.index_select(1, idx).view(n_concepts, c, k).transpose(0, 1)  # [c, C, k]
        order = stable_argsort(scores)
        err = torch.gather(v.unsqueeze(1).expand(c, n_concepts, k), 2, order)
        err = err.sub_(asc.unsqueeze(1)).abs_().pow_(p).mean(dim=-1)  # [c, n_concepts]
        baseline = (v.unsqueeze(1) - v.unsqueeze(2)).abs_().pow_(p).mean(dim=(1, 2))
        mean_score = scores.mean(dim=-1).clamp_(min=tiny)
        out[start : start + c] = -(err / baseline.clamp_(min=tiny).unsqueeze(1)) / mean_score.pow_(
            scale_p
        )
    return out


SimilarityFn = Callable[..., torch.Tensor]

SIMILARITY_FUNCTIONS: dict[str, SimilarityFn] = {
    "soft_wpmi": soft_wpmi,
    "wpmi": wpmi,
    "cos": cos_similarity,
    "cos3": cos_similarity_cubed,
    "rank_reorder": rank_reorder,
}
"""Config names (``concepts.similarity``) -> similarity functions."""


def similarity_kwargs(name: str, params: Any = None) -> dict[str, Any]:
    """The constants of similarity function ``name`` from ``params`` (a
    :class:`andlib.config.SimilarityConfig`, ``concepts.similarity_params``; ``None``: none,
    the functions' own defaults, which equal the config's defaults)."""
    if params is None:
        return {}
    if name not in SIMILARITY_FUNCTIONS:
        get_similarity(name)  # raises, naming the valid functions
    return {arg: getattr(params, field) for arg, field in _PARAM_FIELDS.get(name, {}).items()}


_PARAM_FIELDS: dict[str, dict[str, str]] = {
    "soft_wpmi": {
        "top_k": "soft_wpmi_top_k",
        "a": "soft_wpmi_a",
        "lam": "soft_wpmi_lam",
        "min_prob": "min_prob",
        "p_start": "soft_wpmi_p_start",
        "p_end": "soft_wpmi_p_end",
        "top_fraction": "soft_wpmi_top_fraction",
        "prior": "soft_wpmi_prior",
    },
    "wpmi": {
        "top_k": "wpmi_top_k",
        "a": "wpmi_a",
        "lam": "wpmi_lam",
        "min_prob": "min_prob",
        "top_fraction": "wpmi_top_fraction",
        "prior": "wpmi_prior",
    },
    "rank_reorder": {
        "top_k": "rank_reorder_top_k",
        "top_fraction": "rank_reorder_top_fraction",
        "p": "rank_reorder_p",
        "scale_p": "rank_reorder_scale_p",
    },
    "cos3": {"min_norm": "cos3_min_norm"},
}
"""Each similarity function's keyword arguments -> their ``SimilarityConfig`` fields."""


def get_similarity(name: str, params: Any = None) -> SimilarityFn:
    """The similarity function a config names, or a ``ValueError`` listing the valid names.

    With ``params`` (``concepts.similarity_params``) its constants are bound
    (:func:`similarity_kwargs`).
    """
    try:
        fn = SIMILARITY_FUNCTIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown similarity function {name!r}; choose from {', '.join(SIMILARITY_FUNCTIONS)}"
        ) from None
    kwargs = similarity_kwargs(name, params)
    return functools.partial(fn, **kwargs) if kwargs else fn


def top_concepts(scores: ArrayLike, concepts: list[str], top: int = 5) -> list[list[str]]:
    """The ``top`` best-scoring concept names for each neuron (row of ``scores``), best first."""
    return top_concepts_scored(scores, concepts, top)[0]


def top_concepts_scored(
    scores: ArrayLike, concepts: list[str], top: int = 5
) -> tuple[list[list[str]], list[list[float]]]:
    """:func:`top_concepts` and each of those concepts' scores, best first."""
    s = torch.as_tensor(scores)
    k = min(top, s.shape[1])
    values, idx = torch.topk(s, k=k, dim=1)
    return [[concepts[i] for i in row] for row in idx.tolist()], values.tolist()
