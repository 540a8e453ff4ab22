"""andlib.text.retry: Retry-After, backoff, and one policy for every OpenAI-compatible call."""

from __future__ import annotations

import email.utils
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from andlib.config import LLMConfig
from andlib.describe.captioners import OpenAICaptioner
from andlib.text.llm import RetryPolicy, get_llm, retry_after


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
