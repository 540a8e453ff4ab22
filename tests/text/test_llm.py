"""andlib.text.llm: LLM backends (the openai client against a local fake server, a tiny local chat
model, the extractive backend)."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from andlib.config import LLMConfig
from andlib.text.llm import ExtractiveLLM, LLMError, ReplyCache, get_llm
from andlib.text.loopback import LoopbackServer, Reply, completion, question
from andlib.text.prompts import (
    adjective_messages,
    icl_messages,
    summarize_messages,
)


def echo(n: int, body: dict) -> tuple[int, dict]:
    """The default reply: names the last user message, so replies differ per request."""
    return 200, completion("summary of: " + body["messages"][-1]["content"][-40:])


FakeServer = LoopbackServer


@pytest.fixture
def server():
    servers: list[FakeServer] = []

    def start(respond=echo, delay: float = 0.0) -> FakeServer:
        servers.append(FakeServer(respond, delay))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def openai_cfg(url: str, **kw) -> LLMConfig:
    base = dict(backend="openai", model="fake-model", base_url=url, retry_backoff=0.01)
    base.update(kw)
    return LLMConfig(**base)


def chats(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"question number {i}"}] for i in range(n)]


def cache_files(root: Path) -> list[tuple[str, str]]:
    """Every ``(key, reply)`` in the reply cache under ``root``."""
    return ReplyCache(root).items()


def test_openai_first_run_calls_second_run_is_cached(server, tmp_path):
    srv = server(delay=0.05)
    cfg = openai_cfg(srv.url, concurrency=4)
    batch = chats(6) + chats(2)  # two repeats: asked once each
    replies = get_llm(cfg, tmp_path).complete_many(batch)
    assert srv.count == 6
    assert srv.max_inflight >= 2, "requests were not sent concurrently"
    assert replies[0] == "summary of: question number 0" and replies[6] == replies[0]
    assert srv.bodies[0]["model"] == "fake-model"
    assert srv.bodies[0]["temperature"] == 0.0 and srv.bodies[0]["max_tokens"] == 400
    assert len(cache_files(tmp_path)) == 6

    again = get_llm(cfg, tmp_path)
    assert again.complete_many(batch) == replies
    assert srv.count == 6 and again.calls == 0 and again.cache_hits == 6

    # Other sampling settings are another request.
    get_llm(openai_cfg(srv.url, temperature=0.7), tmp_path).complete(batch[0])
    assert srv.count == 7


def test_openai_retries_500_then_succeeds(server, tmp_path):
    def flaky(n, body):
        if n == 0:
            return 500, {"error": {"message": "boom"}}
        if n == 1:
            return 429, {"error": {"message": "slow down"}}
        return echo(n, body)

    srv = server(flaky)
    reply = get_llm(openai_cfg(srv.url, max_retries=3), tmp_path).complete(chats(1)[0])
    assert reply == "summary of: question number 0"
    assert srv.count == 3


def test_openai_retries_a_timeout(server, tmp_path):
    srv = server(delay=0.0)

    def slow_first(n, body):
        if n == 0:
            time.sleep(1.0)
        return echo(n, body)

    srv.respond = slow_first
    llm = get_llm(openai_cfg(srv.url, timeout=0.3, max_retries=2), tmp_path)
    assert llm.complete(chats(1)[0]) == "summary of: question number 0"
    assert srv.count == 2


@pytest.mark.parametrize(
    "payload",
    [
        {"id": "x", "object": "chat.completion", "choices": []},
        completion(""),
        completion(None),
    ],
    ids=["no-choices", "empty-content", "null-content"],
)
def test_openai_malformed_reply_is_an_error_and_not_cached(server, tmp_path, payload):
    srv = server(lambda n, body: (200, payload))
    llm = get_llm(openai_cfg(srv.url, max_retries=1), tmp_path)
    with pytest.raises(LLMError, match="malformed reply") as err:
        llm.complete_many(chats(1), labels=["layers.0.mlp neuron 3 (high)"])
    assert "layers.0.mlp neuron 3 (high)" in str(err.value) and srv.url in str(err.value)
    assert "2 attempt" in str(err.value)
    assert srv.count == 2  # retried once (llm.max_retries)
    assert cache_files(tmp_path) == []
    with pytest.raises(LLMError):
        llm.complete(chats(1)[0])
    assert srv.count == 4  # asked again: nothing was cached


def test_openai_exhausted_retries_name_the_neuron_and_server(server, tmp_path):
    srv = server(lambda n, body: (503, {"error": {"message": "overloaded"}}))
    llm = get_llm(openai_cfg(srv.url, max_retries=2), tmp_path)
    with pytest.raises(LLMError) as err:
        llm.complete_many(chats(1), labels=["layers.2.out neuron 41 (low)"])
    message = str(err.value)
    assert "layers.2.out neuron 41 (low)" in message
    assert srv.url in message and "3 attempt" in message and "503" in message
    assert srv.count == 3
    assert cache_files(tmp_path) == []


def test_openai_client_errors_are_not_retried(server, tmp_path):
    srv = server(lambda n, body: (400, {"error": {"message": "bad model"}}))
    with pytest.raises(LLMError, match="HTTP 400"):
        get_llm(openai_cfg(srv.url, max_retries=4), tmp_path).complete(chats(1)[0])
    assert srv.count == 1


def test_openai_connection_refused_is_reported(tmp_path):
    srv = FakeServer()
    url = srv.url
    srv.close()  # nothing listens on that port any more
    with pytest.raises(LLMError, match="no reply from") as err:
        get_llm(openai_cfg(url, max_retries=1), tmp_path).complete(chats(1)[0], label="n7")
    assert url in str(err.value) and "n7" in str(err.value)


def test_openai_settings_are_checked(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(LLMError, match="OPENAI_API_KEY"):
        get_llm(LLMConfig(backend="openai", model="gpt-4o-mini"), None)
    with pytest.raises(LLMError, match="llm.model"):
        get_llm(LLMConfig(backend="openai", base_url="http://127.0.0.1:1/v1"), None)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert get_llm(LLMConfig(backend="openai", model="m"), None).base_url == "http://127.0.0.1:9/v1"
    with pytest.raises(LLMError, match="unknown backend"):
        get_llm(LLMConfig(backend="gpt"), None)


def test_replies_arriving_before_a_failure_are_kept(server, tmp_path):
    def fail_last(n, body):
        if "number 3" in body["messages"][-1]["content"]:
            return 400, {"error": {"message": "no"}}
        return echo(n, body)

    srv = server(fail_last)
    llm = get_llm(openai_cfg(srv.url, concurrency=1), tmp_path)
    with pytest.raises(LLMError):
        llm.complete_many(chats(4))
    assert len(cache_files(tmp_path)) == 3
    srv.respond = echo
    again = get_llm(openai_cfg(srv.url, concurrency=1), tmp_path)
    again.complete_many(chats(4))
    assert again.calls == 1 and again.cache_hits == 3


@pytest.fixture
def tiny_chat_model(tmp_path) -> Path:
    """A tiny Llama with random weights and a word-level tokenizer with a chat template."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = "system: user: assistant: loud quiet dog bark rain bright dark tone noise clip".split()
    vocab = {w: i for i, w in enumerate(["<pad>", "<s>", "</s>", "<unk>", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    fast.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # never emit special tokens, so every reply has words in it
        model.lm_head.weight[:4] = 0.0
        model.lm_head.weight[4:] += 1.0 * torch.sign(model.lm_head.weight[4:].sum(1, keepdim=True))
    model.generation_config.suppress_tokens = [0, 1, 2, 3]
    path = tmp_path / "tiny-chat"
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


def test_transformers_backend_generates_in_batches_and_caches(tiny_chat_model, tmp_path):
    cfg = LLMConfig(backend=f"transformers:{tiny_chat_model}", max_tokens=4, batch_size=2)
    llm = get_llm(cfg, tmp_path / "cache")
    batch = [
        summarize_messages(["loud dog bark", "quiet rain"]),
        [{"role": "user", "content": "dog"}],
        adjective_messages("bright"),
    ]
    replies = llm.complete_many(batch)
    assert len(replies) == 3 and all(isinstance(r, str) and r.strip() for r in replies)
    assert llm.calls == 3
    assert llm._tok.padding_side == "left"

    again = get_llm(cfg, tmp_path / "cache")
    assert again.complete_many(batch) == replies
    assert again.calls == 0 and again._lm is None  # fully cached: the model is never loaded


def test_transformers_backend_reports_a_missing_model(tmp_path):
    llm = get_llm(LLMConfig(backend=f"transformers:{tmp_path / 'nope'}"), tmp_path)
    with pytest.raises(LLMError, match="cannot load the chat model"):
        llm.complete([{"role": "user", "content": "hi"}])


def test_extractive_backend_answers_only_the_summarize_prompt(tmp_path):
    llm = get_llm(LLMConfig(), tmp_path)
    assert isinstance(llm, ExtractiveLLM) and not llm.generative
    caps = ["A loud, bright sound.", "A loud, dark sound.", "A quiet hum."]
    assert llm.complete(summarize_messages(caps)) == llm.summarize_captions(caps)
    assert "Loud sounds (2 of 3 clips)" in llm.summarize_captions(caps)
    with pytest.raises(NotImplementedError, match="not a language model"):
        llm.complete(icl_messages("loud barking", ["dog", "rain"], top=1))
    with pytest.raises(NotImplementedError):
        llm.complete_many([adjective_messages("bright")], labels=["adj bright"])
    assert cache_files(tmp_path) == []


LABELS = [f"layers.0.mlp neuron {i} (high)" for i in range(8)]


def ok(body: dict) -> Reply:
    return Reply(200, completion("summary of: " + question(body)))


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


def cfg_for(url: str, **kw) -> LLMConfig:
    """Tiny backoff (0.01 s) and a small cap on ``Retry-After`` keep every test fast."""
    base = dict(
        backend="openai",
        model="fake-model",
        base_url=url,
        retry_backoff=0.01,
        max_retry_after=0.3,
        max_retries=3,
        concurrency=2,
    )
    base.update(kw)
    return LLMConfig(**base)


def cached_replies(root: Path) -> list[str]:
    return sorted(reply for _, reply in cache_files(root))


def test_429_with_retry_after_seconds_waits_as_told(serve, tmp_path):
    srv = serve(lambda n, b: error(429, {"Retry-After": "30"}) if n == 0 else ok(b))
    reply = get_llm(cfg_for(srv.url), tmp_path).complete(chats(1)[0])
    assert reply == "summary of: question number 0" and srv.count == 2
    assert 0.25 <= srv.gap(1) < 3.0  # Retry-After (capped at 0.3 s), not the 0.01 s backoff
    assert cached_replies(tmp_path) == [reply]


def test_429_with_retry_after_http_date_waits_as_told(serve, tmp_path):
    def respond(n: int, body: dict) -> Reply:
        if n == 0:
            later = datetime.now(timezone.utc) + timedelta(seconds=30)
            return error(429, {"Retry-After": email.utils.format_datetime(later, usegmt=True)})
        return ok(body)

    srv = serve(respond)
    assert get_llm(cfg_for(srv.url), tmp_path).complete(chats(1)[0]).startswith("summary of")
    assert srv.count == 2 and 0.25 <= srv.gap(1) < 3.0


def test_500_then_success_is_retried_with_backoff(serve, tmp_path):
    srv = serve(lambda n, b: error(500) if n < 2 else ok(b))
    reply = get_llm(cfg_for(srv.url), tmp_path).complete(chats(1)[0])
    assert reply == "summary of: question number 0" and srv.count == 3
    assert srv.gap(1) < 0.25 and srv.gap(2) < 0.25  # the tiny backoff, no Retry-After
    assert cached_replies(tmp_path) == [reply]


@pytest.mark.parametrize(
    "bad",
    [
        Reply(200, completion("")),
        Reply(200, completion("   ")),
        Reply(200, completion(None)),
        Reply(200, {"id": "x", "object": "chat.completion", "choices": []}),
        Reply(200, b"{this is not json"),
    ],
    ids=["empty", "blank", "null", "no-choices", "not-json"],
)
def test_empty_or_malformed_reply_is_retried_then_cached(serve, tmp_path, bad):
    srv = serve(lambda n, b: bad if n == 0 else ok(b))
    reply = get_llm(cfg_for(srv.url), tmp_path).complete(chats(1)[0], label=LABELS[0])
    assert reply == "summary of: question number 0" and srv.count == 2
    assert cached_replies(tmp_path) == [reply]


def test_malformed_replies_are_bounded_by_max_retries_and_never_cached(serve, tmp_path):
    srv = serve(lambda n, b: Reply(200, completion("")))
    with pytest.raises(LLMError, match="malformed reply") as err:
        get_llm(cfg_for(srv.url, max_retries=2), tmp_path).complete(chats(1)[0], LABELS[3])
    assert srv.count == 3 and "3 attempt" in str(err.value)
    assert err.value.failures == [(LABELS[3], err.value.failures[0][1])]
    assert cache_files(tmp_path) == []


def test_cut_off_reply_is_asked_again_with_twice_the_tokens(serve, tmp_path):
    srv = serve(
        lambda n, b: Reply(200, completion("a half", "length")) if n == 0 else ok(b),
    )
    cfg = cfg_for(srv.url, max_tokens=50)
    reply = get_llm(cfg, tmp_path).complete(chats(1)[0])
    assert reply == "summary of: question number 0"
    assert [b["max_tokens"] for b in srv.bodies] == [50, 100]
    assert cached_replies(tmp_path) == [reply]  # the complete reply, never "a half"
    again = get_llm(cfg, tmp_path)
    assert again.complete(chats(1)[0]) == reply and again.calls == 0 and srv.count == 2


def test_reply_still_cut_off_fails_and_is_not_cached(serve, tmp_path):
    srv = serve(lambda n, b: Reply(200, completion("and then", "length")))
    llm = get_llm(cfg_for(srv.url, max_tokens=50), tmp_path)
    with pytest.raises(LLMError, match="cut off at 100 tokens") as err:
        llm.complete(chats(1)[0], label=LABELS[5])
    assert LABELS[5] in str(err.value)
    assert [b["max_tokens"] for b in srv.bodies] == [50, 100]  # one retry, then given up
    assert cache_files(tmp_path) == []


def test_one_permanent_failure_does_not_stop_the_others(serve, tmp_path):
    def respond(n: int, body: dict) -> Reply:
        if "number 2" in question(body):
            return error(400)
        if "number 4" in question(body):
            return Reply(200, completion("cut", "length"))
        return ok(body)

    srv = serve(respond)
    llm = get_llm(cfg_for(srv.url, max_tokens=20), tmp_path)
    with pytest.raises(LLMError) as err:
        llm.complete_many(chats(6), labels=LABELS[:6])
    failures = dict(err.value.failures)
    assert set(failures) == {LABELS[2], LABELS[4]}
    assert "HTTP 400" in failures[LABELS[2]]
    assert "cut off at 40 tokens" in failures[LABELS[4]]
    message = str(err.value)
    assert message.startswith("2 of 6 requests") and LABELS[2] in message and LABELS[4] in message
    assert message.count("\n") == 2  # one line per failed request
    # 4 good replies + 1 (400, never retried) + 2 (cut off, retried once with 40 tokens)
    assert srv.count == 7
    assert cached_replies(tmp_path) == [f"summary of: question number {i}" for i in (0, 1, 3, 5)]

    srv.respond = lambda n, b: ok(b)
    again = get_llm(cfg_for(srv.url, max_tokens=20), tmp_path)
    replies = again.complete_many(chats(6), labels=LABELS[:6])
    assert replies == [f"summary of: question number {i}" for i in range(6)]
    assert again.calls == 2 and again.cache_hits == 4


def test_server_that_goes_away_fails_every_request_in_one_error(serve, tmp_path):
    srv = serve(lambda n, b: ok(b), max_requests=2)  # stops by itself after two replies
    llm = get_llm(cfg_for(srv.url, concurrency=1, max_retries=1), tmp_path)
    with pytest.raises(LLMError) as err:
        llm.complete_many(chats(4), labels=LABELS[:4])
    assert len(err.value.failures) == 2 and srv.count == 2
    assert all("no reply from" in reason for _, reason in err.value.failures)
    assert len(cache_files(tmp_path)) == 2
