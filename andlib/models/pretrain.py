"""Self-supervised pretraining: masked spectrogram modelling (SSAST-style) of the AST encoder.

:class:`MaskedSpectrogramModel` hides a random fraction of the patch embeddings behind a
learned mask token and reconstructs the hidden patches; :func:`pretrain` trains it on the
audio of every clip (labels unused) with the shared optimisation loop.

Public surface: :class:`MaskedSpectrogramModel`, :func:`pretrain`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from andlib.config import TrainConfig
from andlib.models.train_data import Features, augment
from andlib.models.train_loop import _device_of, _optimize


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
