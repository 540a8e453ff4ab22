"""andlib.evaluate.prune_masks: zeroed neurons and bit-identical restores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from andlib.evaluate.prune import (
    NeuronPruner,
)
from tests.evaluate.test_scores import AST_PATHS

LAYERS = {layer: path for layer, (path, _) in AST_PATHS.items()}


SIZES = {layer: n for layer, (_, n) in AST_PATHS.items()}


def _inputs(fe, n: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = np.random.default_rng(seed)
    audio = [gen.normal(scale=0.1, size=16000).astype(np.float32) for _ in range(n)]
    return dict(fe(audio, sampling_rate=16000, return_tensors="pt"))


def _record(model, path: str, inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """(the module's raw output, the logits) of one forward pass."""
    seen = {}

    def hook(module, args, output):
        seen["out"] = (output[0] if isinstance(output, tuple) else output).detach().clone()

    handle = model.get_submodule(path).register_forward_hook(hook)
    try:
        with torch.no_grad():
            logits = model(**inputs).logits
    finally:
        handle.remove()
    return seen["out"], logits


def test_plan_picks_the_producing_weights_or_a_hook(tiny_ast):
    model, _ = tiny_ast
    pruner = NeuronPruner(model, LAYERS, SIZES)
    base = "audio_spectrogram_transformer.layers"
    assert pruner.plan("layers.0.attn") == ("weights", f"{base}.0.attention.o_proj")
    assert pruner.plan("layers.0.mlp") == ("weights", f"{base}.0.mlp.fc1")
    assert pruner.plan("layers.1.out") == ("hook", f"{base}.1")
    assert pruner.plan("classifier") == ("hook", "classifier")
    # without its size an activation falls back to the (always exact) output hook
    assert NeuronPruner(model, LAYERS).plan("layers.0.mlp")[0] == "hook"


@pytest.mark.parametrize("layer", list(AST_PATHS))
def test_pruned_neurons_are_exactly_zero_and_restore_is_bit_identical(tiny_ast, layer):
    model, fe = tiny_ast
    inputs = _inputs(fe)
    path = LAYERS[layer]
    out_before, logits_before = _record(model, path, inputs)
    chosen = [0, 2, SIZES[layer] - 1]
    state = {k: v.clone() for k, v in model.state_dict().items()}

    pruner = NeuronPruner(model, LAYERS, SIZES)
    assert pruner.prune(layer, chosen) == 3
    out_after, logits_after = _record(model, path, inputs)
    assert torch.all(out_after[..., chosen] == 0)
    others = [i for i in range(SIZES[layer]) if i not in chosen]
    assert torch.equal(out_after[..., others], out_before[..., others])  # upstream untouched
    assert not torch.equal(logits_after, logits_before)

    pruner.restore()
    out_restored, logits_restored = _record(model, path, inputs)
    assert torch.equal(out_restored, out_before) and torch.equal(logits_restored, logits_before)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_pruning_accumulates_and_the_context_manager_restores_on_error(tiny_ast):
    model, fe = tiny_ast
    inputs = _inputs(fe)
    _, logits_before = _record(model, LAYERS["classifier"], inputs)
    pruner = NeuronPruner(model, LAYERS, SIZES)
    selection = {"layers.0.mlp": [1, 5], "layers.0.attn": [3], "layers.1.out": [0, 7]}
    with pytest.raises(RuntimeError), pruner.pruned(selection):
        pruner.prune("layers.0.mlp", [9])  # on top of the first two
        out, _ = _record(model, LAYERS["layers.0.mlp"], inputs)
        assert torch.all(out[..., [1, 5, 9]] == 0)
        assert pruner.pruned_neurons["layers.0.mlp"] == {1, 5, 9}
        raise RuntimeError("boom")
    _, logits_after = _record(model, LAYERS["classifier"], inputs)
    assert torch.equal(logits_after, logits_before)
    assert pruner.pruned_neurons == {}
    with pytest.raises(IndexError):
        pruner.prune("layers.0.attn", [SIZES["layers.0.attn"]])
