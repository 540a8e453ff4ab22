"""The probe head: chosen and fitted inside the training folds only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from andlib.data.esc50 import SHARED_ESC50
from andlib.models.probe import load_probe, save_probe, train_probe

CLASSES = ["a", "b", "c", "d"]


def _data(seed: int = 0):
    """Five folds of 4 classes; block 1 carries the class, blocks 0 and 2 mostly noise."""
    rng = np.random.default_rng(seed)
    n = 200
    labels = np.tile(np.arange(4), n // 4)
    folds = np.repeat(np.arange(1, 6), n // 5)
    centres = rng.normal(0, 1, (4, 16))
    feats = {
        "layers.0.out": rng.normal(0, 1, (n, 16)) + 0.2 * centres[labels],
        "layers.1.out": rng.normal(0, 1, (n, 16)) + 1.5 * centres[labels],
        "layers.2.out": rng.normal(0, 1, (n, 16)),
    }
    return feats, labels, folds


def _train(feats, labels, folds):
    return train_probe(feats, labels, folds, CLASSES, [1, 2, 3, 4], 5, c=1.0)


def test_the_block_is_chosen_by_cross_validation_inside_the_training_folds():
    probe = _train(*_data())
    assert probe.layer == "layers.1.out" and probe.block == 1
    assert probe.cv_accuracy["layers.1.out"] > probe.cv_accuracy["layers.2.out"] + 0.3
    assert probe.heldout_accuracy > 0.8 and probe.n_train == 160 and probe.n_heldout == 40
    assert probe.weight.shape == (4, 16) and probe.weight.dtype == np.float32


def test_scrambling_the_heldout_labels_leaves_the_head_bit_identical():
    feats, labels, folds = _data()
    before = _train(feats, labels, folds)
    scrambled = labels.copy()
    held = folds == 5
    scrambled[held] = np.random.default_rng(1).permutation((labels[held] + 1) % 4)
    after = _train(feats, scrambled, folds)
    assert after.layer == before.layer and after.cv_accuracy == before.cv_accuracy
    assert np.array_equal(after.weight, before.weight)
    assert np.array_equal(after.bias, before.bias)
    assert after.heldout_accuracy != before.heldout_accuracy  # only the report moves


def test_scrambling_a_training_fold_changes_the_head():
    feats, labels, folds = _data()
    before = _train(feats, labels, folds)
    scrambled = labels.copy()
    scrambled[folds == 2] = (labels[folds == 2] + 1) % 4
    after = _train(feats, scrambled, folds)
    assert not np.array_equal(after.weight, before.weight)


def test_the_head_folds_standardisation_into_its_linear_layer():
    feats, labels, folds = _data()
    feats = {k: 50.0 + 10.0 * v for k, v in feats.items()}  # far from standard
    probe = _train(feats, labels, folds)
    x = feats[probe.layer][folds == 5]
    acc = np.mean(np.argmax(x @ probe.weight.T + probe.bias, 1) == labels[folds == 5])
    assert acc == pytest.approx(probe.heldout_accuracy)


def test_a_probe_round_trips_through_its_files(tmp_path):
    probe = _train(*_data())
    save_probe(probe, tmp_path / "head")
    back = load_probe(tmp_path / "head")
    assert back is not None and back.layer == probe.layer and back.classes == CLASSES
    assert np.array_equal(back.weight, probe.weight) and back.cv_accuracy == probe.cv_accuracy
    assert load_probe(tmp_path / "none") is None
    other = _train(*_data(seed=3))
    save_probe(other, tmp_path / "m-tiny.en-key2")  # a dot in the name is no suffix
    save_probe(probe, tmp_path / "m-tiny.en-key1")
    first, second = load_probe(tmp_path / "m-tiny.en-key1"), load_probe(tmp_path / "m-tiny.en-key2")
    assert first is not None and second is not None
    assert np.array_equal(first.weight, probe.weight) and np.array_equal(
        second.weight, other.weight
    )


@pytest.mark.skipif(not (SHARED_ESC50 / "meta" / "esc50.csv").exists(), reason="ESC-50 not found")
def test_whisper_with_a_probe_head_is_a_classifier_of_its_block(tmp_cfg):
    from andlib.models import train_stage
    from andlib.models.activations import ActivationRecorder, resolve_layers
    from andlib.models.base import ModelLoadError
    from andlib.models.families.whisper_wheels import wheel_files
    from andlib.models.registry import load_target
    from andlib.store import RunDir

    wheel_files("whisper-tiny.en")  # installed by make setup; missing is a failure, not a skip
    cfg = tmp_cfg(
        {
            "model.name": "whisper-tiny.en",
            "model.device": "cpu",
            "model.whisper.head": True,
            "data.classes": ["dog", "rooster", "rain"],
        }
    )
    with pytest.raises(ModelLoadError, match="probe head is not fitted yet.*andlib train"):
        load_target(cfg)  # loading never trains: the train stage fits the head
    summary = train_stage.run_stage(cfg, RunDir(cfg.run_path))
    target = load_target(cfg)
    assert summary["head_layer"] == target.info["head_layer"]
    from andlib.data.probing import load_probing_set

    probing = load_probing_set(cfg)
    assert target.label_names == probing.class_names and len(target.label_names) == 50
    info = target.info
    assert info["kind"] == "classification" and info["n_train"] == 96 and info["n_heldout"] == 24
    assert 0.0 <= info["heldout_accuracy"] <= 1.0
    layers = resolve_layers(target.module, ["preset:whisper"])
    assert layers["classifier"] == "classifier"
    clips = probing.audio[:4]
    with torch.inference_mode(), ActivationRecorder(target.module, layers) as rec:
        logits = target.logits(clips)
        acts = rec.pop()
    head = target.module.classifier
    with torch.inference_mode():
        expected = head(acts[info["head_layer"]])
    assert torch.allclose(logits, expected, atol=1e-5)
    assert torch.equal(acts["classifier"], logits)
    present = sorted(set(probing.labels))
    assert set(logits.argmax(1).tolist()) <= set(present)  # classes without clips never win
    again = load_target(cfg)  # reused from the cache, not retrained
    assert torch.equal(again.module.classifier.weight, head.weight)
