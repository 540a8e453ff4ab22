"""The captioner backends: :class:`Captioner`, the acoustic captioner, the Hugging Face
(``transformers:``) and OpenAI-compatible (``openai:``) captioners, and their per-clip
JSON-lines caches (keyed by :func:`audio_digest`)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from andlib.config import stable_hash
from andlib.data.audio import ProbingSet
from andlib.describe.features import (
    _FMIN,
    FEATURE_COLUMNS,
    FEATURE_VERSION,
    PRECISE_FMIN,
    extract_features,
)
from andlib.describe.wording import (
    MIN_SET_SIZE,
    WORDING_VERSION,
    SetNorms,
    describe,
    identity_sentence,
)

log = logging.getLogger(__name__)


class CaptionError(RuntimeError):
    """A clip could not be captioned; the message names the clip."""


# --------------------------------------------------------------------------------------------
# Caches: one append-only JSON-lines file per key; a line per clip
# --------------------------------------------------------------------------------------------


def audio_digest(audio: np.ndarray, sample_rate: int) -> str:
    """SHA-256 of a clip's float32 samples and rate: the cache key of everything about it."""
    h = hashlib.sha256(f"{int(sample_rate)}:".encode())
    h.update(np.ascontiguousarray(audio, dtype=np.float32).tobytes())
    return h.hexdigest()


