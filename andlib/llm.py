"""Language-model backends behind one small interface, with a disk cache for every reply.

:func:`get_llm` picks the backend named by ``LLMConfig.backend``:

- ``openai``: any OpenAI-compatible chat server (OpenAI, vLLM, llama.cpp server, Ollama) through
  the ``openai`` client: bounded concurrency, timeouts, retries with exponential backoff on
  429/5xx/timeouts/connection errors, and an :class:`LLMError` naming the neuron and the
  server after the last retry.
- ``transformers:<id or path>``: a local chat model with its chat template, batched with left
  padding, on the GPU when there is one, greedy when ``temperature == 0``.
- ``extractive``: **not a language model and not generative.** It answers only the summarize
  task, by counting which attributes and phrases the captions share
  (:func:`andlib.summarize.summarize_captions`); every other prompt raises
  ``NotImplementedError``. Check :attr:`LLM.generative` to choose a fallback up front.

Every reply of a generative backend is cached under ``<cache_dir>/llm/``, one JSON file per
call, keyed by the SHA-256 of (backend, model, messages, sampling settings). A file is written
(atomically) only for a complete, valid reply and as soon as that reply arrives, so a re-run
makes no calls at all and an interrupted run re-issues only the calls that had not finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from andlib.config import LLMConfig
from andlib.prompts import Messages, captions_from_summarize_messages
from andlib.runs import atomic_write_text

log = logging.getLogger(__name__)

DEFAULT_OPENAI_URL = "https://api.openai.com/v1"
MAX_BACKOFF_S = 30.0


class LLMError(RuntimeError):
    """A language-model call failed for good; the message names the request and the server."""


# --------------------------------------------------------------------------------------------
# Disk cache
# --------------------------------------------------------------------------------------------


class ReplyCache:
    """Replies on disk, one JSON file per request key under ``<cache_dir>/llm/<key[:2]>/``."""

    def __init__(self, cache_dir: str | os.PathLike):
        self.root = Path(cache_dir) / "llm"

    @staticmethod
    def key(request: dict[str, Any]) -> str:
        blob = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        path = self._path(key)
        try:
            reply = json.loads(path.read_text(encoding="utf-8"))["reply"]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable LLM cache entry %s", path)
            return None
        return reply if isinstance(reply, str) and reply.strip() else None

    def put(self, key: str, request: dict[str, Any], reply: str) -> None:
        record = {"key": key, "request": request, "reply": reply}
        atomic_write_text(self._path(key), json.dumps(record, ensure_ascii=False, indent=1))


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
        messages. Raises :class:`LLMError` when a request fails for good; replies that arrived
        before that are cached, so calling again resumes where it stopped.
        """
        batch = [_check_messages(m) for m in batch]
        labels = [f"request {i}" for i in range(len(batch))] if labels is None else list(labels)
        if len(labels) != len(batch):
            raise ValueError(f"{len(labels)} labels for {len(batch)} requests")
        requests = [self.request(m) for m in batch]
        keys = [ReplyCache.key(r) for r in requests]
        replies: dict[str, str] = {}
        todo: list[int] = []  # first index of each distinct uncached request
        pending: set[str] = set()
        for i, key in enumerate(keys):
            if key in replies or key in pending:
                continue
            hit = self.cache.get(key) if self.cache else None
            if hit is not None:
                replies[key] = hit
                self.cache_hits += 1
            else:
                todo.append(i)
                pending.add(key)

        def on_reply(j: int, text: str) -> None:
            i = todo[j]
            replies[keys[i]] = text
            if self.cache:
                self.cache.put(keys[i], requests[i], text)

        if todo:
            log.info("%s: %d calls (%d cached)", self, len(todo), len(batch) - len(todo))
            self.calls += len(todo)
            self._generate([batch[i] for i in todo], [labels[i] for i in todo], on_reply)
        return [replies[k] for k in keys]

    def _generate(
        self,
        batch: list[Messages],
        labels: list[str],
        on_reply: Callable[[int, str], None],
    ) -> None:
        """Send every request; call ``on_reply(index, text)`` for each valid reply as it comes."""
        raise NotImplementedError


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
        # max_retries=0: retries are counted and spaced here, so max_retries means what it says.
        self.client = OpenAI(
            base_url=self.base_url, api_key=key, timeout=cfg.timeout, max_retries=0
        )

    def _generate(self, batch, labels, on_reply) -> None:
        abort = threading.Event()
        workers = max(1, min(self.cfg.concurrency, len(batch)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="andlib-llm") as pool:
            futures = {
                pool.submit(self._ask, messages, label, abort): j
                for j, (messages, label) in enumerate(zip(batch, labels, strict=True))
            }
            try:
                for n, future in enumerate(as_completed(futures), 1):
                    on_reply(futures[future], future.result())
                    if n % 100 == 0:
                        log.info("%s: %d/%d replies", self, n, len(batch))
            except BaseException:
                abort.set()  # stop queued requests and pending retries; finished ones are cached
                for future in futures:
                    future.cancel()
                raise

    def _ask(self, messages: Messages, label: str, abort: threading.Event) -> str:
        """One request with retries; returns the reply text or raises :class:`LLMError`."""
        import openai

        attempts = self.cfg.max_retries + 1
        where = f"{self.base_url} (model {self.model!r})"
        last: Exception | None = None
        for attempt in range(attempts):
            if abort.is_set():
                raise LLMError(f"{label}: cancelled after another request failed")
            try:
                response = self.client.chat.completions.create(
                    model=self.model,
                    messages=messages,  # type: ignore[arg-type]  # plain role/content dicts
                    temperature=self.cfg.temperature,
                    max_tokens=self.cfg.max_tokens,
                )
            except openai.APIConnectionError as exc:  # includes timeouts
                last = exc
            except openai.APIStatusError as exc:
                if exc.status_code not in (408, 409, 429) and exc.status_code < 500:
                    raise LLMError(
                        f"{label}: {where} refused the request (HTTP {exc.status_code}): {exc}"
                    ) from exc
                last = exc
            except (openai.APIResponseValidationError, ValueError) as exc:
                raise LLMError(f"{label}: malformed reply from {where}: {exc}") from exc
            else:
                return _reply_text(response, f"{label}: malformed reply from {where}")
            if attempt + 1 < attempts:
                delay = min(self.cfg.retry_backoff * 2**attempt, MAX_BACKOFF_S)
                if isinstance(last, openai.APIStatusError):
                    delay = max(delay, _retry_after(last) or 0.0)
                log.info(
                    "%s: %s; retry %d/%d in %.1f s",
                    label,
                    _brief(last),
                    attempt + 1,
                    self.cfg.max_retries,
                    delay,
                )
                abort.wait(delay)
        raise LLMError(
            f"{label}: no reply from {where} after {attempts} attempt(s): {_brief(last)}"
        ) from last


def _reply_text(response: Any, context: str) -> str:
    """The text of a chat completion, or :class:`LLMError` when it has none."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise LLMError(f"{context}: no choices in the reply ({str(response)[:200]!r})")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    if not isinstance(content, str) or not content.strip():
        raise LLMError(f"{context}: empty message content ({str(response)[:200]!r})")
    if getattr(choices[0], "finish_reason", None) == "length":
        log.warning("%s: reply cut at llm.max_tokens; kept as is", context.split(":")[0])
    return content.strip()


def _retry_after(exc: Any) -> float | None:
    """Seconds from a ``Retry-After`` header (capped), when the server sent one."""
    try:
        value = float(exc.response.headers.get("retry-after"))
    except (AttributeError, TypeError, ValueError):
        return None
    return min(max(value, 0.0), 60.0)


def _brief(exc: Exception | None) -> str:
    if exc is None:
        return "no error recorded"
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "") + f": {exc}"


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

    def _generate(self, batch, labels, on_reply) -> None:
        import torch

        self._load()
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
                    raise LLMError(
                        f"{labels[start + j]}: the local model {self.model!r} replied with "
                        "empty text (not cached)"
                    )
                on_reply(start + j, text.strip())
            log.info("%s: %d/%d replies", self, min(start + size, len(batch)), len(batch))


# --------------------------------------------------------------------------------------------
# Extractive: no language model at all
# --------------------------------------------------------------------------------------------


class ExtractiveLLM(LLM):
    """Not a language model: a deterministic, non-generative caption counter.

    :meth:`summarize_captions` says which attributes and phrases most of the captions share,
    with counts ("Most clips (4 of 5) are loud ..."). Through the chat interface it answers
    only prompts built by :func:`andlib.prompts.summarize_messages`; any other prompt (ICL
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
        """What most ``captions`` share and what only a few have, with counts."""
        from andlib.summarize import summarize_captions

        return summarize_captions(captions)

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
