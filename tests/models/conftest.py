"""Fixtures shared by the training tests: one torch thread, and a tiny training config."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread, above all on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = {
    "data.limit": 24,
    "train.hidden_size": 32,
    "train.num_hidden_layers": 1,
    "train.num_attention_heads": 2,
    "train.intermediate_size": 64,
    "train.num_mel_bins": 32,
    "train.max_length": 128,
    "train.batch_size": 8,
    "train.epochs": 2,
    "train.max_steps": 3,
    "train.pretrain_epochs": 1,
    "train.linear_epochs": 2,
    "train.time_mask": 16,
    "train.shift_frames": 20,
    "train.num_threads": 1,
}


@pytest.fixture
def tiny_cfg(tmp_cfg):
    """A config of the tiny training shape (:data:`TINY`), with ``extra`` overrides."""

    def make(**extra):
        return tmp_cfg({**TINY, **extra})

    return make
