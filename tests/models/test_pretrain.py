"""andlib.models.pretrain: masked spectrogram pretraining."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from andlib.config import rng
from andlib.models import train

pytestmark = pytest.mark.usefixtures("one_thread")


def fake_features(cfg, n_clips=16, n_classes=4, seed=0):
    """Random normalised spectrograms shaped for ``cfg.train``, split over folds 1-5."""
    g = torch.Generator().manual_seed(seed)
    tc = cfg.train
    return train.Features(
        x=torch.randn(n_clips, tc.max_length, tc.num_mel_bins, generator=g),
        labels=torch.arange(n_clips) % n_classes,
        folds=np.array([1 + i % 5 for i in range(n_clips)]),
        class_names=[f"c{i}" for i in range(n_classes)],
        extractor=None,
        per_ln=0.1,
    )


def test_masked_spectrogram_loss_goes_down_on_a_fixed_batch(tiny_cfg):
    cfg = tiny_cfg()
    torch.manual_seed(0)
    model = train.build_model(cfg.train, ["a", "b"], seed=0)
    msm = train.MaskedSpectrogramModel(model, mask_ratio=0.5)
    x = fake_features(cfg, n_clips=4).x
    x = x + torch.linspace(-1, 1, x.shape[2])  # some structure to reconstruct
    n_patches = msm.patches(x).shape[1]
    mask = msm.random_mask(len(x), n_patches, rng(0, "mask"))
    assert mask.sum(1).tolist() == [round(0.5 * n_patches)] * 4
    opt = torch.optim.Adam(msm.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = msm.loss(x, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    # the hook that swaps in the mask token is gone: the AST alone is unchanged
    assert not model.audio_spectrogram_transformer.embeddings.patch_embeddings._forward_hooks


def test_patches_follow_the_ast_token_order(tiny_cfg):
    cfg = tiny_cfg()
    model = train.build_model(cfg.train, ["a", "b"])
    msm = train.MaskedSpectrogramModel(model, 0.5)
    x = torch.randn(1, cfg.train.max_length, cfg.train.num_mel_bins)
    proj = model.audio_spectrogram_transformer.embeddings.patch_embeddings
    tokens = proj(x)[0]  # [n_patches, hidden]
    w = proj.projection.weight.reshape(proj.projection.out_channels, -1)
    expected = msm.patches(x)[0] @ w.T + proj.projection.bias
    torch.testing.assert_close(tokens, expected, rtol=1e-4, atol=1e-4)
