"""Acoustic features of a clip (:func:`acoustic_features`: loudness, pitch, tonality, brightness,
band energies, onsets, envelope, silences) and their extraction over a probing set."""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

FEATURE_VERSION = 1
"""Bump when :func:`acoustic_features` changes: cached features are keyed by it."""
SERIAL_BELOW = 48
"""Sets smaller than this are measured in-process (a process pool costs ~1 s to start)."""


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
