"""andlib.evaluate.scorers.simulation: simulation scores, their sampling and the LLM simulator."""

from __future__ import annotations

import numpy as np
import pandas as pd

from andlib import store
from andlib.evaluate import scores as evaluate
from andlib.evaluate.scores import (
    parse_ratings,
)
from tests.evaluate.test_scores import FakeEmbedder, make_run


def test_parse_ratings_tolerates_reply_styles():
    reply = "Here you go:\n1: 7\n2. 3.5\n 3) 12\n5 - 0\nnonsense"
    out = parse_ratings(reply, 5)
    assert out[:3].tolist() == [7.0, 3.5, 10.0] and out[4] == 0.0 and np.isnan(out[3])


def _simulation(cfg, run, emb, llm=None):
    """The simulation scorer's rows of ``scores.csv`` (its own and its LLM's)."""
    from andlib.evaluate.scorers.runner import score_run

    scores, _, _ = score_run(cfg, run, emb, llm=llm, names=["simulation"])
    return scores


def test_simulation_scores_only_held_out_clips(tmp_path, tmp_cfg):
    """True activation = the description's simulated activation on held-out clips, and wildly
    off on the description's own clips: a perfect score only if those are left out."""
    run = make_run(tmp_path / "run", tmp_path / "audio", k=2)
    cfg = tmp_cfg({"evaluate.simulation_layers": ["layers.0.attn"]})
    emb = FakeEmbedder()
    index = store.activation_index(run)
    ids = index["clip_ids"]
    caps = run.read_csv("captions.csv")["caption"].tolist()
    neurons = store.read_neurons(run)
    rows = neurons[neurons.layer == "layers.0.attn"].set_index("neuron")
    acts = np.zeros((len(ids), 32), np.float32)
    for n, row in rows.iterrows():
        pred = emb.encode(caps) @ emb.vector(evaluate.description_of(row))
        acts[:, n] = pred
        for cid in evaluate.description_clips(row):
            acts[ids.index(cid), n] = -100.0 * pred[ids.index(cid)]
    np.save(run / "activations" / "layers.0.attn.npy", acts)

    scores = _simulation(cfg, run, emb)
    own = scores[(scores.variant == "own") & (scores.metric == "pearson")]
    assert len(own) == 32 and {"own", "random", "label"} <= set(scores.variant)
    assert np.allclose(own.value, 1.0)
    spearman_own = scores[(scores.variant == "own") & (scores.metric == "spearman")]
    assert np.allclose(spearman_own.value, 1.0)
    assert (own.n == len(ids) - 4).all()  # top-2 and bottom-2 left out
    rand = scores[(scores.variant == "random") & (scores.metric == "pearson")]
    assert rand.value.mean() < 0.9


def test_simulation_sampling_is_seeded_and_random_descriptions_differ(tmp_path, tmp_cfg):
    run = make_run(tmp_path / "run", tmp_path / "audio")
    settings = {
        "evaluate.simulation_max_neurons": 5,
        "evaluate.simulation_layers": ["layers.0.mlp"],
    }
    a = _simulation(tmp_cfg(settings), run, FakeEmbedder())
    b = _simulation(tmp_cfg(settings), run, FakeEmbedder())
    pd.testing.assert_frame_equal(a, b)
    assert a.groupby(["metric", "variant"]).size().eq(5).all()
    other = _simulation(tmp_cfg({**settings, "seed": 1}), run, FakeEmbedder())
    assert set(a.neuron) != set(other.neuron)


def test_llm_simulator_with_a_fake_generative_backend(tmp_path, tmp_cfg):
    run = make_run(tmp_path / "run", tmp_path / "audio")
    cfg = tmp_cfg(
        {
            "llm.backend": "openai",
            "evaluate.simulation_layers": ["layers.1.out"],
            "evaluate.llm_simulation_max_neurons": 3,
            "evaluate.llm_simulation_clips": 6,
        }
    )

    class FakeLLM:
        def __init__(self):
            self.prompts = []

        def complete_many(self, prompts, labels=None):
            self.prompts.extend(prompts)
            self.labels = labels
            return ["\n".join(f"{i + 1}: {i}" for i in range(6)) for _ in prompts]

    llm = FakeLLM()
    scores = _simulation(cfg, run, FakeEmbedder(), llm=llm)
    got = scores[(scores.scorer == "simulation_llm") & (scores.metric == "pearson")]
    assert len(got) == 3 and len(llm.prompts) == 3
    assert (got.n == 6).all()
    assert "Reply with one line per clip" in llm.prompts[0][0]["content"]
    assert llm.labels[0].startswith("layers.1.out neuron ")
