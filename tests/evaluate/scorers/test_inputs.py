"""andlib.evaluate.scorers.inputs: a run read once into what every scorer scores."""

from __future__ import annotations

import numpy as np

from andlib.evaluate.scorers.inputs import oracle_reason, prepare
from tests.evaluate.test_scores import FakeEmbedder, make_run


def test_prepare_reads_the_probing_set_and_samples_every_layer(tmp_path, tmp_cfg):
    cfg = tmp_cfg({"evaluate.simulation_max_neurons": 3, "k": 2})
    run = make_run(cfg.run_path, tmp_path / "audio")
    probe, samples = prepare(cfg, run, FakeEmbedder())
    assert probe.clip_ids[:2] == ["dog-0", "dog-1"] and all(probe.captions)
    assert probe.categories[0] == "dog" and probe.cap_emb.shape == (len(probe.clip_ids), 16)
    by_layer = {s.layer: s for s in samples}
    assert len(by_layer["layers.0.mlp"].neurons) == 3  # the seeded sample
    assert len(by_layer["classifier"].neurons) == 4  # the classifier layer whole
    sample = by_layer["classifier"]
    assert sample.acts.shape == (len(probe.clip_ids), 4)
    # the clips a description was built from are never held out for it
    assert sample.heldout.sum(axis=0).tolist() == [len(probe.clip_ids) - 4] * 4


def test_the_label_oracle_needs_labels_and_classes_large_enough():
    assert oracle_reason(["", ""], np.array([True, True])) == "the probing set has no labels"
    small = oracle_reason(["a", "b"], np.array([True, True]))
    assert "classes too small" in small
    assert oracle_reason(["a"] * 6, np.ones(6, dtype=bool)) == ""
