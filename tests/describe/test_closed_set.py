"""andlib.describe.closed_set: Module A's description-based (DB) concepts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from andlib.config import Config, SimilarityConfig
from andlib.describe import concepts as C
from andlib.describe import similarity as S
from andlib.describe.concepts import (
    db_concepts,
    db_scores,
    load_concept_set,
)
from andlib.describe.similarity import SIMILARITY_FUNCTIONS

ESC50 = load_concept_set("esc50")


@pytest.fixture(scope="module")
def embedder():
    from andlib.text.embeddings import get_embedder

    return get_embedder()


GROUPS = {
    "dog": "A dog barks loudly several times.",
    "rain": "Heavy rain is falling on a roof.",
    "engine": "A car engine is running and idling.",
}


def planted_case(n_per_group=150, seed=0):
    """Clips of three kinds; neuron i fires for kind i, neuron 3 is noise."""
    rng = np.random.default_rng(seed)
    kinds = np.repeat(np.arange(3), n_per_group)
    captions = [list(GROUPS.values())[k] for k in kinds]
    acts = rng.normal(0, 0.1, (len(kinds), 4)).astype(np.float32)
    for k in range(3):
        acts[kinds == k, k] += 2.0
    return captions, acts


def test_db_finds_the_planted_concept_with_every_similarity(embedder):
    captions, acts = planted_case()
    fns = ["soft_wpmi", "wpmi", "cos3", "rank_reorder"]
    out = db_concepts(captions, ESC50, acts, embedder, similarity=fns, top=5)
    assert set(out) == set(fns)
    for fn in fns:
        assert [row[0] for row in out[fn][:3]] == ["dog", "rain", "engine"], fn
        assert all(len(row) == 5 and len(set(row)) == 5 for row in out[fn])
    # Plain cosine ignores a concept column's scale, so with AND's sharp softmax (x100) a
    # concept improbable everywhere but least so on dog clips ties with "dog"; a milder
    # softmax makes the columns comparable.
    out = db_concepts(captions, ESC50, acts, embedder, similarity="cos", logit_scale=10)
    assert [row[0] for row in out["cos"][:3]] == ["dog", "rain", "engine"]


def test_db_checks_row_count(embedder):
    with pytest.raises(ValueError, match="2 captions for 3"):
        db_concepts(["a", "b"], ESC50, np.zeros((3, 1)), embedder)


def planted_layer(n_clips: int, seed: int = 0, n_concepts: int = 50, n_neurons: int = 100):
    """Clips of ``n_concepts`` balanced classes whose captions name the right class for 70 %
    of clips (else a random class) and are all vaguely similar to concept 0 (a diffuse concept,
    as "wind" is to noisy captions); neurons that each fire on one class (1..n_concepts-1), on
    top of a factor shared by every neuron (loudness) and noise. Returns
    ``(concept_probs, activations, planted class per neuron)``."""
    g = np.random.default_rng(seed)
    labels = np.arange(n_clips) % n_concepts
    g.shuffle(labels)
    named = np.where(g.random(n_clips) < 0.7, labels, g.integers(0, n_concepts, n_clips))
    cos = 0.3 + 0.02 * g.standard_normal((n_clips, n_concepts))
    cos[np.arange(n_clips), named] += 0.3
    cos[:, 0] += 0.25
    probs = torch.softmax(torch.tensor(100 * cos, dtype=torch.float32), dim=1).numpy()
    planted = g.integers(1, n_concepts, n_neurons)
    shared = g.standard_normal(n_clips)[:, None]
    acts = (labels[:, None] == planted[None]) * 2.0 + 0.3 * shared
    acts = acts + 0.3 * g.standard_normal((n_clips, n_neurons))
    return probs, acts.astype(np.float32), planted


@pytest.mark.parametrize("n_clips", [500, 5000])
@pytest.mark.parametrize("name", list(SIMILARITY_FUNCTIONS))
def test_every_db_function_names_the_planted_class(name, n_clips):
    params = Config().concepts.similarity_params
    assert Config().concepts.db_clips == "all"
    probs, acts, planted = planted_layer(n_clips)
    scores = db_scores(probs, acts, name, "all", 5, params)
    named = scores.argmax(dim=1).numpy()
    assert np.mean(named == planted) >= 0.9


def test_db_top_k_scores_each_neuron_on_its_own_top_clips():
    # Concept A is what the neuron's two top clips are about; B what its eight moderately
    # active clips are about. Cosine over every clip sides with B, over the top 2 with A.
    acts = np.array([10, 9, 5, 5, 5, 5, 5, 5, 5, 5], dtype=np.float32)[:, None]
    probs = np.zeros((10, 2), dtype=np.float32)
    probs[:2, 0] = 1.0
    probs[2:, 1] = 1.0
    every = C.db_scores(probs, acts, "cos", "all")
    top = C.db_scores(probs, acts, "cos", "top_k", k=2)
    assert int(every[0].argmax()) == 1 and int(top[0].argmax()) == 0
    # a clip outside the neuron's top K cannot change its top-K scores
    probs2 = probs.copy()
    probs2[5] = [1.0, 0.0]
    assert torch.equal(C.db_scores(probs2, acts, "cos", "top_k", k=2), top)
    assert not torch.equal(C.db_scores(probs2, acts, "cos", "all"), every)


def test_db_top_k_neurons_are_scored_alone_and_rows_can_be_picked():
    rng = np.random.default_rng(1)
    probs = torch.softmax(torch.as_tensor(rng.normal(size=(30, 4))), dim=1).float().numpy()
    acts = rng.normal(size=(30, 5)).astype(np.float32)
    full = C.db_scores(probs, acts, "wpmi", "top_k", k=5)
    assert full.shape == (5, 4)
    for n in range(5):
        top = np.argsort(-acts[:, n], kind="stable")[:5]
        alone = S.wpmi(probs[top], acts[top, n : n + 1])[0]
        assert torch.allclose(full[n], alone)
    assert torch.equal(C.db_scores(probs, acts, "wpmi", "top_k", k=5, neurons=[3, 1]), full[[3, 1]])
    # AND's degeneracy: soft-WPMI with lam = 1 and CLIP-Dissect's p(c) (the mean over the
    # neurons scored together) on one neuron scores every concept 0; the clips prior does not.
    paper = SimilarityConfig(soft_wpmi_prior="neurons")
    zeros = torch.zeros(5, 4)
    assert torch.allclose(C.db_scores(probs, acts, "soft_wpmi", "top_k", k=5, params=paper), zeros)
    assert not torch.allclose(C.db_scores(probs, acts, "soft_wpmi", "top_k", k=5), zeros)
    with pytest.raises(ValueError, match="db_clips"):
        C.db_scores(probs, acts, "cos", "some")
