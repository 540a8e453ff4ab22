"""Speed of the vectorised similarity functions against per-neuron loops.

    python benchmarks/bench_similarity.py [--clips 2000] [--neurons 3000] [--concepts 50]
                                          [--threads N] [--repeat 3]

The loops are the CLIP-Dissect formulation: one neuron at a time, tensor operations over that
neuron's clips and all concepts (the form of CLIP-Dissect's ``similarity.py``). Each
vectorised result is checked against its loop before it is timed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from andlib.describe.similarity import SIMILARITY_FUNCTIONS


def _wpmi_normalise(log_p: torch.Tensor, lam: float) -> torch.Tensor:
    log_p_c = torch.logsumexp(log_p, dim=0, keepdim=True) - torch.log(
        torch.tensor(float(log_p.shape[0]))
    )
    return log_p - lam * log_p_c


def loop_cos(probs, acts):
    probs = probs / probs.norm(dim=0, keepdim=True)
    rows = [(acts[:, n] / acts[:, n].norm()) @ probs for n in range(acts.shape[1])]
    return torch.stack(rows)


def loop_cos3(probs, acts, min_norm=1e-3):
    pc = (probs - probs.mean(0)) ** 3
    pc = pc / pc.norm(dim=0).clamp_min(min_norm)
    rows = []
    for n in range(acts.shape[1]):
        a = (acts[:, n] - acts[:, n].mean()) ** 3
        rows.append((a / a.norm().clamp_min(min_norm)) @ pc)
    return torch.stack(rows)


def loop_wpmi(probs, acts, top_k=28, a=2.0, lam=0.6, min_prob=1e-7):
    k = min(top_k, acts.shape[0])
    sharp = torch.softmax(a * probs, dim=1)
    top = torch.topk(acts, k=k, dim=0).indices
    rows = [torch.log(sharp[top[:, n]] + min_prob).sum(0) for n in range(acts.shape[1])]
    return _wpmi_normalise(torch.stack(rows), lam)


def loop_soft_wpmi(
    probs, acts, top_k=100, a=10.0, lam=1.0, min_prob=1e-7, p_start=0.998, p_end=0.97
):
    k = min(top_k, acts.shape[0])
    sharp = torch.softmax(a * probs, dim=1)
    top = torch.topk(acts, k=k, dim=0).indices
    p_in = (p_start - torch.arange(k) / k * (p_start - p_end)).unsqueeze(1)
    rows = []
    for n in range(acts.shape[1]):
        rows.append(torch.log(1 + p_in * (sharp[top[:, n]] - 1) + min_prob).sum(0))
    return _wpmi_normalise(torch.stack(rows), lam)


def loop_rank_reorder(probs, acts, top_fraction=0.05, p=3.0, scale_p=0.5):
    k = min(max(int(acts.shape[0] * top_fraction), 2), acts.shape[0])
    vals, top = torch.topk(acts, k=k, dim=0)
    rows = []
    for n in range(acts.shape[1]):
        v = vals[:, n]
        scores = probs[top[:, n]]  # [k, n_concepts]
        ranks = torch.argsort(torch.argsort(scores, dim=0, stable=True), dim=0, stable=True)
        reordered = v.flip(0)[ranks]
        err = (v.unsqueeze(1) - reordered).abs().pow(p).mean(0)
        baseline = (v.unsqueeze(0) - v.unsqueeze(1)).abs().pow(p).mean().clamp_min(1e-38)
        rows.append(-(err / baseline) / scores.mean(0).clamp_min(1e-38) ** scale_p)
    return torch.stack(rows)


LOOPS: dict[str, Callable[..., torch.Tensor]] = {
    "soft_wpmi": loop_soft_wpmi,
    "wpmi": loop_wpmi,
    "cos": loop_cos,
    "cos3": loop_cos3,
    "rank_reorder": loop_rank_reorder,
}


def best_time(fn: Callable[[], torch.Tensor], repeat: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=2000)
    ap.add_argument("--neurons", type=int, default=3000)
    ap.add_argument("--concepts", type=int, default=50)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(args.clips, args.concepts, generator=g)
    probs = torch.softmax(100 * 0.05 * logits, dim=1)
    acts = torch.randn(args.clips, args.neurons, generator=g)

    print(
        f"{args.clips} clips x {args.neurons} neurons x {args.concepts} concepts, "
        f"float32, {torch.get_num_threads()} torch thread(s), best of {args.repeat}"
    )
    t_topk, _ = best_time(lambda: torch.topk(acts, k=100, dim=0), args.repeat)
    print(f"(top-100 clip selection alone, done once by both versions: {t_topk:.3f} s)")
    print(f"{'function':<14}{'vectorised s':>14}{'loop s':>10}{'speed-up':>10}  max |diff|")
    for name, fn in SIMILARITY_FUNCTIONS.items():
        t_fast, fast = best_time(lambda fn=fn: fn(probs, acts), args.repeat)
        t_loop, slow = best_time(lambda name=name: LOOPS[name](probs, acts), args.repeat)
        diff = float((fast - slow).abs().max())
        print(f"{name:<14}{t_fast:>14.4f}{t_loop:>10.3f}{t_loop / t_fast:>9.1f}x  {diff:.2e}")


if __name__ == "__main__":
    main()
