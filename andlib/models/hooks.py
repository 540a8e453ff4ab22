"""Forward hooks that record one pooled vector per example and layer.

:func:`pool_output` pools a module output's token/time axes (``mean``, ``max`` or ``cls``)
into a float32 CPU ``[batch, n_neurons]`` tensor; :class:`ActivationRecorder` registers the
hooks on the resolved layers of a model and hands back what each forward pass captured.
Both engines of the record stage (:mod:`andlib.models.activations`,
:mod:`andlib.models.record_ray`) record through it. :func:`token_positions` keeps every
position instead (the SAE layers' token-level capture, in either engine).

Public surface: :func:`pool_output`, :func:`token_positions`, :class:`ActivationRecorder`,
:data:`POOLINGS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from andlib.config import ConfigError
from andlib.models.base import first_tensor
from andlib.models.layers import resolve_layers

POOLINGS = ("mean", "max", "cls")


# --------------------------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------------------------


def pool_output(
    output: Any, pooling: str = "mean", lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """One float32 CPU vector per example: ``[batch, ..., n_neurons] -> [batch, n_neurons]``.

    The axes between the batch and the last (neuron) axis are the token/time axes; they are
    pooled by ``mean``, ``max`` or ``cls`` (the first token). 2-D outputs such as logits pass
    through; 1-D outputs become one neuron. ``lengths`` (``[batch]``) restricts a
    ``[batch, tokens, n_neurons]`` output to each example's first ``lengths`` tokens (the
    clip's own positions in a padded input).
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
    x = first_tensor(output).detach().float()
    if x.ndim == 3 and lengths is not None and bool((lengths < x.shape[1]).any()):
        keep = torch.arange(x.shape[1], device=x.device)[None, :] < lengths.to(x.device)[:, None]
        if pooling == "mean":
            w = keep.to(x.dtype)[..., None]
            return ((x * w).sum(1) / w.sum(1).clamp(min=1)).to("cpu")
        if pooling == "max":
            return x.masked_fill(~keep[..., None], float("-inf")).amax(dim=1).to("cpu")
    if x.ndim == 1:
        x = x[:, None]
    elif x.ndim > 2:
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        if pooling == "mean":
            x = x.mean(dim=1)
        elif pooling == "max":
            x = x.amax(dim=1)
        else:
            x = x[:, 0]
    return x.to("cpu")


def token_positions(output: Any, lengths: torch.Tensor | None) -> list[np.ndarray]:
    """One float16 ``[positions, d]`` array per example of a hooked output, not pooled;
    ``lengths`` (``[batch]``) keeps each example's first ``lengths`` positions (a clip's own)."""
    x = first_tensor(output).detach()
    if x.ndim < 3:
        raise ConfigError("sae.layers: the layer has no token axis to train an SAE on")
    x = x.reshape(x.shape[0], -1, x.shape[-1]).float().cpu()
    out = []
    for i in range(x.shape[0]):
        n = int(lengths[i]) if lengths is not None else x.shape[1]
        out.append(x[i, :n].numpy().astype(np.float16))
    return out


class ActivationRecorder:
    """Forward hooks capturing one pooled vector per example for each layer.

    ::

        with ActivationRecorder(model, ["preset:ast"], pooling="mean") as rec:
            model(**inputs)
            acts = rec.pop()  # {"layers.0.attn": tensor [batch, n_neurons], ...}

    ``layers`` is a ``{key: module path}`` mapping (from :func:`resolve_layers`) or a list
    of specs to resolve. The hooks are removed on exit. A model that runs clips on more
    positions than their own (Whisper's padded window) sets ``pool_lengths`` (``[batch]``, the
    clip's leading token positions) in its forward; token outputs are then pooled over those.
    """

    def __init__(
        self, model: nn.Module, layers: Mapping[str, str] | Sequence[str], pooling: str = "mean"
    ):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
        self.model = model
        self.layers = dict(layers) if isinstance(layers, Mapping) else resolve_layers(model, layers)
        self.pooling = pooling
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._captured: dict[str, torch.Tensor] = {}

    def _hook(self, key: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if key in self._captured:
                raise RuntimeError(
                    f"layer {key!r} ({self.layers[key]}) ran twice in one forward pass; "
                    f"call pop() after each forward, or hook a module that runs once"
                )
            lengths = getattr(self.model, "pool_lengths", None)
            self._captured[key] = pool_output(output, self.pooling, lengths)

        return hook

    def attach(self) -> ActivationRecorder:
        """Register the hooks (idempotent)."""
        if not self._handles:
            for key, path in self.layers.items():
                module = self.model.get_submodule(path)
                self._handles.append(module.register_forward_hook(self._hook(key)))
        return self

    def detach(self) -> None:
        """Remove the hooks and drop anything captured."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._captured.clear()

    def __enter__(self) -> ActivationRecorder:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def pop(self) -> dict[str, torch.Tensor]:
        """What the last forward pass captured, ``{key: [batch, n_neurons]}``, in layer order."""
        missing = [k for k in self.layers if k not in self._captured]
        if missing:
            raise RuntimeError(f"no output captured for layers {missing} (did the forward run?)")
        out = {k: self._captured[k] for k in self.layers}
        self._captured = {}
        return out
