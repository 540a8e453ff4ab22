"""Pruning with masks, restorable (:mod:`andlib.evaluate.prune`): :class:`NeuronPruner`.

It silences neurons of recorded layers without ever touching a saved checkpoint, and
:meth:`NeuronPruner.restore` gives back bit-identical outputs. How a layer's neuron *j* is
silenced depends on the module that was recorded: an ``nn.Linear`` has row *j* of its weight
and entry *j* of its bias zeroed; a parameter-free activation that maps 0 to 0 has the row of
the one ``nn.Linear`` of its parent zeroed; anything else gets a forward hook that sets the
output's last-dimension entries *j* to 0.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


def _maps_zero_to_zero(module: nn.Module) -> bool:
    try:
        with torch.no_grad():
            out = module(torch.zeros(8))
        return isinstance(out, torch.Tensor) and bool(torch.all(out == 0))
    except Exception:
        return False


def _zero_last_dim(output: Any, idx: torch.Tensor) -> Any:
    if isinstance(output, torch.Tensor):
        out = output.clone()
        out[..., idx.to(out.device)] = 0
        return out
    if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
        return (_zero_last_dim(output[0], idx), *output[1:])
    raise TypeError(f"cannot mask a module output of type {type(output).__name__}")


class NeuronPruner:
    """Silence chosen neurons of recorded layers; :meth:`restore` undoes everything.

    ``model`` is a :class:`~andlib.models.registry.TargetModel` or an ``nn.Module``;
    ``layer_to_module`` maps layer keys to module paths (as ``activations/index.json`` or
    ``resolve_layers`` give them; a value may also be ``{"module": path, "n_neurons": n}``).
    ``n_neurons`` gives layer sizes where the values do not. See the module docstring for how
    each kind of module is pruned.
    """

    def __init__(
        self,
        model: Any,
        layer_to_module: Mapping[str, Any],
        n_neurons: Mapping[str, int] | None = None,
    ):
        self.module: nn.Module = model if isinstance(model, nn.Module) else model.module
        self.paths: dict[str, str] = {}
        self.sizes: dict[str, int] = dict(n_neurons or {})
        for layer, value in layer_to_module.items():
            if isinstance(value, Mapping):
                self.paths[layer] = str(value["module"])
                if value.get("n_neurons") is not None:
                    self.sizes.setdefault(layer, int(value["n_neurons"]))
            else:
                self.paths[layer] = str(value)
        self._plans: dict[str, tuple[str, str]] = {}
        self._originals: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._hook_idx: dict[str, set[int]] = {}
        self._handles: list[Any] = []
        self.pruned_neurons: dict[str, set[int]] = {}

    def plan(self, layer: str) -> tuple[str, str]:
        """``("weights", linear_path)`` or ``("hook", module_path)``: how ``layer`` is pruned."""
        if layer in self._plans:
            return self._plans[layer]
        if layer not in self.paths:
            raise KeyError(f"unknown layer {layer!r}; known: {', '.join(self.paths)}")
        path = self.paths[layer]
        mod = self.module.get_submodule(path)
        plan = ("hook", path)
        if isinstance(mod, nn.Linear):
            plan = ("weights", path)
        elif layer in self.sizes and not any(True for _ in mod.parameters(recurse=True)):
            parent_path, _, _ = path.rpartition(".")
            parent = self.module.get_submodule(parent_path) if parent_path else self.module
            producers = [
                name
                for name, child in parent.named_children()
                if isinstance(child, nn.Linear) and child.out_features == self.sizes[layer]
            ]
            if len(producers) == 1 and _maps_zero_to_zero(mod):
                prefix = f"{parent_path}." if parent_path else ""
                plan = ("weights", prefix + producers[0])
        self._plans[layer] = plan
        return plan

    def prune(self, layer: str, neurons: Sequence[int]) -> int:
        """Silence ``neurons`` of ``layer`` (on top of anything pruned before); returns how many."""
        idx = sorted({int(n) for n in neurons})
        if not idx:
            return 0
        size = self.sizes.get(layer)
        if idx[0] < 0 or (size is not None and idx[-1] >= size):
            raise IndexError(f"{layer}: neuron index out of range 0..{size}: {idx}")
        kind, path = self.plan(layer)
        if kind == "weights":
            linear: Any = self.module.get_submodule(path)
            rows = torch.tensor(idx, device=linear.weight.device)
            for param in (linear.weight, linear.bias):
                if param is None:
                    continue
                if id(param) not in self._originals:
                    self._originals[id(param)] = (param, param.detach().clone())
                with torch.no_grad():
                    param[rows] = 0
        else:
            if path not in self._hook_idx:
                self._hook_idx[path] = set()
                self._handles.append(
                    self.module.get_submodule(path).register_forward_hook(self._hook(path))
                )
            self._hook_idx[path].update(idx)
        self.pruned_neurons.setdefault(layer, set()).update(idx)
        return len(idx)

    def _hook(self, path: str):
        def hook(module: nn.Module, args: Any, output: Any) -> Any:
            idx = torch.tensor(sorted(self._hook_idx[path]), dtype=torch.long)
            return _zero_last_dim(output, idx)

        return hook

    def prune_many(self, selection: Mapping[str, Sequence[int]]) -> int:
        """Prune ``{layer: neurons}``; returns the number of neurons pruned."""
        return sum(self.prune(layer, neurons) for layer, neurons in selection.items())

    def restore(self) -> None:
        """Put back every original weight and remove every hook (bit-identical outputs)."""
        with torch.no_grad():
            for param, original in self._originals.values():
                param.copy_(original)
        for handle in self._handles:
            handle.remove()
        self._originals.clear()
        self._hook_idx.clear()
        self._handles.clear()
        self.pruned_neurons.clear()

    @contextmanager
    def pruned(self, selection: Mapping[str, Sequence[int]]) -> Iterator[NeuronPruner]:
        """``with pruner.pruned({layer: neurons}): ...`` -- restored on exit, even on error."""
        try:
            self.prune_many(selection)
            yield self
        finally:
            self.restore()
