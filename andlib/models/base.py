"""What every target model is: :class:`TargetModel` (a module, its preprocessing, sample rate
and labels), :class:`ModelLoadError`, :func:`resolve_device` and :class:`BlockPreset` (a
family's named hook points). The model families (:mod:`andlib.models.families`), the loader
(:mod:`andlib.models.registry`) and training (:mod:`andlib.models.train`) build on it without
importing one another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

Preprocess = Callable[[Sequence[np.ndarray]], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class BlockPreset:
    """Hook points repeated in every block of one architecture (``preset:<name>``).

    ``containers`` are module-path suffixes of the ``ModuleList`` holding the blocks and
    ``parts`` map a stable part name to candidate paths inside a block (``""`` = the block
    itself); the first candidate that exists wins, so renamed modules of older transformers
    versions resolve too.
    """

    containers: tuple[str, ...]
    parts: dict[str, tuple[str, ...]]
    classifier: bool = True
    """Also record the classification head (``classifier``) when the model has one."""


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message names the model and why."""


@dataclass
class TargetModel:
    """A model to dissect, with everything needed to feed it audio."""

    module: nn.Module
    preprocess: Preprocess
    """Waveforms (mono float32 at :attr:`sample_rate`) -> keyword arguments of ``module``."""
    sample_rate: int
    name: str
    label_names: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    """What ``model.json`` records (source, kind, parameters, training metrics, ...)."""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    max_seconds: float | None = None
    """The longest input the model reads; longer clips are cut (the record stage warns)."""

    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        preprocess: Preprocess | Callable[[torch.Tensor], Any],
        sample_rate: int,
        name: str = "module",
        label_names: list[str] | None = None,
    ) -> TargetModel:
        """Wrap any ``nn.Module``. ``preprocess`` returns forward kwargs (a dict) or one tensor."""

        def wrapped(batch: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
            out = preprocess(batch)  # type: ignore[arg-type]
            return out if isinstance(out, dict) else {"_positional": out}

        module.eval()
        return cls(
            module, wrapped, sample_rate, name, label_names, {"source": "module", "name": name}
        )

    def inputs(self, batch: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        raw = self.preprocess(batch)
        out = {}
        for k, v in raw.items():
            if isinstance(v, torch.Tensor):
                v = v.to(self.device)
                if v.is_floating_point():
                    v = v.to(self.dtype)
            out[k] = v
        return out

    def forward(self, batch: Sequence[np.ndarray]) -> Any:
        """Run the module on a batch of waveforms (no grad is the caller's choice)."""
        kwargs = self.inputs(batch)
        if "_positional" in kwargs:
            return self.module(kwargs["_positional"])
        return self.module(**kwargs)

    def logits(self, batch: Sequence[np.ndarray]) -> torch.Tensor:
        """Class logits ``[batch, n_classes]`` (classifiers only)."""
        out = self.forward(batch)
        logits = getattr(out, "logits", out)
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
            raise TypeError(f"{self.name} does not return class logits")
        return logits.float()

    @property
    def is_classifier(self) -> bool:
        return bool(self.label_names)


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present), ``cpu`` or ``cuda``; an error when CUDA is asked for but absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("model.device: cuda requested but no CUDA device is available")
    return torch.device(name)


def first_tensor(output: Any) -> torch.Tensor:
    """The module's main output: itself, or the first element of a tuple / ModelOutput."""
    while not isinstance(output, torch.Tensor):
        if isinstance(output, Mapping) and output:  # ModelOutput (its first set field), dict
            output = next(iter(output.values()))
        elif isinstance(output, tuple | list) and output:
            output = output[0]
        else:
            raise TypeError(f"cannot record a module output of type {type(output).__name__}")
    return output
