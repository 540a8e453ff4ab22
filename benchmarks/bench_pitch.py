"""Benchmark the pretrained pitch networks: clips per second and peak memory per model.

Each model (``crepe-tiny``, ``pesto``, ``crepe-full``, optionally with a hop, e.g.
``crepe-full@50ms``) runs in its own fresh Python process, so its peak memory is its own:
the process records the model's preset layers (``preset:crepe`` / ``preset:pesto``, mean
pooling, as ``configs/pitch.yaml`` does) on ``--clips`` notes of the pitched probing set
(``data.dataset: pitched``, ``--duration`` seconds each; no ESC-50 clips) through
``record_target``, the pipeline's own recording loop, after one warm-up batch.

Printed per model: clips/s (and real-time factor: seconds of audio per second), the seconds
the recording took and the CPU seconds it used (all threads; on a shared machine clips per
CPU second is the figure that does not depend on the other processes), the peak resident memory during the recording (``VmHWM`` reset through
``/proc/self/clear_refs``; Linux) and the whole process's ``ru_maxrss``.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_pitch.py [--models crepe-tiny pesto]
[--clips 64] [--duration 1.0] [--batch-size 16] [--threads 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peak_rss import reset_peak_rss, status_mib

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_MODELS = ["crepe-tiny", "pesto", "crepe-full"]
ROOT = Path(__file__).resolve().parent.parent


def measure(name: str, clips: int, duration: float, batch_size: int, threads: int) -> dict:
    """Record one model's preset layers on ``clips`` pitched notes; return the figures."""
    import torch

    from andlib.config import load_config
    from andlib.data.probing import load_probing_set
    from andlib.models.activations import record_target, resolve_layers
    from andlib.models.registry import load_target
    from andlib.store import RunDir

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(
            None,
            {
                "cache_dir": str(Path(tmp) / "cache"),
                "run_dir": str(Path(tmp) / "run"),
                "data.dataset": "pitched",
                "data.duration": duration,
                "data.limit": clips,
                "model.name": name,
                "model.batch_size": batch_size,
            },
        )
        ps = load_probing_set(cfg)
        target = load_target(cfg)
        preset = "preset:crepe" if name.startswith("crepe") else "preset:pesto"
        layers = resolve_layers(target.module, [preset])
        warm = RunDir(Path(tmp) / "warm")
        record_target(target, ps.subset([0]), layers, "mean", 1, warm, progress=False)
        rss_ok = reset_peak_rss()
        start, cpu_start = time.perf_counter(), time.process_time()
        record_target(
            target, ps, layers, "mean", batch_size, RunDir(Path(tmp) / "run"), progress=False
        )
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        peak = status_mib("VmHWM") if rss_ok else None
    return {
        "model": name,
        "clips": len(ps),
        "duration_s": duration,
        "seconds": round(seconds, 2),
        "clips_per_s": round(len(ps) / seconds, 2),
        "cpu_s": round(cpu, 2),
        "clips_per_cpu_s": round(len(ps) / cpu, 2),
        "realtime_factor": round(len(ps) * duration / seconds, 1),
        "peak_rss_mib": None if peak is None else round(peak, 0),
        "maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 0),
        "n_parameters": int(target.info.get("n_parameters", 0)),
        "layers": len(layers),
        "threads": threads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.one:
        figures = measure(args.one, args.clips, args.duration, args.batch_size, args.threads)
        print("RESULT " + json.dumps(figures), flush=True)
        return
    print(
        f"{args.clips} pitched notes of {args.duration:g} s, batch {args.batch_size}, "
        f"{args.threads} threads, one fresh process per model"
    )
    header = f"{'model':<16}{'clips/s':>9}{'x realtime':>12}{'seconds':>9}{'CPU s':>8}"
    header += f"{'clips/CPU s':>13}{'peak RSS':>11}"
    print(header + f"{'maxrss':>9}{'params':>11}")
    for name in args.models:
        clips = args.clips
        if name.startswith("crepe-full") and "@" not in name:
            clips = min(clips, 16)  # ~1 s of CPU a 1-s clip at 20 ms on two cores
        cmd = [sys.executable, __file__, "--one", name, "--clips", str(clips)]
        cmd += ["--duration", str(args.duration), "--batch-size", str(args.batch_size)]
        cmd += ["--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
            print(f"{name:<16} failed: {' '.join(tail)}")
            continue
        r = json.loads(lines[-1][len("RESULT ") :])
        peak = "n/a" if r["peak_rss_mib"] is None else f"{r['peak_rss_mib']:.0f} MiB"
        print(
            f"{r['model']:<16}{r['clips_per_s']:>9.2f}{r['realtime_factor']:>12.1f}"
            f"{r['seconds']:>9.1f}{r['cpu_s']:>8.1f}{r['clips_per_cpu_s']:>13.2f}{peak:>11}{r['maxrss_mib']:>6.0f} MiB{r['n_parameters']:>11,}"
            + (f"   ({r['clips']} clips)" if r["clips"] != args.clips else "")
        )


if __name__ == "__main__":
    main()