class _JsonlStore:
    """``{audio digest: value}`` persisted as JSON lines; lines are appended, never rewritten.

    A line is written only once its value is complete, so an interrupted run loses at most
    the clips in flight; a truncated last line (a crash mid-write) is ignored on load.
    """

    def __init__(self, path: Path | None):
        self.path = path  # None: in memory only
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {}
        if path is not None and path.exists():
            with open(path, encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                        self._data[rec["audio"]] = rec["value"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue

    def missing(self, digests: Sequence[str]) -> list[int]:
        """Indices of the first occurrence of each digest that has no value yet."""
        first: dict[str, int] = {}
        for i, d in enumerate(digests):
            if d not in self._data:
                first.setdefault(d, i)
        return list(first.values())

    def __contains__(self, digest: str) -> bool:
        return digest in self._data

    def __getitem__(self, digest: str) -> Any:
        return self._data[digest]

    def put_many(self, items: Sequence[tuple[str, Any, str]]) -> None:
        """Append ``(digest, value, clip_id)`` records (the clip id is only informative)."""
        if not items:
            return
        lines = "".join(
            json.dumps({"audio": d, "clip": c, "value": v}, ensure_ascii=False) + "\n"
            for d, v, c in items
        )
        with self._lock:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(lines)
            for d, v, _ in items:
                self._data[d] = v


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "captioner"


# --------------------------------------------------------------------------------------------
# Captioners
# --------------------------------------------------------------------------------------------


class Captioner:
    """Describes clips in words.

    ``name`` is the configured name and ``settings`` everything else that shapes the output
    (model, prompt, wording version...); both enter the cache keys.
    """

    name: str = ""
    settings: dict[str, Any]

    def caption(self, probing_set: ProbingSet) -> list[str]:
        """One caption per clip of ``probing_set``, in its order."""
        raise NotImplementedError


class AcousticCaptioner(Captioner):
    """Measures each clip (:func:`acoustic_features`) and words it against the whole set.

    Features are cached per clip (audio hash + :data:`FEATURE_VERSION`); captions are
    composed afresh from them and the set's :class:`SetNorms`, deterministically: the
    sentence shape of a clip is chosen from its audio hash. With ``with_identity`` (the
    ``metadata+acoustic`` captioner) a clip with a category gets ``"The sound of ..."`` first.
    ``precise_pitch`` (``captioner.precise_pitch``) measures pitch down to
    :data:`PRECISE_FMIN` (features cached apart) and states it in Hz and as a note.
    """

    def __init__(
        self,
        cache_dir: Path | None = None,
        num_workers: int = 2,
        with_identity: bool = False,
        precise_pitch: bool = False,
    ):
        self.name = "metadata+acoustic" if with_identity else "acoustic"
        self.with_identity = with_identity
        self.num_workers = num_workers
        self.precise_pitch = precise_pitch
        self.fmin = PRECISE_FMIN if precise_pitch else _FMIN
        self.settings = {
            "features": FEATURE_VERSION,
            "wording": WORDING_VERSION,
            "min_set_size": MIN_SET_SIZE,
        }
        suffix = ""
        if precise_pitch:  # default settings (and cache file) stay as they were
            self.settings["precise_pitch"] = {"fmin": PRECISE_FMIN}
            suffix = f"-fmin{PRECISE_FMIN:g}"
        name = f"acoustic-features-v{FEATURE_VERSION}{suffix}.jsonl"
        self._store = _JsonlStore(cache_dir / name if cache_dir else None)

    def _measure(self, ps: ProbingSet) -> tuple[list[str], pd.DataFrame]:
        digests = [audio_digest(a, ps.sample_rate) for a in ps.audio]
        idx = self._store.missing(digests)
        if idx:
            log.info("measuring %d of %d clips (%d cached)", len(idx), len(ps), len(ps) - len(idx))
            feats = extract_features(
                [ps.audio[i] for i in idx], ps.sample_rate, self.num_workers, self.fmin
            )
            self._store.put_many(
                [(digests[i], f, ps.clip_ids[i]) for i, f in zip(idx, feats, strict=True)]
            )
        table = pd.DataFrame([self._store[d] for d in digests], columns=FEATURE_COLUMNS)
        table.insert(0, "clip_id", ps.clip_ids)
        return digests, table

    def features(self, probing_set: ProbingSet) -> pd.DataFrame:
        """``clip_id`` + :data:`FEATURE_COLUMNS`, one row per clip (cached per clip)."""
        return self._measure(probing_set)[1]

    def caption(self, probing_set: ProbingSet) -> list[str]:
        digests, table = self._measure(probing_set)
        norms = SetNorms(table)
        categories = (
            probing_set.meta["category"].fillna("").astype(str).tolist()
            if self.with_identity and "category" in probing_set.meta
            else [""] * len(probing_set)
        )
        captions = []
        for digest, row, category in zip(
            digests, table[FEATURE_COLUMNS].to_dict("records"), categories, strict=True
        ):
            text = describe(row, norms, int(digest[:8], 16), self.precise_pitch)
            identity = identity_sentence(category) if self.with_identity else ""
            captions.append(f"{identity} {text}" if identity else text)
        return captions


class _PerClipCaptioner(Captioner):
    """A model captioner: clips are captioned in batches and each caption cached on its own."""

    def __init__(
        self, name: str, settings: dict[str, Any], cache_dir: Path | None, batch_size: int
    ):
        self.name = name
        self.settings = settings
        self.batch_size = max(1, batch_size)
        key = stable_hash({"name": name, **settings})
        self._store = _JsonlStore(cache_dir / f"{_slug(name)}-{key}.jsonl" if cache_dir else None)

    def _caption_batch(
        self, audio: list[np.ndarray], sample_rate: int, clip_ids: list[str]
    ) -> list[str | Exception]:
        """Captions of one batch; a clip that failed may be returned as its exception."""
        raise NotImplementedError

    def caption(self, probing_set: ProbingSet) -> list[str]:
        ps = probing_set
        digests = [audio_digest(a, ps.sample_rate) for a in ps.audio]
        todo = self._store.missing(digests)
        for start in range(0, len(todo), self.batch_size):
            if start % (25 * self.batch_size) == 0:
                log.info(
                    "%s: %d of %d clips left to caption", self.name, len(todo) - start, len(ps)
                )
            idx = todo[start : start + self.batch_size]
            ids = [ps.clip_ids[i] for i in idx]
            texts = self._caption_batch([ps.audio[i] for i in idx], ps.sample_rate, ids)
            done = [
                (digests[i], t.strip(), cid)
                for i, t, cid in zip(idx, texts, ids, strict=True)
                if isinstance(t, str) and t.strip()
            ]
            self._store.put_many(done)  # what succeeded is kept even if another clip failed
            for t, cid in zip(texts, ids, strict=True):
                if isinstance(t, Exception):
                    raise t
                if not isinstance(t, str) or not t.strip():
                    raise CaptionError(f"{self.name}: empty caption for clip {cid!r}")
        return [self._store[d] for d in digests]


class TransformersCaptioner(_PerClipCaptioner):
    """An audio-text-to-text model through transformers (e.g. ``Qwen/Qwen2-Audio-7B-Instruct``).

    The processor's chat template wraps one audio placeholder and ``prompt``; audio is
    resampled to the processor's rate; generation is greedy, batched, on CUDA when present.
    The model loads lazily, so a fully cached run never loads it.
    """

    MODEL_CLASSES = (
        "AutoModelForMultimodalLM",
        "AutoModelForImageTextToText",
        "AutoModelForSeq2SeqLM",
        "AutoModelForCausalLM",
    )

    def __init__(
        self,
        model_id: str,
        prompt: str,
        max_new_tokens: int = 96,
        batch_size: int = 4,
        device: str = "auto",
        cache_dir: Path | None = None,
    ):
        settings = {
            "model": model_id,
            "prompt": prompt,
            "max_new_tokens": max_new_tokens,
            "decoding": "greedy",
        }
        super().__init__(f"transformers:{model_id}", settings, cache_dir, batch_size)
        self.model_id, self.prompt, self.max_new_tokens = model_id, prompt, max_new_tokens
        self.device = device
        self._loaded: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is not None:
            return self._loaded
        import torch
        import transformers

        device = "cuda" if self.device == "auto" and torch.cuda.is_available() else self.device
        device = "cpu" if device == "auto" else device
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        try:
            processor = transformers.AutoProcessor.from_pretrained(self.model_id)
        except Exception as exc:
            raise CaptionError(f"{self.name}: cannot load the processor: {exc}") from exc
        errors = []
        for cls_name in self.MODEL_CLASSES:
            cls = getattr(transformers, cls_name, None)
            if cls is None:
                continue
            try:
                model = cls.from_pretrained(self.model_id, dtype=dtype)
                break
            except ValueError as exc:  # "Unrecognized configuration class ..." for this head
                errors.append(f"{cls_name}: {exc}".splitlines()[0])
        else:
            raise CaptionError(f"{self.name}: no audio-text-to-text head fits: {'; '.join(errors)}")
        if getattr(processor, "tokenizer", None) is not None:
            processor.tokenizer.padding_side = "left"
        self._loaded = (processor, model.to(device).eval())
        return self._loaded

    def _caption_batch(
        self, audio: list[np.ndarray], sample_rate: int, clip_ids: list[str]
    ) -> list[str | Exception]:
        import torch

        from andlib.data.audio import resample

        processor, model = self._load()
        rate = int(
            getattr(getattr(processor, "feature_extractor", None), "sampling_rate", sample_rate)
        )
        clips = [resample(a, sample_rate, rate) if rate != sample_rate else a for a in audio]
        conversation = [
            {"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": self.prompt}]}
        ]
        text = processor.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=False
        )
        try:
            inputs = processor(
                text=[text] * len(clips),
                audio=clips,
                sampling_rate=rate,
                return_tensors="pt",
                padding=True,
            ).to(model.device, dtype=model.dtype)  # casts the float tensors only
            with torch.inference_mode():
                out = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        except Exception as exc:
            raise CaptionError(
                f"{self.name}: generation failed for clips {clip_ids}: {exc}"
            ) from exc
        if not model.config.is_encoder_decoder:
            out = out[:, inputs["input_ids"].shape[1] :]
        return [t.strip() for t in processor.batch_decode(out, skip_special_tokens=True)]


