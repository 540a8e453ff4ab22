"""Training data: the log-mel features of every ESC-50 clip, computed once, and their
on-the-fly augmentation.

:func:`load_features` decodes ESC-50 (all folds) and computes normalised log-mel spectrograms
with the model's own ``ASTFeatureExtractor`` (its mean/std from the training folds), or the
inputs of ``train.init``'s feature extractor; :func:`log_mel` is the batched fbank behind it.
:func:`augment` applies random gain, circular time shift, mel shift and SpecAugment-style
frequency/time masks (waveforms: the time shift only).

Public surface: :class:`Features`, :func:`load_features` (computed once per process for the
same settings, :func:`features_key`; :func:`forget_features`), :func:`log_mel`, :func:`augment`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from andlib.config import Config, TrainConfig

log = logging.getLogger(__name__)

_LN_PER_DB = math.log(10) / 10
"""A gain of 1 dB moves a natural-log power spectrogram by this much."""


# --------------------------------------------------------------------------------------------
# Data: log-mel features computed once
# --------------------------------------------------------------------------------------------


@dataclass
class Features:
    """The model inputs of every ESC-50 clip: normalised log-mel spectrograms ``x [clips,
    frames, mel]`` for an AST, waveforms ``x [clips, samples]`` for wav2vec2-like models."""

    x: torch.Tensor
    labels: torch.Tensor
    folds: np.ndarray
    class_names: list[str]
    extractor: Any
    """The feature extractor that produced ``x`` (the project's AST: mean/std from the
    training folds)."""
    per_ln: float
    """Normalised units per natural-log unit of power, ``1 / (2 * std)`` (spectrograms)."""

    @property
    def hop(self) -> int:
        """Samples per 10 ms frame (the unit of ``train.shift_frames`` on waveforms)."""
        return max(1, int(getattr(self.extractor, "sampling_rate", 16000)) // 100)

    def split(self, folds: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        keep = torch.from_numpy(np.isin(self.folds, folds))
        return self.x[keep], self.labels[keep]


def log_mel(extractor: Any, audio: list[np.ndarray], batch_size: int = 200) -> np.ndarray:
    """``extractor(audio)`` without normalisation, ``[clips, max_length, mel]`` float32.

    Without torchaudio the extractor frames each clip in a Python loop (about 10 ms a clip, far
    more on a busy machine); this computes the same numpy fbank batched in torch, in float64
    like the original. With torchaudio installed the extractor itself is called.
    """
    from transformers.utils import is_speech_available

    if is_speech_available() or getattr(extractor, "mel_filters", None) is None:
        out = extractor(audio, sampling_rate=extractor.sampling_rate, return_tensors="np")
        return np.stack(out["input_values"]).astype(np.float32)
    mel = torch.from_numpy(np.asarray(extractor.mel_filters, dtype=np.float64))  # [257, n_mel]
    window = torch.from_numpy(np.asarray(extractor.window, dtype=np.float64))
    n_mel, max_len = extractor.num_mel_bins, extractor.max_length
    result = np.zeros((len(audio), max_len, n_mel), dtype=np.float32)
    for start in range(0, len(audio), batch_size):
        chunk = audio[start : start + batch_size]
        if len({len(a) for a in chunk}) > 1:  # ragged clips: one at a time
            groups = [[a] for a in chunk]
        else:
            groups = [chunk]
        row = start
        for group in groups:
            wave = torch.from_numpy(np.stack(group).astype(np.float64))
            frames = wave.unfold(-1, 400, 160)  # [b, n_frames, 400], 25 ms / 10 ms at 16 kHz
            frames = frames - frames.mean(-1, keepdim=True)  # remove_dc_offset
            frames = torch.cat(
                [frames[..., :1] * 0.03, frames[..., 1:] - 0.97 * frames[..., :-1]], -1
            )
            spec = torch.fft.rfft(frames * window, n=512).to(torch.complex64)
            power = spec.abs().to(torch.float64) ** 2
            fbank = torch.log(torch.clamp(power @ mel, min=1.192092955078125e-07)).float()
            n = min(fbank.shape[1], max_len)
            result[row : row + len(group), :n] = fbank[:, :n].numpy()
            row += len(group)
    return result


def _checkpoint_features(
    cfg: Config, audio: list[np.ndarray], labels: torch.Tensor, folds: np.ndarray, names: list[str]
) -> Features:
    """Inputs of ``train.init``'s own feature extractor (its normalisation, its length)."""
    from transformers import AutoFeatureExtractor

    init = cfg.train.init
    try:
        extractor = AutoFeatureExtractor.from_pretrained(init)
    except Exception as exc:
        raise ValueError(f"train.init={init!r}: cannot load its feature extractor: {exc}") from exc
    rate = getattr(extractor, "sampling_rate", cfg.data.sample_rate)
    if rate != cfg.data.sample_rate:
        raise ValueError(
            f"train.init={init!r} expects {rate} Hz audio but data.sample_rate is "
            f"{cfg.data.sample_rate}; set data.sample_rate={rate}"
        )
    t0 = time.time()
    parts = []
    for i in range(0, len(audio), 200):
        out = extractor(audio[i : i + 200], sampling_rate=rate, return_tensors="np", padding=True)
        parts.append(np.asarray(out["input_values"], dtype=np.float32))
    if len({p.shape[1:] for p in parts}) > 1:
        raise ValueError(f"train.init={init!r}: clips of unequal length; set data.duration")
    x = torch.from_numpy(np.concatenate(parts))
    std = getattr(extractor, "std", None)
    per_ln = 1.0 / (2 * std) if x.ndim == 3 and std else 0.0
    log.info(
        "features (%s): %d clips -> %s in %.1f s", init, len(x), tuple(x.shape), time.time() - t0
    )
    return Features(x, labels, folds, names, extractor, per_ln)


