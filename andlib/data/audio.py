"""Audio I/O: decoding one file (:func:`load_audio`), the decoded :class:`ProbingSet`, and
the errors a clip or a missing dataset raises (:class:`AudioError`, :class:`DataNotFoundError`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from andlib.config import DataConfig

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")


class AudioError(ValueError):
    """A clip cannot be used; ``path`` names the file and ``reason`` says what is wrong."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class DataNotFoundError(FileNotFoundError):
    """The dataset is not on disk and could not be downloaded."""


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def load_audio(
    path: str | os.PathLike,
    sample_rate: int,
    duration: float | None = None,
    silence_dbfs: float = -80.0,
) -> np.ndarray:
    """Decode one file to mono float32 at ``sample_rate``; pad/trim to ``duration`` seconds.

    Raises :class:`AudioError` naming the file for anything unusable: unreadable or corrupt
    data, zero samples, non-finite samples, or a peak below ``silence_dbfs``.
    """
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise AudioError(path, "file is empty (0 bytes)")
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, ...
        audio, sr = _decode_fallback(path, exc)
    if audio.shape[0] == 0:
        raise AudioError(path, "no audio samples (empty stream)")
    audio = audio.mean(axis=1) if audio.ndim == 2 else audio
    if not np.all(np.isfinite(audio)):
        raise AudioError(path, "contains NaN or infinite samples")
    if sr != sample_rate:
        audio = resample(audio, sr, sample_rate)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 10 ** (silence_dbfs / 20):
        level = "-inf" if peak == 0 else f"{20 * np.log10(peak):.1f}"
        raise AudioError(path, f"silent (peak {level} dBFS, threshold {silence_dbfs} dBFS)")
    if duration is not None:
        audio = fix_length(audio, int(round(duration * sample_rate)))
    return np.ascontiguousarray(audio, dtype=np.float32)


def _decode_fallback(path: Path, first_error: Exception) -> tuple[np.ndarray, int]:
    """Formats libsndfile lacks (some mp3/m4a builds) go through librosa/audioread."""
    try:
        import librosa

        audio, sr = librosa.load(str(path), sr=None, mono=False)
    except Exception as exc:
        raise AudioError(
            path, f"cannot decode audio ({type(first_error).__name__}: {first_error})"
        ) from exc
    audio = np.asarray(audio, dtype=np.float32)
    audio = audio[:, None] if audio.ndim == 1 else audio.T
    return audio, int(sr)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    import librosa

    return librosa.resample(audio, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq").astype(
        np.float32
    )


def fix_length(audio: np.ndarray, n: int) -> np.ndarray:
    if len(audio) >= n:
        return audio[:n]
    return np.pad(audio, (0, n - len(audio)))


# --------------------------------------------------------------------------------------------
# The probing set
# --------------------------------------------------------------------------------------------


@dataclass
class ProbingSet:
    """Decoded clips in a fixed order; row ``i`` of every activation array is ``clip_ids[i]``.

    ``meta`` holds one row per clip with at least ``clip_id``, ``path``, ``label`` (int or -1),
    ``category`` (str or ""), and dataset-specific columns (``fold`` and ``src_file`` for
    ESC-50, ``group`` for a folder dataset whose recordings are known, attribute columns for
    synthetic probes).
    """

    name: str
    sample_rate: int
    audio: list[np.ndarray]
    meta: pd.DataFrame
    class_names: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    grouping: str = ""
    """How ``meta``'s ``group`` column (the recording each clip was cut from) was made, when
    it has one: ``group_pattern <regex>`` or ``labels_csv group column``."""

    def __len__(self) -> int:
        return len(self.audio)

    @property
    def clip_ids(self) -> list[str]:
        return self.meta["clip_id"].tolist()

    @property
    def labels(self) -> np.ndarray:
        return self.meta["label"].to_numpy()

    def index_of(self, clip_id: str) -> int:
        return self._index[clip_id]

    def __post_init__(self) -> None:
        self._index = {cid: i for i, cid in enumerate(self.meta["clip_id"])}
        if len(self._index) != len(self.meta):
            raise ValueError(f"{self.name}: clip ids are not unique")
        if len(self.audio) != len(self.meta):
            raise ValueError(
                f"{self.name}: {len(self.audio)} clips but {len(self.meta)} rows of metadata"
            )

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        return iter(zip(self.clip_ids, self.audio, strict=True))

    def batches(self, batch_size: int) -> Iterator[tuple[int, list[np.ndarray]]]:
        """``(start_index, [audio, ...])`` in order."""
        for start in range(0, len(self), batch_size):
            yield start, self.audio[start : start + batch_size]

    def subset(self, indices: list[int] | np.ndarray) -> ProbingSet:
        idx = [int(i) for i in indices]
        return ProbingSet(
            name=self.name,
            sample_rate=self.sample_rate,
            audio=[self.audio[i] for i in idx],
            meta=self.meta.iloc[idx].reset_index(drop=True),
            class_names=self.class_names,
            skipped=list(self.skipped),
            grouping=self.grouping,
        )

    def skipped_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.skipped, columns=["path", "reason"])


@dataclass
class ClipList:
    """A probing set before decoding: ``rows`` has the ``meta`` columns of every candidate
    clip (with its ``path``); :func:`decode_clips` turns it into a :class:`ProbingSet`, and
    an engine that decodes elsewhere (the Ray recorder's tasks) reads it as it is."""

    name: str
    rows: pd.DataFrame
    class_names: list[str]
    grouping: str = ""

    @property
    def meta(self) -> pd.DataFrame:
        """The rows, read as a :class:`ProbingSet`'s ``meta``."""
        return self.rows

    @property
    def clip_ids(self) -> list[str]:
        return self.rows["clip_id"].tolist()


def decode_clips(clips: ClipList, cfg: DataConfig) -> ProbingSet:
    """Decode every clip of ``clips`` in threads (:func:`_decode_all`)."""
    return _decode_all(clips.rows, cfg, clips.name, clips.class_names, clips.grouping)


def _decode_all(
    rows: pd.DataFrame, cfg: DataConfig, name: str, class_names: list[str], grouping: str = ""
) -> ProbingSet:
    """Decode ``rows`` (with a ``path`` column) in threads; apply ``on_error``."""

    def work(path: str) -> np.ndarray | AudioError:
        try:
            return load_audio(path, cfg.sample_rate, cfg.duration, cfg.silence_dbfs)
        except AudioError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        results = list(pool.map(work, rows["path"].tolist()))
    keep, audio, skipped = [], [], []
    for i, res in enumerate(results):
        if isinstance(res, AudioError):
            if cfg.on_error == "raise":
                raise res
            log.warning("skipping %s", res)
            skipped.append((res.path, res.reason))
        else:
            keep.append(i)
            audio.append(res)
    if not audio:
        raise AudioError(cfg.root or name, f"no usable audio among {len(rows)} files")
    meta = rows.iloc[keep].reset_index(drop=True)
    return ProbingSet(name, cfg.sample_rate, audio, meta, class_names, skipped, grouping)


def _limit(rows: pd.DataFrame, limit: int | None, seed_rng: np.random.Generator) -> pd.DataFrame:
    """Keep ``limit`` rows, spread over classes (round-robin in a seeded order), stable order."""
    if limit is None or limit >= len(rows):
        return rows
    order = seed_rng.permutation(len(rows))
    shuffled = rows.iloc[order]
    rank = shuffled.groupby("label", sort=False).cumcount()
    picked = shuffled.assign(_rank=rank.values).sort_values("_rank", kind="stable").head(limit)
    return rows.loc[sorted(picked.index)]
