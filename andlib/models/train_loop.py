"""The training loop: the model, the optimisation loop shared by every phase with its
per-epoch checkpoints (resume), supervised fine-tuning and the linear probe.

:func:`build_model` builds the project's ``ASTForAudioClassification`` from ``cfg.train``;
:func:`model_from_init` an audio classifier from ``train.init``'s checkpoint. ``_optimize``
runs AdamW with warmup and cosine decay, and after every epoch writes a checkpoint that a
later run resumes from (:func:`checkpoint_dir`). :func:`fit_classifier` trains end to end with
augmentation, mixup and label smoothing; :func:`linear_probe` trains only what follows a
frozen encoder.

Public surface: :func:`build_model`, :func:`model_from_init`, :func:`accuracy`,
:func:`checkpoint_dir`, :func:`fit_classifier`, :func:`linear_probe`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from andlib.config import TrainConfig
from andlib.models.train_data import Features, augment

log = logging.getLogger(__name__)


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


def resumed_seconds(checkpoint: Path) -> float:
    """Training seconds an interrupted earlier run spent before ``checkpoint`` (0 when there is
    none): a resumed run adds them to its own clock, so the time it reports is the whole
    training's, not the last sitting's."""
    if not checkpoint.exists():
        return 0.0
    return float(torch.load(checkpoint, map_location="cpu", weights_only=False)["seconds"])


# --------------------------------------------------------------------------------------------
# Supervised training and the linear probe
# --------------------------------------------------------------------------------------------


def _soft_targets(y: torch.Tensor, n_classes: int, smoothing: float) -> torch.Tensor:
    return F.one_hot(y, n_classes).float() * (1 - smoothing) + smoothing / n_classes


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
