"""LLM replies under faults, against a real loopback OpenAI-compatible server.

The server (:func:`FaultServer`, the project's :class:`andlib.text.loopback.LoopbackServer`) is
``http.server`` on 127.0.0.1 at a free port, in threads; it answers a bounded number of
requests and stops by itself after that or after a few seconds. Each test scripts the faults: 429 with ``Retry-After`` in seconds and as an HTTP-date, 500
then success, empty content, malformed bodies, ``finish_reason == "length"``, and a
permanent 400 for one request among several.
"""

from __future__ import annotations

import dataclasses
import email.utils
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from andlib.config import LLMConfig
from andlib.data.audio import ProbingSet
from andlib.describe.captioners import CaptionError, OpenAICaptioner
from andlib.text.llm import LLMError, ReplyCache, RetryPolicy, get_llm, retry_after
from andlib.text.loopback import LoopbackServer, Reply, completion, question

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


def chats(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"question number {i}"}] for i in range(n)]


def cache_files(root: Path) -> list[tuple[str, str]]:
    """Every ``(key, reply)`` in the reply cache under ``root``."""
    return ReplyCache(root).items()


def cached_replies(root: Path) -> list[str]:
    return sorted(reply for _, reply in cache_files(root))


# ---- the retry policy on its own -------------------------------------------------------------


def headers_error(**headers: str) -> SimpleNamespace:
    return SimpleNamespace(response=SimpleNamespace(headers=headers))


def test_retry_after_reads_seconds_http_dates_and_ms():
    assert retry_after(headers_error(**{"retry-after": "7"})) == 7.0
    soon = datetime.now(timezone.utc) + timedelta(seconds=20)
    date = email.utils.format_datetime(soon, usegmt=True)
    assert 18.0 <= retry_after(headers_error(**{"retry-after": date})) <= 20.0
    past = email.utils.format_datetime(soon - timedelta(hours=1), usegmt=True)
    assert retry_after(headers_error(**{"retry-after": past})) == 0.0
    assert retry_after(headers_error(**{"retry-after-ms": "250"})) == 0.25
    assert retry_after(headers_error(**{"retry-after": "soon-ish"})) is None
    assert retry_after(headers_error()) is None and retry_after(ValueError("x")) is None


def test_backoff_is_exponential_jittered_capped_and_yields_to_retry_after():
    policy = RetryPolicy(max_retries=8, backoff=1.0, max_backoff=5.0, max_retry_after=3.0)
    for retry, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (8, 5.0)]:
        waits = [policy.wait(retry, None) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 1, "no jitter"
    assert policy.wait(1, headers_error(**{"retry-after": "2"})) == 2.0
    assert policy.wait(1, headers_error(**{"retry-after": "120"})) == 3.0  # capped


def test_openai_llm_and_captioner_share_the_policy(tmp_path):
    llm = get_llm(cfg_for("http://127.0.0.1:9/v1", max_retries=4), None)
    assert llm.policy == RetryPolicy(4, 0.01, 30.0, 0.3)
    cap = OpenAICaptioner("m", "p", base_url="http://127.0.0.1:9/v1", max_retries=2)
    assert isinstance(cap.policy, RetryPolicy) and cap.policy.max_retries == 2


# ---- transient faults are retried ------------------------------------------------------------


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


# ---- cut-off replies -------------------------------------------------------------------------


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


# ---- one failure among many ------------------------------------------------------------------


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


# ---- the openai captioner under the same policy ----------------------------------------------


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