class OpenAICaptioner(_PerClipCaptioner):
    """An OpenAI-compatible chat endpoint that accepts ``input_audio`` (base64 WAV) parts.

    Base URL: ``captioner.base_url``, else ``$OPENAI_BASE_URL``, else api.openai.com. Key: the
    environment variable ``captioner.api_key_env`` (a custom base URL may go without). Requests
    are retried by the LLM's :class:`andlib.text.retry.RetryPolicy` (jittered exponential backoff from
    ``retry_backoff`` seconds, honouring ``Retry-After``) on 429, 5xx, timeouts, connection
    errors and empty replies; a clip that still fails raises :class:`CaptionError` naming it.
    The requests of a batch run concurrently.
    """

    def __init__(
        self,
        model: str,
        prompt: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_new_tokens: int = 96,
        batch_size: int = 4,
        max_retries: int = 5,
        timeout: float = 120.0,
        cache_dir: Path | None = None,
        retry_backoff: float = 0.5,
    ):
        from andlib.text.retry import RetryPolicy

        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        settings = {
            "model": model,
            "prompt": prompt,
            "base_url": base_url,
            "max_new_tokens": max_new_tokens,
        }
        super().__init__(f"openai:{model}", settings, cache_dir, batch_size)
        self.model, self.prompt, self.base_url = model, prompt, base_url
        self.api_key_env, self.max_retries, self.timeout = api_key_env, max_retries, timeout
        self.max_new_tokens = max_new_tokens
        self.policy = RetryPolicy(max_retries=max_retries, backoff=retry_backoff)
        self._client: Any = None

    def _get_client(self) -> Any:
        if self._client is None:
            from openai import OpenAI

            key = os.environ.get(self.api_key_env)
            if not key:
                if not self.base_url:
                    raise CaptionError(
                        f"{self.name}: set ${self.api_key_env} (or captioner.base_url)"
                    )
                key = "none"  # local servers usually ignore the key
            self._client = OpenAI(  # max_retries=0: self.policy retries
                api_key=key, base_url=self.base_url, max_retries=0, timeout=self.timeout
            )
        return self._client

    def _one(self, audio: np.ndarray, sample_rate: int, clip_id: str) -> str:
        import openai
        import soundfile as sf

        from andlib.text.retry import BadReply, GaveUp

        buf = io.BytesIO()
        sf.write(buf, np.clip(audio, -1, 1), sample_rate, format="WAV", subtype="PCM_16")
        content = [
            {"type": "text", "text": self.prompt},
            {
                "type": "input_audio",
                "input_audio": {"data": base64.b64encode(buf.getvalue()).decode(), "format": "wav"},
            },
        ]
        client = self._get_client()

        def send() -> str:
            reply = client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": content}],
                max_tokens=self.max_new_tokens,
                temperature=0.0,
            )
            text = reply.choices[0].message.content if reply.choices else None
            if not text or not text.strip():
                raise BadReply("the endpoint returned no text")
            return text.strip()

        try:
            return self.policy.call(send, f"{self.name}: clip {clip_id!r}")
        except GaveUp as exc:
            if not exc.transient and not isinstance(exc.last, openai.OpenAIError):
                raise exc.last from None  # a bug here, not the endpoint's fault: show it
            raise CaptionError(
                f"{self.name}: clip {clip_id!r} failed after {exc.attempts} attempt(s): {exc.last}"
            ) from exc.last

    def _caption_batch(
        self, audio: list[np.ndarray], sample_rate: int, clip_ids: list[str]
    ) -> list[str | Exception]:
        def one(i: int) -> str | Exception:
            try:
                return self._one(audio[i], sample_rate, clip_ids[i])
            except CaptionError as exc:
                return exc

        if len(audio) == 1:
            return [one(0)]
        with ThreadPoolExecutor(len(audio)) as pool:
            return list(pool.map(one, range(len(audio))))