FEATURE_SETTINGS = (
    "data",
    "seed",
    "train.train_folds",
    "train.heldout_fold",
    "train.num_mel_bins",
    "train.max_length",
    "train.init",
)
"""What the features depend on (``seed``: the clips ``data.limit`` keeps); not the training
seed, so every strategy and every training seed trained in one process share them."""
_computed: dict[str, Features] = {}


def features_key(cfg: Config) -> str:
    """The hash of :data:`FEATURE_SETTINGS`: equal keys, equal features."""
    return cfg.section_hash(*FEATURE_SETTINGS)


def forget_features() -> None:
    """Drop the features :func:`load_features` keeps in this process."""
    _computed.clear()


def load_features(cfg: Config) -> Features:
    """Decode ESC-50 (all folds, ``data.limit`` applies) and compute the normalised features,
    once per process for the same :data:`FEATURE_SETTINGS` (the last ones are kept; each call
    gets its own copy of the tensors; :func:`forget_features` drops them).

    Training always uses ESC-50, whatever probing set ``cfg.data`` names; the data root,
    sample rate, duration and limit come from ``cfg.data``.
    """
    key = features_key(cfg)
    if key not in _computed:
        _computed.clear()
        _computed[key] = _compute_features(cfg)
    else:
        log.info("features: reusing the %d clips computed in this process", len(_computed[key].x))
    kept = _computed[key]
    return dataclasses.replace(kept, x=kept.x.clone(), labels=kept.labels.clone())


