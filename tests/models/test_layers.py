"""andlib.models.layers: hook points by module path, glob and preset, and errors that list close
matches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from andlib.data.audio import ProbingSet
from andlib.models.activations import (
    ActivationRecorder,
    LayerError,
    resolve_layers,
)
from tests.conftest import tiny_speech_config

SR = 16000


def make_probing_set(n: int = 10, seconds: float = 0.5, seed: int = 0) -> ProbingSet:
    rs = np.random.default_rng(seed)
    audio = [(0.1 * rs.standard_normal(int(SR * seconds))).astype(np.float32) for _ in range(n)]
    meta = pd.DataFrame(
        {
            "clip_id": [f"clip{i:02d}" for i in range(n)],
            "path": [f"/tmp/clip{i:02d}.wav" for i in range(n)],
            "label": [i % 3 for i in range(n)],
            "category": [f"c{i % 3}" for i in range(n)],
        }
    )
    return ProbingSet("test", SR, audio, meta)


def ast_preprocess(fe):
    """The AST feature extractor on a batch of waveforms (it pads and truncates by itself)."""

    def preprocess(batch):
        arrays = [np.asarray(a, dtype=np.float32) for a in batch]
        return dict(fe(arrays, sampling_rate=SR, return_tensors="pt"))

    return preprocess


def test_ast_preset_shapes_and_classifier_is_the_logits(tiny_ast):
    model, fe = tiny_ast
    layers = resolve_layers(model, ["preset:ast"])
    assert list(layers) == [f"layers.{i}.{p}" for i in range(2) for p in ("attn", "mlp", "out")] + [
        "classifier"
    ]
    assert layers["layers.1.mlp"] == "audio_spectrogram_transformer.layers.1.mlp.activation_fn"
    assert layers["layers.0.attn"] == "audio_spectrogram_transformer.layers.0.attention.o_proj"
    assert layers["layers.0.out"] == "audio_spectrogram_transformer.layers.0"
    inputs = ast_preprocess(fe)(make_probing_set(3).audio)
    with torch.inference_mode(), ActivationRecorder(model, layers) as rec:
        logits = model(**inputs).logits
        acts = rec.pop()
    widths = {"attn": 32, "mlp": 64, "out": 32}
    for key, x in acts.items():
        assert x.dtype == torch.float32 and x.device.type == "cpu"
        assert x.shape == (3, 4 if key == "classifier" else widths[key.split(".")[-1]])
    torch.testing.assert_close(acts["classifier"], logits)
    assert not any(m._forward_hooks for m in model.modules()), "hooks removed on exit"


def test_ast_preset_resolves_transformers_4x_names():
    """Old checkpoints' module layout (``encoder.layer.i.attention.output.dense`` ...)."""

    def block():
        b = nn.Module()
        b.attention = nn.Module()
        b.attention.output = nn.Module()
        b.attention.output.dense = nn.Linear(4, 4)
        b.intermediate = nn.Module()
        b.intermediate.intermediate_act_fn = nn.GELU()
        return b

    model = nn.Module()
    model.audio_spectrogram_transformer = nn.Module()
    model.audio_spectrogram_transformer.encoder = nn.Module()
    model.audio_spectrogram_transformer.encoder.layer = nn.ModuleList([block(), block()])
    model.classifier = nn.Linear(4, 2)
    layers = resolve_layers(model, ["preset:ast"])
    prefix = "audio_spectrogram_transformer.encoder.layer"
    assert layers["layers.1.attn"] == f"{prefix}.1.attention.output.dense"
    assert layers["layers.1.mlp"] == f"{prefix}.1.intermediate.intermediate_act_fn"
    assert layers["layers.1.out"] == f"{prefix}.1"
    assert layers["classifier"] == "classifier"


def test_glob_module_path_and_preset_key_specs(tiny_ast):
    model, _ = tiny_ast
    layers = resolve_layers(model, ["*.mlp.fc1", "classifier", "layers.1.out", "*.mlp.fc1"])
    assert list(layers) == [
        "audio_spectrogram_transformer.layers.0.mlp.fc1",
        "audio_spectrogram_transformer.layers.1.mlp.fc1",
        "classifier",
        "layers.1.out",
    ]
    assert layers["layers.1.out"] == "audio_spectrogram_transformer.layers.1"
    path = "audio_spectrogram_transformer.layers.0.attention.q_proj"
    assert resolve_layers(model, [path]) == {path: path}
    assert list(resolve_layers(model, ["layers.*.mlp"])) == ["layers.0.mlp", "layers.1.mlp"]


