"""Training the offline target model: a small Audio Spectrogram Transformer on ESC-50.

Three strategies share one architecture, a transformers ``ASTConfig`` built from ``cfg.train``:

- ``supervised``: trained from scratch on ESC-50 folds 1-4; fold 5 is held out.
- ``ssl-frozen``: the encoder is pretrained without labels by masked spectrogram modelling
  (SSAST-style: hide a fraction of the patches, reconstruct them) on the audio of all folds,
  then frozen; only the classifier head is trained on folds 1-4 (a linear probe).
- ``ssl-finetuned``: the same pretrained encoder, fine-tuned end to end on folds 1-4.

How it trains: the log-mel features are computed once per clip with the model's own
``ASTFeatureExtractor`` (its mean/std set from the training folds), and training runs on those
spectrogram tensors, augmented on the fly (random gain, circular time shift, SpecAugment-style
frequency/time masks, mixup). Every random draw (initialization, batch order, augmentation,
mixup, the SSL patch masks, dropout) comes from the training seed (``train.seed``, else the
config's ``seed``), so the same config trains the same weights on the same thread count (the
thread count and device are recorded with the metrics: float sums, and so the weights, can
differ between thread counts).

Results are cached in ``<cache_dir>/models/<strategy>-<hash>/``: a ``save_pretrained`` folder
(model + feature extractor, ESC-50 category names as labels) plus ``andlib_training.json``
(metrics, merged into ``model.json`` by :func:`andlib.models.registry.load_pretrained`) and
``history.json`` (the per-epoch log). A model is written to a temporary folder and renamed into
place, so an interrupted run never leaves a half model. The pretrained encoder is cached beside
them (``ssl-pretrained-<hash>/``) and shared by both ssl strategies.

Public surface: :data:`STRATEGIES`, :func:`ensure_trained`, :func:`train_model`,
:func:`model_dir`, :func:`train_seed`, :func:`with_train_seed`, :func:`read_metrics`,
:func:`read_history`, :func:`run_stage`; the pieces
used by the tests: :func:`load_features`, :func:`build_model`, :func:`augment`,
:class:`MaskedSpectrogramModel`, :func:`fit_classifier`, :func:`linear_probe`, :func:`accuracy`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from andlib.config import Config, TrainConfig, rng, seed_everything, stable_hash
from andlib.store import RunDir, write_json

log = logging.getLogger(__name__)

STRATEGIES = ("supervised", "ssl-frozen", "ssl-finetuned")
METRICS_FILE = "andlib_training.json"
HISTORY_FILE = "history.json"
FORMAT_VERSION = 1
"""Bumped when a change to this module changes the trained weights (invalidates caches)."""

# Which ``cfg.train`` keys a cached model depends on. Everything else in the section counts,
# except these, which do not change the weights (or are in the folder name already).
_NOT_IN_KEY = ("strategy", "num_threads", "eval_every", "seed")
"""``seed`` is keyed as the training seed itself (:func:`train_seed`), not as a setting: an
unset ``train.seed`` and ``train.seed`` equal to the config's ``seed`` are one model."""
_SSL_ONLY = ("pretrain_epochs", "pretrain_lr", "mask_ratio")
_LINEAR_ONLY = ("linear_epochs", "linear_lr")
_FINETUNE_ONLY = ("epochs", "mixup_alpha", "freq_mask", "time_mask", "num_masks")
"""Fine-tuning settings the linear probe (ssl-frozen) never reads: the probe trains on stored
encoder outputs without augmentation (pretraining's own gain/shift count through its key)."""
_OPTIONAL = ("init", "linear_lr")
_ARCHITECTURE = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "patch_size",
    "frequency_stride",
    "time_stride",
    "num_mel_bins",
    "max_length",
    "dropout",
)
_PRETRAIN_KEYS = _ARCHITECTURE + (
    "pretrain_epochs",
    "pretrain_lr",
    "mask_ratio",
    "batch_size",
    "weight_decay",
    "warmup_epochs",
    "gain_db",
    "shift_frames",
    "freq_shift",
    "train_folds",  # the feature normalisation statistics come from the training folds
    "max_minutes",
    "max_steps",
)
_LN_PER_DB = math.log(10) / 10
"""A gain of 1 dB moves a natural-log power spectrogram by this much."""