def _compute_features(cfg: Config) -> Features:
    """:func:`load_features` without the reuse."""
    from transformers import ASTFeatureExtractor

    from andlib.data.probing import load_probing_set

    tc = cfg.train
    data_cfg = dataclasses.replace(
        cfg, data=dataclasses.replace(cfg.data, dataset="esc50", folds=None, classes=None)
    )
    clips = load_probing_set(data_cfg)
    folds = clips.meta["fold"].to_numpy()
    n_train = int(np.isin(folds, tc.train_folds).sum())
    if n_train == 0:
        raise ValueError(
            f"train.train_folds={tc.train_folds}: no ESC-50 clips in these folds "
            f"(folds present: {sorted(set(folds.tolist()))})"
        )
    if tc.heldout_fold in tc.train_folds:
        raise ValueError(f"train.heldout_fold={tc.heldout_fold} is also a training fold")
    labels = torch.tensor(np.asarray(clips.labels), dtype=torch.long)
    if tc.init is not None:
        return _checkpoint_features(cfg, clips.audio, labels, folds, list(clips.class_names))
    extractor = ASTFeatureExtractor(
        num_mel_bins=tc.num_mel_bins,
        max_length=tc.max_length,
        sampling_rate=cfg.data.sample_rate,
        do_normalize=False,
    )
    t0 = time.time()
    x = torch.from_numpy(log_mel(extractor, clips.audio))
    train_x = x[torch.from_numpy(np.isin(folds, tc.train_folds))]
    mean, std = float(train_x.mean()), float(train_x.std())
    extractor.mean, extractor.std, extractor.do_normalize = mean, std, True
    x = (x - mean) / (2 * std)  # exactly ASTFeatureExtractor.normalize
    log.info(
        "features: %d clips -> %s in %.1f s (mean %.3f, std %.3f)",
        len(x),
        tuple(x.shape),
        time.time() - t0,
        mean,
        std,
    )
    return Features(
        x=x,
        labels=labels,
        folds=folds,
        class_names=list(clips.class_names),
        extractor=extractor,
        per_ln=1.0 / (2 * std),
    )


# --------------------------------------------------------------------------------------------
# Augmentation (on normalised spectrograms [batch, frames, mel])
# --------------------------------------------------------------------------------------------


def _band_mask(gen: np.random.Generator, batch: int, size: int, width: int) -> torch.Tensor:
    """``[batch, size]`` True on one random band of 0..width bins per row."""
    widths = gen.integers(0, width + 1, batch)
    starts = (gen.random(batch) * (size - widths + 1)).astype(int)
    pos = np.arange(size)
    return torch.from_numpy((pos >= starts[:, None]) & (pos < (starts + widths)[:, None]))


def augment(
    x: torch.Tensor, tc: TrainConfig, gen: np.random.Generator, per_ln: float, hop: int = 160
) -> torch.Tensor:
    """Random gain (±``gain_db``), circular time shift (±``shift_frames``), mel shift
    (±``freq_shift`` bins), then ``num_masks`` frequency masks (up to ``freq_mask`` bins) and
    time masks (up to ``time_mask`` frames); emptied and masked values are 0 (the data mean).

    Waveforms ``[batch, samples]`` (wav2vec2-like inputs, normalised per clip) get only the
    circular time shift, ``shift_frames`` counted in frames of ``hop`` samples (10 ms)."""
    if x.ndim == 2:
        if tc.shift_frames <= 0:
            return x
        b, n = x.shape
        shifts = gen.integers(-tc.shift_frames, tc.shift_frames + 1, b) * hop
        return x.gather(1, torch.from_numpy((np.arange(n)[None, :] - shifts[:, None]) % n))
    b, t, f = x.shape
    if tc.gain_db > 0:
        gain = gen.uniform(-tc.gain_db, tc.gain_db, b) * _LN_PER_DB * per_ln
        x = x + torch.from_numpy(gain.astype(np.float32))[:, None, None]
    if tc.shift_frames > 0:
        shifts = gen.integers(-tc.shift_frames, tc.shift_frames + 1, b)
        index = torch.from_numpy((np.arange(t)[None, :] - shifts[:, None]) % t)
        x = x.gather(1, index[:, :, None].expand(b, t, f))
    if tc.freq_shift > 0:
        shifts = gen.integers(-tc.freq_shift, tc.freq_shift + 1, b)
        source = np.arange(f)[None, :] - shifts[:, None]
        inside = torch.from_numpy((source >= 0) & (source < f))[:, None, :]
        index = torch.from_numpy(source.clip(0, f - 1))[:, None, :].expand(b, t, f)
        x = x.gather(2, index).masked_fill(~inside, 0.0)
    for _ in range(tc.num_masks):
        if tc.freq_mask > 0:
            x = x.masked_fill(_band_mask(gen, b, f, min(tc.freq_mask, f))[:, None, :], 0.0)
        if tc.time_mask > 0:
            x = x.masked_fill(_band_mask(gen, b, t, min(tc.time_mask, t))[:, :, None], 0.0)
    return x
