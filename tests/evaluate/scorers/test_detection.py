"""andlib.evaluate.scorers.detection: samples, planted neurons, and what detection may read."""

from __future__ import annotations

import numpy as np
import pytest

from andlib.config import load_config
from andlib.evaluate.scorers.base import LayerSample, Probe
from andlib.evaluate.scorers.detection import DetectionScorer, detection_sample
from andlib.store import activation_index, decode_list, read_neurons
from tests.evaluate.test_scores import FakeEmbedder, make_run

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


def test_planted_neuron_detection_auroc(minilm, tmp_path):
    cfg = load_config(None, {"run_dir": str(tmp_path), "evaluate.detection_samples": 6})
    probe, acts, heldout = planted_probe(cfg, minilm)
    aurocs = {}
    for word in ("dog", "violin"):
        rows = DetectionScorer().score(probe, planted_sample(acts, heldout, word))
        own = rows[(rows.variant == "own") & (rows.metric == "auroc")]
        assert len(own) == acts.shape[1] and (own.n >= 8).all() and (own.n <= 12).all()
        aurocs[word] = own.value.mean()
    assert aurocs["dog"] >= 0.95, aurocs
    assert 0.4 <= aurocs["violin"] <= 0.6, aurocs


def test_detection_samples_span_the_top_decile_and_are_seeded():
    g = np.random.default_rng(1)
    acts = g.normal(size=(400, 5))
    heldout = g.random((400, 5)) > 0.1
    a = detection_sample(acts, heldout, 20, np.random.default_rng(7))
    b = detection_sample(acts, heldout, 20, np.random.default_rng(7))
    np.testing.assert_array_equal(a.idx, b.idx)
    for j in range(5):
        held = np.flatnonzero(heldout[:, j])
        vals = acts[held, j]
        top_cut = np.sort(vals)[::-1][int(np.ceil(0.1 * len(held))) - 1]
        pos, neg = a.idx[j][a.labels[j] & a.mask[j]], a.idx[j][~a.labels[j] & a.mask[j]]
        assert len(pos) == len(neg) == 20
        assert (acts[pos, j] >= top_cut).all() and (acts[neg, j] < np.median(vals)).all()
        # spread over the decile: the positives are not just the highest 20
        assert acts[pos, j].min() < np.sort(acts[held, j])[::-1][19]
        assert set(a.fold[j][a.mask[j]]) == {0, 1}


def test_detection_never_scores_a_clip_the_description_was_built_from(tmp_path, tmp_cfg):
    run = make_run(tmp_path / "run", tmp_path / "audio", n_per_class=12, k=2)
    cfg = tmp_cfg({"evaluate.detection_samples": 4, "evaluate.simulation_max_neurons": 6})
    from andlib.evaluate.scorers.inputs import prepare

    probe, samples = prepare(cfg, run, FakeEmbedder())
    ids = activation_index(run)["clip_ids"]
    neurons = read_neurons(run).set_index(["layer", "neuron"])
    checked = 0
    for sample in samples:
        det = DetectionScorer().sample(probe, sample)
        for j, n in enumerate(sample.neurons):
            row = neurons.loc[(sample.layer, n)]
            built = set(decode_list(row["top_clips"])) | set(decode_list(row["bottom_clips"]))
            used = {ids[i] for i in det.idx[j][det.mask[j]]}
            assert used and not used & built
            checked += 1
    assert checked > 20
