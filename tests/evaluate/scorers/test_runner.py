"""andlib.evaluate.scorers.runner: every scorer on a hand-made run."""

from __future__ import annotations

from andlib.evaluate.scorers.runner import score_run
from tests.evaluate.test_scores import FakeEmbedder, make_run


def test_every_scorer_on_a_hand_made_run(tmp_path, tmp_cfg):
    run = make_run(tmp_path / "run", tmp_path / "audio", n_per_class=12)
    cfg = tmp_cfg({"evaluate.simulation_max_neurons": 6})
    scores, missing, seconds = score_run(cfg, run, FakeEmbedder())
    assert set(scores.scorer) == {"simulation", "detection", "intruder"}
    assert set(seconds) == {"prepare", "simulation", "detection", "intruder"}
    per_layer = scores[scores.variant == "own"].groupby(["scorer", "layer"]).neuron.nunique()
    assert per_layer.loc["simulation", "classifier"] == 4  # the classifier layer whole
    assert per_layer.loc["detection", "layers.0.mlp"] == 6
    assert set(scores[scores.scorer == "intruder"].variant) == {"own", "label"}
    assert (missing[missing.scorer == "intruder"].reason == "reads no description").any()
