"""The generic masked forward (BlockSuffix) equals full masked forward passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from andlib.evaluate import prune, prune_forward
from andlib.evaluate.suffix import BlockSuffix
from andlib.models.activations import resolve_layers
from andlib.models.families.whisper import load_whisper


@pytest.fixture(scope="module")
def headed(tmp_path_factory):
    # the wheel is installed by make setup: a missing one fails with its ModelLoadError
    target = load_whisper("whisper-tiny.en", "trimmed", "cpu", tmp_path_factory.mktemp("c"))
    g = torch.Generator().manual_seed(0)
    target.module.attach_head(2, torch.randn(5, 384, generator=g) * 0.2, torch.zeros(5))
    return target


def _clips(n: int, seconds: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return [
        (0.3 * np.sin(2 * np.pi * f * t) + rng.normal(0, 0.05, t.size)).astype(np.float32)
        for f in rng.uniform(100, 2000, n)
    ]


SELECTIONS = [
    {"layers.0.mlp": [1, 5, 9, 700]},
    {"layers.1.attn": list(range(40))},
    {"layers.2.out": [3, 4]},
    {"layers.0.out": [7], "layers.2.mlp": list(range(0, 1536, 3))},
    {"classifier": [1]},
    {},
    {"layers.3.mlp": list(range(200))},
]


def test_the_generic_masked_forward_equals_full_masked_forwards(headed, monkeypatch):
    paths = resolve_layers(headed.module, ["preset:whisper"])
    sizes = {"classifier": 5, **{k: 1536 if k.endswith("mlp") else 384 for k in paths}}
    pruner = prune.NeuronPruner(headed, paths, sizes)
    inputs = [
        headed.inputs(_clips(3, 2.0, 0)),
        headed.inputs(_clips(1, 1.5, 1) + _clips(1, 2.0, 2)),
    ]
    runner = BlockSuffix.build(headed, paths)
    assert runner is not None and runner.start(SELECTIONS[2]) == 2
    assert runner.start(SELECTIONS[4]) == 2  # the head: from the block it reads
    full_before, full = prune.masked_logits(headed, inputs, pruner, SELECTIONS, fast=False)
    monkeypatch.setattr(prune_forward, "predict", lambda *a: pytest.fail("not the generic path"))
    before, fast = prune.masked_logits(headed, inputs, pruner, SELECTIONS, fast=True)
    assert torch.allclose(before, full_before, atol=1e-6)
    for s, a, b in zip(SELECTIONS, fast, full, strict=True):
        assert torch.allclose(a, b, atol=1e-5), s
    changed = [float((a - before).abs().max()) for a in fast]
    assert all(c > 1e-4 for c in changed[:5])  # masks at or below the head change the logits
    assert changed[5] == 0 and changed[6] == 0  # nothing, or a block above the head
    assert headed.module.pool_lengths is not None
    again = headed.logits(_clips(3, 2.0, 0))
    assert torch.allclose(again, full_before[:3], atol=1e-6)  # pruning left no trace
