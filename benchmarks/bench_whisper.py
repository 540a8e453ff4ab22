"""Benchmark the Whisper encoders: clips per second per model and input mode.

For each model (``whisper-tiny.en``, ``whisper-base``) and each ``model.whisper.input``
(``trimmed``: the clip's own frames; ``padded``: Whisper's 30-s window), the pipeline's own
recording loop (``record_target``) records ``preset:whisper`` (mean pooling) on the first
``--clips`` ESC-50 clips (5 s each; seeded synthetic probes when ESC-50 is not found) after
one warm-up batch. Printed per row: clips/s, the seconds the recording took and the CPU
seconds it used (all threads; on a shared machine clips per CPU second is the figure that
does not depend on the other processes), and the projected minutes for all 2000 ESC-50 clips.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_whisper.py [--models whisper-tiny.en]
[--modes trimmed padded] [--clips 32] [--batch-size 16] [--threads 2]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_MODELS = ["whisper-tiny.en", "whisper-base"]
MODES = ["trimmed", "padded"]


def measure(name: str, mode: str, clips: int, batch_size: int, threads: int) -> dict:
    """Record ``preset:whisper`` of one model in one input mode; return the figures."""
    import torch

    from andlib.config import load_config
    from andlib.data.esc50 import SHARED_ESC50
    from andlib.data.probing import load_probing_set
    from andlib.models.activations import record_target, resolve_layers
    from andlib.models.registry import load_target
    from andlib.store import RunDir

    torch.set_num_threads(threads)
    dataset = "esc50" if (SHARED_ESC50 / "meta" / "esc50.csv").exists() else "synthetic"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(
            None,
            {
                "run_dir": str(Path(tmp) / "run"),
                "data.dataset": dataset,
                "data.limit": clips + batch_size,
                "data.duration": 5.0,
                "model.name": name,
                "model.batch_size": batch_size,
                "model.device": "cpu",
                "model.whisper.input": mode,
                "record.layers": ["preset:whisper"],
            },
        )
        probing = load_probing_set(cfg)
        target = load_target(cfg)
        layers = resolve_layers(target.module, cfg.record.layers)
        warm, timed = (
            probing.subset(range(batch_size)),
            probing.subset(range(batch_size, len(probing))),
        )
        run = RunDir(Path(tmp) / "warm")
        record_target(target, warm, layers, "mean", batch_size, run, progress=False)
        run = RunDir(Path(tmp) / "timed")
        wall, cpu = time.perf_counter(), time.process_time()
        record_target(target, timed, layers, "mean", batch_size, run, progress=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = len(timed)
    return {
        "model": name,
        "input": mode,
        "clips": n,
        "dataset": dataset,
        "clips_per_s": n / wall,
        "seconds": wall,
        "cpu_seconds": cpu,
        "minutes_2000": 2000 / (n / wall) / 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--modes", nargs="+", default=MODES, choices=MODES)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(
        f"{'model':<16} {'input':<8} {'clips':>5} {'clips/s':>8} {'s':>7} {'cpu s':>7} "
        f"{'min/2000':>8}"
    )
    for name in args.models:
        for mode in args.modes:
            r = measure(name, mode, args.clips, args.batch_size, args.threads)
            print(
                f"{r['model']:<16} {r['input']:<8} {r['clips']:>5} {r['clips_per_s']:>8.2f} "
                f"{r['seconds']:>7.1f} {r['cpu_seconds']:>7.1f} {r['minutes_2000']:>8.1f}"
                + ("" if r["dataset"] == "esc50" else "  (synthetic probes)"),
                flush=True,
            )


if __name__ == "__main__":
    main()
