"""Pruned logits of many selections (:mod:`andlib.evaluate.prune`): a full forward each
(:func:`predict` under :class:`~andlib.evaluate.prune_masks.NeuronPruner`), or, for a
transformers AST, :class:`ASTSuffix`, which recomputes each selection only from its first
masked point (:func:`masked_logits` picks the way).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from andlib.evaluate.prune_masks import NeuronPruner, _maps_zero_to_zero


def predict(target: Any, inputs: Sequence[dict[str, torch.Tensor]]) -> torch.Tensor:
    """Logits ``[n_clips, n_classes]`` (float32, CPU) of preprocessed batches."""
    module = target if isinstance(target, nn.Module) else target.module
    outs = []
    with torch.inference_mode():
        for kwargs in inputs:
            out = module(kwargs["_positional"]) if "_positional" in kwargs else module(**kwargs)
            outs.append(getattr(out, "logits", out).float().cpu())
    return torch.cat(outs)


_POINT_ORDER = {"attn": 0, "mlp": 1, "out": 2, "head": 3}
_N_POOLED = 2
"""AST: the head reads only the [CLS] and distillation tokens (the first two)."""

Point = tuple[int, str]
"""Where a mask acts in an AST: ``(block, kind)``, kind ``attn`` / ``mlp`` / ``out`` / ``head``."""


def selection_key(selection: Mapping[str, Sequence[int]]) -> tuple:
    """A hashable key of ``{layer: neurons}`` (empty layers dropped): equal keys, equal masks."""
    return tuple(
        sorted((layer, tuple(sorted(int(n) for n in v))) for layer, v in selection.items() if v)
    )


class ASTSuffix:
    """Exact pruned logits of a transformers ``ASTForAudioClassification``, recomputing only
    what follows the first masked point.

    A mask acts at a *point* of the network: the attention output of block *i* (``o_proj``,
    before the residual add; layer ``...layers.i.attention.o_proj`` or ``...attention``), its
    MLP hidden units after the activation (``...mlp.activation_fn``, or ``...mlp.fc1`` when the
    activation maps 0 to 0), its output (``...layers.i``, the residual stream) or the logits
    (``classifier``). These are exactly the values :class:`NeuronPruner` sets to zero.

    For each batch of clips one unmasked pass caches, at the points where some selection's first
    mask sits, the tensors that enter it (the block input and attention output, the residual and
    MLP hidden units, or the block output). A selection then resumes from its first point: the
    cached tensor with its neurons zeroed, then the remaining blocks with every later mask.
    In the last block only the two pooled tokens are carried past the keys and values (the
    head reads nothing else). Everything else is the model's own modules, so the logits equal a
    full masked forward pass to float rounding (``tests/evaluate/test_prune_forward.py`` checks it).
    """

    def __init__(self, module: nn.Module, points: Mapping[str, Point]):
        self.module: Any = cast(Any, module)
        self.encoder: Any = self.module.audio_spectrogram_transformer
        self.blocks: Any = self.encoder.layers
        self.points = dict(points)
        self._fused: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def build(cls, model: Any, paths: Mapping[str, str]) -> ASTSuffix | None:
        """The runner for ``model`` when it is an AST in eval mode whose layer paths (``{layer:
        module path}``) are all points as above; otherwise ``None`` (use full forwards)."""
        module = model if isinstance(model, nn.Module) else model.module
        if type(module).__name__ != "ASTForAudioClassification" or module.training:
            return None
        enc = getattr(module, "audio_spectrogram_transformer", None)
        head = getattr(module, "classifier", None)
        blocks: Any = getattr(enc, "layers", None)
        if not isinstance(blocks, nn.ModuleList) or not hasattr(head, "dense"):
            return None
        need = ("q_proj", "k_proj", "v_proj", "o_proj", "num_attention_heads", "head_dim")
        for blk in blocks:
            if not all(hasattr(blk.attention, a) for a in need):
                return None
            if not all(hasattr(blk.mlp, a) for a in ("fc1", "fc2", "activation_fn")):
                return None
        prefix = "audio_spectrogram_transformer.layers."
        points: dict[str, Point] = {}
        for layer, path in paths.items():
            point: Point | None = None
            if path in ("classifier", "classifier.dense"):
                point = (len(blocks), "head")
            elif path.startswith(prefix):
                num, _, rest = path[len(prefix) :].partition(".")
                if num.isdigit() and int(num) < len(blocks):
                    i = int(num)
                    if rest == "":
                        point = (i, "out")
                    elif rest in ("attention", "attention.o_proj"):
                        point = (i, "attn")
                    elif rest == "mlp.activation_fn" or (
                        rest == "mlp.fc1"
                        and _maps_zero_to_zero(cast(Any, blocks[i]).mlp.activation_fn)
                    ):
                        point = (i, "mlp")
            if point is None:
                return None
            points[layer] = point
        return cls(module, points)

    def masks(self, selection: Mapping[str, Sequence[int]], device: Any) -> dict[Point, Any]:
        """``{point: keep}`` of a selection: a float vector, 0 at the pruned neurons and 1
        elsewhere (layers at one point are merged)."""
        merged: dict[Point, set[int]] = {}
        for layer, neurons in selection.items():
            if len(neurons):
                merged.setdefault(self.points[layer], set()).update(int(n) for n in neurons)
        dtype = next(self.module.parameters()).dtype
        out = {}
        for (j, kind), idx in merged.items():
            if kind == "head":
                size = self.module.classifier.dense.out_features
            elif kind == "mlp":
                size = self.blocks[j].mlp.fc2.in_features
            else:
                size = self.blocks[j].attention.o_proj.out_features
            keep = torch.ones(size, dtype=dtype, device=device)
            keep[torch.tensor(sorted(idx), dtype=torch.long, device=device)] = 0
            out[(j, kind)] = keep
        return out

    def _qkv(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Block ``j``'s query, key and value projections as one weight and bias."""
        if j not in self._fused:
            att = self.blocks[j].attention
            lin = [att.q_proj, att.k_proj, att.v_proj]
            w = torch.cat([p.weight for p in lin])
            b = torch.cat(
                [p.bias if p.bias is not None else torch.zeros_like(p.weight[:, 0]) for p in lin]
            )
            self._fused[j] = (w, b)
        return self._fused[j]

    def _attention(self, j: int, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        """Attention output (``o_proj``, pruned rows zeroed by ``keep``) of block ``j``; in the
        last block only for the pooled tokens."""
        blk = self.blocks[j]
        att = blk.attention
        h = blk.layernorm_before(x)
        b, t, _ = h.shape
        heads, dim = att.num_attention_heads, att.head_dim
        w, bias = self._qkv(j)
        n = heads * dim
        if j == len(self.blocks) - 1:
            kv = nn.functional.linear(h, w[n:], bias[n:]).view(b, t, 2, heads, dim)
            k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
            hq = h[:, :_N_POOLED]
            q = nn.functional.linear(hq, w[:n], bias[:n]).view(b, _N_POOLED, heads, dim)
            q = q.transpose(1, 2)
        else:
            qkv = nn.functional.linear(h, w, bias).view(b, t, 3, heads, dim)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        o = nn.functional.scaled_dot_product_attention(q, k, v, scale=att.scaling)
        o = o.transpose(1, 2).reshape(b, q.shape[2], n)
        wo, bo = att.o_proj.weight, att.o_proj.bias
        if keep is not None:
            wo, bo = wo * keep[:, None], bo * keep
        return nn.functional.linear(o, wo, bo)

    def _mlp(self, j: int, h: torch.Tensor, u: torch.Tensor | None, masks: Mapping[Point, Any]):
        """(MLP hidden units ``u``, block output) of block ``j`` from the residual ``h``."""
        mlp = self.blocks[j].mlp
        if u is None:
            u = mlp.activation_fn(mlp.fc1(self.blocks[j].layernorm_after(h)))
        w2 = mlp.fc2.weight
        keep = masks.get((j, "mlp"))
        if keep is not None:  # zero columns of fc2 = zero hidden units, exactly
            w2 = w2 * keep[None, :]
        y = nn.functional.linear(u, w2, mlp.fc2.bias)
        y += h
        keep = masks.get((j, "out"))
        if keep is not None:
            y *= keep
        return u, y

    def _block(
        self,
        j: int,
        masks: Mapping[Point, Any],
        x: torch.Tensor,
        record: dict[tuple[str, int], torch.Tensor] | None = None,
        needed: set[Point] | None = None,
    ) -> torch.Tensor:
        """Block ``j`` from its input ``x`` with ``masks``; ``record`` keeps the tensors that
        enter the ``needed`` points (the unmasked pass)."""
        x_res = x[:, :_N_POOLED] if j == len(self.blocks) - 1 else x
        a = self._attention(j, x, masks.get((j, "attn")))
        want = needed or set()
        if record is not None and (j, "attn") in want:
            record[("x", j)], record[("a", j)] = x_res, a
            h = a + x_res
        else:
            h = a.add_(x_res)
        u, y = self._mlp(j, h, None, masks)
        if record is not None and (j, "mlp") in want:
            record[("h", j)], record[("u", j)] = h, u
        if record is not None and (j, "out") in want:
            record[("y", j)] = y
        return y

    def _head(self, y: torch.Tensor, masks: Mapping[Point, Any]) -> torch.Tensor:
        seq = self.encoder.layernorm(y[:, :_N_POOLED])
        logits = self.module.classifier((seq[:, 0] + seq[:, 1]) / 2)
        keep = masks.get((len(self.blocks), "head"))
        return logits if keep is None else logits * keep

    def _resume(
        self, cache: Mapping[tuple[str, int], torch.Tensor], masks: Mapping[Point, Any]
    ) -> torch.Tensor:
        j, kind = min(masks, key=lambda p: (p[0], _POINT_ORDER[p[1]]))
        if kind == "head":
            return cache[("logits", 0)] * masks[(j, "head")]
        if kind == "attn":
            h = torch.addcmul(cache[("x", j)], cache[("a", j)], masks[(j, "attn")])
            _, y = self._mlp(j, h, None, masks)
        elif kind == "mlp":
            _, y = self._mlp(j, cache[("h", j)], cache[("u", j)], masks)
        else:
            y = cache[("y", j)] * masks[(j, "out")]
        for k in range(j + 1, len(self.blocks)):
            y = self._block(k, masks, y)
        return self._head(y, masks)

    def logits(
        self,
        inputs: Sequence[Mapping[str, torch.Tensor]],
        selections: Sequence[Mapping[str, Sequence[int]]],
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(unpruned logits, pruned logits of each selection), ``[n_clips, n_classes]`` float32
        on the CPU; an empty selection gets the unpruned logits."""
        device = next(self.module.parameters()).device
        masks = [self.masks(s, device) for s in selections]
        needed = {min(m, key=lambda p: (p[0], _POINT_ORDER[p[1]])) for m in masks if m}
        before: list[torch.Tensor] = []
        after: list[list[torch.Tensor]] = [[] for _ in selections]
        with torch.inference_mode():
            for kwargs in inputs:
                if set(kwargs) != {"input_values"}:
                    raise ValueError(f"ASTSuffix: unexpected model inputs {sorted(kwargs)}")
                record: dict[tuple[str, int], torch.Tensor] = {}
                y = self.encoder.embeddings(kwargs["input_values"])
                for j in range(len(self.blocks)):
                    y = self._block(j, {}, y, record=record, needed=needed)
                record[("logits", 0)] = base = self._head(y, {})
                before.append(base.float().cpu())
                for out, m in zip(after, masks, strict=True):
                    out.append((self._resume(record, m) if m else base).float().cpu())
        return torch.cat(before), [torch.cat(o) for o in after]


def masked_logits(
    target: Any,
    inputs: Sequence[dict[str, torch.Tensor]],
    pruner: NeuronPruner,
    selections: Sequence[Mapping[str, Sequence[int]]],
    fast: bool = True,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(unpruned logits, logits with each selection pruned) on the preprocessed ``inputs``.

    ``fast`` and an AST that :meth:`ASTSuffix.build` accepts: one cached pass per batch and
    each selection recomputed from its first masked point on; otherwise :class:`NeuronPruner`
    and a full forward per selection. Equal selections are computed once; an empty one gets
    the unpruned logits.
    """
    unique: dict[tuple, Mapping[str, Sequence[int]]] = {}
    for s in selections:
        unique.setdefault(selection_key(s), s)
    keys = [k for k in unique if k]
    runner = ASTSuffix.build(target, pruner.paths) if fast else None
    from andlib.evaluate.suffix import BlockSuffix

    generic = BlockSuffix.build(target, pruner.paths) if fast and runner is None else None
    if runner is not None and all("input_values" in b and len(b) == 1 for b in inputs):
        before, outs = runner.logits(inputs, [unique[k] for k in keys])
    elif generic is not None:  # a model that resumes from a block (Whisper)
        before, outs = generic.logits(inputs, [unique[k] for k in keys], pruner)
    else:
        before = predict(target, inputs)
        outs = []
        for k in keys:
            with pruner.pruned(unique[k]):
                outs.append(predict(target, inputs))
    by_key = {(): before, **dict(zip(keys, outs, strict=True))}
    return before, [by_key[selection_key(s)] for s in selections]
