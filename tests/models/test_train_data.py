"""andlib.models.train_data: training features, folds and augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from andlib.config import rng
from andlib.models import train
from tests.conftest import requires_esc50

pytestmark = pytest.mark.usefixtures("one_thread")


def fake_features(cfg, n_clips=16, n_classes=4, seed=0):
    """Random normalised spectrograms shaped for ``cfg.train``, split over folds 1-5."""
    g = torch.Generator().manual_seed(seed)
    tc = cfg.train
    return train.Features(
        x=torch.randn(n_clips, tc.max_length, tc.num_mel_bins, generator=g),
        labels=torch.arange(n_clips) % n_classes,
        folds=np.array([1 + i % 5 for i in range(n_clips)]),
        class_names=[f"c{i}" for i in range(n_classes)],
        extractor=None,
        per_ln=0.1,
    )


def test_features_split_by_fold(tiny_cfg):
    feats = fake_features(tiny_cfg(), n_clips=10)
    x, y = feats.split([1, 2])
    assert len(x) == 4 and y.tolist() == [0, 1, 1, 2]


def test_augment_keeps_the_shape_and_is_seeded(tiny_cfg):
    cfg = tiny_cfg()
    x = torch.randn(4, cfg.train.max_length, cfg.train.num_mel_bins)
    a = train.augment(x, cfg.train, rng(0, "t"), per_ln=0.1)
    b = train.augment(x, cfg.train, rng(0, "t"), per_ln=0.1)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    assert (a == 0).any()  # masked bands


def test_freq_shift_moves_the_mel_axis_and_fills_with_the_mean(tiny_cfg):
    cfg = tiny_cfg(**{"train.freq_shift": 3, "train.num_masks": 0, "train.gain_db": 0.0})
    x = torch.arange(1.0, 9.0).repeat(4, 6, 1)  # every frame: mel bins valued 1..8
    out = train.augment(x, cfg.train, rng(0, "shift"), per_ln=0.1)
    for row in out[:, 0]:
        kept = row[row != 0]
        assert len(kept) >= 5 and torch.equal(kept, torch.arange(kept[0], kept[0] + len(kept)))


def test_batched_log_mel_matches_the_feature_extractor():
    from transformers import ASTFeatureExtractor

    extractor = ASTFeatureExtractor(
        num_mel_bins=32, max_length=120, sampling_rate=16000, do_normalize=False
    )
    g = np.random.default_rng(0)
    audio = [(0.1 * g.standard_normal(n)).astype(np.float32) for n in (16000, 16000, 9000)]
    expected = np.stack(extractor(audio, sampling_rate=16000, return_tensors="np")["input_values"])
    np.testing.assert_allclose(train.log_mel(extractor, audio), expected, atol=1e-4)


def test_augment_shifts_waveforms_circularly_in_10_ms_frames(tiny_cfg):
    cfg = tiny_cfg(**{"train.shift_frames": 3})
    x = torch.arange(2 * 1600, dtype=torch.float32).reshape(2, 1600)
    out = train.augment(x, cfg.train, rng(0, "aug"), per_ln=0.0, hop=160)
    assert out.shape == x.shape
    for row, orig in zip(out, x, strict=True):
        k = int(torch.nonzero(orig == row[0])[0])  # where the first sample came from
        assert k % 160 == 0 and torch.equal(torch.roll(orig, -k), row)


@requires_esc50
def test_features_are_computed_once_per_process_for_every_strategy_and_training_seed(
    tiny_cfg, monkeypatch
):
    from andlib.models import train_data

    calls = []
    real = train_data.log_mel
    monkeypatch.setattr(train_data, "log_mel", lambda *a, **k: calls.append(1) or real(*a, **k))
    train_data.forget_features()
    first = train_data.load_features(tiny_cfg())
    again = train_data.load_features(tiny_cfg(**{"train.seed": 3, "train.strategy": "ssl-frozen"}))
    assert len(calls) == 1  # another training seed or strategy: the same features
    assert torch.equal(first.x, again.x) and torch.equal(first.labels, again.labels)
    first.x.zero_()  # a copy each: training on one cannot change the next
    assert not torch.equal(first.x, again.x)
    train_data.forget_features()
    fresh = train_data.load_features(tiny_cfg())
    assert len(calls) == 2 and torch.equal(fresh.x, again.x)  # reused = recomputed
    other = train_data.load_features(tiny_cfg(**{"train.num_mel_bins": 16}))
    assert len(calls) == 3 and other.x.shape[-1] == 16
    train_data.forget_features()
