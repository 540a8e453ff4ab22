"""Captioning: ground truth on synthetic probes, caching, the CLI, model captioners."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from andlib.config import PROJECT_ROOT, ConfigError, load_config
from andlib.data.audio import ProbingSet
from andlib.data.probing import probe_specs, synthetic_probes
from andlib.describe import captioners, features, wording
from andlib.describe.captioners import AcousticCaptioner, CaptionError
from andlib.describe.captioning import caption_paths_cli, get_captioner, run_stage
from andlib.describe.features import FEATURE_COLUMNS, acoustic_features
from andlib.describe.wording import SetNorms, describe, identity_sentence
from andlib.store import RunDir
from tests.conftest import write_tone

SR = 16000


def has_word(text: str, word: str) -> bool:
    """``word`` as a whole word (``harmonic`` also matches ``harmonics``)."""
    return re.search(rf"(?<![\w-]){re.escape(word)}s?(?![\w-])", text, re.IGNORECASE) is not None


@pytest.fixture(scope="module")
def probes():
    """The synthetic probe battery, its features and its acoustic captions (set-relative)."""
    cfg = load_config(None, {"data.dataset": "synthetic"})
    ps = synthetic_probes(cfg)
    captioner = AcousticCaptioner(cache_dir=None, num_workers=1)
    feats = captioner.features(ps).set_index("clip_id")
    caps = dict(zip(ps.clip_ids, captioner.caption(ps), strict=True))
    return ps, feats, caps


# ---- features ------------------------------------------------------------------------------


def test_features_are_complete_and_finite_even_for_odd_input():
    t = np.arange(SR) / SR
    for audio in [0.3 * np.sin(2 * np.pi * 440 * t), np.zeros(SR), np.ones(100) * 0.1]:
        f = acoustic_features(audio.astype(np.float32), SR)
        assert list(f) == FEATURE_COLUMNS
        assert all(np.isfinite(v) for v in f.values())


def test_pure_tone_measurements_match_the_signal():
    t = np.arange(2 * SR) / SR
    f = acoustic_features((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    assert abs(f["f0_hz"] - 440) < 5
    assert abs(f["rms_db"] - 20 * np.log10(0.5 / np.sqrt(2))) < 0.2
    assert abs(f["peak_db"] - 20 * np.log10(0.5)) < 0.1
    assert f["voiced_frac"] > 0.95 and f["tone_purity"] > 0.95 and f["silence_frac"] == 0


# ---- ground truth on synthetic probes -------------------------------------------------------


def test_low_vs_high_pure_tones(probes):
    _, feats, caps = probes
    for low in ["tone_100hz", "tone_220hz"]:
        assert feats.loc[low, "f0_hz"] < 250
        assert has_word(caps[low], "low-pitched") and not has_word(caps[low], "high-pitched")
    for high in ["tone_3000hz", "tone_6000hz"]:
        assert feats.loc[high, "f0_hz"] > 2500  # yin's sub-octave error at 6 kHz is corrected
        assert has_word(caps[high], "high-pitched") and not has_word(caps[high], "low-pitched")


def test_tone_vs_noise(probes):
    _, feats, caps = probes
    tones = [c for c in caps if c.startswith(("tone_", "harmonic_"))]
    noises = [c for c in caps if c.startswith("noise_")]
    assert (
        feats.loc[tones, "voiced_frac"].min() > 0.9 > 0.1 > feats.loc[noises, "voiced_frac"].max()
    )
    for c in tones:
        assert has_word(caps[c], "tonal") and not has_word(caps[c], "noisy"), caps[c]
    for c in noises:
        assert has_word(caps[c], "noisy") and not has_word(caps[c], "tonal"), caps[c]


def test_quiet_vs_loud(probes):
    _, feats, caps = probes
    for kind in ["tone_500hz", "noise_white"]:
        loud, quiet = f"{kind}_loud", f"{kind}_quiet"
        assert feats.loc[loud, "loudness_db"] - feats.loc[quiet, "loudness_db"] > 30
        assert has_word(caps[loud], "loud") and not has_word(caps[loud], "quiet")
        assert has_word(caps[quiet], "quiet") and not has_word(caps[quiet], "loud")


def test_steady_tone_vs_click_train(probes):
    _, feats, caps = probes
    assert feats.loc["tone_1000hz", "impulsiveness"] < 0.05
    assert has_word(caps["tone_1000hz"], "steady")
    assert not has_word(caps["tone_1000hz"], "impulsive")
    for c in ["clicks_2hz", "clicks_5hz", "clicks_20hz", "clicks_40hz"]:
        assert feats.loc[c, "impulsiveness"] > 0.9
        assert has_word(caps[c], "impulsive") and has_word(caps[c], "repetitive")
        assert not has_word(caps[c], "steady"), caps[c]


def test_fast_vs_slow_clicks(probes):
    _, feats, caps = probes
    assert feats.loc["clicks_20hz", "onset_rate"] > 2 * feats.loc["clicks_5hz", "onset_rate"]
    for c in ["clicks_2hz", "clicks_5hz"]:
        assert has_word(caps[c], "slow") and not has_word(caps[c], "fast")
    for c in ["clicks_20hz", "clicks_40hz"]:
        assert has_word(caps[c], "fast") and not has_word(caps[c], "slow")


def test_rising_and_falling_sweeps(probes):
    _, feats, caps = probes
    assert feats.loc["sweep_up", "pitch_trend_oct"] > 1.5
    assert feats.loc["sweep_down", "pitch_trend_oct"] < -1.5
    assert has_word(caps["sweep_up"], "rising") and not has_word(caps["sweep_up"], "falling")
    assert has_word(caps["sweep_down"], "falling") and not has_word(caps["sweep_down"], "rising")


@pytest.mark.parametrize("spec", probe_specs(), ids=lambda s: s.clip_id)
def test_every_probe_caption_has_its_tags(probes, spec):
    caption = probes[2][spec.clip_id]
    missing = [tag for tag in spec.tags if not has_word(caption, tag)]
    assert not missing, f"{caption!r} lacks {missing}"


def test_absolute_anchors_work_without_a_set(probes):
    """A single clip (no set distribution) still gets pitch, tonality and loudness right."""
    _, feats, _ = probes
    alone = {c: describe(feats.loc[c].to_dict(), norms=None) for c in feats.index}
    assert has_word(alone["tone_100hz"], "low-pitched")
    assert has_word(alone["tone_3000hz"], "high-pitched")
    assert has_word(alone["noise_white"], "noisy")
    assert has_word(alone["tone_500hz_quiet"], "quiet")
    assert has_word(alone["tone_500hz_loud"], "loud")
    assert SetNorms(feats.head(3)).rank("rms_db", -20.0) is None


def test_captions_are_deterministic_and_varied(probes):
    ps, _, caps = probes
    again = AcousticCaptioner(None, num_workers=1).caption(ps)
    assert again == [caps[c] for c in ps.clip_ids]
    shapes = {
        "it has" if ". It has" in c else "that is" if " that is " in c else "plain"
        for c in caps.values()
    }
    assert len(shapes) >= 2
    assert all(c[0].isupper() and c.endswith(".") for c in caps.values())


def test_parallel_extraction_matches_serial():
    rng = np.random.default_rng(0)
    audios = [(0.1 * rng.standard_normal(SR // 2)).astype(np.float32) for _ in range(50)]
    parallel = features.extract_features(audios, SR, num_workers=2)
    serial = features.extract_features(audios[:3], SR, num_workers=1)
    assert len(parallel) == 50 and parallel[:3] == serial


# ---- metadata+acoustic ----------------------------------------------------------------------


def _tiny_set(categories: list[str]) -> ProbingSet:
    t = np.arange(SR) / SR
    audio = [
        (0.2 * np.sin(2 * np.pi * (300 + 200 * i) * t)).astype(np.float32)
        for i in range(len(categories))
    ]
    meta = pd.DataFrame(
        {
            "clip_id": [f"c{i}" for i in range(len(categories))],
            "path": "",
            "label": 0,
            "category": categories,
        }
    )
    return ProbingSet("tiny", SR, audio, meta)


def test_metadata_prefix(tmp_cfg):
    cfg = tmp_cfg({"captioner.name": "metadata+acoustic"})
    ps = _tiny_set(["dog", "crying_baby", "door_wood_knock", "water_drops", "", "metal_gate"])
    caps = get_captioner(cfg).caption(ps)
    assert caps[0].startswith("The sound of a dog barking. A")
    assert caps[1].startswith("The sound of a baby crying. ")
    assert caps[2].startswith("The sound of knocking on a wooden door. ")
    assert caps[3].startswith("The sound of water dripping. ")
    assert not caps[4].startswith("The sound of")  # no label, acoustic sentence only
    assert caps[5].startswith("The sound of metal gate. ")
    plain = get_captioner(tmp_cfg({"captioner.name": "acoustic"})).caption(ps)
    assert caps[0].endswith(plain[0])
    assert identity_sentence("") == ""
    assert len(wording.ESC50_PHRASES) == 50


def test_unknown_captioner_is_a_config_error(tmp_cfg):
    with pytest.raises(ConfigError, match="captioner.name"):
        get_captioner(tmp_cfg({"captioner.name": "salmonn"}))


# ---- the stage: outputs, order, caching -----------------------------------------------------


def test_stage_writes_outputs_follows_clips_csv_and_reuses_the_cache(tmp_cfg, monkeypatch):
    cfg = tmp_cfg({"data.dataset": "synthetic", "data.duration": 2.0, "captioner.num_workers": 1})
    run = RunDir.from_config(cfg)
    order = list(reversed(synthetic_probes(cfg).clip_ids))[:15]
    run.write_csv("clips.csv", pd.DataFrame({"clip_id": order, "path": ""}))

    calls = []
    real = features.extract_features
    monkeypatch.setattr(
        captioners, "extract_features", lambda a, *rest: calls.append(len(a)) or real(a, *rest)
    )
    summary = run_stage(cfg, run)
    assert summary["captions"] == 15 and sum(calls) == 15
    caps = run.read_csv("captions.csv")
    feats = run.read_csv("features.csv")
    assert caps["clip_id"].tolist() == order == feats["clip_id"].tolist()
    assert list(feats.columns) == ["clip_id", *FEATURE_COLUMNS]
    assert caps["caption"].str.len().min() > 20

    assert run_stage(cfg, run)["reused"] is True  # fresh stage: nothing recomputed
    run.invalidate("caption")
    calls.clear()
    run_stage(cfg, run)  # stage re-run, per-clip cache hit: no feature extraction at all
    assert calls == []
    assert run.read_csv("captions.csv").equals(caps)


def test_stage_rejects_clips_csv_from_other_data(tmp_cfg):
    cfg = tmp_cfg({"data.dataset": "synthetic", "data.duration": 1.0, "data.limit": 3})
    run = RunDir.from_config(cfg)
    run.write_csv("clips.csv", pd.DataFrame({"clip_id": ["tone_100hz", "not_a_clip"]}))
    with pytest.raises(ValueError, match="not_a_clip"):
        run_stage(cfg, run)


# ---- CLI ------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")  # librosa's fallback
def test_cli_captions_good_files_and_names_bad_ones(tmp_cfg, tmp_path, capsys):
    good = write_tone(tmp_path / "in" / "tone.wav", freq=150, seconds=1.0)
    write_tone(tmp_path / "in" / "sub" / "high.flac", freq=3000, seconds=0.5)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 3)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(SR, dtype=np.float32), SR)

    code = caption_paths_cli(
        tmp_cfg(), [str(tmp_path / "in"), str(corrupt), str(empty), str(silent)]
    )
    out, err = capsys.readouterr()
    assert code == 1
    lines = out.strip().splitlines()
    assert len(lines) == 2
    paths = [line.split("\t")[0] for line in lines]
    assert paths == [str(tmp_path / "in" / "sub" / "high.flac"), str(good)]
    assert has_word(lines[1].split("\t")[1], "low-pitched")
    assert has_word(lines[0].split("\t")[1], "high-pitched")
    for bad in [corrupt, empty, silent]:
        assert str(bad) in err
    assert "silent" in err and "empty" in err


def test_cli_entry_point(tmp_path):
    tone = write_tone(tmp_path / "a.wav", freq=440, seconds=0.5)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "andlib",
            "caption",
            str(tone),
            str(tmp_path / "missing.wav"),
            "--captioner",
            "acoustic",
            "--set",
            f"cache_dir={tmp_path / 'cache'}",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
    )
    assert res.returncode == 1
    assert res.stdout.startswith(f"{tone}\t") and "mid-pitched" in res.stdout
    assert "missing.wav" in res.stderr


# ---- transformers captioner on a tiny random model ------------------------------------------


@pytest.fixture(scope="module")
def tiny_audio_lm(tmp_path_factory):
    """A tiny Qwen2-Audio (random weights) + processor, saved like a hub checkpoint.

    The feature extractor runs at 8 kHz, so the captioner must resample the 16 kHz clips.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2AudioConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        WhisperFeatureExtractor,
    )

    special = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|AUDIO|>",
        "<|audio_bos|>",
        "<|audio_eos|>",
    ]
    words = (
        "a the sound of dog loud quiet high low pitched noise tone click steady bright dull".split()
    )
    vocab = {t: i for i, t in enumerate([*special, "[UNK]", *words])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        additional_special_tokens=special[1:],
    )
    fe = WhisperFeatureExtractor(
        feature_size=16, sampling_rate=8000, hop_length=80, chunk_length=2, n_fft=400
    )
    config = Qwen2AudioConfig(
        audio_config={
            "d_model": 16,
            "encoder_layers": 1,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 32,
            "num_mel_bins": 16,
            "max_source_positions": 100,
        },
        text_config={
            "model_type": "qwen2",
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "intermediate_size": 64,
            "vocab_size": len(vocab),
            "max_position_embeddings": 512,
        },
        audio_token_id=vocab["<|AUDIO|>"],
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-qwen2-audio")
    Qwen2AudioForConditionalGeneration(config).save_pretrained(path)
    Qwen2AudioProcessor(feature_extractor=fe, tokenizer=tokenizer).save_pretrained(path)
    return path


@pytest.mark.filterwarnings("ignore:At least one mel filter")  # Whisper's bank tops at 8 kHz
def test_transformers_captioner_on_a_tiny_model(tmp_cfg, tiny_audio_lm, monkeypatch):
    cfg = tmp_cfg(
        {
            "captioner.name": f"transformers:{tiny_audio_lm}",
            "captioner.batch_size": 2,
            "captioner.max_new_tokens": 6,
            "captioner.device": "cpu",
        }
    )
    captioner = get_captioner(cfg)
    ps = _tiny_set(["", "", ""])
    caps = captioner.caption(ps)
    assert len(caps) == 3 and all(isinstance(c, str) and c for c in caps)

    # a new captioner (fresh process, same settings) answers from the cache: no model at all
    again = get_captioner(cfg)
    monkeypatch.setattr(again, "_load", lambda: pytest.fail("model loaded despite the cache"))
    assert again.caption(ps) == caps


# ---- openai captioner against a local server ------------------------------------------------


class _FakeChat(BaseHTTPRequestHandler):
    """Canned chat completions.

    The first request to a ``flaky`` server gets a 429; model ``broken`` always gets a 500,
    model ``alternate`` a 500 on every second request.
    """

    def log_message(self, *args):  # keep test output clean
        pass

    def do_POST(self):
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            server.requests.append(body)
            n = len(server.requests)
        broken = body["model"] == "broken" or (body["model"] == "alternate" and n % 2 == 0)
        if broken or (server.flaky and n == 1):
            status = 500 if broken else 429
            payload = json.dumps({"error": {"message": "try later", "type": "server_error"}})
            self.send_response(status)
            self.send_header("retry-after-ms", "5")
        else:
            payload = json.dumps(
                {
                    "id": f"chatcmpl-{n}",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": f" A canned caption {n}. "},
                            "finish_reason": "stop",
                        }
                    ],
                }
            )
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload.encode())


