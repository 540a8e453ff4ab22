"""Benchmark training one SAE the way the record stage does: time, throughput, peak memory.

Activations of whisper-base's ``layers.2.out`` shape (512 wide, 250 positions a clip, clips
of folds 1-4 for training and fold 5 held out) are synthetic (sparse sums of random
directions, so the SAE has something to find) and written as float16 shards
(:class:`andlib.store_shards.ShardWriter`, as the token-level capture writes them); the SAE is
then trained exactly as :mod:`andlib.models.sae_layer` trains it: SAELens's trainer
(BatchTopK) on :func:`andlib.models.sae.training_batches` over the training clips' shards,
saved in SAELens's format, loaded back and run once over every position
(:func:`andlib.models.sae.encode_clips`: pooled latents, dead latents, fold-5 variance
explained and L0).

The defaults are the issue's full size (2000 clips x 250 positions, expansion 8, k 32, a
2 M-position budget); ``--clips`` and ``--budget`` shrink it. Printed: the training time (wall
and CPU) and positions per second (and what that makes for the full budget), the encoding
time, the peak RSS of training (``VmHWM`` reset before it; Linux), the peak RSS of the whole
benchmark (``getrusage``), the trained SAE's numbers and, at the full size, whether training
met the targets: at most :data:`TARGET_MINUTES` minutes and :data:`TARGET_GIB` GiB.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_sae.py [--clips 2000] [--budget 2000000]
[--threads 2]``
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from peak_rss import reset_peak_rss, status_mib

from andlib.config_sections import SaeConfig
from andlib.models import sae as sae_mod
from andlib.models.sae_layer import train_chunks
from andlib.store_shards import ShardWriter

FULL_BUDGET = 2_000_000
FULL_SIZE = (2000, 250, 512, FULL_BUDGET, 32, 8)
"""Clips, positions a clip, width, budget, k and expansion of the issue's full size."""
TARGET_MINUTES = 15
TARGET_GIB = 6


def write_capture(folder: Path, clips: int, positions: int, width: int, shard_rows: int) -> None:
    """Synthetic token-level rows: each position a sparse sum of 4 * width random directions."""
    gen = np.random.default_rng(0)
    atoms = gen.standard_normal((4 * width, width)).astype(np.float32) / np.sqrt(width)
    writer = ShardWriter(folder, shard_rows=shard_rows, dtype="float16", id_width=2, key="bench")
    for clip in range(clips):
        codes = gen.exponential(1.0, (positions, 4 * width)).astype(np.float32)
        codes *= gen.random((positions, 4 * width)) < 8 / (4 * width)
        rows = codes @ atoms + 0.05 * gen.standard_normal((positions, width)).astype(np.float32)
        ids = np.stack([np.full(positions, clip), np.arange(positions)], axis=1)
        writer.append(rows, ids)
    writer.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=2000)
    ap.add_argument("--positions", type=int, default=250, help="positions per clip")
    ap.add_argument("--width", type=int, default=512, help="the layer's width (d_in)")
    ap.add_argument("--budget", type=int, default=FULL_BUDGET, help="training positions")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    defaults = SaeConfig()
    ap.add_argument("--k", type=int, default=defaults.k)
    ap.add_argument("--expansion", type=int, default=defaults.expansion)
    ap.add_argument("--batch-size", type=int, default=defaults.batch_size)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    folds = 1 + np.arange(args.clips) * 5 // args.clips  # 5 equal folds, in clip order
    train_clip, eval_clip = folds <= 4, folds == 5

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_capture(Path(tmp) / "tokens", args.clips, args.positions, args.width, 65536)
        from andlib.store_shards import ShardReader

        reader = ShardReader(Path(tmp) / "tokens")
        print(
            f"capture: {reader.n_rows:,} positions x {args.width} float16 in {reader.n_shards} "
            f"shards ({time.perf_counter() - t0:.1f} s to write)"
        )
        chunks, n_train = train_chunks(reader, train_clip)
        print(
            f"training: {args.budget:,} positions = {sae_mod.passes(args.budget, n_train):.2f} "
            f"passes over {n_train:,}; expansion {args.expansion} "
            f"({args.expansion * args.width} latents), k {args.k}, batch {args.batch_size}, "
            f"{args.threads} torch threads"
        )
        import sae_lens  # noqa: F401  # imported before the clock starts: not part of the CPU time

        rss_before = status_mib("VmRSS")
        rss_ok = reset_peak_rss()
        cpu0 = time.process_time()
        trained = sae_mod.train_sae(
            sae_mod.training_batches(chunks, args.batch_size, seed=0),
            args.width,
            k=args.k,
            expansion=args.expansion,
            token_budget=args.budget,
            batch_size=args.batch_size,
            lr=defaults.lr,
            seed=0,
        )
        cpu_seconds = time.process_time() - cpu0
        peak = status_mib("VmHWM") if rss_ok else None
        seconds = trained.info["train_seconds"]
        rate = trained.info["positions_trained"] / max(seconds, 1e-9)
        print(f"  train time: {seconds:.1f} s ({rate:,.0f} positions/s)")
        cpu_rate = trained.info["positions_trained"] / max(cpu_seconds, 1e-9)
        print(  # beside other jobs the wall time grows, the CPU time much less
            f"  train CPU time: {cpu_seconds:.1f} s over {args.threads} thread(s) "
            f"({cpu_rate:,.0f} positions per CPU-s)"
        )
        if args.budget != FULL_BUDGET:
            print(
                f"  at that rate the full {FULL_BUDGET:,} positions take "
                f"{FULL_BUDGET / rate / 60:.1f} min ({FULL_BUDGET / cpu_rate / 60:.1f} min of CPU)"
            )
        if peak is not None:
            print(f"  peak RSS while training: {peak:.0f} MiB ({rss_before:.0f} MiB before)")
        folder = sae_mod.save_sae(trained, Path(tmp) / "sae")
        sae = sae_mod.load_sae(folder)
        t0 = time.perf_counter()
        blocks = (
            (reader.shard(i), ids[:, 0], ids[:, 1])
            for i in range(reader.n_shards)
            for ids in [reader.shard_ids(i)]
        )
        _, stats = sae_mod.encode_clips(sae, blocks, args.clips, "mean", eval_clip)
        encode_s = time.perf_counter() - t0
        print(f"  encode + pool every position: {encode_s:.1f} s")
        report = stats.report()
        print(
            f"  fold 5: variance explained {report['variance_explained']:.3f}, "
            f"L0 {report['eval_l0']:.1f}; dead latents {report['n_dead']} "
            f"({report['dead_share']:.1%})"
        )
    whole = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"  peak RSS of the whole benchmark: {whole:.0f} MiB")
    if (args.clips, args.positions, args.width, args.budget, args.k, args.expansion) == FULL_SIZE:
        gib = (peak if peak is not None else whole) / 1024

        def verdict(value: float, target: float) -> str:
            return "met" if value <= target else "missed"

        wall, cpu = seconds / 60, cpu_seconds / 60
        print(
            f"  targets at full size: training {wall:.1f} min wall "
            f"({verdict(wall, TARGET_MINUTES)}), {cpu:.1f} min of CPU "
            f"({verdict(cpu, TARGET_MINUTES)}; <= {TARGET_MINUTES} min), "
            f"peak {gib:.2f} GiB ({verdict(gib, TARGET_GIB)}; <= {TARGET_GIB} GiB)"
        )


if __name__ == "__main__":
    main()
