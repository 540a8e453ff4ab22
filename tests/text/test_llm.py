"""LLM backends: the openai client against a local fake server, a tiny local chat model,
the extractive backend, and the reply cache."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from andlib.config import LLMConfig
from andlib.text.llm import ExtractiveLLM, LLMError, ReplyCache, get_llm
from andlib.text.loopback import LoopbackServer, completion
from andlib.text.prompts import (
    PROMPTS,
    adjective_messages,
    captions_from_summarize_messages,
    icl_messages,
    parse_yes_no,
    simulation_messages,
    summarize_messages,
)


def echo(n: int, body: dict) -> tuple[int, dict]:
    """The default reply: names the last user message, so replies differ per request."""
    return 200, completion("summary of: " + body["messages"][-1]["content"][-40:])


FakeServer = LoopbackServer
"""The project's loopback server (:mod:`andlib.text.loopback`); ``respond`` returns ``(status,
json)`` here."""


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


# ---- openai backend --------------------------------------------------------------------------


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


# ---- transformers backend --------------------------------------------------------------------


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


# ---- extractive backend and prompts ----------------------------------------------------------


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


def test_prompts_build_messages():
    msgs = summarize_messages(["A dog\nbarks.", "Rain."])
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert "1. A dog barks.\n2. Rain." in msgs[1]["content"]
    assert "2 audio clips" in msgs[1]["content"]
    assert captions_from_summarize_messages(msgs) == ["A dog barks.", "Rain."]
    assert captions_from_summarize_messages(adjective_messages("loud")) is None

    top1 = icl_messages("Loud barking.", ["dog", "rain"], top=1)[1]["content"]
    top5 = icl_messages("Loud barking.", ["dog", "rain"], top=5)[1]["content"]
    assert "dog, rain" in top1 and "exactly one class name" in top1
    assert "5 class names" in top5
    assert '"crisp"' in adjective_messages("crisp")[1]["content"]
    sim = simulation_messages("Loud barking.", ["a dog", "rain"])
    assert [m["role"] for m in sim] == ["user"]
    assert '"Loud barking."' in sim[0]["content"] and sim[0]["content"].endswith(
        "1. a dog\n2. rain"
    )
    assert set(PROMPTS) == {"summarize", "icl", "adjective", "simulate", "detect"}
    assert parse_yes_no("Yes.") is True and parse_yes_no(" no, it is not") is False
    assert parse_yes_no("Maybe") is None
