"""DB on a planted layer: every similarity function, with the default constants and every clip
scored (``concepts.db_clips: all``), names the class each neuron follows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from andlib.config import Config
from andlib.describe.concepts import db_scores
from andlib.describe.similarity import SIMILARITY_FUNCTIONS


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
