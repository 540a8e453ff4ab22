"""andlib.models.families.huggingface: save_pretrained folders and hub encoders, and load errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from andlib.models import train
from andlib.models.base import ModelLoadError
from andlib.models.registry import load_pretrained
from tests.conftest import tiny_speech_config


def clips(n=2, seconds=1.0, sr=16000):
    g = np.random.default_rng(0)
    return [(0.1 * g.standard_normal(int(sr * seconds))).astype(np.float32) for _ in range(n)]


@pytest.fixture
def saved_ast(tiny_ast, tmp_path):
    model, extractor = tiny_ast
    path = tmp_path / "tiny-ast"
    model.save_pretrained(path)
    extractor.save_pretrained(path)
    return path


def test_load_pretrained_reads_a_saved_ast_with_its_labels_and_extractor(saved_ast, tiny_ast):
    target = load_pretrained(saved_ast, device="cpu")
    assert target.label_names == ["class_0", "class_1", "class_2", "class_3"]
    assert target.is_classifier and target.sample_rate == 16000
    assert (
        target.info["kind"] == "classification"
        and target.info["model_type"] == "audio-spectrogram-transformer"
    )
    assert target.info["n_parameters"] == sum(p.numel() for p in tiny_ast[0].parameters())
    with torch.inference_mode():
        logits = target.logits(clips(3))
        expected = tiny_ast[0](
            **tiny_ast[1](clips(3), sampling_rate=16000, return_tensors="pt")
        ).logits
    assert logits.shape == (3, 4)
    torch.testing.assert_close(logits, expected)


def test_load_pretrained_merges_the_training_record_into_info(saved_ast):
    (saved_ast / train.METRICS_FILE).write_text(
        '{"heldout_accuracy": 0.5, "strategy": "supervised"}'
    )
    info = load_pretrained(saved_ast, device="cpu").info
    assert info["heldout_accuracy"] == 0.5 and info["strategy"] == "supervised"


def test_a_tiny_wav2vec2_encoder_loads_as_an_encoder(tmp_path):
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

    config = tiny_speech_config(num_hidden_layers=2, conv_dim=(16, 16), conv_stride=(5, 4))
    torch.manual_seed(0)
    Wav2Vec2Model(config).save_pretrained(tmp_path / "w2v")
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(tmp_path / "w2v")
    for kind in ("auto", "encoder"):
        target = load_pretrained(tmp_path / "w2v", kind=kind, device="cpu")
        assert target.info["kind"] == "encoder" and target.label_names is None
        assert not target.is_classifier
        with torch.inference_mode():
            out = target.forward(clips(2, seconds=0.5))
        assert out.last_hidden_state.shape[0] == 2 and out.last_hidden_state.shape[-1] == 32


def test_a_missing_model_path_is_a_clear_model_load_error(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match="no-such-model"):
        load_pretrained(missing)
