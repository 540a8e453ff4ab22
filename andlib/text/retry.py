"""One retry policy for every OpenAI-compatible call (LLM replies and audio captions).

:class:`RetryPolicy` retries transient failures (:func:`is_transient`: 429/5xx, timeouts,
connection errors, and :class:`BadReply` for empty or malformed replies) with jittered
exponential backoff that honours ``Retry-After`` (:func:`retry_after`), and raises
:class:`GaveUp` when the attempts run out; :func:`brief_error` says why in one line.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

from andlib.config import LLMConfig

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
"""The longest backoff between two attempts when the server sends no ``Retry-After``."""
RETRYABLE_STATUS = (408, 409, 429)
"""HTTP statuses below 500 that are worth another attempt (every 5xx is too)."""

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# Retries: one policy for every OpenAI-compatible call (LLM replies and audio captions)
# --------------------------------------------------------------------------------------------


class BadReply(Exception):
    """The server answered, but with an empty or malformed reply: worth another attempt."""


class GaveUp(Exception):
    """:meth:`RetryPolicy.call` stopped: ``last`` is the final error after ``attempts`` tries.

    ``transient`` is False when ``last`` was not worth retrying (e.g. HTTP 400), so it was
    tried once.
    """

    def __init__(self, last: BaseException, attempts: int, transient: bool):
        super().__init__(f"after {attempts} attempt(s): {brief_error(last)}")
        self.last, self.attempts, self.transient = last, attempts, transient


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth another attempt: timeouts, connection errors, 408/409/429,
    5xx, and empty or malformed replies (:class:`BadReply`, unparsable bodies)."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRYABLE_STATUS or exc.status_code >= 500
    return isinstance(
        exc, (openai.APIConnectionError, openai.APIResponseValidationError, BadReply, ValueError)
    )


def retry_after(exc: BaseException | None) -> float | None:
    """Seconds the server asked to wait (uncapped), when its reply to ``exc`` said so.

    Reads ``retry-after-ms`` (OpenAI's), then ``Retry-After`` in either form: delay-seconds
    (``"7"``) or an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``, the seconds until then).
    """
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    try:
        return max(float(headers.get("retry-after-ms")) / 1000.0, 0.0)
    except (TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - datetime.now(timezone.utc)).total_seconds(), 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with jittered exponential backoff that honour ``Retry-After``.

    Attempt ``n + 1`` waits what the server asked for (``Retry-After`` / ``retry-after-ms``,
    capped at ``max_retry_after``), else a random time between half and all of
    ``min(backoff * 2**(n-1), max_backoff)`` seconds. Built on ``tenacity``; shared by
    :class:`OpenAILLM` and :class:`andlib.describe.captioning.OpenAICaptioner`.
    """

    max_retries: int = 5
    """Retries after the first attempt (0: one attempt)."""
    backoff: float = 1.0
    """Ceiling of the first wait, in seconds; doubled for each further retry."""
    max_backoff: float = MAX_BACKOFF_S
    max_retry_after: float = 60.0
    """The longest wait a server's ``Retry-After`` may impose."""

    @classmethod
    def from_config(cls, cfg: LLMConfig) -> RetryPolicy:
        """The policy of the ``llm`` settings."""
        return cls(cfg.max_retries, cfg.retry_backoff, MAX_BACKOFF_S, cfg.max_retry_after)

    def wait(self, retry: int, exc: BaseException | None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based) after ``exc``."""
        asked = retry_after(exc)
        if asked is not None:
            return min(asked, self.max_retry_after)
        ceiling = min(self.backoff * 2 ** (retry - 1), self.max_backoff)
        return max(ceiling, 0.0) * random.uniform(0.5, 1.0)

    def call(
        self,
        fn: Callable[[], T],
        label: str,
        abort: threading.Event | None = None,
        transient: Callable[[BaseException], bool] = is_transient,
    ) -> T:
        """``fn()``, retried while it raises a ``transient`` error and retries are left.

        Raises :class:`GaveUp` (with the last error) when it never succeeded. Setting
        ``abort`` cuts the current wait short and stops further attempts.
        """
        import tenacity

        attempts = 0

        def attempt() -> T:
            nonlocal attempts
            attempts += 1
            return fn()

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            log.info(
                "%s: %s; retry %d/%d in %.2f s",
                label,
                brief_error(exc),
                state.attempt_number,
                self.max_retries,
                delay,
            )

        def sleep(seconds: float) -> None:
            if abort is None:
                time.sleep(seconds)
            else:
                abort.wait(seconds)  # returns early when the run is interrupted

        stop: Any = tenacity.stop_after_attempt(max(self.max_retries, 0) + 1)
        if abort is not None:
            stop = stop | tenacity.stop_when_event_set(abort)
        retrying = tenacity.Retrying(
            stop=stop,
            wait=lambda state: self.wait(
                state.attempt_number, state.outcome.exception() if state.outcome else None
            ),
            retry=tenacity.retry_if_exception(transient),
            sleep=sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except Exception as exc:
            raise GaveUp(exc, attempts, transient(exc)) from exc


def brief_error(exc: BaseException | None) -> str:
    """``Type (HTTP status): message`` of an error, on one line."""
    if exc is None:
        return "no error recorded"
    status = getattr(exc, "status_code", None)
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "") + f": {text}"