# --------------------------------------------------------------------------------------------
# Cache layout
# --------------------------------------------------------------------------------------------


def _check_strategy(strategy: str | None, cfg: Config) -> str:
    strategy = strategy or cfg.train.strategy
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown training strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
    return strategy


def train_seed(cfg: Config) -> int:
    """The seed training draws from: ``train.seed``, else the config's ``seed``."""
    return cfg.seed if cfg.train.seed is None else cfg.train.seed


def with_train_seed(cfg: Config, seed: int | None) -> Config:
    """``cfg`` with ``train.seed = seed`` (``None``: ``cfg`` unchanged)."""
    if seed is None:
        return cfg
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed))


def _key(cfg: Config, keys: list[str] | tuple[str, ...], purpose: str) -> str:
    train = dataclasses.asdict(cfg.train)
    data = cfg.data
    key: dict[str, Any] = {
        "purpose": purpose,
        "version": FORMAT_VERSION,
        "train": {k: train[k] for k in sorted(keys) if k not in _NOT_IN_KEY},
        "data": [data.sample_rate, data.duration, data.limit],
        "seed": train_seed(cfg),
    }
    if train_seed(cfg) != cfg.seed:  # the clips data.limit keeps are drawn from the config seed
        key["data_seed"] = cfg.seed
    return stable_hash(key)


def model_dir(cfg: Config, strategy: str | None = None) -> Path:
    """``<cache_dir>/models/<strategy>-<hash>``: the hash covers every ``cfg.train`` setting the
    strategy depends on, the data sample rate, clip duration and limit, and the training seed
    (:func:`train_seed`)."""
    strategy = _check_strategy(strategy, cfg)
    ignored = set(_NOT_IN_KEY)
    if strategy == "supervised":
        ignored |= set(_SSL_ONLY) | set(_LINEAR_ONLY)
    elif strategy == "ssl-finetuned":
        ignored |= set(_LINEAR_ONLY)
    else:
        ignored |= set(_FINETUNE_ONLY)
    # optional settings left unset keep the keys of models trained before they existed
    ignored |= {k for k in _OPTIONAL if getattr(cfg.train, k) is None}
    if cfg.train.init is not None and strategy != "supervised":
        ignored |= set(_SSL_ONLY)  # the checkpoint is the pretraining: none runs
    keys = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ignored]
    return cfg.cache_path / "models" / f"{strategy}-{_key(cfg, keys, strategy)}"


def _pretrained_dir(cfg: Config) -> Path:
    return cfg.cache_path / "models" / f"ssl-pretrained-{_key(cfg, _PRETRAIN_KEYS, 'pretrain')}"


def read_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """The ``andlib_training.json`` of a trained model folder."""
    return json.loads((Path(path) / METRICS_FILE).read_text())


def read_history(path: str | os.PathLike) -> dict[str, list[dict[str, Any]]]:
    """The per-epoch log of a trained model folder: ``{phase: [{epoch, loss, ...}, ...]}``
    (phases: ``pretrain``, ``finetune``, ``linear``); empty when none was saved."""
    f = Path(path) / HISTORY_FILE
    return json.loads(f.read_text()) if f.exists() else {}


def _save_atomic(dest: Path, write: Callable[[Path], None]) -> Path:
    """Let ``write`` fill a temporary sibling folder, then rename it to ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared
        write(tmp)
        if dest.exists():  # another process finished the same model first: keep theirs
            shutil.rmtree(tmp)
        else:
            os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


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


def load_features(cfg: Config) -> Features:
    """Decode ESC-50 (all folds, ``data.limit`` applies) and compute the normalised features.

    Training always uses ESC-50, whatever probing set ``cfg.data`` names; the data root,
    sample rate, duration and limit come from ``cfg.data``.
    """
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
# Model
# --------------------------------------------------------------------------------------------


def _label_settings(class_names: list[str]) -> dict[str, Any]:
    """The config fields that name a classifier's outputs (``PretrainedConfig`` kwargs)."""
    return {
        "num_labels": len(class_names),
        "id2label": dict(enumerate(class_names)),
        "label2id": {name: i for i, name in enumerate(class_names)},
    }


