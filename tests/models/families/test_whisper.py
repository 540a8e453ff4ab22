"""andlib.models.families.whisper: the wheels' encoders against CTranslate2's own, input modes and
errors."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from andlib.data.esc50 import SHARED_ESC50
from andlib.models.activations import ActivationRecorder, resolve_layers, warn_long_clips
from andlib.models.base import ModelLoadError
from andlib.models.families import whisper as wh
from andlib.models.families import whisper_wheels as ww

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _clip(seconds: float = 5.0) -> np.ndarray:
    """An ESC-50 clip when the shared copy is there, else a seeded chirp in noise."""
    files = sorted((SHARED_ESC50 / "audio").glob("*.flac"))
    if files:
        import soundfile as sf

        audio, sr = sf.read(files[7], dtype="float32")
        assert sr == wh.SAMPLE_RATE
        return audio[: int(seconds * sr)]
    t = np.arange(int(seconds * wh.SAMPLE_RATE)) / wh.SAMPLE_RATE
    noise = np.random.default_rng(0).normal(0, 0.05, t.size)
    return (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) + noise).astype(np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return wh.load_whisper("whisper-tiny.en", "trimmed", "cpu", tmp_path_factory.mktemp("c"))


def _ct2_dir(name: str, tmp: Path) -> Path:
    """A CTranslate2 model folder: the wheel's own, or base's parts concatenated."""
    paths = ww.wheel_files(name)
    if len(paths) == 1:
        return paths[0].parent
    folder = tmp / name
    folder.mkdir()
    with open(folder / "model.bin", "wb") as out:
        for p in paths:
            out.write(p.read_bytes())
    for extra in ("config.json", "vocabulary.txt", "tokenizer.json"):
        if (paths[0].parent / extra).exists():
            shutil.copy(paths[0].parent / extra, folder / extra)
    return folder


def _relative_error(target, audio: np.ndarray, mode: str, reference) -> float:
    import ctranslate2

    inputs = wh.make_preprocess(int(target.info["mels"]), mode)([audio])
    with torch.inference_mode():
        ours = target.module(**inputs).last_hidden_state[0].numpy()
    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(inputs["input_features"]))
    ref = np.asarray(reference.encode(features, to_cpu=True))[0]
    assert ours.shape == ref.shape
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


@pytest.mark.parametrize("mode", ["trimmed", "padded"])
def test_tiny_en_matches_ctranslate2s_encoder(tiny, tmp_path, mode):
    import ctranslate2  # a pinned dev dependency

    ref = ctranslate2.models.Whisper(
        str(_ct2_dir("whisper-tiny.en", tmp_path)), compute_type="float32", intra_threads=1
    )
    assert _relative_error(tiny, _clip(5.0), mode, ref) <= 1e-5


def test_base_matches_ctranslate2s_encoder_trimmed_and_padded(tmp_path):
    import ctranslate2  # a pinned dev dependency

    target = wh.load_whisper("whisper-base", "trimmed", "cpu", tmp_path / "cache")
    assert target.info["layers"] == 6 and target.info["d_model"] == 512
    ref = ctranslate2.models.Whisper(
        str(_ct2_dir("whisper-base", tmp_path)), compute_type="float32", intra_threads=1
    )
    audio = _clip(2.0)
    for mode in ("trimmed", "padded"):
        assert _relative_error(target, audio, mode, ref) <= 1e-5, mode
    names = resolve_layers(target.module, ["preset:whisper"])
    with torch.inference_mode(), ActivationRecorder(target.module, names) as rec:
        target.forward([audio])
        widths = {k: v.shape[1] for k, v in rec.pop().items()}
    assert sum(widths.values()) == 18432 and widths["layers.5.mlp"] == 2048


def test_preset_whisper_names_and_widths(tiny):
    names = resolve_layers(tiny.module, ["preset:whisper"])
    assert list(names) == [f"layers.{i}.{p}" for i in range(4) for p in ("attn", "mlp", "out")]
    assert names["layers.2.attn"] == "encoder.layers.2.self_attn.out_proj"
    assert names["layers.2.mlp"] == "encoder.layers.2.activation_fn"
    assert names["layers.2.out"] == "encoder.layers.2"
    with torch.inference_mode(), ActivationRecorder(tiny.module, names) as rec:
        tiny.forward([_clip(1.0)])
        widths = {k: v.shape[1] for k, v in rec.pop().items()}
    assert widths["layers.0.attn"] == 384 and widths["layers.0.mlp"] == 1536
    assert sum(widths.values()) == 9216


def test_clips_of_different_lengths_in_one_batch_equal_their_own_runs(tiny):
    names = resolve_layers(tiny.module, ["preset:whisper"])
    long, short = _clip(3.0), _clip(1.3)
    with torch.inference_mode(), ActivationRecorder(tiny.module, names) as rec:
        tiny.forward([long, short])
        both = rec.pop()
        tiny.forward([short])
        alone = rec.pop()
    for key in names:
        err = (both[key][1] - alone[key][0]).norm() / alone[key][0].norm()
        assert err < 1e-5, key


def test_padded_input_pools_only_the_clips_positions(tmp_path):
    padded = wh.load_whisper("whisper-tiny.en", "padded", "cpu", tmp_path)
    names = {"layers.3.out": "encoder.layers.3"}
    audio = _clip(2.0)
    with torch.inference_mode(), ActivationRecorder(padded.module, names) as rec:
        out = padded.forward([audio])
        pooled = rec.pop()["layers.3.out"][0]
    assert out.last_hidden_state.shape[1] == 1500
    assert padded.module.pool_lengths.tolist() == [100]  # 2 s = 200 frames = 100 positions
    block = {}
    hook = padded.module.get_submodule("encoder.layers.3").register_forward_hook(
        lambda m, a, o: block.setdefault("x", o)
    )
    with torch.inference_mode():
        padded.forward([audio])
    hook.remove()
    assert torch.allclose(pooled, block["x"][0, :100].mean(0), atol=1e-6)
    assert not torch.allclose(pooled, block["x"][0].mean(0), atol=1e-3)


def test_converted_weights_are_cached_by_the_wheels_digest(tmp_path):
    first = wh.load_whisper("whisper-tiny.en", "trimmed", "cpu", tmp_path)
    cached = list((tmp_path / "whisper").glob("whisper-tiny.en-*.safetensors"))
    assert len(cached) == 1 and first.info["converted"] == str(cached[0])
    again = wh.load_whisper("whisper-tiny.en", "trimmed", "cpu", tmp_path)
    for (n, p), (_, q) in zip(
        first.module.named_parameters(), again.module.named_parameters(), strict=True
    ):
        assert torch.equal(p, q), n


def test_long_clips_are_named_in_a_warning(caplog):
    import pandas as pd

    from andlib.data.audio import ProbingSet
    from andlib.models.base import TargetModel

    target = TargetModel(torch.nn.Identity(), lambda b: {}, 16000, "m", max_seconds=30.0)
    meta = pd.DataFrame({"clip_id": ["short", "long"], "path": ["", ""], "label": [0, 0]})
    audio = [np.zeros(16000, np.float32), np.zeros(16000 * 31, np.float32)]
    probing = ProbingSet("t", 16000, audio, meta)
    with caplog.at_level(logging.WARNING):
        assert warn_long_clips(target, probing) == ["long"]
    assert "long (31.0 s)" in caplog.text and "short" not in caplog.text


def _one_line_error(name: str, tmp_path: Path, *match: str) -> str:
    with pytest.raises(ModelLoadError) as info:
        wh.load_whisper(name, "trimmed", "cpu", tmp_path / "cache")
    message = str(info.value)
    assert "\n" not in message
    for m in match:
        assert m in message, message
    return message


def test_a_hub_id_offline_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _one_line_error("openai/whisper-nonexistent-size", tmp_path, "openai/whisper-nonexistent")
