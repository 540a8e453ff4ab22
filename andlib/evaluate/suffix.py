"""Masked logits for any model that can resume from a block: :class:`BlockSuffix`.

Pruning evaluates many selections of neurons on the same held-out clips. A model whose module
exposes ``blocks`` (an ``nn.ModuleList`` run in order) and ``resume(start, block_input,
**inputs)`` (the forward pass from block ``start``'s input to the logits, e.g.
:class:`~andlib.models.families.whisper.WhisperTarget`) is run once per batch without masks,
recording every block's input (forward pre-hooks); each selection is then applied by the
:class:`~andlib.evaluate.prune.NeuronPruner` (the same zeroed weights and hooks as a full
masked forward) and recomputed from its first masked block only. Layers outside the blocks
(a probe head) resume from the block the head reads, or from the start; masks in blocks
above a probe head's block leave the logits as they are.

Public surface: :class:`BlockSuffix`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn


class BlockSuffix:
    """Pruned logits recomputed from the first masked block (see the module docstring)."""

    def __init__(self, module: Any, container: str, paths: Mapping[str, str]):
        self.module = module
        self.container = container
        self.paths = dict(paths)
        self.n_blocks = len(module.blocks)
        head_block = getattr(module, "head_block", None)
        self.last = int(head_block) if isinstance(head_block, int) else self.n_blocks - 1
        """The last block that can change the logits (the one a probe head reads)."""

    @classmethod
    def build(cls, model: Any, paths: Mapping[str, str]) -> BlockSuffix | None:
        """The runner for ``model`` (a TargetModel or module) when its module can resume from a
        block and is in eval mode; otherwise ``None``."""
        module = model if isinstance(model, nn.Module) else model.module
        blocks = getattr(module, "blocks", None)
        if not isinstance(blocks, nn.ModuleList) or not callable(getattr(module, "resume", None)):
            return None
        if module.training:
            return None
        container = next((n for n, m in module.named_modules() if m is blocks), None)
        if container is None:
            return None
        return cls(module, container, paths)

    def block_of(self, layer: str) -> int:
        """The block a layer's module sits in (0 when it is outside the blocks)."""
        path = self.paths[layer]
        prefix = f"{self.container}."
        if path.startswith(prefix):
            num = path[len(prefix) :].partition(".")[0]
            if num.isdigit() and int(num) < self.n_blocks:
                return int(num)
        has_head = isinstance(getattr(self.module, "head_block", None), int)
        return self.last if has_head else 0

    def start(self, selection: Mapping[str, Sequence[int]]) -> int:
        """The first block a selection masks (where its recomputation starts)."""
        return min((self.block_of(layer) for layer, n in selection.items() if len(n)), default=0)

    def logits(
        self,
        inputs: Sequence[Mapping[str, torch.Tensor]],
        selections: Sequence[Mapping[str, Sequence[int]]],
        pruner: Any,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(unpruned logits, pruned logits of each selection), float32 on the CPU."""
        starts = [self.start(s) for s in selections]
        before: list[torch.Tensor] = []
        after: list[list[torch.Tensor]] = [[] for _ in selections]
        recorded: dict[int, torch.Tensor] = {}

        def keep(j: int):
            def hook(module: nn.Module, args: Any) -> None:
                recorded[j] = args[0]

            return hook

        with torch.inference_mode():
            for kwargs in inputs:
                recorded.clear()
                handles = [
                    block.register_forward_pre_hook(keep(j))
                    for j, block in enumerate(self.module.blocks)
                ]
                try:
                    base = _logits(self.module(**kwargs))
                finally:
                    for h in handles:
                        h.remove()
                before.append(base)
                for out, selection, j in zip(after, selections, starts, strict=True):
                    if not any(len(n) for n in selection.values()) or j > self.last:
                        out.append(base)  # nothing masked, or only blocks above the head
                        continue
                    with pruner.pruned(selection):
                        out.append(_logits(self.module.resume(j, recorded[j], **kwargs)))
        return torch.cat(before), [torch.cat(o) for o in after]


def _logits(output: Any) -> torch.Tensor:
    logits = getattr(output, "logits", output)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        raise TypeError("BlockSuffix: the model returns no class logits")
    return logits.float().cpu()