def build_model(tc: TrainConfig, class_names: list[str], seed: int = 0) -> nn.Module:
    """A randomly initialised ``ASTForAudioClassification`` with ``cfg.train``'s shape."""
    from transformers import ASTConfig, ASTForAudioClassification

    if tc.hidden_size % tc.num_attention_heads:
        raise ValueError(
            f"train.hidden_size={tc.hidden_size} is not divisible by "
            f"train.num_attention_heads={tc.num_attention_heads}"
        )
    if tc.num_mel_bins < tc.patch_size or tc.max_length < tc.patch_size:
        raise ValueError(
            f"train.patch_size={tc.patch_size} is larger than the spectrogram "
            f"({tc.max_length} frames x {tc.num_mel_bins} mel bins)"
        )
    config = ASTConfig(
        hidden_size=tc.hidden_size,
        num_hidden_layers=tc.num_hidden_layers,
        num_attention_heads=tc.num_attention_heads,
        intermediate_size=tc.intermediate_size,
        patch_size=tc.patch_size,
        frequency_stride=tc.frequency_stride,
        time_stride=tc.time_stride,
        num_mel_bins=tc.num_mel_bins,
        max_length=tc.max_length,
        hidden_dropout_prob=tc.dropout,
        attention_probs_dropout_prob=0.0,
        **_label_settings(class_names),
    )
    torch.manual_seed(seed)
    model = ASTForAudioClassification(config)
    emb = model.audio_spectrogram_transformer.embeddings
    with torch.no_grad():  # transformers starts these at zero; small noise trains better
        for p in (emb.cls_token, emb.distillation_token, emb.position_embeddings):
            nn.init.trunc_normal_(p, std=0.02)
    return model


def model_from_init(
    init: str, class_names: list[str], random_weights: bool = False, seed: int = 0
) -> nn.Module:
    """``init``'s architecture with a fresh ``len(class_names)``-way classification head: its
    pretrained weights, or (``random_weights``) the same architecture from scratch."""
    from transformers import AutoConfig, AutoModelForAudioClassification

    labels = _label_settings(class_names)
    try:
        if random_weights:
            torch.manual_seed(seed)
            config = AutoConfig.from_pretrained(init, **labels)
            return AutoModelForAudioClassification.from_config(config)
        return AutoModelForAudioClassification.from_pretrained(
            init, ignore_mismatched_sizes=True, **labels
        )
    except Exception as exc:
        raise ValueError(
            f"train.init={init!r}: cannot build an audio classifier from it: {exc}"
        ) from exc


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 128
) -> float | None:
    """Top-1 accuracy of ``model`` on normalised features (``None`` for an empty set)."""
    if len(x) == 0:
        return None
    was_training = model.training
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            logits = model(x[i : i + batch_size].to(_device_of(model))).logits.cpu()
            correct += int((logits.argmax(-1) == y[i : i + batch_size]).sum())
    model.train(was_training)
    return correct / len(x)


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


def _soft_targets(y: torch.Tensor, n_classes: int, smoothing: float) -> torch.Tensor:
    return F.one_hot(y, n_classes).float() * (1 - smoothing) + smoothing / n_classes


# --------------------------------------------------------------------------------------------
# The optimisation loop shared by every phase
# --------------------------------------------------------------------------------------------


