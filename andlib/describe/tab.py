"""Module A of AND, text-audio-based (TAB): closed-set concepts from CLAP.

Audio embeddings of every clip (resampled to 48 kHz, ``truncation="rand_trunc"``, seeded)
against the text embeddings of ``"This is a sound of <concept>."``, ``softmax(CLAP's logit
scale * cos)`` (``concepts.tab_logit_scale: 1.0``: AND's unscaled softmax), scored with
``concepts.tab_similarity`` against the full activation matrix. Skipped (the function returns
``None`` and says why, the stage records why in its ``tab`` entry) only when
``concepts.clap_model`` is not set; a configured model that cannot be loaded is an error
(:class:`ClapLoadError`). A clip CLAP cannot read is left out of TAB's scoring and listed in
``tab_skipped_clips.csv`` (``clip_id, path, reason``), never scored as silence.

The stage that runs it is :mod:`andlib.describe.concepts`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from andlib.config import stable_hash
from andlib.describe.closed_set import DB_LOGIT_SCALE, ArrayLike, _softmax
from andlib.describe.similarity import get_similarity, top_concepts
from andlib.text.concept_sets import display_name

log = logging.getLogger(__name__)

CLAP_TEMPLATE = "This is a sound of {}."
CLAP_SAMPLE_RATE = 48000


class TABUnavailable(RuntimeError):
    """TAB is skipped: no CLAP model is configured (``concepts.clap_model`` is null)."""


class ClapLoadError(RuntimeError):
    """The configured CLAP model (``concepts.clap_model``) cannot be loaded: an error, not a
    skip; the message names the model."""


class ClapScorer:
    """A CLAP model and its processor: audio and text embeddings, concept probabilities.

    Audio is resampled to 48 kHz and processed with ``truncation="rand_trunc"`` under a fixed
    NumPy seed (clips longer than the model's 10 s window are cropped reproducibly). Audio
    embeddings are remembered per clip in memory and, with ``cache_dir``, on disk
    (``<cache_dir>/clap/``, keyed by model, file, size and modification time). ``device``: where
    the model runs (a torch device name; the stage passes what ``model.device`` resolves to).
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        name: str = "clap",
        batch_size: int = 8,
        cache_dir: str | os.PathLike | None = None,
        seed: int = 0,
        device: str = "cpu",
    ):
        self.device = device
        self.model = model.to(device).eval()
        self.processor = processor
        self.name = name
        self.batch_size = max(1, int(batch_size))
        self.cache_dir = Path(cache_dir) / "clap" if cache_dir is not None else None
        self.seed = seed
        self._audio: dict[str, np.ndarray] = {}

    @classmethod
    def from_pretrained(cls, name: str, **kwargs: Any) -> ClapScorer:
        """Load ``ClapModel`` and ``ClapProcessor`` from a hub id or local directory."""
        from transformers import ClapModel, ClapProcessor

        try:
            model = ClapModel.from_pretrained(name)
            processor = ClapProcessor.from_pretrained(name)
        except Exception as exc:  # OSError offline, ValueError for a wrong checkpoint, ...
            raise ClapLoadError(
                f"cannot load the CLAP model {name!r} (concepts.clap_model): {exc}; set "
                f"concepts.clap_model to a loadable hub id or folder, or to null to skip TAB"
            ) from exc
        return cls(model, processor, name=name, **kwargs)

    @property
    def logit_scale(self) -> float:
        scale = getattr(self.model, "logit_scale_a", None)
        return float(scale.detach().exp()) if scale is not None else DB_LOGIT_SCALE

    @staticmethod
    def _features(out: Any) -> torch.Tensor:
        feats = getattr(out, "pooler_output", out)  # transformers 5 returns a model output
        return torch.nn.functional.normalize(feats.float(), dim=-1)

    def _clip_key(self, clip: Any) -> str | None:
        if isinstance(clip, str | os.PathLike):
            p = Path(clip)
            st = p.stat() if p.exists() else None
            return stable_hash(
                [self.name, str(p.resolve()), st and st.st_size, st and st.st_mtime_ns, self.seed]
            )
        return None

    def _load(self, clip: Any) -> np.ndarray:
        """A clip's 48 kHz waveform; :class:`andlib.data.probing.AudioError` when it cannot be read."""
        if not isinstance(clip, str | os.PathLike):
            return np.asarray(clip, dtype=np.float32)  # already a 48 kHz waveform
        from andlib.data.audio import load_audio

        return load_audio(clip, CLAP_SAMPLE_RATE, silence_dbfs=-np.inf)

    @torch.no_grad()
    def audio_embeddings(
        self, clips: Sequence[Any], skipped: list[tuple[int, str]] | None = None
    ) -> np.ndarray:
        """``[n, d]`` unit-norm CLAP audio embeddings of file paths or 48 kHz waveforms.

        The row of a clip that cannot be read (:class:`andlib.data.probing.AudioError`) is NaN, never
        silence: callers leave it out. Its ``(index, reason)`` is appended to ``skipped`` when
        a list is given.
        """
        from andlib.data.audio import AudioError

        keys = [self._clip_key(c) for c in clips]
        out: list[np.ndarray | None] = [self._audio.get(k) if k else None for k in keys]
        for i, k in enumerate(keys):
            if out[i] is None and k and self.cache_dir and (self.cache_dir / f"{k}.npy").exists():
                out[i] = self._audio[k] = np.load(self.cache_dir / f"{k}.npy")
        todo = [i for i, v in enumerate(out) if v is None]
        bad: set[int] = set()
        state = np.random.get_state()
        np.random.seed(self.seed)
        try:
            for s in range(0, len(todo), self.batch_size):
                idx, waves = [], []
                for i in todo[s : s + self.batch_size]:
                    try:
                        waves.append(self._load(clips[i]))
                    except AudioError as exc:
                        log.warning("TAB: %s; the clip is left out of TAB", exc)
                        if skipped is not None:
                            skipped.append((i, exc.reason))
                        bad.add(i)
                        continue
                    idx.append(i)
                if not idx:
                    continue
                inputs = self.processor(
                    audio=waves,
                    sampling_rate=CLAP_SAMPLE_RATE,
                    truncation="rand_trunc",
                    return_tensors="pt",
                )
                inputs = {
                    k: v.to(self.device)
                    for k, v in inputs.items()
                    if k in ("input_features", "is_longer")
                }
                feats = self._features(self.model.get_audio_features(**inputs)).cpu().numpy()
                for i, v in zip(idx, feats, strict=True):
                    out[i] = v
                    key = keys[i]
                    if key:
                        self._audio[key] = v
                        if self.cache_dir:
                            self.cache_dir.mkdir(parents=True, exist_ok=True)
                            np.save(self.cache_dir / f"{key}.npy", v)
        finally:
            np.random.set_state(state)
        dim = next((v.shape[0] for v in out if v is not None), 0)
        out = [np.full(dim, np.nan, np.float32) if i in bad else v for i, v in enumerate(out)]
        done = [v for v in out if v is not None]
        if len(done) != len(out):  # every clip is embedded above; a gap would misalign rows
            raise RuntimeError(f"CLAP: {len(out) - len(done)} clips were not embedded")
        return np.stack(done).astype(np.float32) if done else np.zeros((0, 0), np.float32)

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """``[n, d]`` unit-norm CLAP text embeddings."""
        inputs = self.processor(text=list(texts), return_tensors="pt", padding=True)
        inputs = {
            k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")
        }
        return self._features(self.model.get_text_features(**inputs)).cpu().numpy()

    def concept_probs(
        self,
        clips: Sequence[Any],
        concepts: Sequence[str],
        logit_scale: float | None = None,
        skipped: list[tuple[int, str]] | None = None,
    ) -> np.ndarray:
        """``[n_clips, n_concepts]``: CLAP's zero-shot probabilities, ``softmax(scale * cos)``.

        ``logit_scale`` (``concepts.tab_logit_scale``) ``None``: CLAP's learned scale
        (:attr:`logit_scale`); AND's code uses ``1.0``, an unscaled softmax. The row of a clip
        that cannot be read is NaN; ``skipped`` collects ``(index, reason)`` of those clips
        (:meth:`audio_embeddings`).
        """
        audio = (
            self.audio_embeddings(clips)
            if skipped is None
            else self.audio_embeddings(clips, skipped)
        )
        text = self.text_embeddings([CLAP_TEMPLATE.format(display_name(c)) for c in concepts])
        scale = self.logit_scale if logit_scale is None else float(logit_scale)
        return _softmax(audio @ text.T, scale)


