"""andlib.models.families.pitch: pitch networks loaded by name record their layers."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from andlib.data.audio import ProbingSet
from andlib.models import pitch as pm
from andlib.models.activations import (
    model_record,
    record_target,
    resolve_layers,
)
from andlib.models.base import ModelLoadError
from andlib.models.registry import load_target
from andlib.store import RunDir

SR = 16000


needs_crepe = pytest.mark.skipif(
    importlib.util.find_spec("torchcrepe") is None, reason="torchcrepe is not installed"
)


needs_pesto = pytest.mark.skipif(
    importlib.util.find_spec("pesto") is None, reason="pesto-pitch is not installed"
)


def harmonic_tone(freq: float, seconds: float = 1.0, n_harmonics: int = 5) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    x = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, n_harmonics + 1))
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def cents(a: float, b: float) -> float:
    return float(1200 * np.log2(a / b))


@pytest.fixture(scope="module")
def pesto():
    if importlib.util.find_spec("pesto") is None:
        pytest.skip("pesto-pitch is not installed")
    return pm.load_pitch_model("pesto", "cpu")


def probing_set(n: int = 3) -> ProbingSet:
    import pandas as pd

    freqs = [220.0, 440.0, 880.0, 330.0, 660.0][:n]
    audio = [harmonic_tone(f, 0.5 + 0.1 * i) for i, f in enumerate(freqs)]  # unequal lengths
    meta = pd.DataFrame(
        {
            "clip_id": [f"tone{i}" for i in range(n)],
            "path": [f"/tmp/tone{i}.wav" for i in range(n)],
            "label": list(range(n)),
            "category": [f"{f:.0f} Hz" for f in freqs],
        }
    )
    return ProbingSet("tones", SR, audio, meta)


@needs_crepe
def test_load_target_with_a_config_records_crepe_layers(tmp_cfg, tmp_path):
    cfg = tmp_cfg({"model.name": "crepe-tiny@25ms", "model.device": "cpu"})
    target = load_target(cfg)
    assert target.info["model_id"] == "crepe-tiny@25ms" and target.info["hop_ms"] == 25.0
    assert target.info["package"].startswith("torchcrepe==") and target.sample_rate == SR
    assert target.label_names == pm.label_names("crepe-tiny")
    assert 480_000 < target.info["n_parameters"] < 500_000
    layers = resolve_layers(target.module, ["preset:crepe"])
    assert list(layers) == [f"layers.{i}.act" for i in range(6)] + ["classifier"]
    ps = probing_set()
    cache = record_target(target, ps, layers, "mean", 2, RunDir(tmp_path / "run"), progress=False)
    widths = [128, 16, 16, 16, 32, 64, 360]
    assert [cache.n_neurons(layer) for layer in cache.layers] == widths
    assert cache["layers.0.act"].shape == (3, 128) and (cache["layers.0.act"][:] >= 0).all()
    # the classifier's mean-pooled logits put each tone's pitch on top
    top = pm.bin_frequencies("crepe-tiny")[np.asarray(cache["classifier"]).argmax(axis=1)]
    for hz, f in zip(top, [220.0, 440.0, 880.0], strict=True):
        assert abs(cents(hz, f)) < 30
    info = json.loads(json.dumps(model_record(target, cache)))  # model.json
    assert info["model_id"] == "crepe-tiny@25ms" and info["kind"] == "pitch"
    assert info["label_names"][0] == "31.7 Hz" and info["layers"]["classifier"]["n_neurons"] == 360


@needs_pesto
def test_load_target_records_pesto_stages_and_pooled_probabilities(tmp_cfg, tmp_path):
    target = load_target(tmp_cfg({"model.name": "pesto", "model.device": "cpu"}))
    layers = resolve_layers(target.module, ["preset:pesto"])
    assert list(layers) == [f"layers.{i}.out" for i in range(7)] + ["classifier"]
    ps = probing_set()
    cache = record_target(target, ps, layers, "mean", 3, RunDir(tmp_path / "run"), progress=False)
    widths = [40, 40, 40, 30, 30, 10, 3, 384]
    assert [cache.n_neurons(layer) for layer in cache.layers] == widths
    with torch.inference_mode():
        probs = target.forward(ps.audio[2:])  # the longest clip: never padded
    np.testing.assert_allclose(cache["classifier"][2], probs[0].mean(0).numpy(), atol=1e-6)
    assert np.allclose(np.asarray(cache["classifier"]).sum(1), 1.0, atol=1e-4)
    with pytest.raises(ModelLoadError, match="float32"):
        load_target(tmp_cfg({"model.name": "pesto", "model.dtype": "bfloat16"}))
