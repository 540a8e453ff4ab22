"""andlib.describe.similarity: the similarity functions of DB."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch

from andlib.config import SimilarityConfig
from andlib.describe import concepts as C
from andlib.describe import similarity as S
from andlib.describe.similarity import (
    SIMILARITY_FUNCTIONS,
    cos_similarity,
    cos_similarity_cubed,
    get_similarity,
    rank_reorder,
    soft_wpmi,
    stable_argsort,
    top_concepts,
    wpmi,
)


def loop_cos(probs: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    rows = []
    for n in range(acts.shape[1]):
        a = acts[:, n]
        row = [
            float(a @ probs[:, c]) / max(float(a.norm() * probs[:, c].norm()), 1e-300)
            for c in range(probs.shape[1])
        ]
        rows.append(row)
    return torch.tensor(rows, dtype=probs.dtype)


def loop_cos3(probs: torch.Tensor, acts: torch.Tensor, min_norm: float = 1e-3) -> torch.Tensor:
    pc = (probs - probs.mean(0)) ** 3
    pc = pc / pc.norm(dim=0).clamp_min(min_norm)
    rows = []
    for n in range(acts.shape[1]):
        a = (acts[:, n] - acts[:, n].mean()) ** 3
        a = a / a.norm().clamp_min(min_norm)
        rows.append(a @ pc)
    return torch.stack(rows)


def _normalise(log_p: torch.Tensor, lam: float) -> torch.Tensor:
    n = log_p.shape[0]
    log_mean = torch.log(torch.exp(log_p - log_p.max(0).values).mean(0)) + log_p.max(0).values
    return log_p - lam * log_mean.unsqueeze(0) if n else log_p


def _k(n_clips, top_k, top_fraction):
    k = top_k if top_fraction is None else max(top_k, round(top_fraction * n_clips))
    return min(max(1, k), n_clips)


def loop_wpmi(probs, acts, top_k=5, a=2.0, lam=0.6, min_prob=1e-7, top_fraction=0.0025,
              prior="clips"):  # fmt: skip
    k = _k(acts.shape[0], top_k, top_fraction)
    sharp = torch.softmax(a * probs, dim=1)
    rows = []
    for n in range(acts.shape[1]):
        top = torch.topk(acts[:, n], k).indices
        rows.append(torch.log(sharp[top] + min_prob).sum(0))
    if prior == "clips":  # k random clips: k times the mean log probability over clips
        return torch.stack(rows) - lam * k * torch.log(sharp + min_prob).mean(0)
    return _normalise(torch.stack(rows), lam)


def loop_soft_wpmi(probs, acts, top_k=5, a=10.0, lam=1.0, min_prob=1e-7, p_start=0.998,
                   p_end=0.97, top_fraction=0.0025, prior="clips"):  # fmt: skip
    k = _k(acts.shape[0], top_k, top_fraction)
    sharp = torch.softmax(a * probs, dim=1)
    p_in = (p_start - torch.arange(k, dtype=probs.dtype) / k * (p_start - p_end)).unsqueeze(1)
    rows = []
    for n in range(acts.shape[1]):
        top = torch.topk(acts[:, n], k).indices
        rows.append(torch.log(1 + p_in * (sharp[top] - 1) + min_prob).sum(0))
    if prior == "clips":  # every rank r holding a random clip
        expected = sum(torch.log(1 + p_in[r] * (sharp - 1) + min_prob).mean(0) for r in range(k))
        return torch.stack(rows) - lam * expected
    return _normalise(torch.stack(rows), lam)


def loop_rank_reorder(probs, acts, top_k=None, top_fraction=0.05, p=3.0, scale_p=0.5):
    n_clips = acts.shape[0]
    k = top_k if top_k is not None else int(n_clips * top_fraction)
    k = min(max(k, 2), n_clips)
    rows = []
    for n in range(acts.shape[1]):
        vals, top = torch.topk(acts[:, n], k)  # descending
        asc = vals.flip(0)
        baseline = sum(abs(float(x) - float(y)) ** p for x in vals for y in vals) / k**2
        baseline = max(baseline, torch.finfo(probs.dtype).tiny)
        row = []
        for c in range(probs.shape[1]):
            scores = probs[top, c]
            ranks = torch.argsort(torch.argsort(scores, stable=True), stable=True)
            err = float((vals - asc[ranks]).abs().pow(p).mean())
            row.append(-(err / baseline) / float(scores.mean().clamp_min(1e-300)) ** scale_p)
        rows.append(row)
    return torch.tensor(rows, dtype=probs.dtype)


LOOPS = {
    "cos": loop_cos,
    "cos3": loop_cos3,
    "wpmi": loop_wpmi,
    "soft_wpmi": loop_soft_wpmi,
    "rank_reorder": loop_rank_reorder,
}


def random_case(n_clips=60, n_neurons=23, n_concepts=7, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(4 * torch.randn(n_clips, n_concepts, generator=g, dtype=dtype), dim=1)
    acts = torch.randn(n_clips, n_neurons, generator=g, dtype=dtype)
    return probs, acts


@pytest.mark.parametrize("name", list(LOOPS))
@pytest.mark.parametrize("n_clips", [60, 7])
def test_vectorised_equals_per_neuron_loop(name, n_clips):
    probs, acts = random_case(n_clips=n_clips)
    fast = SIMILARITY_FUNCTIONS[name](probs, acts)
    slow = LOOPS[name](probs, acts)
    assert fast.shape == (acts.shape[1], probs.shape[1])
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(LOOPS))
def test_float32_matches_float64_loop(name):
    probs, acts = random_case(n_clips=120, n_neurons=40, n_concepts=9, seed=3)
    fast = SIMILARITY_FUNCTIONS[name](probs.float().numpy(), acts.float().numpy())
    assert fast.dtype == torch.float32
    slow = LOOPS[name](probs, acts).float()
    # (soft) WPMI sums ~100 logs of size ~6 before normalising: float32 keeps ~1e-4 of it.
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_chunking_does_not_change_results(chunk):
    probs, acts = random_case(n_clips=50, n_neurons=17)
    torch.testing.assert_close(soft_wpmi(probs, acts, chunk_size=chunk), soft_wpmi(probs, acts))
    torch.testing.assert_close(
        rank_reorder(probs, acts, top_k=9, chunk_size=chunk), rank_reorder(probs, acts, top_k=9)
    )


CLIP_DISSECT = {
    "wpmi": {"top_k": 28, "top_fraction": None, "prior": "neurons"},
    "soft_wpmi": {"top_k": 100, "top_fraction": None, "prior": "neurons"},
}


@pytest.mark.parametrize("name", list(CLIP_DISSECT))
@pytest.mark.parametrize("n_clips", [60, 7, 700])
def test_clip_dissect_constants_match_loops(name, n_clips):
    probs, acts = random_case(n_clips=n_clips)
    kw = CLIP_DISSECT[name]
    fast = SIMILARITY_FUNCTIONS[name](probs, acts, **kw)
    torch.testing.assert_close(fast, LOOPS[name](probs, acts, **kw), rtol=1e-5, atol=1e-5)


def test_the_clips_prior_does_not_depend_on_the_other_neurons():
    probs, acts = random_case(n_clips=300, n_neurons=12, seed=2)
    for fn in (wpmi, soft_wpmi):
        alone = fn(probs, acts[:, :1])
        together = fn(probs, acts)[:1]
        torch.testing.assert_close(alone, together)
        with pytest.raises(ValueError, match="prior"):
            fn(probs, acts, prior="layer")


def test_top_fraction_scales_the_top_set_with_the_clips_and_top_k_is_its_floor():
    from andlib.describe.similarity import top_count

    assert top_count(2000, 5, 0.0025) == 5
    assert top_count(5000, 5, 0.0025) == 12
    assert top_count(500, 5, 0.0025) == 5  # never fewer than top_k
    assert top_count(3, 5, 0.0025) == 3  # never more than the clips
    assert top_count(2000, 100, None) == 100
    with pytest.raises(ValueError, match="top_fraction"):
        top_count(10, 1, 1.5)


def test_non_default_constants_match_loops():
    probs, acts = random_case(n_clips=40, n_neurons=11, seed=5)
    torch.testing.assert_close(
        soft_wpmi(probs, acts, top_k=12, a=3, lam=0.5, p_start=0.9, p_end=0.5),
        loop_soft_wpmi(probs, acts, top_k=12, a=3, lam=0.5, p_start=0.9, p_end=0.5),
    )
    torch.testing.assert_close(
        wpmi(probs, acts, top_k=5, a=1, lam=1.0), loop_wpmi(probs, acts, top_k=5, a=1, lam=1.0)
    )
    torch.testing.assert_close(
        rank_reorder(probs, acts, top_k=10, p=2, scale_p=1.0),
        loop_rank_reorder(probs, acts, top_k=10, p=2, scale_p=1.0),
    )


def test_inputs_are_not_modified():
    probs, acts = random_case()
    p0, a0 = probs.clone(), acts.clone()
    for fn in SIMILARITY_FUNCTIONS.values():
        fn(probs, acts)
    assert torch.equal(probs, p0) and torch.equal(acts, a0)


def test_cos_hand_checked():
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    acts = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]])
    expected = torch.tensor([[1 / math.sqrt(2), 0.0], [1 / math.sqrt(2), 1 / math.sqrt(2)]])
    torch.testing.assert_close(cos_similarity(probs, acts), expected)


def test_cos_dead_neuron_scores_zero():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    acts = torch.zeros(2, 1)
    assert torch.equal(cos_similarity(probs, acts), torch.zeros(1, 2))


def test_cos_cubed_hand_checked():
    # centred columns: concept 0 -> (+.5, -.5), concept 1 -> (-.5, +.5), neuron -> (+1, -1);
    # after cubing and normalising they are +-(1, -1)/sqrt(2): cosines +1 and -1.
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    acts = torch.tensor([[2.0], [0.0]])
    torch.testing.assert_close(cos_similarity_cubed(probs, acts), torch.tensor([[1.0, -1.0]]))


def test_wpmi_hand_checked():
    # Two neurons whose single top clip is clip 0 and clip 1; a=0 makes P uniform except
    # through min_prob, so use a=1 and compute softmax by hand.
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    acts = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    e = math.e
    hi, lo = e / (e + 1), 1 / (e + 1)
    log_given = torch.tensor(
        [[math.log(hi + 1e-7), math.log(lo + 1e-7)], [math.log(lo + 1e-7), math.log(hi + 1e-7)]],
        dtype=torch.float64,
    )
    log_p_c = math.log(((hi + 1e-7) + (lo + 1e-7)) / 2)
    expected = log_given - 0.6 * log_p_c
    clip_dissect = {"top_fraction": None, "prior": "neurons"}
    torch.testing.assert_close(wpmi(probs, acts, top_k=1, a=1.0, **clip_dissect), expected)
    # The neuron prefers the concept of its top clip.
    assert wpmi(probs, acts, top_k=1, **clip_dissect).argmax(1).tolist() == [0, 1]
    # The clips prior: log p(c) is the mean over clips of log P[clip, c] (a top set of one
    # clip), here the same for both concepts.
    clips_prior = (math.log(hi + 1e-7) + math.log(lo + 1e-7)) / 2
    torch.testing.assert_close(
        wpmi(probs, acts, top_k=1, a=1.0, top_fraction=None), log_given - 0.6 * clips_prior
    )


def test_soft_wpmi_hand_checked_and_top_k_clamped():
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=torch.float64)
    acts = torch.tensor([[3.0, 0.0], [1.0, 2.0], [0.0, 1.0]], dtype=torch.float64)
    sharp = torch.softmax(10 * probs, dim=1)
    # default top_k=100 is clamped to the 3 clips: p = .998, .998 - (1/3)(.028), .998 - (2/3)(.028)
    p = [0.998 - r / 3 * 0.028 for r in range(3)]
    order = [[0, 1, 2], [1, 2, 0]]
    log_given = torch.tensor(
        [
            [
                sum(
                    math.log(1 + p[r] * (float(sharp[clip, c]) - 1) + 1e-7)
                    for r, clip in enumerate(o)
                )
                for c in range(2)
            ]
            for o in order
        ],
        dtype=torch.float64,
    )
    log_p_c = torch.logsumexp(log_given, dim=0) - math.log(2)
    clip_dissect = {"top_k": 100, "top_fraction": None, "prior": "neurons"}
    torch.testing.assert_close(soft_wpmi(probs, acts, lam=1.0, **clip_dissect), log_given - log_p_c)
    assert soft_wpmi(probs, acts, **clip_dissect).argmax(1).tolist() == [0, 1]
    # The clips prior: each rank's term averaged over the three clips, summed over ranks.
    prior = torch.tensor(
        [
            sum(
                sum(math.log(1 + p[r] * (float(sharp[j, c]) - 1) + 1e-7) for j in range(3)) / 3
                for r in range(3)
            )
            for c in range(2)
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(
        soft_wpmi(probs, acts, top_k=100, top_fraction=None), log_given - prior
    )


def test_rank_reorder_hand_checked():
    # Top 3 activations 3 > 2 > 1. Concept 0 ranks the clips the same way: no error, score 0.
    # Concept 1 ranks them backwards: reordered activations (1, 2, 3), errors |2|^3, 0, |2|^3
    # -> 16/3; random-order baseline mean_ij |a_i - a_j|^3 = 2 (1 + 8 + 1) / 9 = 20/9;
    # mean concept score 0.2 -> score = -(16/3) / (20/9) / sqrt(0.2).
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.2], [0.3, 0.3]], dtype=torch.float64)
    acts = torch.tensor([[3.0], [2.0], [1.0]], dtype=torch.float64)
    out = rank_reorder(probs, acts, top_k=3)
    expected = torch.tensor([[0.0, -(16 / 3) / (20 / 9) / math.sqrt(0.2)]], dtype=torch.float64)
    torch.testing.assert_close(out, expected)


def test_rank_reorder_default_uses_five_percent_of_clips():
    probs, acts = random_case(n_clips=200, n_neurons=5)
    torch.testing.assert_close(rank_reorder(probs, acts), rank_reorder(probs, acts, top_k=10))


def test_planted_concept_is_found_by_every_function():
    g = torch.Generator().manual_seed(1)
    n_clips, n_concepts = 300, 6
    labels = torch.randint(0, n_concepts, (n_clips,), generator=g)
    probs = torch.full((n_clips, n_concepts), 0.02)
    probs[torch.arange(n_clips), labels] = 0.9
    acts = torch.randn(n_clips, n_concepts, generator=g) * 0.1
    acts[torch.arange(n_clips), labels] += 2.0  # neuron c fires for concept c
    for name, fn in SIMILARITY_FUNCTIONS.items():
        assert fn(probs, acts).argmax(1).tolist() == list(range(n_concepts)), name


def test_registry_and_errors():
    assert set(SIMILARITY_FUNCTIONS) == {"soft_wpmi", "wpmi", "cos", "cos3", "rank_reorder"}
    assert get_similarity("cos3") is cos_similarity_cubed
    with pytest.raises(ValueError, match="soft_wpmi"):
        get_similarity("nope")
    with pytest.raises(ValueError, match="clips"):
        cos_similarity(np.ones((3, 2)), np.ones((4, 2)))


def test_top_concepts():
    scores = torch.tensor([[0.1, 0.9, 0.5], [3.0, 1.0, 2.0]])
    assert top_concepts(scores, ["a", "b", "c"], top=2) == [["b", "c"], ["a", "c"]]
    assert top_concepts(scores, ["a", "b", "c"], top=5) == [["b", "c", "a"], ["a", "c", "b"]]


@pytest.mark.parametrize(
    "x",
    [
        torch.randn(6, 7, 100, generator=torch.Generator().manual_seed(0)),  # negatives
        torch.randint(-3, 4, (40, 30)).float(),  # many ties
        torch.softmax(100 * torch.randn(8, 50, generator=torch.Generator().manual_seed(1)), 1),
        torch.tensor([[0.0, -0.0, 1.0, -0.0, 0.0, math.inf, -math.inf, -1.0, 1e-45, -1e-45]]),
        torch.rand(5, 4, 9).transpose(0, 1),  # not contiguous
        torch.tensor([[1.0, math.nan, 0.0, math.nan]]),  # NaN: torch's own sort
        torch.randn(4, 6, dtype=torch.float64),  # float64: torch's own sort
        torch.randn(0, 5),
    ],
)
def test_stable_argsort_is_torchs_stable_argsort(x):
    """Rank reorder's fast sort: the same indices as torch's stable sort, ties (-0.0 = 0.0
    included) in their original order."""
    expected = torch.argsort(x, dim=-1, stable=True)
    got = stable_argsort(x)
    assert got.dtype == expected.dtype and torch.equal(got, expected)


@pytest.mark.parametrize("name", list(S.SIMILARITY_FUNCTIONS))
def test_default_similarity_params_are_the_functions_own_defaults(name):
    kwargs = S.similarity_kwargs(name, SimilarityConfig())
    sig = inspect.signature(S.SIMILARITY_FUNCTIONS[name])
    assert kwargs == {k: sig.parameters[k].default for k in kwargs}
    rng = np.random.default_rng(0)
    probs = torch.softmax(torch.as_tensor(rng.normal(size=(120, 6))), dim=1).numpy()
    acts = rng.normal(size=(120, 9))
    plain = S.get_similarity(name)(probs, acts)
    bound = S.get_similarity(name, SimilarityConfig())(probs, acts)
    assert torch.equal(plain, bound)  # defaults keep every result identical


def test_similarity_params_reach_the_functions():
    # Concept A on the neuron's single top clip, B on the next 99: soft-WPMI over its top 100
    # clips picks B, over its top clip only it picks A.
    n = 200
    acts = np.linspace(1.0, 0.0, n)[:, None].astype(np.float32)
    probs = np.full((n, 2), 0.5, dtype=np.float32)
    probs[0] = [1.0, 0.0]
    probs[1:100] = [0.0, 1.0]
    # lam = 0: one neuron alone, so no p(c) normalisation (it would cancel every score)
    wide = C.db_scores(probs, acts, "soft_wpmi", params=SimilarityConfig(soft_wpmi_lam=0.0))
    narrow = C.db_scores(
        probs, acts, "soft_wpmi", params=SimilarityConfig(soft_wpmi_top_k=1, soft_wpmi_lam=0.0)
    )
    assert int(wide[0].argmax()) == 1 and int(narrow[0].argmax()) == 0
