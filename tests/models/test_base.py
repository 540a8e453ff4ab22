"""andlib.models.base: TargetModel around a plain module."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from andlib.models.base import TargetModel


def clips(n=2, seconds=1.0, sr=16000):
    g = np.random.default_rng(0)
    return [(0.1 * g.standard_normal(int(sr * seconds))).astype(np.float32) for _ in range(n)]


def test_from_module_wraps_a_plain_module_and_a_preprocessing_callable():
    class MeanEnergy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 3)

        def forward(self, x):
            return self.fc(x)

    def preprocess(batch):
        return torch.tensor([[float(np.mean(a)), float(np.mean(a**2))] for a in batch])

    target = TargetModel.from_module(
        MeanEnergy(), preprocess, sample_rate=8000, name="energy", label_names=["a", "b", "c"]
    )
    assert target.logits(clips(4, sr=8000)).shape == (4, 3)
    assert target.is_classifier and target.info == {"source": "module", "name": "energy"}
    assert not target.module.training

    def as_kwargs(batch):  # a callable may also return forward keyword arguments
        return {"x": preprocess(batch)}

    assert TargetModel.from_module(MeanEnergy(), as_kwargs, 8000).forward(clips(2)).shape == (2, 3)
