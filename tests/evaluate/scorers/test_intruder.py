"""andlib.evaluate.scorers.intruder: the odd caption out, on hand-made and planted neurons."""

from __future__ import annotations

import numpy as np
import pytest

from andlib.config import load_config
from andlib.evaluate.scorers.base import LayerSample, Probe
from andlib.evaluate.scorers.intruder import IntruderScorer, intruder_trials, pick_intruders

BASES = [
    "rain falling on a roof",
    "a car engine idling",
    "wind blowing through trees",
    "a door creaking open",
    "waves crashing on a beach",
    "a clock ticking",
    "keyboard typing",
    "a siren wailing",
    "footsteps on gravel",
    "a crowd cheering",
]


def planted_probe(cfg, embedder, n_neurons: int = 30, repeats: int = 6):
    """Captions that carry "and a dog barking" or not, every base caption both ways; neurons
    whose activation is 1 for a dog caption and 0 otherwise, plus noise."""
    captions = [
        f"{b} and a dog barking" if d else b for _ in range(repeats) for b in BASES for d in (0, 1)
    ]
    dog = np.array(["dog" in c for c in captions], dtype=float)
    g = np.random.default_rng(0)
    acts = dog[:, None] + 0.1 * g.normal(size=(len(captions), n_neurons))
    heldout = np.ones_like(acts, dtype=bool)
    heldout[:4] = False  # the clips "the description was built from"

    def embed(texts):
        return np.asarray(embedder.encode(list(texts)), dtype=np.float64)

    probe = Probe(
        cfg=cfg,
        clip_ids=[str(i) for i in range(len(captions))],
        captions=captions,
        categories=[""] * len(captions),
        cap_emb=embed(captions),
        label_emb=np.full((len(captions), embedder.dim), np.nan),
        embed=embed,
        oracle_reason="the probing set has no labels",
    )
    return probe, acts, heldout


def planted_sample(acts, heldout, description: str) -> LayerSample:
    n = acts.shape[1]
    texts = {v: [description] * n for v in ("own", "random", "label")}
    texts |= {"missing_label": [""] * n, "extra_label": [""] * n}
    return LayerSample("planted", list(range(n)), acts, heldout, texts)


@pytest.fixture(scope="module")
def minilm():
    from andlib.text.embeddings import Embedder

    return Embedder("all-MiniLM-L6-v2")


def test_intruder_finds_the_odd_caption_out():
    vecs = np.zeros((1, 1, 5, 3))
    vecs[..., :, 0] = 1.0
    vecs[0, 0, 3] = [0.0, 1.0, 0.0]
    assert pick_intruders(vecs)[0, 0] == 3
    g = np.random.default_rng(2)
    acts = g.normal(size=(200, 3))
    idx, pos, valid = intruder_trials(acts, np.ones_like(acts, bool), 10, g)
    assert valid.all()
    for j in range(3):
        median = np.median(acts[:, j])
        for t in range(10):
            group = acts[idx[j, t], j]
            assert group[pos[j, t]] < median
            assert (np.delete(group, pos[j, t]) >= np.sort(acts[:, j])[::-1][19]).all()


def test_intruder_on_planted_neurons_beats_chance(minilm, tmp_path):
    cfg = load_config(None, {"run_dir": str(tmp_path), "evaluate.intruder_trials": 10})
    probe, acts, heldout = planted_probe(cfg, minilm)
    rows = IntruderScorer().score(probe, planted_sample(acts, heldout, "dog"))
    own = rows[rows.variant == "own"]
    assert own.value.mean() > 0.6  # chance is 0.2