@lru_cache(maxsize=2)
def _cached_clap(name: str, batch_size: int, cache_dir: str | None, device: str) -> ClapScorer:
    return ClapScorer.from_pretrained(
        name, batch_size=batch_size, cache_dir=cache_dir, device=device
    )


def load_clap(
    name: str | None,
    batch_size: int = 8,
    cache_dir: str | os.PathLike | None = None,
    device: str = "cpu",
) -> ClapScorer:
    """The (process-wide, shared) :class:`ClapScorer` for ``name`` on ``device``:
    :class:`TABUnavailable` (TAB is skipped) when ``name`` is empty, :class:`ClapLoadError`
    (an error naming the model) when it cannot be loaded."""
    if not name:
        raise TABUnavailable(
            "TAB skipped: no CLAP model is configured (concepts.clap_model is null)"
        )
    return _cached_clap(
        str(name), int(batch_size), str(cache_dir) if cache_dir else None, str(device)
    )


def tab_concepts(
    clips: Sequence[Any],
    concepts: Sequence[str],
    activations: ArrayLike,
    clap: str | ClapScorer | None,
    similarity: str = "soft_wpmi",
    top: int = 5,
    logit_scale: float | None = None,
    params: Any = None,
) -> list[list[str]] | None:
    """Text-audio-based concepts of every neuron of one layer, or ``None`` when TAB cannot run.

    ``clips[j]`` (an audio file path or a 48 kHz waveform) is row ``j`` of ``activations``.
    ``clap`` is a CLAP model id/path, a loaded :class:`ClapScorer`, or ``None``; when it is
    ``None`` the reason is logged and printed and ``None`` is returned; a model that cannot be
    loaded raises :class:`ClapLoadError`. Clips CLAP cannot read (NaN rows of
    :meth:`ClapScorer.concept_probs`) are left out of the scoring. ``logit_scale`` is ``concepts.tab_logit_scale`` (:meth:`ClapScorer.concept_probs`),
    ``params`` ``concepts.similarity_params``.
    """
    try:
        scorer = clap if isinstance(clap, ClapScorer) else load_clap(clap)
    except TABUnavailable as exc:
        log.warning("%s", exc)
        print(exc)
        return None
    acts = np.asarray(activations, dtype=np.float32)
    if len(clips) != acts.shape[0]:
        raise ValueError(f"{len(clips)} clips for {acts.shape[0]} activation rows")
    probs = (  # a subclass may still take (clips, concepts) only
        scorer.concept_probs(clips, concepts)
        if logit_scale is None
        else scorer.concept_probs(clips, concepts, logit_scale)
    )
    readable = np.isfinite(np.asarray(probs, dtype=np.float32)).all(axis=1)
    if not readable.all():
        if not readable.any():
            raise ValueError("TAB: CLAP could read none of the clips")
        probs, acts = np.asarray(probs)[readable], acts[readable]
    return top_concepts(get_similarity(similarity, params)(probs, acts), list(concepts), top)