def test_unknown_layer_lists_close_matches(tiny_ast):
    model, _ = tiny_ast
    with pytest.raises(LayerError, match="close matches") as err:
        resolve_layers(model, ["audio_spectrogram_transformer.layers.0.mlp.fc3"])
    assert "audio_spectrogram_transformer.layers.0.mlp.fc1" in str(err.value)
    with pytest.raises(LayerError) as err:
        resolve_layers(model, ["layers.0.mlp.fc1"])  # the prefix forgotten
    assert "audio_spectrogram_transformer.layers.0.mlp.fc1" in str(err.value)
    with pytest.raises(LayerError, match="glob"):
        resolve_layers(model, ["*.no_such_module"])
    with pytest.raises(LayerError, match="unknown preset"):
        resolve_layers(model, ["preset:resnet"])
    with pytest.raises(LayerError, match="does not fit"):
        resolve_layers(model, ["preset:wav2vec2"])
    with pytest.raises(LayerError, match="no classification head"):
        resolve_layers(nn.Sequential(nn.Linear(2, 2)), ["classifier"])


@pytest.mark.parametrize("family", ["Wav2Vec2", "Hubert", "WavLM"])
def test_wav2vec2_preset_on_tiny_encoders(family):
    import transformers

    config = tiny_speech_config(
        family, num_hidden_layers=2, conv_stride=(5, 2), conv_kernel=(10, 3)
    )
    model = getattr(transformers, f"{family}Model")(config).eval()
    layers = resolve_layers(model, ["preset:wav2vec2"])
    assert layers == {
        "layers.0.mlp": "encoder.layers.0.feed_forward.intermediate_act_fn",
        "layers.0.out": "encoder.layers.0",
        "layers.1.mlp": "encoder.layers.1.feed_forward.intermediate_act_fn",
        "layers.1.out": "encoder.layers.1",
    }
    with torch.inference_mode(), ActivationRecorder(model, layers) as rec:
        out = model(input_values=torch.randn(2, 1600))
        acts = rec.pop()
    assert acts["layers.1.mlp"].shape == (2, 48)
    assert acts["layers.0.out"].shape == (2, 32)
    if family == "Wav2Vec2":  # the last block's output is the encoder output (no final norm)
        torch.testing.assert_close(acts["layers.1.out"], out.last_hidden_state.mean(dim=1))


def test_wav2vec2_preset_with_a_classification_head():
    from transformers import Wav2Vec2ForSequenceClassification

    config = tiny_speech_config(conv_dim=(8,), conv_stride=(5,), conv_kernel=(10,), num_labels=3)
    model = Wav2Vec2ForSequenceClassification(config).eval()
    layers = resolve_layers(model, ["preset:wav2vec2"])
    assert layers["layers.0.mlp"] == "wav2vec2.encoder.layers.0.feed_forward.intermediate_act_fn"
    with torch.inference_mode(), ActivationRecorder(model, layers) as rec:
        logits = model(input_values=torch.randn(2, 800)).logits
        acts = rec.pop()
    torch.testing.assert_close(acts["classifier"], logits)


def test_online_strategy_layer_keys_resolve_on_ast_and_hubert_alike():
    from transformers import ASTConfig, ASTForAudioClassification, HubertForSequenceClassification

    from andlib.config import load_config

    specs = load_config("configs/strategies-online.yaml").record.layers
    ast = ASTForAudioClassification(
        ASTConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            num_mel_bins=32,
            max_length=64,
            num_labels=5,
        )
    )
    hubert = HubertForSequenceClassification(tiny_speech_config("Hubert", num_labels=5))
    assert set(resolve_layers(ast, specs)) == {
        f"layers.{i}.{p}" for i in (0, 1) for p in ("mlp", "out")
    } | {"classifier"}
    assert resolve_layers(hubert, specs) == {
        "layers.0.mlp": "hubert.encoder.layers.0.feed_forward.intermediate_act_fn",
        "layers.0.out": "hubert.encoder.layers.0",
        "classifier": "classifier",
    }
