"""andlib.describe.captioners: the acoustic, metadata, transformers and OpenAI captioners."""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import io
import json
import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from andlib.config import load_config
from andlib.data.audio import ProbingSet
from andlib.data.probing import synthetic_probes
from andlib.describe import wording
from andlib.describe.captioners import AcousticCaptioner, CaptionError, OpenAICaptioner
from andlib.describe.captioning import get_captioner
from andlib.describe.wording import identity_sentence
from andlib.text.loopback import LoopbackServer, Reply, completion

SR = 16000


@pytest.fixture(scope="module")
def probes():
    """The synthetic probe battery, its features and its acoustic captions (set-relative)."""
    cfg = load_config(None, {"data.dataset": "synthetic"})
    ps = synthetic_probes(cfg)
    captioner = AcousticCaptioner(cache_dir=None, num_workers=1)
    feats = captioner.features(ps).set_index("clip_id")
    caps = dict(zip(ps.clip_ids, captioner.caption(ps), strict=True))
    return ps, feats, caps


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


def error(status: int, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"error": {"message": f"scripted {status}"}}, headers or {})


def FaultServer(  # noqa: N802  (a server class in all but name)
    respond: Callable[[int, dict], Reply], max_requests: int = 24, lifetime: float = 20.0
) -> LoopbackServer:
    """The loopback server that answers at most ``max_requests`` requests, for at most
    ``lifetime`` seconds, then closes its socket (later requests are refused)."""
    return LoopbackServer(respond, max_requests=max_requests, lifetime=lifetime)


@pytest.fixture
def serve():
    servers: list[FaultServer] = []

    def start(respond: Callable[[int, dict], Reply], **kw) -> FaultServer:
        servers.append(FaultServer(respond, **kw))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _clips(n: int) -> ProbingSet:
    sr = 8000
    rng = np.random.default_rng(0)
    audio = [0.1 * rng.standard_normal(sr // 4).astype(np.float32) for _ in range(n)]
    meta = pd.DataFrame(
        {
            "clip_id": [f"c{i}" for i in range(n)],
            "path": "",
            "label": -1,
            "category": "",
        }
    )
    return ProbingSet("faults", sr, audio, meta)


def test_openai_captioner_retries_rate_limits_and_empty_replies(serve, tmp_path):
    def respond(n: int, body: dict) -> Reply:
        if n == 0:
            later = datetime.now(timezone.utc) + timedelta(seconds=30)
            return error(429, {"Retry-After": email.utils.format_datetime(later, usegmt=True)})
        if n == 1:
            return Reply(200, completion(""))
        return Reply(200, completion(f"A caption {n}."))

    srv = serve(respond)
    cap = OpenAICaptioner(
        "audio-model", "Describe.", srv.url, batch_size=1, retry_backoff=0.01, cache_dir=tmp_path
    )
    cap.policy = dataclasses.replace(cap.policy, max_retry_after=0.3)
    assert cap.caption(_clips(1)) == ["A caption 2."]
    assert srv.count == 3 and 0.25 <= srv.gap(1) < 3.0


def test_openai_captioner_gives_up_after_max_retries(serve, tmp_path):
    srv = serve(lambda n, b: error(503))
    cap = OpenAICaptioner("audio-model", "Describe.", srv.url, max_retries=2, retry_backoff=0.01)
    with pytest.raises(CaptionError, match=r"'c0' failed after 3 attempt\(s\)"):
        cap.caption(_clips(1))
    assert srv.count == 3
