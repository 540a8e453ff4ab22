"""Clip captioning: every probing clip gets a plain-English description of what is heard.

Captioners (``captioner.name``):

- ``acoustic`` (offline default): measures the signal (:func:`acoustic_features`: loudness,
  pitch, tonal vs noisy, brightness, low/high energy, onsets and their regularity, envelope,
  silences) and says it in words. Words are chosen against the whole probing set (a clip is
  "loud" when it is among the loudest of the set) *and* against absolute anchors (a 100 Hz tone
  is low-pitched and a -45 dBFS clip quiet on any set).
- ``metadata+acoustic``: ``"The sound of a dog barking."`` from the clip's category, followed
  by the acoustic sentence. Leaks the label: report it beside ``acoustic``, never alone.
- ``transformers:<id or path>``: an audio-text-to-text model (e.g. Qwen2-Audio-7B-Instruct)
  prompted with ``captioner.prompt``, batched, on the GPU when there is one.
- ``openai:<model>``: an OpenAI-compatible chat endpoint that accepts ``input_audio`` parts.

Caching (``<cache_dir>/captions/``): model captioners cache one caption per clip, keyed by the
SHA-256 of the clip's samples and the captioner's name and settings, in one append-only
JSON-lines file per captioner-settings key; a re-run makes no model calls. The acoustic
captioners cache the *features* per clip instead (keyed by the audio hash and the feature
version) and compose captions from them: a caption depends on the whole set (the set-relative
thresholds), composing is cheap and deterministic, and features do not.

Public surface: :class:`Captioner`, :func:`get_captioner`, :func:`acoustic_features`,
:data:`FEATURE_COLUMNS`, :func:`describe`, :class:`SetNorms`, :func:`identity_sentence`,
:func:`caption_vocabulary`, :func:`run_stage`, :func:`caption_paths_cli`, :class:`CaptionError`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import multiprocessing
import os
import re
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from andlib.config import Config, ConfigError, stable_hash
from andlib.data import AUDIO_EXTENSIONS, AudioError, ProbingSet, load_audio, load_probing_set
from andlib.runs import RunDir

log = logging.getLogger(__name__)

FEATURE_VERSION = 1
"""Bump when :func:`acoustic_features` changes: cached features are keyed by it."""
WORDING_VERSION = 1
"""Bump when the wording rules change (enters the acoustic captioners' settings)."""
MIN_SET_SIZE = 20
"""Below this many clips there is no set distribution: only absolute anchors choose words."""
SERIAL_BELOW = 48
"""Sets smaller than this are measured in-process (a process pool costs ~1 s to start)."""


class CaptionError(RuntimeError):
    """A clip could not be captioned; the message names the clip."""


# --------------------------------------------------------------------------------------------
# Acoustic features
# --------------------------------------------------------------------------------------------

FEATURE_COLUMNS = [
    "duration_s",  # clip length
    "rms_db",  # RMS of the whole clip, dBFS
    "peak_db",  # sample peak, dBFS
    "level_db",  # RMS over the sounding (non-silent) frames, dBFS
    "loudness_db",  # B-weighted level with partial summation across bands (broadband = louder)
    "crest_db",  # peak_db - level_db
    "silence_frac",  # fraction of frames more than 35 dB below the loudest frame (or < -70 dBFS)
    "n_events",  # sounding segments separated by silences of at least 0.1 s
    "event_s",  # mean duration of those segments
    "gap_s",  # mean duration of the silences between them (0 without)
    "f0_hz",  # median fundamental (librosa.yin) over voiced frames; 0 when nothing is voiced
    "voiced_frac",  # fraction of sounding frames that are periodic (yin aperiodicity < 0.2)
    "harmonicity",  # 1 - median yin aperiodicity over sounding frames (1 = perfectly periodic)
    "tone_purity",  # median share of a frame's energy within 2 bins of its strongest bin
    "pitch_trend_oct",  # pitch change, first to last third of voiced frames, in octaves
    "pitch_spread_oct",  # standard deviation of log2 f0 over voiced frames
    "flatness",  # median spectral flatness of sounding frames (1 = white noise)
    "centroid_hz",  # spectral centroid of the long-term spectrum
    "rolloff_hz",  # 85 % roll-off frequency
    "bandwidth_hz",  # spectral spread around the centroid
    "low_ratio",  # energy share below 500 Hz
    "high_ratio",  # energy share above 4 kHz
    "onset_rate",  # detected onsets per second
    "onset_regularity",  # 1 - coefficient of variation of inter-onset intervals (0 if < 3 onsets)
    "onset_strength",  # median spectral-flux strength of the onsets (dB)
    "impulsiveness",  # share of energy in 2 ms frames at least 6 dB above their 50 ms context
    "attack_db",  # steepest level rise within 30 ms
    "level_trend_db",  # level change from the first to the last third of the sounding span
    "level_std_db",  # level fluctuation over the sounding span
]

_FMIN = 50.0
PRECISE_FMIN = 32.0
"""YIN's lowest pitch with ``captioner.precise_pitch`` (B0 is 30.9 Hz, E1 41.2 Hz): the 64 ms
YIN frame at 16 kHz holds periods up to 511 samples (31.3 Hz)."""
_FLOOR_DB = -120.0


def _db(x: float | np.ndarray, power: bool = True) -> Any:
    """Decibels of a power (or amplitude) with a floor, so silence gives -120 and not -inf."""
    x = np.maximum(np.asarray(x, dtype=np.float64), 1e-30)
    out = (10.0 if power else 20.0) * np.log10(x)
    return np.maximum(out, _FLOOR_DB)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the runs of True in ``mask``."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _yin_aperiodicity(frames: np.ndarray, min_period: int, max_period: int) -> np.ndarray:
    """Per frame, the minimum of YIN's cumulative mean normalized difference (0 = periodic)."""
    import librosa

    acf = librosa.autocorrelate(frames, max_size=max_period + 1, axis=0)
    energy = np.cumsum(frames**2, axis=0)
    diff = 2 * (acf[:1] - acf[1 : max_period + 1]) - energy[:max_period]
    cumulative_mean = np.cumsum(diff, axis=0) / np.arange(1, max_period + 1)[:, None]
    cmnd = diff[min_period - 1 :] / (cumulative_mean[min_period - 1 :] + 1e-12)
    return np.clip(cmnd.min(axis=0), 0.0, 2.0)


def acoustic_features(audio: np.ndarray, sr: int, fmin: float = _FMIN) -> dict[str, float]:
    """Measure one clip: a dict with one finite float per name in :data:`FEATURE_COLUMNS`.

    ``fmin`` is the lowest pitch YIN looks for (50 Hz; :data:`PRECISE_FMIN` with
    ``captioner.precise_pitch``, which also stops a spectral peak below 8 STFT bins from
    overruling YIN: at 16 kHz those bins are 31 Hz wide, several semitones at low pitches).

    Frames are 32 ms with an 8 ms hop (spectral and onset features), 64 ms with a 32 ms hop
    (pitch, via ``librosa.yin``). "Sounding" frames are those within 35 dB of the clip's
    loudest frame and above -70 dBFS; spectral, pitch and level measurements use only those,
    so padding silence changes ``silence_frac`` and ``rms_db`` but not the timbre.
    """
    import librosa

    y = np.asarray(audio, dtype=np.float32).reshape(-1)
    duration = len(y) / sr
    n_fft = int(2 ** round(np.log2(0.032 * sr)))
    hop = n_fft // 4
    if len(y) < 2 * n_fft:
        y = np.pad(y, (0, 2 * n_fft - len(y)))
    y64 = y.astype(np.float64)
    out: dict[str, float] = {"duration_s": duration}

    # ---- levels and silence ----------------------------------------------------------------
    power = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop)) ** 2  # [bins, frames]
    to_ms = 2.0 / (n_fft * 0.375 * n_fft)  # one-sided Hann power -> mean square
    frame_db = _db(power.sum(axis=0) * to_ms)
    threshold = max(frame_db.max() - 35.0, -70.0)
    sounding = frame_db > threshold
    if not sounding.any():
        sounding[np.argmax(frame_db)] = True
    out["rms_db"] = float(_db(float(np.mean(y64**2))))
    out["peak_db"] = float(_db(np.max(np.abs(y64)), power=False))
    out["level_db"] = float(_db(np.mean(power[:, sounding].sum(axis=0)) * to_ms))
    out["crest_db"] = out["peak_db"] - out["level_db"]
    out["silence_frac"] = float(1.0 - sounding.mean())

    # ---- events: sounding segments separated by >= 0.1 s of silence -------------------------
    starts, ends = _runs(sounding)
    gaps = (starts[1:] - ends[:-1]) * hop / sr
    keep_gap = gaps >= 0.1
    seg_starts = np.r_[starts[0], starts[1:][keep_gap]]
    seg_ends = np.r_[ends[:-1][keep_gap], ends[-1]]
    out["n_events"] = float(len(seg_starts))
    out["event_s"] = float(np.mean(seg_ends - seg_starts) * hop / sr)
    out["gap_s"] = float(np.mean(gaps[keep_gap])) if keep_gap.any() else 0.0

    # ---- spectrum of the sounding frames -----------------------------------------------------
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    ltas = power[:, sounding].mean(axis=1).astype(np.float64)
    total = ltas.sum() + 1e-30
    centroid = float((freqs * ltas).sum() / total)
    out["centroid_hz"] = centroid
    out["rolloff_hz"] = float(
        freqs[min(int(np.searchsorted(np.cumsum(ltas) / total, 0.85)), len(freqs) - 1)]
    )
    out["bandwidth_hz"] = float(np.sqrt(((freqs - centroid) ** 2 * ltas).sum() / total))
    out["low_ratio"] = float(ltas[freqs < 500].sum() / total)
    out["high_ratio"] = float(ltas[freqs >= 4000].sum() / total)
    all_p = power.astype(np.float64) + 1e-20
    peaks = np.argmax(all_p, axis=0)  # per frame: the strongest bin and its share of energy
    cum = np.vstack([np.zeros((1, all_p.shape[1])), np.cumsum(all_p, axis=0)])
    lo, hi = np.maximum(peaks - 2, 0), np.minimum(peaks + 3, len(freqs))
    purity = (np.take_along_axis(cum, hi[None], 0) - np.take_along_axis(cum, lo[None], 0))[0]
    purity = purity / cum[-1]
    out["tone_purity"] = float(np.median(purity[sounding]))
    frames_p = all_p[:, sounding]
    flat = np.exp(np.mean(np.log(frames_p), axis=0)) / np.mean(frames_p, axis=0)
    out["flatness"] = float(np.median(flat))
    out["loudness_db"] = _loudness_db(frames_p * to_ms, freqs, sr)

    # ---- pitch and periodicity (YIN) ---------------------------------------------------------
    frame_length, yin_hop = 2 * n_fft, 4 * hop
    f0 = librosa.yin(
        y, fmin=fmin, fmax=sr / 2, sr=sr, frame_length=frame_length, hop_length=yin_hop
    )
    frames = librosa.util.frame(
        np.pad(y, frame_length // 2), frame_length=frame_length, hop_length=yin_hop
    )
    aper = _yin_aperiodicity(frames, 2, int(np.ceil(sr / fmin)))
    yin_sounding = _db(np.mean(frames.astype(np.float64) ** 2, axis=0)) > threshold
    if not yin_sounding.any():
        yin_sounding[:] = True
    voiced = yin_sounding & (aper < 0.2)
    out["voiced_frac"] = float(voiced.sum() / yin_sounding.sum())
    out["harmonicity"] = float(np.clip(1.0 - np.median(aper[yin_sounding]), 0.0, 1.0))
    # YIN locks onto a sub-octave for very high pure tones (a few samples per period): where
    # one spectral peak dominates a frame and disagrees by more than a third of an octave,
    # trust the peak. (YIN frame j is centred on STFT frame 4j.)
    idx = np.minimum(np.arange(len(f0)) * (yin_hop // hop), power.shape[1] - 1)
    peak_hz = np.maximum(freqs[peaks[idx]], 1.0)
    wrong = (purity[idx] >= 0.5) & (np.abs(np.log2(f0 / peak_hz)) > 0.3)
    if fmin < _FMIN:  # precise pitch: a peak in the lowest 8 bins (31 Hz wide) is too coarse
        wrong &= peaks[idx] >= 8
    f0 = np.where(wrong, peak_hz, f0)
    out["f0_hz"] = float(np.median(f0[voiced])) if voiced.any() else 0.0
    if voiced.sum() >= 6:
        lf = np.log2(f0[voiced])
        third = len(lf) // 3
        out["pitch_trend_oct"] = float(np.median(lf[-third:]) - np.median(lf[:third]))
        out["pitch_spread_oct"] = float(np.std(lf))
    else:
        out["pitch_trend_oct"] = out["pitch_spread_oct"] = 0.0

    # ---- onsets --------------------------------------------------------------------------------
    mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=64) @ power
    mel_db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    mel_db = np.maximum(mel_db, mel_db.max() - 80.0)
    env = librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=hop)
    onsets = librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=hop, units="frames")
    onsets = onsets[(onsets >= 4) & (env[onsets] >= 3.0)]  # skip the clip's own start
    out["onset_rate"] = float(len(onsets) / duration)
    out["onset_strength"] = float(np.median(env[onsets])) if len(onsets) else 0.0
    if len(onsets) >= 3:
        ioi = np.diff(onsets).astype(np.float64)
        out["onset_regularity"] = float(np.clip(1.0 - ioi.std() / ioi.mean(), 0.0, 1.0))
    else:
        out["onset_regularity"] = 0.0

    # ---- impulsiveness: energy in 2 ms frames well above their 50 ms neighbourhood -----------
    short = max(1, int(0.002 * sr))
    m = len(y64) // short
    e = (y64[: m * short] ** 2).reshape(m, short).sum(axis=1)
    context = np.convolve(e, np.ones(25) / 25, mode="same")
    out["impulsiveness"] = float(e[e > 4.0 * context].sum() / (e.sum() + 1e-30))

    # ---- envelope over the sounding span -------------------------------------------------------
    span = np.maximum(frame_db[starts[0] : ends[-1]], threshold)
    third = max(1, len(span) // 3)
    out["level_trend_db"] = float(span[-third:].mean() - span[:third].mean())
    out["level_std_db"] = float(span.std())
    lag = max(1, int(round(0.03 * sr / hop)))
    floored = np.maximum(frame_db[4:], threshold)  # from 32 ms in: a clip's cut is no attack
    rise = floored[lag:] - floored[:-lag]
    out["attack_db"] = float(rise.max()) if len(rise) else 0.0
    return {name: float(np.nan_to_num(out[name])) for name in FEATURE_COLUMNS}


def _loudness_db(frames_ms: np.ndarray, freqs: np.ndarray, sr: int) -> float:
    """A loudness proxy in dB from per-frame power spectra (mean-square units, ``[bins, frames]``).

    Each frame's spectrum is B-weighted and grouped into 24 mel-spaced bands; band energies
    are summed as ``E ** 0.6`` (so energy spread over many bands sounds louder than the same
    energy in one) and averaged over frames. A steady 1 kHz tone reads its RMS level; white
    noise reads about 9 dB above its RMS level.
    """
    import librosa

    weights = librosa.db_to_power(librosa.frequency_weighting(np.maximum(freqs, 1.0), kind="B"))
    edges_mel = np.linspace(librosa.hz_to_mel(20.0), librosa.hz_to_mel(sr / 2), 25)
    edges = np.unique(
        np.minimum(np.searchsorted(freqs, librosa.mel_to_hz(edges_mel)), len(freqs) - 1)
    )
    bands = np.add.reduceat(frames_ms * weights[:, None], edges, axis=0)
    per_frame = np.sum(np.maximum(bands, 0.0) ** 0.6, axis=0) ** (1 / 0.6)
    return float(_db(np.mean(per_frame)))


def _features_of(
    audios: Sequence[np.ndarray], sr: int, fmin: float = _FMIN
) -> list[dict[str, float]]:
    """Measure several clips in this process, one BLAS thread (small matrices run faster)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return [acoustic_features(a, sr, fmin) for a in audios]


def extract_features(
    audios: Sequence[np.ndarray], sr: int, num_workers: int = 2, fmin: float = _FMIN
) -> list[dict[str, float]]:
    """:func:`acoustic_features` of many clips, in order.

    Sets of at least :data:`SERIAL_BELOW` clips are measured in ``num_workers`` processes
    (forked where the platform allows: workers start at once with librosa imported).
    """
    n = len(audios)
    if num_workers <= 1 or n < SERIAL_BELOW:
        return _features_of(audios, sr, fmin)
    chunk = max(8, min(64, n // (num_workers * 4) or 1))
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    parts = [list(audios[i : i + chunk]) for i in range(0, n, chunk)]
    with ProcessPoolExecutor(num_workers, mp_context=multiprocessing.get_context(method)) as pool:
        results = pool.map(_features_of, parts, [sr] * len(parts), [fmin] * len(parts))
        return [f for part in results for f in part]


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
# From measurements to words
# --------------------------------------------------------------------------------------------


class SetNorms:
    """Where a clip's measurement falls in the probing set: percentile ranks per feature.

    ``rank(name, value)`` is the fraction of the set below ``value`` (ties count half), or
    ``None`` for a set smaller than :data:`MIN_SET_SIZE`, where only absolute anchors apply.
    """

    def __init__(self, features: pd.DataFrame, min_size: int = MIN_SET_SIZE):
        self.size = len(features)
        self._sorted = (
            {
                c: np.sort(features[c].to_numpy(dtype=float))
                for c in FEATURE_COLUMNS
                if c in features
            }
            if self.size >= min_size
            else {}
        )

    @property
    def relative(self) -> bool:
        return bool(self._sorted)

    def rank(self, name: str, value: float) -> float | None:
        values = self._sorted.get(name)
        if values is None:
            return None
        lo = np.searchsorted(values, value, side="left")
        hi = np.searchsorted(values, value, side="right")
        return float((lo + hi) / 2 / len(values))


def _grade(
    value: float,
    rank: float | None,
    *,
    low: float,
    high: float,
    rel_low_below: float,
    rel_high_above: float,
    share: float = 0.2,
) -> int:
    """-1 (low), +1 (high) or 0: absolute anchors first, then the set's bottom/top ``share``.

    A set-relative word is used only where it is plausible in absolute terms too
    (``rel_high_above`` / ``rel_low_below``): the quietest clip of a loud set is not "quiet".
    """
    if value >= high:
        return 1
    if value <= low:
        return -1
    if rank is not None:
        if rank >= 1 - share and value >= rel_high_above:
            return 1
        if rank <= share and value <= rel_low_below:
            return -1
    return 0


@dataclass
class _Words:
    adjectives: list[str]
    noun: str
    hz: float | None  # stated pitch, for pitched sounds
    details: list[str]  # noun phrases: "with ..."
    actions: list[str]  # verb phrases: "that ..."


@dataclass
class _Kind:
    """What sort of sound a clip is, from its measurements (thresholds in one place)."""

    tonal: bool  # periodic most of the time
    partly_tonal: bool  # periodic some of the time (voices, calls)
    impulsive: bool  # energy in brief transients (clicks, crackles)
    percussive: bool  # sharp attacks, less brief (knocks, steps)
    train: bool  # a series of transients
    regular: bool  # evenly spaced onsets
    busy: bool  # many onsets, unevenly spaced
    steady: bool  # no onsets, no silences, a flat level
    intermittent: bool  # several events separated by silences
    single: bool  # one event, then silence

    @classmethod
    def of(cls, f: dict[str, float]) -> _Kind:
        n_onsets = f["onset_rate"] * f["duration_s"]
        tonal = f["voiced_frac"] >= 0.5 and f["harmonicity"] >= 0.6
        impulsive = f["impulsiveness"] >= 0.3
        percussive = not impulsive and f["impulsiveness"] >= 0.12 and f["attack_db"] >= 25
        return cls(
            tonal=tonal,
            partly_tonal=not tonal and f["voiced_frac"] >= 0.15,
            impulsive=impulsive,
            percussive=percussive,
            train=n_onsets >= 3 and (impulsive or percussive),
            regular=n_onsets >= 4 and f["onset_regularity"] >= 0.5,
            busy=n_onsets >= 4 and f["onset_rate"] >= 2,
            steady=f["onset_rate"] <= 0.5
            and f["silence_frac"] < 0.1
            and f["level_std_db"] <= 4.0
            and abs(f["level_trend_db"]) < 6.0,
            intermittent=f["n_events"] >= 2 and f["silence_frac"] >= 0.2,
            single=f["n_events"] == 1 and f["silence_frac"] >= 0.5,
        )


_COUNTS = {2: "two", 3: "three", 4: "four", 5: "five"}
_PITCH_WORDS = [(300, "low-pitched"), (1400, "mid-pitched"), (4000, "high-pitched")]


def _choose_words(f: dict[str, float], norms: SetNorms | None, alt: int = 0) -> _Words:
    """Turn one clip's measurements into words (see :func:`describe` for the anchors).

    Every caption says something about four things: loudness (when it stands out), texture
    (tonal, partly tonal, noisy, impulsive or percussive), time course (steady, repetitive,
    irregular, intermittent, a single burst, fluctuating or continuous) and spectrum (where
    the energy is, bright or dull); pitch, its movement and the envelope are added when clear.
    ``alt`` (0 or 1) picks between equivalent phrasings.
    """
    norms = norms or SetNorms(pd.DataFrame())
    kind = _Kind.of(f)
    adjectives: list[str] = []

    loud = _grade(
        f["loudness_db"], norms.rank("loudness_db", f["loudness_db"]),
        low=-35, high=-11, rel_low_below=-18, rel_high_above=-20,
    )  # fmt: skip
    if loud:
        adjectives.append(
            ("very loud" if f["loudness_db"] >= -3 else "loud") if loud > 0
            else ("very quiet" if f["loudness_db"] <= -48 else "quiet")
        )  # fmt: skip
    if kind.impulsive or kind.percussive or f["attack_db"] >= 30:
        adjectives.append("sharp")
    if kind.steady:
        adjectives.append("steady")
    elif kind.regular:
        adjectives.append("repetitive")
    elif kind.train or kind.busy:
        adjectives.append("irregular")
    elif kind.intermittent:
        adjectives.append("intermittent")
    elif not kind.single:
        adjectives.append("fluctuating" if f["level_std_db"] >= 7 else "continuous")
    if kind.regular or kind.train:
        if f["onset_rate"] >= 10:
            adjectives.append("fast")
        elif f["onset_rate"] < 6:
            adjectives.append("slow")
    hz = None
    if (kind.tonal or kind.partly_tonal) and f["f0_hz"] > 0:
        hz = f["f0_hz"] if f["f0_hz"] <= 5000 else None
        adjectives.append(
            next((w for top, w in _PITCH_WORDS if f["f0_hz"] < top), "very high-pitched")
        )
    adjectives.append(
        "impulsive" if kind.impulsive else "percussive" if kind.percussive
        else "tonal" if kind.tonal else "partly tonal" if kind.partly_tonal else "noisy"
    )  # fmt: skip

    band, details = _spectrum(f, norms, kind, alt)
    details += _time_course(f, kind, hz, alt)
    actions = []
    if f["attack_db"] >= 25 and not kind.train and f["onset_rate"] * f["duration_s"] <= 3:
        actions.append("starts suddenly")
    if f["level_trend_db"] <= -10:
        actions.append("fades away into silence" if kind.single else "fades away")
    elif f["level_trend_db"] >= 8:
        actions.append("grows louder")
    if kind.single and f["level_trend_db"] > -10:
        actions.append("then falls silent")
    return _Words(adjectives, _noun(f, kind, band), hz, details[:3], actions)


def _spectrum(f: dict[str, float], norms: SetNorms, kind: _Kind, alt: int) -> tuple[str, list[str]]:
    """The band where the energy lies and phrases for it (plus timbre for tonal sounds)."""

    def top(name: str, share: float) -> bool:
        rank = norms.rank(name, f[name])
        return rank is not None and rank >= 1 - share

    if f["low_ratio"] >= 0.7 or (top("low_ratio", 0.15) and f["low_ratio"] >= 0.5):
        band = "low-frequency"
    elif f["high_ratio"] >= 0.6 or (top("high_ratio", 0.15) and f["high_ratio"] >= 0.25):
        band = "high-frequency"
    elif f["flatness"] >= 0.3 or f["bandwidth_hz"] >= 1800:
        band = "broadband"
    else:
        band = "midrange"
    bright = _grade(
        f["centroid_hz"], norms.rank("centroid_hz", f["centroid_hz"]),
        low=300, high=3500, rel_low_below=700, rel_high_above=1500,
    )  # fmt: skip
    colour = {1: "bright", -1: "dull"}.get(bright, "")
    details = []
    if kind.tonal and f["tone_purity"] >= 0.85:
        details.append("a pure, sine-like timbre")
        if band != "midrange":
            details.append(f"{band} content")
        return band, details
    if kind.tonal and f["tone_purity"] < 0.8:
        details.append("rich harmonics")
    if band == "broadband":
        details.append(
            f"{colour + ', ' if colour else ''}broadband energy spread across the spectrum"
        )
    elif band == "midrange" and not colour:
        where = _hz_text(f["centroid_hz"])
        details.append(
            f"energy centred around {where}" if alt == 0 else f"most of its energy near {where}"
        )
    else:
        details.append(
            f"{colour + ' ' if colour else ''}{band} {'content' if alt == 0 else 'energy'}"
        )
    return band, details


def _time_course(f: dict[str, float], kind: _Kind, hz: float | None, alt: int) -> list[str]:
    """Phrases for silences between events and for the movement of the pitch."""
    details = []
    if kind.intermittent and not kind.single:
        pause = "long pauses" if f["gap_s"] >= 0.6 else ("short silences", "brief gaps")[alt]
        n = int(f["n_events"])
        if n in _COUNTS and not kind.train:
            details.append(f"{_COUNTS[n]} bursts separated by {pause}")
        else:
            details.append(f"{pause} between bursts")
    if hz is not None and f["voiced_frac"] >= 0.3:
        if f["pitch_trend_oct"] >= 0.5:
            details.append("a rising pitch")
        elif f["pitch_trend_oct"] <= -0.5:
            details.append("a falling pitch")
        elif f["pitch_spread_oct"] >= 0.25:
            details.append("a wavering pitch")
    return details


def _noun(f: dict[str, float], kind: _Kind, band: str) -> str:
    if kind.train:
        if f["impulsiveness"] >= 0.8:
            return "series of clicks"
        if not kind.regular and f["onset_rate"] >= 6:
            return "crackling"
        return "series of knocks" if f["centroid_hz"] < 800 else "series of taps"
    if (kind.impulsive or kind.percussive) and f["onset_rate"] * f["duration_s"] < 3:
        return "impact" if f["centroid_hz"] < 1500 else "click"
    if kind.tonal and kind.steady:
        if f["f0_hz"] < 300:
            return "hum"
        return "whistle" if f["tone_purity"] >= 0.85 and f["f0_hz"] >= 1400 else "sound"
    if not (kind.tonal or kind.partly_tonal) and kind.steady and band != "midrange":
        return {"low-frequency": "rumble", "high-frequency": "hiss"}.get(band, "sound")
    if kind.single and f["event_s"] < 0.5:
        return "burst"
    return "sound"


def _hz_text(hz: float) -> str:
    return (
        f"{hz / 1000:.1f} kHz"
        if hz >= 1000
        else f"{hz:.0f} Hz"
        if hz < 200
        else f"{round(hz, -1):.0f} Hz"
    )


def _article(word: str) -> str:
    return "An" if word[:1].lower() in "aeio" else "A"


def _join(items: Sequence[str], sep: str = ", ") -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return sep.join(items[:-1]) + " and " + items[-1]


def _compose(w: _Words, variant: int, precise_pitch: bool = False) -> str:
    """One or two sentences from the chosen words; ``variant`` picks one of three shapes.
    ``precise_pitch``: the pitch as " at about 440 Hz (A4)" instead of " (about 440 Hz)"."""
    if precise_pitch:
        from andlib.notes import pitch_text

        pitch = f" at about {pitch_text(w.hz)}" if w.hz else ""
    else:
        pitch = f" (about {_hz_text(w.hz)})" if w.hz else ""
    head = f"{', '.join(w.adjectives)} {w.noun}".strip()
    head = f"{_article(head)} {head}{pitch}"
    details, actions = _join(w.details), _join(w.actions)
    shape = variant % 3
    if shape == 1 and details:  # "A loud, steady hum. It has ..., and it fades away."
        return f"{head}. It has {details}" + (f", and it {actions}." if actions else ".")
    if shape == 2 and len(w.adjectives) >= 2:  # "A hum that is loud and steady, with ..."
        adjs = [a + pitch if a.endswith("-pitched") else a for a in w.adjectives]
        text = f"{_article(w.noun)} {w.noun} that is {_join(adjs)}"
        text += f", with {details}" if details else ""
        return text + (f"; it {actions}." if actions else ".")
    text = head + (f" with {details}" if details else "")
    if actions:
        text += f", and it {actions}" if details else f" that {actions}"
    return text + "."


def describe(
    features: dict[str, float],
    norms: SetNorms | None = None,
    variant: int = 0,
    precise_pitch: bool = False,
) -> str:
    """A caption from one clip's :func:`acoustic_features`.

    ``norms`` (a :class:`SetNorms` of the whole probing set) enables set-relative words
    ("loud" = among the loudest fifth of the set, when plausible in absolute terms as well);
    without it only absolute anchors apply (``low-pitched`` below 300 Hz, ``high-pitched``
    above 1.4 kHz, ``quiet`` below -35 dB, ``loud`` above -11 dB on the loudness scale).
    ``variant`` picks the sentence shape (the acoustic captioner derives it from the audio
    hash, so wording varies across clips but never between runs).
    """
    text = _compose(_choose_words(features, norms, alt=(variant // 3) % 2), variant, precise_pitch)
    return text[0].upper() + text[1:]


_STOPWORDS = frozenset(
    "a an the and with of it its is that has between about around across to this then into "
    "them there by in on are be sound hz khz energy most near centred content separated "
    "spread spectrum series away".split()
)


def caption_vocabulary(captions: Sequence[str], top: int | None = None) -> pd.Series:
    """In how many ``captions`` each descriptive word occurs (most frequent first).

    Words are lower-cased and hyphenated words kept whole (``low-pitched``); numbers,
    articles, prepositions and the captioners' filler ("sound", "energy", "centred"...) are
    left out.
    """
    counts: dict[str, int] = {}
    for text in captions:
        for word in set(re.findall(r"[a-z]+(?:-[a-z]+)*", str(text).lower())):
            if word not in _STOPWORDS and len(word) > 1:
                counts[word] = counts.get(word, 0) + 1
    series = pd.Series(counts, dtype=int, name="count").sort_values(ascending=False, kind="stable")
    return series.head(top) if top else series


# --------------------------------------------------------------------------------------------
# Identity phrases (metadata+acoustic)
# --------------------------------------------------------------------------------------------

ESC50_PHRASES = {
    "dog": "a dog barking",
    "rooster": "a rooster crowing",
    "pig": "a pig grunting",
    "cow": "a cow mooing",
    "frog": "a frog croaking",
    "cat": "a cat meowing",
    "hen": "a hen clucking",
    "insects": "insects buzzing",
    "sheep": "a sheep bleating",
    "crow": "a crow cawing",
    "rain": "rain falling",
    "sea_waves": "sea waves breaking",
    "crackling_fire": "a fire crackling",
    "crickets": "crickets chirping",
    "chirping_birds": "birds chirping",
    "water_drops": "water dripping",
    "wind": "wind blowing",
    "pouring_water": "water being poured",
    "toilet_flush": "a toilet flushing",
    "thunderstorm": "a thunderstorm",
    "crying_baby": "a baby crying",
    "sneezing": "someone sneezing",
    "clapping": "hands clapping",
    "breathing": "someone breathing",
    "coughing": "someone coughing",
    "footsteps": "footsteps",
    "laughing": "people laughing",
    "brushing_teeth": "someone brushing their teeth",
    "snoring": "someone snoring",
    "drinking_sipping": "someone drinking and sipping",
    "door_wood_knock": "knocking on a wooden door",
    "mouse_click": "a computer mouse clicking",
    "keyboard_typing": "typing on a keyboard",
    "door_wood_creaks": "a wooden door creaking",
    "can_opening": "a can being opened",
    "washing_machine": "a washing machine running",
    "vacuum_cleaner": "a vacuum cleaner running",
    "clock_alarm": "an alarm clock ringing",
    "clock_tick": "a clock ticking",
    "glass_breaking": "glass breaking",
    "helicopter": "a helicopter flying",
    "chainsaw": "a chainsaw running",
    "siren": "a siren wailing",
    "car_horn": "a car horn honking",
    "engine": "an engine running",
    "train": "a train passing",
    "church_bells": "church bells ringing",
    "airplane": "an airplane flying",
    "fireworks": "fireworks exploding",
    "hand_saw": "a hand saw cutting",
}
"""Natural phrases for ESC-50's 50 categories; other labels read ``The sound of {label}.``"""


def identity_sentence(category: str) -> str:
    """``"dog"`` -> ``"The sound of a dog barking."``; ``""`` -> ``""`` (no label, no sentence)."""
    key = str(category).strip()
    if not key:
        return ""
    phrase = ESC50_PHRASES.get(key.lower()) or re.sub(r"[_\-]+", " ", key).strip()
    return f"The sound of {phrase}."


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

        from andlib.data import resample

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
    are retried by the LLM's :class:`andlib.llm.RetryPolicy` (jittered exponential backoff from
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
        from andlib.llm import RetryPolicy

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

        from andlib.llm import BadReply, GaveUp

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


def get_captioner(cfg: Config) -> Captioner:
    """The captioner ``cfg.captioner.name`` names, caching under ``<cache_dir>/captions``."""
    c = cfg.captioner
    name = c.name.strip()
    cache = cfg.cache_path / "captions"
    if name in ("acoustic", "metadata+acoustic"):
        return AcousticCaptioner(
            cache, c.num_workers, with_identity=name != "acoustic", precise_pitch=c.precise_pitch
        )
    if name == "tagger+acoustic":
        from .tagger import TaggerCaptioner

        return TaggerCaptioner(cache, c.num_workers, c.tagger_splits, c.tagger_c, cfg.seed)
    kind, _, target = name.partition(":")
    if kind == "transformers" and target:
        return TransformersCaptioner(
            target, c.prompt, c.max_new_tokens, c.batch_size, c.device, cache
        )
    if kind == "openai" and target:
        return OpenAICaptioner(
            target,
            c.prompt,
            c.base_url,
            c.api_key_env,
            c.max_new_tokens,
            c.batch_size,
            c.max_retries,
            c.timeout,
            cache,
        )
    raise ConfigError(
        f"captioner.name: unknown captioner {name!r}; use tagger+acoustic, acoustic, "
        "metadata+acoustic, "
        "transformers:<id or path> or openai:<model>"
    )


# --------------------------------------------------------------------------------------------
# The stage and the CLI
# --------------------------------------------------------------------------------------------


def _clip_order(run: RunDir) -> list[str] | None:
    """The clip ids of ``clips.csv`` (the activation rows) when the record stage wrote it."""
    if not run.exists("clips.csv"):
        return None
    return run.read_csv("clips.csv", dtype={"clip_id": str})["clip_id"].tolist()


def _in_order(ps: ProbingSet, order: list[str]) -> ProbingSet:
    known = set(ps.clip_ids)
    missing = [c for c in order if c not in known]
    if missing:
        raise ValueError(
            f"clips.csv lists {len(missing)} clips that the probing set lacks (e.g. {missing[0]!r}): "
            "the data settings changed since the record stage; run it again"
        )
    return ps.subset([ps.index_of(c) for c in order])


def caption_accuracy(captioner: Captioner) -> dict[str, Any]:
    """What the captioner may know of each clip's source, and how often it names it correctly.

    ``tagger+acoustic``: its cross-fitted top-1/top-3 accuracy. ``metadata+acoustic`` reads the
    label (accuracy 1 by construction, label leakage); ``acoustic`` names no source.
    """
    report = getattr(captioner, "last_report", None)
    if report is not None:
        return dict(report)
    knows = {
        "acoustic": "names no source (measures the signal only)",
        "metadata+acoustic": "reads each clip's label (label leakage: accuracy 1 by construction)",
    }.get(captioner.name, "a model captioner: source accuracy not measured")
    return {"captioner": captioner.name, "source": knows}


def stage_key(cfg: Config, run: RunDir, captioner: Captioner | None = None) -> str:
    """The caption stage's cache key: the ``data``, ``captioner`` and ``seed`` settings, the
    captioner's own settings (its feature and wording versions among them) and the clip
    order. It reads no lexicon or prompt of :mod:`andlib.prompts`."""
    captioner = get_captioner(cfg) if captioner is None else captioner
    return cfg.section_hash(
        "data",
        "captioner",
        "seed",
        extra={"settings": captioner.settings, "order": stable_hash(_clip_order(run))},
    )


def run_stage(cfg: Config, run: RunDir) -> dict[str, Any]:
    """Caption the probing set: ``captions.csv`` (clip_id, caption) and ``features.csv``.

    Rows follow ``clips.csv`` when the record stage wrote it (so row *i* matches row *i* of
    every activation array), else the probing set's order. Features are always written, for
    any captioner: later analyses regress activations on them.
    """
    logger = run.logger("caption")
    captioner = get_captioner(cfg)
    order = _clip_order(run)
    key = stage_key(cfg, run, captioner)
    outputs = ["captions.csv", "features.csv"]
    if run.is_fresh("caption", key):
        n = len(run.read_csv("captions.csv"))
        return {"captioner": captioner.name, "captions": n, "reused": True}
    ps = load_probing_set(cfg)
    if order is not None:
        ps = _in_order(ps, order)
    start = time.perf_counter()
    acoustic = (
        captioner
        if isinstance(captioner, AcousticCaptioner)
        else AcousticCaptioner(
            cfg.cache_path / "captions",
            cfg.captioner.num_workers,
            precise_pitch=cfg.captioner.precise_pitch,
        )
    )
    features = acoustic.features(ps)
    captions = captioner.caption(ps)
    seconds = time.perf_counter() - start
    run.write_csv("features.csv", features)
    run.write_csv("captions.csv", pd.DataFrame({"clip_id": ps.clip_ids, "caption": captions}))
    run.write_json("caption_accuracy.json", caption_accuracy(captioner))
    outputs.append("caption_accuracy.json")
    predictions = getattr(captioner, "last_predictions", None)
    if predictions is not None:
        run.write_csv("tagger_predictions.csv", predictions)
        outputs.append("tagger_predictions.csv")
    run.mark_done("caption", key, outputs, captioner=captioner.name, seconds=round(seconds, 2))
    logger.info("captioned %d clips with %s in %.1f s", len(ps), captioner.name, seconds)
    return {"captioner": captioner.name, "captions": len(ps), "seconds": round(seconds, 1)}


def _expand(paths: Sequence[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """Files named or found under folders (audio extensions only), and errors for the rest."""
    files: list[Path] = []
    errors: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS
            )
            if not found:
                errors.append(f"{p}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder")
            files.extend(found)
        else:
            files.append(p)
    return list(dict.fromkeys(files)), errors


def caption_paths_cli(cfg: Config, paths: Sequence[str | os.PathLike]) -> int:
    """``python -m andlib caption FILE_OR_DIR...``: print ``path<TAB>caption`` per file.

    Files are decoded at ``data.sample_rate`` at their own length. Unreadable, empty or
    silent files get an error line on stderr naming the file, the others are still
    captioned, and the exit status is 1. A handful of files has no set distribution to
    compare against: with fewer than :data:`MIN_SET_SIZE` files the acoustic captioners use
    absolute anchors only (so "loud" means loud on any set, not louder than the others).
    Files carry no labels, so ``metadata+acoustic`` says the acoustic sentence alone, and
    ``tagger+acoustic`` names sources with a tagger fitted on the whole configured probing set.
    """
    files, errors = _expand(paths)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    clips, good = [], []
    for f in files:
        try:
            clips.append(load_audio(f, cfg.data.sample_rate, None, cfg.data.silence_dbfs))
            good.append(f)
        except AudioError as exc:
            errors.append(str(exc))
            print(f"error: {exc}", file=sys.stderr)
    if clips:
        meta = pd.DataFrame(
            {
                "clip_id": [str(f) for f in good],
                "path": [str(f) for f in good],
                "label": -1,
                "category": "",
            }
        )
        files_set = ProbingSet("cli", cfg.data.sample_rate, clips, meta)
        captioner = get_captioner(cfg)
        try:
            if hasattr(captioner, "caption_new"):
                captions = captioner.caption_new(files_set, load_probing_set(cfg))
            else:
                captions = captioner.caption(files_set)
        except CaptionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        for f, text in zip(good, captions, strict=True):
            print(f"{f}\t{text}")
    return 1 if errors else 0
