"""Language-model backends behind one small interface, with a disk cache for every reply.

:func:`get_llm` picks the backend named by ``LLMConfig.backend``:

- ``openai``: any OpenAI-compatible chat server (OpenAI, vLLM, llama.cpp server, Ollama) through
  the ``openai`` client: bounded concurrency, timeouts, and the shared
  :class:`andlib.text.retry.RetryPolicy`
  (jittered exponential backoff that honours ``Retry-After``) on 429/5xx, timeouts, connection
  errors and empty or malformed replies. A reply cut off at ``llm.max_tokens``
  (``finish_reason == "length"``) is asked once more with twice the tokens and is never cached.
- ``transformers:<id or path>``: a local chat model with its chat template, batched with left
  padding, on the GPU when there is one, greedy when ``temperature == 0``.
- ``extractive``: **not a language model and not generative.** It answers only the summarize
  task, by counting which attributes and phrases the captions share
  (:func:`andlib.text.extractive.summarize_captions`); every other prompt raises
  ``NotImplementedError``. Check :attr:`LLM.generative` to choose a fallback up front.

Every reply of a generative backend is cached in ``<cache_dir>/llm/replies.sqlite``
(:class:`andlib.text.replies.ReplyCache`), keyed by the SHA-256 of (backend, model, messages,
sampling settings).
An entry is written only for a complete, valid reply and as soon as that reply arrives, so a
re-run makes no calls at all and an interrupted run re-issues only the calls that had not
finished. Caches of the earlier one-JSON-file-per-reply layout are imported on first use.
A request that fails for good does not stop the others: :meth:`LLM.complete_many` caches every
reply that arrived and then raises one :class:`LLMError` that lists each failed request.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from andlib.config import LLMConfig
from andlib.text.prompts import Messages, captions_from_summarize_messages
from andlib.text.replies import ReplyCache
from andlib.text.retry import BadReply, GaveUp, RetryPolicy, brief_error
from andlib.text.retry import retry_after as retry_after  # re-exported: the old import path

log = logging.getLogger(__name__)

DEFAULT_OPENAI_URL = "https://api.openai.com/v1"


class LLMError(RuntimeError):
    """A language-model call failed for good; the message names the request and the server.

    Raised by :meth:`LLM.complete_many` after every other request was answered (and cached):
    ``failures`` then holds ``(label, reason)`` for each request that failed.
    """

    def __init__(self, message: str, failures: Sequence[tuple[str, str]] = ()):
        super().__init__(message)
        self.failures: list[tuple[str, str]] = list(failures)


# --------------------------------------------------------------------------------------------
# The interface
# --------------------------------------------------------------------------------------------


class LLM:
    """A chat model: ``complete(messages) -> str`` and ``complete_many(batch) -> list[str]``.

    Subclasses implement :meth:`_generate`; this class handles labels, the disk cache and
    de-duplication of identical requests.
    """

    backend: str = ""
    model: str = ""
    generative: bool = True
    """False for the extractive backend, which answers only the summarize task."""

    def __init__(self, cfg: LLMConfig, cache_dir: str | os.PathLike | None):
        self.cfg = cfg
        self.cache = ReplyCache(cache_dir) if cache_dir is not None else None
        self.calls = 0
        """Requests sent to the model by this object (cache hits not counted)."""
        self.cache_hits = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backend={self.backend!r}, model={self.model!r})"

    def sampling(self) -> dict[str, Any]:
        """The settings besides the prompt that change a reply (part of the cache key)."""
        return {"temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens}

    def request(self, messages: Messages) -> dict[str, Any]:
        """Everything that identifies one call: what the cache key is computed from."""
        return {
            "backend": self.backend,
            "model": self.model,
            "messages": messages,
            "sampling": self.sampling(),
        }

    def complete(self, messages: Messages, label: str | None = None) -> str:
        """The reply to one chat (a list of ``{"role", "content"}`` dicts)."""
        return self.complete_many([messages], None if label is None else [label])[0]

    def complete_many(
        self, batch: Sequence[Messages], labels: Sequence[str] | None = None
    ) -> list[str]:
        """Replies to many chats, in order; cached ones are read, the rest sent concurrently.

        ``labels`` name the requests (e.g. ``"layers.3.mlp neuron 17 (high)"``) in error
        messages. A request that fails for good does not stop the others: once every request
        is answered or has failed, the replies that arrived are cached and one
        :class:`LLMError` lists each failed request with its reason (``.failures``), so calling
        again asks only those.
        """
        batch = [_check_messages(m) for m in batch]
        labels = [f"request {i}" for i in range(len(batch))] if labels is None else list(labels)
        if len(labels) != len(batch):
            raise ValueError(f"{len(labels)} labels for {len(batch)} requests")
        requests = [self.request(m) for m in batch]
        keys = [ReplyCache.key(r) for r in requests]
        replies: dict[str, str] = self.cache.get_many(keys) if self.cache is not None else {}
        self.cache_hits += len(replies)
        todo: list[int] = []  # first index of each distinct uncached request
        pending: set[str] = set()
        for i, key in enumerate(keys):
            if key not in replies and key not in pending:
                todo.append(i)
                pending.add(key)

        def on_reply(j: int, text: str) -> None:
            i = todo[j]
            replies[keys[i]] = text
            if self.cache is not None:
                self.cache.put(keys[i], requests[i], text)

        if todo:
            log.info("%s: %d calls (%d cached)", self, len(todo), len(batch) - len(todo))
            self.calls += len(todo)
            failed = self._generate([batch[i] for i in todo], [labels[i] for i in todo], on_reply)
            if failed:
                raise _failures_error(
                    self, [(labels[todo[j]], failed[j]) for j in sorted(failed)], len(todo)
                )
        return [replies[k] for k in keys]

    def _generate(
        self,
        batch: list[Messages],
        labels: list[str],
        on_reply: Callable[[int, str], None],
    ) -> dict[int, str]:
        """Send every request; call ``on_reply(index, text)`` for each valid reply as it comes.

        Returns ``{index: reason}`` for the requests that failed for good.
        """
        raise NotImplementedError


def _failures_error(llm: LLM, failures: list[tuple[str, str]], asked: int) -> LLMError:
    """One error naming every failed request: ``label: reason``, one per line."""
    if asked == 1:
        (label, reason), *_ = failures
        return LLMError(f"{label}: {reason}", failures)
    lines = "\n".join(f"  - {label}: {reason}" for label, reason in failures)
    return LLMError(
        f"{len(failures)} of {asked} requests to {llm!r} failed (the {asked - len(failures)} "
        f"replies that arrived are cached; a re-run asks only the failed ones):\n{lines}",
        failures,
    )


def _check_messages(messages: Messages) -> Messages:
    if not isinstance(messages, list) or not messages:
        raise TypeError(f"messages must be a non-empty list of dicts, got {messages!r}")
    for m in messages:
        if not (isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m):
            raise TypeError(f"each message needs 'role' and 'content', got {m!r}")
    return [{"role": m["role"], "content": str(m["content"])} for m in messages]


def get_llm(cfg: LLMConfig, cache_dir: str | os.PathLike | None) -> LLM:
    """The backend that ``cfg.backend`` names; replies are cached under ``cache_dir/llm``.

    ``cache_dir`` is normally ``Config.cache_path``; ``None`` turns the disk cache off.
    Raises :class:`LLMError` for an unknown backend or incomplete ``openai`` settings.
    """
    backend = cfg.backend.strip()
    if backend == "extractive":
        return ExtractiveLLM(cfg, cache_dir)
    if backend == "openai":
        return OpenAILLM(cfg, cache_dir)
    if backend.startswith("transformers:") and backend.split(":", 1)[1].strip():
        return TransformersLLM(cfg, cache_dir, backend.split(":", 1)[1].strip())
    raise LLMError(
        f"llm.backend: unknown backend {cfg.backend!r}; use extractive, openai or "
        "transformers:<model id or path>"
    )


# --------------------------------------------------------------------------------------------
# OpenAI-compatible servers
# --------------------------------------------------------------------------------------------


class OpenAILLM(LLM):
    """Any OpenAI-compatible ``/chat/completions`` server, ``cfg.concurrency`` calls at a time.

    The server is ``cfg.base_url``, else ``$OPENAI_BASE_URL``, else OpenAI's. The key is read
    from ``$<cfg.api_key_env>``; local servers that need none get a dummy key.
    """

    backend = "openai"

    def __init__(self, cfg: LLMConfig, cache_dir: str | os.PathLike | None):
        super().__init__(cfg, cache_dir)
        from openai import OpenAI

        if not cfg.model:
            raise LLMError("llm.model: name the model to ask (the openai backend needs one)")
        self.model = cfg.model
        self.base_url = (
            cfg.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_OPENAI_URL
        ).rstrip("/")
        key = os.environ.get(cfg.api_key_env)
        if not key:
            if self.base_url == DEFAULT_OPENAI_URL:
                raise LLMError(
                    f"${cfg.api_key_env} is not set: the openai backend needs an API key for "
                    f"{self.base_url} (or set llm.base_url to a local OpenAI-compatible server)"
                )
            key = "no-key-needed"
        # max_retries=0: :attr:`policy` makes the retries, so llm.max_retries means what it says.
        self.client = OpenAI(
            base_url=self.base_url, api_key=key, timeout=cfg.timeout, max_retries=0
        )
        self.policy = RetryPolicy.from_config(cfg)

    def _generate(self, batch, labels, on_reply) -> dict[int, str]:
        """At most ``llm.concurrency`` requests in flight and twice that many queued: the
        next request is submitted only as one finishes (backpressure), so 10^5 requests cost
        no more memory than a few hundred."""
        abort = threading.Event()
        failed: dict[int, str] = {}
        workers = max(1, min(self.cfg.concurrency, len(batch)))
        window = 3 * workers
        jobs = iter(enumerate(zip(batch, labels, strict=True)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="andlib-llm") as pool:
            futures: dict[Future[str], int] = {}

            def submit(n: int) -> None:
                for j, (messages, label) in itertools.islice(jobs, n):
                    futures[pool.submit(self._ask, messages, label, abort)] = j

            submit(window)
            done_count = 0
            try:
                while futures:
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in done:
                        j = futures.pop(future)
                        try:
                            text = future.result()
                        except LLMError as exc:  # this request failed for good; others go on
                            failed[j] = str(exc)
                            log.warning("%s: %s", labels[j], exc)
                        else:
                            on_reply(j, text)
                        done_count += 1
                        if done_count % 1000 == 0:
                            log.info("%s: %d/%d replies", self, done_count, len(batch))
                    submit(window - len(futures))
            except BaseException:
                abort.set()  # stop queued requests and pending retries; finished ones are cached
                for future in futures:
                    future.cancel()
                raise
        return failed

    def _ask(self, messages: Messages, label: str, abort: threading.Event) -> str:
        """One reply, or :class:`LLMError` with the reason (without the label) it failed.

        A reply cut off at ``llm.max_tokens`` is asked once more with twice the tokens; the
        complete reply is then cached under the original request.
        """
        tokens = self.cfg.max_tokens
        text, finish = self._ask_once(messages, label, abort, tokens)
        if finish == "length":
            log.info(
                "%s: reply cut off at %d tokens; asking again with %d", label, tokens, 2 * tokens
            )
            tokens *= 2
            text, finish = self._ask_once(messages, label, abort, tokens)
        if finish == "length":
            raise LLMError(
                f"reply from {self._where()} cut off at {tokens} tokens (not cached; raise "
                f"llm.max_tokens, now {self.cfg.max_tokens})"
            )
        return text

    def _where(self) -> str:
        return f"{self.base_url} (model {self.model!r})"

    def _ask_once(
        self, messages: Messages, label: str, abort: threading.Event, max_tokens: int
    ) -> tuple[str, str | None]:
        """``(text, finish_reason)`` of one request under :attr:`policy`, or :class:`LLMError`."""
        import openai

        def send() -> tuple[str, str | None]:
            if abort.is_set():
                raise _Cancelled
            response = self.client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]  # plain role/content dicts
                temperature=self.cfg.temperature,
                max_tokens=max_tokens,
            )
            return _reply_text(response)

        where = self._where()
        try:
            return self.policy.call(send, label, abort)
        except GaveUp as gave_up:
            exc = gave_up.last
            if isinstance(exc, _Cancelled):
                raise LLMError("cancelled: the run was interrupted") from exc
            if isinstance(exc, openai.APIStatusError) and not gave_up.transient:
                raise LLMError(
                    f"{where} refused the request (HTTP {exc.status_code}): {exc}"
                ) from exc
            if not gave_up.transient:
                raise exc from None  # not a fault of the server or the network: a bug
            if isinstance(exc, (BadReply, openai.APIResponseValidationError, ValueError)):
                raise LLMError(
                    f"malformed reply from {where} after {gave_up.attempts} attempt(s): "
                    f"{brief_error(exc)}"
                ) from exc
            raise LLMError(
                f"no reply from {where} after {gave_up.attempts} attempt(s): {brief_error(exc)}"
            ) from exc


class _Cancelled(Exception):
    """A queued request or retry stopped because the run was interrupted."""


def _reply_text(response: Any) -> tuple[str, str | None]:
    """``(text, finish_reason)`` of a chat completion; :class:`BadReply` when it has no text.

    A cut-off reply (``finish_reason == "length"``) is returned as is, even empty.
    """
    choices = getattr(response, "choices", None)
    if not choices:
        raise BadReply(f"no choices in the reply ({str(response)[:120]!r})")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    finish = getattr(choices[0], "finish_reason", None)
    if finish == "length":
        return (content if isinstance(content, str) else "").strip(), finish
    if not isinstance(content, str) or not content.strip():
        raise BadReply(f"empty message content (finish_reason {finish!r})")
    return content.strip(), finish


# --------------------------------------------------------------------------------------------
# Local transformers chat models
# --------------------------------------------------------------------------------------------


class TransformersLLM(LLM):
    """A local causal LM with a chat template, ``cfg.batch_size`` chats per ``generate``.

    The model is loaded on the first request that is not cached, so a fully cached re-run does
    not load it at all.
    """

    backend = "transformers"

    def __init__(self, cfg: LLMConfig, cache_dir: str | os.PathLike | None, model_id: str):
        super().__init__(cfg, cache_dir)
        self.model = model_id
        self._tok: Any = None
        self._lm: Any = None

    def _load(self) -> None:
        if self._lm is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(self.model)
            lm = AutoModelForCausalLM.from_pretrained(self.model, dtype="auto")
        except OSError as exc:
            raise LLMError(
                f"cannot load the chat model {self.model!r} (a local path, or a hub id that "
                f"must be reachable or already cached): {exc}"
            ) from exc
        if not getattr(tok, "chat_template", None):
            raise LLMError(f"{self.model!r} has no chat template: use an instruction/chat model")
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self._tok, self._lm = tok, lm.to(device).eval()  # type: ignore[arg-type]

    def _prompt(self, messages: Messages) -> str:
        tok = self._tok
        try:
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception:  # some templates reject a system turn: fold it into the first user turn
            if messages[0]["role"] != "system" or len(messages) < 2:
                raise
            merged = [
                {
                    "role": messages[1]["role"],
                    "content": messages[0]["content"] + "\n\n" + messages[1]["content"],
                }
            ]
            return tok.apply_chat_template(
                merged + messages[2:], tokenize=False, add_generation_prompt=True
            )

    def _generate(self, batch, labels, on_reply) -> dict[int, str]:
        import torch

        self._load()
        failed: dict[int, str] = {}
        tok, lm = self._tok, self._lm
        greedy = self.cfg.temperature <= 0
        options: dict[str, Any] = {
            "max_new_tokens": self.cfg.max_tokens,
            "pad_token_id": tok.pad_token_id,
            "do_sample": not greedy,
        }
        if greedy:  # silence warnings about sampling settings in the model's generation config
            options.update(temperature=None, top_p=None, top_k=None)
        else:
            options["temperature"] = self.cfg.temperature
        size = max(1, self.cfg.batch_size)
        for start in range(0, len(batch), size):
            texts = [self._prompt(m) for m in batch[start : start + size]]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            enc = enc.to(lm.device)
            with torch.inference_mode():
                out = lm.generate(**enc, **options)
            new_tokens = out[:, enc["input_ids"].shape[1] :]
            for j, text in enumerate(tok.batch_decode(new_tokens, skip_special_tokens=True)):
                if not text.strip():
                    failed[start + j] = f"the local model {self.model!r} replied with empty text"
                    continue
                on_reply(start + j, text.strip())
            log.info("%s: %d/%d replies", self, min(start + size, len(batch)), len(batch))
        return failed


# --------------------------------------------------------------------------------------------
# Extractive: no language model at all
# --------------------------------------------------------------------------------------------


class ExtractiveLLM(LLM):
    """Not a language model: a deterministic, non-generative caption counter.

    :meth:`summarize_captions` says which attributes and phrases most of the captions share,
    with counts ("Most clips (4 of 5) are loud ..."). Through the chat interface it answers
    only prompts built by :func:`andlib.text.prompts.summarize_messages`; any other prompt (ICL
    concept picking, the acoustic-adjective question) raises ``NotImplementedError``, so
    callers fall back to embedding similarity or the shipped adjective lexicon. Nothing is
    cached: it is fast and deterministic.
    """

    backend = "extractive"
    model = "extractive-caption-counter"
    generative = False

    def __init__(self, cfg: LLMConfig, cache_dir: str | os.PathLike | None = None):
        super().__init__(cfg, None)

    def summarize_captions(self, captions: Sequence[str]) -> str:
        """What at least ``llm.summary_min_share`` of ``captions`` share (a source: at least
        ``llm.summary_source_share``), with counts."""
        from andlib.text.extractive import summarize_captions

        return summarize_captions(
            captions,
            min_share=self.cfg.summary_min_share,
            source_share=self.cfg.summary_source_share,
        )

    def complete_many(self, batch, labels=None) -> list[str]:
        replies = []
        for i, messages in enumerate(batch):
            captions = captions_from_summarize_messages(_check_messages(messages))
            if captions is None:
                label = labels[i] if labels is not None else f"request {i}"
                raise NotImplementedError(
                    f"{label}: the extractive backend is not a language model and answers only "
                    "the summarize prompt; use embedding similarity (ICL) or the adjective "
                    "lexicon instead, or set llm.backend to openai or transformers:<model>"
                )
            replies.append(self.summarize_captions(captions))
        return replies
