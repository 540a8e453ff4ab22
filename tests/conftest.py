"""Shared fixtures: configs pointing at temporary run dirs, tiny models, generated audio."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from andlib.config import Config, load_config
from andlib.data.esc50 import SHARED_ESC50

requires_esc50 = pytest.mark.skipif(
    not (SHARED_ESC50 / "meta" / "esc50.csv").exists(), reason="shared ESC-50 copy not present"
)


def tiny_speech_config(family: str = "Wav2Vec2", **overrides):
    """A tiny random-weight config of a wav2vec2-family encoder (``Wav2Vec2``, ``Hubert``,
    ``WavLM``): two conv layers (stride 25), one 32-wide block; ``overrides`` change any field."""
    import transformers

    settings = {
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 48,
        "conv_dim": (8, 8),
        "conv_stride": (5, 5),
        "conv_kernel": (10, 5),
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 2,
        "classifier_proj_size": 16,
        "vocab_size": 8,
        **overrides,
    }
    settings["num_feat_extract_layers"] = len(settings["conv_dim"])
    return getattr(transformers, f"{family}Config")(**settings)


@pytest.fixture
def tmp_cfg(tmp_path: Path):
    """A factory: ``tmp_cfg(**dotted_overrides) -> Config`` writing into ``tmp_path``."""

    def make(overrides: dict | None = None) -> Config:
        base = {
            "run_dir": str(tmp_path / "run"),
            "cache_dir": str(tmp_path / "cache"),
            "figures_dir": str(tmp_path / "figures"),
        }
        base.update(overrides or {})
        return load_config(None, base)

    return make


def write_tone(
    path: Path,
    freq: float = 440.0,
    sr: int = 16000,
    seconds: float = 1.0,
    channels: int = 1,
    amp: float = 0.3,
) -> Path:
    t = np.arange(int(sr * seconds)) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    if channels > 1:
        x = np.stack([x] * channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr)
    return path


def build_tiny_ast(num_labels: int = 4):
    """A tiny AST classifier from a config (random weights, ``num_labels`` classes named
    ``class_i``) and its feature extractor: the shape every test of the AST path uses."""
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    cfg = ASTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_mel_bins=32,
        max_length=128,
        frequency_stride=16,
        time_stride=16,
        patch_size=16,
        num_labels=num_labels,
        id2label={i: f"class_{i}" for i in range(num_labels)},
        label2id={f"class_{i}": i for i in range(num_labels)},
    )
    model = ASTForAudioClassification(cfg).eval()
    fe = ASTFeatureExtractor(num_mel_bins=32, max_length=128, sampling_rate=16000)
    return model, fe


@pytest.fixture
def tiny_ast():
    """A tiny AST classifier built from a config (random weights) with its feature extractor."""
    return build_tiny_ast(4)