@pytest.fixture
def chat_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeChat)
    server.requests, server.lock, server.flaky = [], threading.Lock(), True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_openai_captioner_against_a_local_server(tmp_cfg, chat_server, monkeypatch):
    monkeypatch.delenv("TEST_CAPTION_KEY", raising=False)
    base = f"http://127.0.0.1:{chat_server.server_port}/v1"
    cfg = tmp_cfg(
        {
            "captioner.name": "openai:audio-model",
            "captioner.base_url": base,
            "captioner.api_key_env": "TEST_CAPTION_KEY",
            "captioner.batch_size": 2,
        }
    )
    ps = _tiny_set(["", "", ""])
    caps = get_captioner(cfg).caption(ps)
    assert len(caps) == 3 and all(re.fullmatch(r"A canned caption \d+\.", c) for c in caps)
    assert len(chat_server.requests) == 4  # one 429, retried, plus two more clips

    body = chat_server.requests[-1]
    assert body["model"] == "audio-model"
    parts = body["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": cfg.captioner.prompt}
    wav = base64.b64decode(parts[1]["input_audio"]["data"])
    assert parts[1]["input_audio"]["format"] == "wav"
    audio, sr = sf.read(io.BytesIO(wav))
    assert sr == SR and len(audio) == SR

    assert get_captioner(cfg).caption(ps) == caps  # cached: no new requests
    assert len(chat_server.requests) == 4


