"""Benchmark the pruning experiment: 50 classes x every strategy on the held-out fold.

The target is the project's trained AST when one of the default shape is cached under
``<cache_dir>/models`` (the newest), else an ``ASTForAudioClassification`` of the default config's
shape (``TrainConfig``: 128 hidden, 4 blocks, 512 MLP units, 64 mel bins, 496 frames, 50
classes) with random weights: the timing is what matters, not the numbers. The held-out fold is
``--clips`` synthetic spectrograms (ESC-50 fold 5: 400 clips), batched by ``prune.batch_size``.

Selections are synthetic but shaped like real ones over the ``preset:ast`` hidden layers
(``layers.i.attn``, ``layers.i.mlp``, ``layers.i.out``): per class, ``ocp``, ``db`` and
``tab`` each pick every hidden neuron with probability ``--ocp`` / ``--db`` / ``--tab`` over
the total (so most selections reach block 0 and little can be skipped: a pessimistic case),
and ``random`` draws ``prune.random_draws`` selections with the per-layer counts of the
largest, as :func:`andlib.evaluate.prune.plan_selections` does. All of them go through
:func:`andlib.evaluate.prune.masked_logits` and :func:`andlib.evaluate.prune.concept_metrics`, exactly as the
stage does.

The cached AST path (``prune.fast``) is timed on every class; the full-forward path only on
``--plain-classes`` classes (its per-class time is then scaled to 50). The two paths' ΔA/ΔR
are compared on those classes.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_prune.py [--classes 50] [--clips 400]``;
the last line is ``prune: <n_classes> classes x <n_strategies> strategies, <S> s``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from andlib.config import load_config, rng
from andlib.evaluate.prune import NeuronPruner, concept_metrics, masked_logits, random_neurons
from andlib.models.activations import resolve_layers
from andlib.models.train import ARCHITECTURE

SHAPE = tuple(k for k in ARCHITECTURE if k != "dropout")
"""The ``TrainConfig`` fields a cached model must share to stand for the default model."""


def load_model(cache_models: Path, seed: int = 0) -> tuple[torch.nn.Module, str]:
    """The newest AST cached under ``cache_models`` with the default config's shape (a smoke
    run's tiny model does not count), else a random one of that shape with 50 classes."""
    from transformers import ASTConfig, ASTForAudioClassification

    t = load_config(None).train
    shape = {k: getattr(t, k) for k in SHAPE}
    found = sorted(cache_models.glob("**/config.json"), key=lambda p: p.stat().st_mtime)
    for config in reversed(found):
        try:
            model = ASTForAudioClassification.from_pretrained(config.parent).eval()
        except Exception:  # not an AST classifier: keep looking
            continue
        if all(getattr(model.config, k, None) == v for k, v in shape.items()):
            return model, str(config.parent)
    torch.manual_seed(seed)
    return (
        ASTForAudioClassification(ASTConfig(**shape, num_labels=50)).eval(),
        "random AST of the default config's shape",
    )


def synthetic_selections(
    sizes: dict[str, int], n_classes: int, shares: dict[str, float], draws: int, seed: int
) -> list[tuple[str, int, int, dict[str, list[int]]]]:
    """``(strategy, class, draw, {layer: neurons})`` in the order the stage plans them."""
    total = sum(sizes.values())
    plan = []
    for cls in range(n_classes):
        gen = np.random.default_rng([seed, cls])
        chosen = {}
        for strategy, share in shares.items():
            p = share / total
            chosen[strategy] = {
                layer: [int(i) for i in np.flatnonzero(gen.random(n) < p)]
                for layer, n in sizes.items()
            }
            chosen[strategy] = {k: v for k, v in chosen[strategy].items() if v}
            plan.append((strategy, cls, 0, chosen[strategy]))
        ref = max(chosen.values(), key=lambda s: sum(len(v) for v in s.values()))
        counts = {layer: len(v) for layer, v in ref.items()}
        for draw in range(draws):
            picked = random_neurons(counts, sizes, rng(seed, "prune", cls, draw))
            plan.append(("random", cls, draw, picked))
    return plan


def run(model, pruner, inputs, labels, plan, fast: bool) -> tuple[float, list[dict[str, float]]]:
    t0 = time.perf_counter()
    before, afters = masked_logits(model, inputs, pruner, [p[3] for p in plan], fast=fast)
    rows = [
        concept_metrics(before, after, labels, cls)
        for (_, cls, _, _), after in zip(plan, afters, strict=True)
    ]
    return time.perf_counter() - t0, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--classes", type=int, default=50)
    ap.add_argument("--clips", type=int, default=400)
    ap.add_argument("--plain-classes", type=int, default=1)
    ap.add_argument("--ocp", type=float, default=30, help="mean neurons per class (OCP)")
    ap.add_argument("--db", type=float, default=170, help="mean neurons per class (DB)")
    ap.add_argument("--tab", type=float, default=100, help="mean neurons per class (TAB)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(None)
    model, source = load_model(cfg.cache_path / "models", args.seed)
    layers = resolve_layers(model, ["preset:ast"])
    hidden = {k: v for k, v in layers.items() if k != "classifier"}
    sizes = {
        k: model.config.intermediate_size if k.endswith(".mlp") else model.config.hidden_size
        for k in hidden
    }
    pruner = NeuronPruner(model, hidden, sizes)
    t = model.config
    gen = torch.Generator().manual_seed(args.seed)
    feats = torch.randn(args.clips, t.max_length, t.num_mel_bins, generator=gen) * 0.5
    bs = cfg.prune.batch_size
    inputs = [{"input_values": feats[i : i + bs]} for i in range(0, args.clips, bs)]
    n_labels = int(t.num_labels)
    labels = np.arange(args.clips) % n_labels
    shares = {"ocp": args.ocp, "db": args.db, "tab": args.tab}
    draws = cfg.prune.random_draws
    plan = synthetic_selections(sizes, args.classes, shares, draws, args.seed)
    n_strategies = len(shares) + 1
    print(
        f"model: {source}; {args.clips} clips, batches of {bs}, {torch.get_num_threads()} threads"
    )
    print(
        f"{len(plan)} selections ({args.classes} classes x {len(shares)} strategies + "
        f"{draws} random draws), mean {np.mean([sum(map(len, p[3].values())) for p in plan]):.0f}"
        " neurons"
    )

    k = min(args.plain_classes, args.classes)
    sub = [p for p in plan if p[1] < k]
    if k:
        t_plain, plain_rows = run(model, pruner, inputs, labels, sub, fast=False)
        t_fast_sub, fast_rows = run(model, pruner, inputs, labels, sub, fast=True)
        diff = max(
            abs(a[key] - b[key])
            for a, b in zip(plain_rows, fast_rows, strict=True)
            for key in ("delta_a", "delta_r")
        )
        print(
            f"{k} classes: full forwards {t_plain:.1f} s, cached AST {t_fast_sub:.1f} s "
            f"({t_plain / t_fast_sub:.1f}x); max |Δ(ΔA, ΔR)| = {diff:.1e}"
        )
        print(f"full forwards scaled to {args.classes} classes: {t_plain * args.classes / k:.0f} s")
    seconds, _ = run(model, pruner, inputs, labels, plan, fast=True)
    print(f"cached AST: {seconds / len(plan):.2f} s per selection of {args.clips} clips")
    print(f"prune: {args.classes} classes x {n_strategies} strategies, {seconds:.1f} s")


if __name__ == "__main__":
    main()