def _optimize(
    model: nn.Module,
    loss_fn: Callable[[np.ndarray], torch.Tensor],
    n_items: int,
    epochs: int,
    lr: float,
    tc: TrainConfig,
    gen: np.random.Generator,
    phase: str,
    on_epoch_end: Callable[[int, bool], dict[str, Any]] | None = None,
    frozen: nn.Module | None = None,
    checkpoint: Path | None = None,
) -> list[dict[str, Any]]:
    """AdamW with linear warmup then cosine decay over ``epochs`` passes of shuffled batches.

    ``loss_fn(batch_indices)`` returns the loss of one batch; only parameters with
    ``requires_grad`` are optimised (no weight decay on biases, norms, tokens and position
    embeddings). Stops at ``tc.max_steps`` optimiser steps. With ``tc.max_minutes`` the cosine
    decay follows whichever runs out first, steps or time, so a run cut short by the clock
    still ends at a low learning rate (such a run is not bit-reproducible). ``frozen`` (a
    frozen encoder) stays in eval mode: no dropout or layer drop. Returns one history row per
    epoch.

    ``checkpoint``: a file that holds, after every epoch, everything the remaining epochs
    depend on (weights, optimizer, the step and clock, ``gen``'s and torch's random states, the
    history so far). When it exists at the start, training resumes after its epoch, and ends
    with the same weights as an uninterrupted run for the same thread count (without
    ``tc.max_minutes``).
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError(f"{phase}: the model has no trainable parameters")

    def no_decay(name: str, p: torch.Tensor) -> bool:
        return p.ndim < 2 or name.endswith(("_token", "position_embeddings"))

    groups = [
        {"params": [p for n, p in named if not no_decay(n, p)], "weight_decay": tc.weight_decay},
        {"params": [p for n, p in named if no_decay(n, p)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr)
    batch = min(tc.batch_size, n_items)
    steps_per_epoch = max(1, n_items // batch)  # drop the ragged last batch (mixup pairs)
    total = epochs * steps_per_epoch
    if tc.max_steps is not None:
        total = min(total, tc.max_steps)
    warmup = min(tc.warmup_epochs * steps_per_epoch, total // 2)
    budget = tc.max_minutes * 60 if tc.max_minutes is not None else None

    def progress(step: int, elapsed: float) -> float:
        done = step / total
        return max(done, elapsed / budget) if budget else done

    def lr_factor(step: int, elapsed: float) -> float:
        if step < warmup:
            return (step + 1) / warmup
        after_warmup = (progress(step, elapsed) * total - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, after_warmup))))

    def train_mode() -> None:
        model.train()
        if frozen is not None:
            frozen.eval()

    history: list[dict[str, Any]] = []
    step, t_start, first = 0, time.time(), 1
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        gen.bit_generator.state = state["gen"]
        torch.set_rng_state(state["torch_rng"])
        history, step, first = state["history"], state["step"], state["epoch"] + 1
        t_start -= state["seconds"]
        log.info(
            "%s: resuming after epoch %d of %d (%s)", phase, state["epoch"], epochs, checkpoint
        )
    train_mode()
    for epoch in range(first, epochs + 1):
        t_epoch, losses = time.time(), []
        order = gen.permutation(n_items)
        for i in range(steps_per_epoch):
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_factor(step, time.time() - t_start)
            loss = loss_fn(order[i * batch : (i + 1) * batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
            optimizer.step()
            losses.append(loss.item())
            step += 1
            if progress(step, time.time() - t_start) >= 1:
                break
        elapsed = time.time() - t_start
        stop = progress(step, elapsed) >= 1
        row: dict[str, Any] = {
            "epoch": epoch,
            "step": step,
            "loss": float(np.mean(losses)),
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_seconds": round(time.time() - t_epoch, 2),
            "seconds": round(elapsed, 2),
        }
        if on_epoch_end is not None:
            row.update(on_epoch_end(epoch, stop))
            train_mode()
        history.append(row)
        if checkpoint is not None:
            _save_checkpoint(checkpoint, model, optimizer, gen, history, epoch, step, elapsed)
        extra = " ".join(f"{k} {v:.3f}" for k, v in row.items() if k.endswith("accuracy"))
        log.info(
            "%s epoch %d/%d: loss %.4f %s(%.1f s, %.0f s total)",
            phase,
            epoch,
            epochs,
            row["loss"],
            extra + " " if extra else "",
            row["epoch_seconds"],
            elapsed,
        )
        if stop:
            if step < epochs * steps_per_epoch:
                why = "train.max_steps" if step == total else "train.max_minutes"
                log.warning("%s: stopped at step %d after %.0f s (%s)", phase, step, elapsed, why)
            break
    return history


def _save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    gen: np.random.Generator,
    history: list[dict[str, Any]],
    epoch: int,
    step: int,
    seconds: float,
) -> None:
    """Write :func:`_optimize`'s resume state atomically (a crash mid-write keeps the last)."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "gen": gen.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "history": history,
        "epoch": epoch,
        "step": step,
        "seconds": seconds,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def checkpoint_dir(dest: Path) -> Path:
    """Where the per-epoch resume states of the model to be saved at ``dest`` live until it is
    saved (``<cache>/models/.<name>.checkpoints/``): keyed like the model, so only the same
    settings resume from them."""
    return dest.parent / f".{dest.name}.checkpoints"