def test_openai_captioner_names_the_failing_clip(tmp_cfg, chat_server):
    cfg = tmp_cfg(
        {
            "captioner.name": "openai:broken",
            "captioner.base_url": f"http://127.0.0.1:{chat_server.server_port}/v1",
            "captioner.max_retries": 1,
            "captioner.batch_size": 1,
        }
    )
    with pytest.raises(CaptionError, match="'c0'"):
        get_captioner(cfg).caption(_tiny_set([""]))
    assert len(chat_server.requests) == 2  # first try + one retry on the 500
    assert not list(Path(cfg.cache_path / "captions").glob("openai_broken-*.jsonl"))


def test_openai_captioner_keeps_the_captions_that_succeeded(tmp_cfg, chat_server):
    chat_server.flaky = False
    cfg = tmp_cfg(
        {
            "captioner.name": "openai:alternate",
            "captioner.base_url": f"http://127.0.0.1:{chat_server.server_port}/v1",
            "captioner.max_retries": 0,
            "captioner.batch_size": 2,
        }
    )
    with pytest.raises(CaptionError, match=r"'c[01]'"):
        get_captioner(cfg).caption(_tiny_set(["", ""]))
    (cache,) = Path(cfg.cache_path / "captions").glob("openai_alternate-*.jsonl")
    assert len(cache.read_text().splitlines()) == 1  # the clip that succeeded is cached
