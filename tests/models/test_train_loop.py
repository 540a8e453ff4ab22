"""andlib.models.train_loop: the model, the optimisation loop, the linear probe and fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from andlib.config import rng
from andlib.models import train
from tests.conftest import tiny_speech_config

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


def encoder_and_head(model):
    enc = {k: v.clone() for k, v in model.audio_spectrogram_transformer.state_dict().items()}
    head = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    return enc, head


def changed(before, after):
    return any(not torch.equal(before[k], after[k]) for k in before)


def test_linear_probe_leaves_the_encoder_frozen_and_trains_the_classifier(tiny_cfg):
    cfg = tiny_cfg(**{"train.max_steps": 4})
    feats = fake_features(cfg)
    model = train.build_model(cfg.train, feats.class_names)
    enc_before, head_before = encoder_and_head(model)
    train.linear_probe(model, feats, cfg.train, rng(0, "probe"))
    enc_after, head_after = encoder_and_head(model)
    assert not changed(enc_before, enc_after)
    assert changed(head_before, head_after)


def test_fine_tuning_changes_both_encoder_and_classifier(tiny_cfg):
    cfg = tiny_cfg(**{"train.max_steps": 2})
    feats = fake_features(cfg)
    model = train.build_model(cfg.train, feats.class_names)
    enc_before, head_before = encoder_and_head(model)
    history = train.fit_classifier(model, feats, cfg.train, rng(0, "fit"))
    enc_after, head_after = encoder_and_head(model)
    assert changed(enc_before, enc_after) and changed(head_before, head_after)
    assert history[-1]["step"] == 2


def test_build_model_rejects_heads_that_do_not_divide_the_hidden_size(tiny_cfg):
    cfg = tiny_cfg(**{"train.num_attention_heads": 3})
    with pytest.raises(ValueError, match="not divisible"):
        train.build_model(cfg.train, ["a"])


def test_max_minutes_stops_training_and_anneals_the_learning_rate(tiny_cfg):
    cfg = tiny_cfg(**{"train.max_steps": None, "train.max_minutes": 1e-6, "train.warmup_epochs": 0})
    feats = fake_features(cfg)
    model = train.build_model(cfg.train, feats.class_names)
    history = train.fit_classifier(model, feats, cfg.train, rng(0, "fit"))
    assert len(history) == 1 and history[0]["step"] == 1
    assert history[0]["lr"] == pytest.approx(0.0)  # past the budget the cosine is at its end


@pytest.fixture
def tiny_wav2vec2(tmp_path):
    """A random-weight wav2vec2 encoder saved like a hub SSL checkpoint (no head)."""
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

    config = tiny_speech_config(conv_dim=(16, 16))
    torch.manual_seed(1234)  # not the config seed, which the supervised strategy draws from
    path = tmp_path / "w2v-init"
    Wav2Vec2Model(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(path)
    return path


def state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_linear_probe_on_a_waveform_model_freezes_its_encoder_and_keeps_it_in_eval(
    tiny_cfg, tiny_wav2vec2
):
    cfg = tiny_cfg(**{"train.max_steps": 3})
    model = train.model_from_init(str(tiny_wav2vec2), ["a", "b", "c", "d"])
    g = torch.Generator().manual_seed(0)
    feats = train.Features(
        x=torch.randn(16, 4000, generator=g),
        labels=torch.arange(16) % 4,
        folds=np.array([1 + i % 5 for i in range(16)]),
        class_names=["a", "b", "c", "d"],
        extractor=None,
        per_ln=0.0,
    )
    modes = []
    model.wav2vec2.register_forward_pre_hook(lambda m, args: modes.append(m.training))
    enc_before, head_before = state(model.wav2vec2), state(model.classifier)
    train.linear_probe(model, feats, cfg.train, rng(0, "probe"))
    assert not changed(enc_before, state(model.wav2vec2))
    assert changed(head_before, state(model.classifier))
    assert modes and not any(modes)  # no dropout or layer drop in the frozen encoder