# --------------------------------------------------------------------------------------------
# Supervised training and the linear probe
# --------------------------------------------------------------------------------------------


def fit_classifier(
    model: nn.Module,
    feats: Features,
    tc: TrainConfig,
    gen: np.random.Generator,
    epochs: int | None = None,
    checkpoint: Path | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` end to end on the training folds with augmentation, mixup and label
    smoothing; held-out accuracy is logged every ``tc.eval_every`` epochs (never used to pick
    a checkpoint: the final weights are kept)."""
    x, y = feats.split(tc.train_folds)
    x_held, y_held = feats.split([tc.heldout_fold])
    n_classes = len(feats.class_names)

    def loss_fn(idx: np.ndarray) -> torch.Tensor:
        xb = augment(x[idx], tc, gen, feats.per_ln, feats.hop)
        target = _soft_targets(y[idx], n_classes, tc.label_smoothing)
        if tc.mixup_alpha > 0 and len(idx) > 1:
            lam = float(gen.beta(tc.mixup_alpha, tc.mixup_alpha))
            perm = torch.from_numpy(gen.permutation(len(idx)))
            xb = lam * xb + (1 - lam) * xb[perm]
            target = lam * target + (1 - lam) * target[perm]
        device = _device_of(model)
        target = target.to(device)
        logits = model(xb.to(device)).logits
        return -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()

    def on_epoch_end(epoch: int, last: bool) -> dict[str, Any]:
        if len(x_held) and tc.eval_every and (last or epoch % tc.eval_every == 0):
            return {"heldout_accuracy": accuracy(model, x_held, y_held)}
        return {}

    return _optimize(
        model,
        loss_fn,
        len(x),
        epochs or tc.epochs,
        tc.lr,
        tc,
        gen,
        "finetune",
        on_epoch_end,
        checkpoint=checkpoint,
    )


def linear_probe(
    model: nn.Module, feats: Features, tc: TrainConfig, gen: np.random.Generator
) -> list[dict[str, Any]]:
    """Freeze the encoder (``model.base_model``) and train only what follows it: the
    classification head (and, for wav2vec2-like models, its projector).

    The project's AST runs its encoder once per clip (no augmentation): its pooled outputs
    cannot change, so the head trains on stored vectors in seconds. Other architectures pool
    inside their own head, so the frozen encoder runs in every step (no gradients through it).
    """
    encoder: Any = model.base_model  # a transformers model: typed attributes are dynamic
    encoder.requires_grad_(False)
    encoder.eval()
    x, y = feats.split(tc.train_folds)
    x_held, y_held = feats.split([tc.heldout_fold])
    device = _device_of(model)

    def on_epoch_end(epoch: int, last: bool) -> dict[str, Any]:
        if len(x_held) and last:
            return {"heldout_accuracy": accuracy(model, x_held, y_held)}
        return {}

    if hasattr(model, "audio_spectrogram_transformer") and hasattr(model, "classifier"):
        with torch.inference_mode():
            pooled = torch.cat(
                [encoder(x[i : i + 128].to(device)).pooler_output for i in range(0, len(x), 128)]
            )
        pooled = pooled.clone()  # a normal tensor: inference-mode tensors cannot enter autograd
        y_dev = y.to(device)

        head: Any = model.classifier

        def loss_fn(idx: np.ndarray) -> torch.Tensor:
            logits = head(pooled[idx])
            return F.cross_entropy(logits, y_dev[idx], label_smoothing=tc.label_smoothing)

    else:

        def loss_fn(idx: np.ndarray) -> torch.Tensor:
            logits = model(x[idx].to(device)).logits
            return F.cross_entropy(logits, y[idx].to(device), label_smoothing=tc.label_smoothing)

    return _optimize(
        model,
        loss_fn,
        len(x),
        tc.linear_epochs,
        tc.linear_lr or tc.lr,
        tc,
        gen,
        "linear",
        on_epoch_end,
        frozen=encoder,
    )


# --------------------------------------------------------------------------------------------
# Masked spectrogram modelling (self-supervised pretraining)
# --------------------------------------------------------------------------------------------


class MaskedSpectrogramModel(nn.Module):
    """SSAST-style pretraining around an AST: replace a random ``mask_ratio`` of the patch
    embeddings by a learned mask token, run the encoder, and reconstruct the masked patches'
    spectrogram values with a linear head (MSE on the masked patches only).

    The AST is used unchanged (a forward hook on its patch embedding swaps in the mask token),
    so the pretrained weights load straight into ``ASTForAudioClassification``.
    """

    def __init__(self, model: nn.Module, mask_ratio: float):
        super().__init__()
        if not 0 < mask_ratio < 1:
            raise ValueError(f"train.mask_ratio must be in (0, 1), got {mask_ratio}")
        config: Any = model.config
        self.encoder: Any = model.audio_spectrogram_transformer
        self.mask_ratio = mask_ratio
        self.patch = config.patch_size
        self.stride = (config.frequency_stride, config.time_stride)
        self.mask_token = nn.Parameter(torch.zeros(config.hidden_size))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.head = nn.Linear(config.hidden_size, config.patch_size**2)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, n_patches, patch*patch]`` in the order of the AST's patch tokens."""
        image = x.transpose(1, 2).unsqueeze(1)  # [b, 1, mel, frames], as ASTPatchEmbeddings
        return F.unfold(image, kernel_size=self.patch, stride=self.stride).transpose(1, 2)

    def random_mask(self, batch: int, n_patches: int, gen: np.random.Generator) -> torch.Tensor:
        """``[batch, n_patches]`` bool, exactly ``round(mask_ratio * n_patches)`` True per row."""
        k = max(1, round(self.mask_ratio * n_patches))
        ranks = gen.random((batch, n_patches)).argsort(axis=1).argsort(axis=1)
        return torch.from_numpy(ranks < k)

    def loss(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Reconstruction MSE of the patches where ``mask`` is True."""

        def swap_in_mask_token(module: nn.Module, inputs: Any, out: torch.Tensor) -> torch.Tensor:
            return torch.where(mask[..., None], self.mask_token.to(out.dtype), out)

        hook = self.encoder.embeddings.patch_embeddings.register_forward_hook(swap_in_mask_token)
        try:
            hidden = self.encoder(x).last_hidden_state[:, 2:]  # drop the cls/distillation tokens
        finally:
            hook.remove()
        return F.mse_loss(self.head(hidden[mask]), self.patches(x)[mask])


def pretrain(
    model: nn.Module,
    feats: Features,
    tc: TrainConfig,
    gen: np.random.Generator,
    checkpoint: Path | None = None,
) -> list[dict[str, Any]]:
    """Masked spectrogram modelling on every clip's audio (all folds, labels unused), with the
    fine-tuning augmentation minus the SpecAugment masks; updates ``model``'s encoder in place."""
    msm = MaskedSpectrogramModel(model, tc.mask_ratio).to(_device_of(model))
    n_patches = msm.patches(feats.x[:1]).shape[1]
    gain_and_shift = dataclasses.replace(tc, num_masks=0)  # the patch mask replaces SpecAugment

    def loss_fn(idx: np.ndarray) -> torch.Tensor:
        xb = augment(feats.x[idx], gain_and_shift, gen, feats.per_ln, feats.hop)
        device = _device_of(msm)
        return msm.loss(xb.to(device), msm.random_mask(len(idx), n_patches, gen).to(device))

    return _optimize(
        msm,
        loss_fn,
        len(feats.x),
        tc.pretrain_epochs,
        tc.pretrain_lr,
        tc,
        gen,
        "pretrain",
        checkpoint=checkpoint,
    )


def _ensure_pretrained(cfg: Config, feats: Features) -> tuple[Path, dict[str, Any]]:
    """The cached pretrained encoder (as an ``ASTForAudioClassification`` folder)."""
    path = _pretrained_dir(cfg)
    if not (path / METRICS_FILE).exists():
        t0 = time.time()
        seed = train_seed(cfg)
        model: Any = build_model(cfg.train, feats.class_names, seed).to(_train_device(cfg))
        ckpt = checkpoint_dir(path) / "pretrain.pt"
        history = pretrain(model, feats, cfg.train, rng(seed, "train", "pretrain"), ckpt)
        model.cpu()
        meta = {
            "pretrain_seed": seed,
            "pretrain_num_threads": torch.get_num_threads(),
            "pretrain_seconds": round(time.time() - t0, 1),
            "pretrain_epochs": len(history),
            "pretrain_steps": history[-1]["step"],
            "pretrain_loss": history[-1]["loss"],
            "n_pretrain_clips": len(feats.x),
        }

        def write(tmp: Path) -> None:
            model.save_pretrained(tmp)
            write_json(tmp / HISTORY_FILE, {"pretrain": history})
            write_json(tmp / METRICS_FILE, meta)

        _save_atomic(path, write)
        shutil.rmtree(checkpoint_dir(path), ignore_errors=True)
        log.info("pretrained encoder saved to %s (%.0f s)", path, meta["pretrain_seconds"])
    return path, read_metrics(path)


# --------------------------------------------------------------------------------------------
# Training a strategy end to end, with the cache
# --------------------------------------------------------------------------------------------


def _train_device(cfg: Config) -> torch.device:
    from andlib.models.base import resolve_device

    return resolve_device(cfg.model.device)


def train_model(cfg: Config, strategy: str | None = None) -> Path:
    """Train ``strategy`` (default ``cfg.train.strategy``) now and save it to :func:`model_dir`.

    Returns the ``save_pretrained`` folder. Prefer :func:`ensure_trained`, which reuses it.
    """
    from transformers import ASTForAudioClassification

    strategy = _check_strategy(strategy, cfg)
    tc = cfg.train
    dest = model_dir(cfg, strategy)
    threads = torch.get_num_threads()
    torch.set_num_threads(tc.num_threads or os.cpu_count() or 1)
    try:
        t0 = time.time()
        seed = train_seed(cfg)
        seed_everything(seed)
        feats = load_features(cfg)
        gen = rng(seed, "train", strategy)
        history: dict[str, list[dict[str, Any]]] = {}
        pre: dict[str, Any] = {}
        model: Any  # a transformers audio classifier
        device = _train_device(cfg)
        if tc.init is not None:  # a pretrained checkpoint replaces the project's AST
            model = model_from_init(
                tc.init, feats.class_names, random_weights=strategy == "supervised", seed=seed
            )
            pre = {"init": tc.init}
        elif strategy == "supervised":
            model = build_model(tc, feats.class_names, seed)
        else:
            # pretraining counts with its recorded time, as it may come from the cache
            t_pre = time.time()
            pre_path, pre = _ensure_pretrained(cfg, feats)
            t0 += time.time() - t_pre
            history.update(read_history(pre_path))
            model = ASTForAudioClassification.from_pretrained(pre_path)
        model.to(device)
        if strategy == "ssl-frozen":
            history["linear"] = linear_probe(model, feats, tc, gen)
        else:
            ckpt = checkpoint_dir(dest) / "finetune.pt"
            history["finetune"] = fit_classifier(model, feats, tc, gen, checkpoint=ckpt)
        seconds = time.time() - t0 + pre.get("pretrain_seconds", 0.0)
        last = history["linear" if strategy == "ssl-frozen" else "finetune"][-1]
        x_tr, y_tr = feats.split(tc.train_folds)
        x_held, y_held = feats.split([tc.heldout_fold])
        metrics: dict[str, Any] = {
            "strategy": strategy,
            "train_accuracy": accuracy(model, x_tr, y_tr),
            "heldout_accuracy": accuracy(model, x_held, y_held),
            "train_seconds": round(seconds, 1),
            "epochs": last["epoch"],
            "steps": last["step"],
            "train_folds": list(tc.train_folds),
            "heldout_fold": tc.heldout_fold,
            "n_train": len(x_tr),
            "n_heldout": len(x_held),
            "n_parameters": int(sum(p.numel() for p in model.parameters())),
            **pre,
            "train_config": dataclasses.asdict(tc),
            "seed": seed,
            "num_threads": torch.get_num_threads(),
            "device": str(device),
        }
    finally:
        torch.set_num_threads(threads)
    model.requires_grad_(True).eval().cpu()

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        feats.extractor.save_pretrained(tmp)
        write_json(tmp / HISTORY_FILE, history)
        write_json(tmp / METRICS_FILE, metrics)

    _save_atomic(dest, write)
    shutil.rmtree(checkpoint_dir(dest), ignore_errors=True)
    held = metrics["heldout_accuracy"]
    log.info(
        "%s: train accuracy %.3f, held-out (fold %d) accuracy %s, %.0f s -> %s",
        strategy,
        metrics["train_accuracy"],
        tc.heldout_fold,
        "n/a" if held is None else f"{held:.3f}",
        seconds,
        dest,
    )
    return dest


def ensure_trained(cfg: Config, strategy: str | None = None) -> Path:
    """The cached model folder for ``strategy`` (default ``cfg.train.strategy``); trains it
    first when it is missing."""
    path = model_dir(cfg, strategy)
    if (path / METRICS_FILE).exists():
        log.info("reusing trained model %s", path)
        return path
    return train_model(cfg, strategy)


SUMMARY_KEYS = ("train_accuracy", "heldout_accuracy", "train_seconds", "epochs", "steps")


def strategies_to_train(cfg: Config) -> list[str]:
    """``cfg.strategies`` when set (less those ``strategy_models`` maps to a checkpoint that
    needs no training), else the strategy of ``model.name = trained:<strategy>`` (empty when
    the target is a hub or local model: nothing to train)."""
    if cfg.strategies:
        return [s for s in cfg.strategies if cfg.strategy_model(s).startswith("trained:")]
    if cfg.model.name.startswith("trained:"):
        return [_check_strategy(cfg.model.name.split(":", 1)[1] or None, cfg)]
    return []


def run_stage(cfg: Config, run: RunDir) -> dict[str, Any]:
    """Train (or reuse) the model(s) the config needs; return their metrics.

    One strategy: its metrics and ``model_dir``. Several (``cfg.strategies``): the same keys
    prefixed ``<strategy>.``; with ``cfg.seeds``, every strategy once per training seed,
    prefixed ``<strategy>.seed<k>.``.
    """
    strategies = strategies_to_train(cfg)
    if not strategies:
        return {
            "train": f"nothing to train: model.name={cfg.model.name!r} is not trained:<strategy>"
        }
    summary: dict[str, Any] = {}
    seeds: list[int | None] = list(cfg.seeds) if cfg.seeds else [None]
    for seed in seeds:
        seeded = with_train_seed(cfg, seed)
        for strategy in strategies:
            path = ensure_trained(seeded, strategy)
            metrics = read_metrics(path)
            row = {"model_dir": str(path), **{k: metrics.get(k) for k in SUMMARY_KEYS}}
            prefix = f"{strategy}." if len(strategies) > 1 or seed is not None else ""
            prefix += f"seed{seed}." if seed is not None else ""
            summary.update({f"{prefix}{k}": v for k, v in row.items()})
    return summary
