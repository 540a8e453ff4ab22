"""andlib.evaluate.prune_forward: the cached suffix equals a full masked forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from andlib.evaluate.prune import (
    ASTSuffix,
    NeuronPruner,
    concept_metrics,
    masked_logits,
)
from tests.evaluate.test_scores import AST_PATHS

LAYERS = {layer: path for layer, (path, _) in AST_PATHS.items()}


SIZES = {layer: n for layer, (_, n) in AST_PATHS.items()}


def _inputs(fe, n: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = np.random.default_rng(seed)
    audio = [gen.normal(scale=0.1, size=16000).astype(np.float32) for _ in range(n)]
    return dict(fe(audio, sampling_rate=16000, return_tensors="pt"))


EXTRA_PATHS = {
    **LAYERS,
    "layers.0.out": "audio_spectrogram_transformer.layers.0",
    "layers.1.attn": "audio_spectrogram_transformer.layers.1.attention",
    "layers.1.mlp": "audio_spectrogram_transformer.layers.1.mlp.fc1",
}


EXTRA_SIZES = {**SIZES, "layers.0.out": 32, "layers.1.attn": 32, "layers.1.mlp": 64}


def test_cached_suffix_equals_a_full_masked_forward(tiny_ast):
    model, fe = tiny_ast
    batches = [_inputs(fe, n=3, seed=0), _inputs(fe, n=2, seed=1)]
    labels = np.array([0, 1, 2, 0, 3])
    selections = [
        {"layers.0.attn": [1, 4]},
        {"layers.0.mlp": [0, 9, 63], "layers.1.out": [5]},
        {"layers.0.out": [2, 3]},
        {"layers.1.attn": [0, 31]},
        {"layers.1.mlp": [7, 8], "classifier": [1]},
        {"layers.1.out": [0, 1, 2]},
        {"classifier": [2]},
        {"layers.1.mlp": [3], "layers.0.attn": [6], "layers.0.mlp": [1], "layers.1.out": [9]},
        {},
        {"layers.0.attn": [1, 4]},  # a repeat
    ]
    pruner = NeuronPruner(model, EXTRA_PATHS, EXTRA_SIZES)
    runner = ASTSuffix.build(model, EXTRA_PATHS)
    assert runner is not None and runner.points["layers.1.mlp"] == (1, "mlp")
    before_fast, fast = masked_logits(model, batches, pruner, selections, fast=True)
    before_plain, plain = masked_logits(model, batches, pruner, selections, fast=False)
    torch.testing.assert_close(before_fast, before_plain, atol=1e-5, rtol=1e-5)
    for sel, f, p in zip(selections, fast, plain, strict=True):
        torch.testing.assert_close(f, p, atol=1e-5, rtol=1e-5, msg=str(sel))
        if sel:
            assert not torch.allclose(p, before_plain)
        mf = concept_metrics(before_fast, f, labels, 0)
        mp = concept_metrics(before_plain, p, labels, 0)
        for k in ("delta_a", "delta_r", "delta_a_prob", "delta_r_prob"):
            assert mf[k] == pytest.approx(mp[k], abs=1e-5), (sel, k)
    assert torch.equal(fast[8], before_fast)
    # the plain reference is itself what NeuronPruner + a HF forward give
    with pruner.pruned(selections[1]), torch.no_grad():
        direct = torch.cat([model(**b).logits for b in batches])
    torch.testing.assert_close(plain[1], direct)
    # not an AST, or a layer at no known point: full forwards
    assert ASTSuffix.build(model, {"x": "audio_spectrogram_transformer.layernorm"}) is None
    assert ASTSuffix.build(model.train(), LAYERS) is None
