"""Benchmark the record stage's two engines: clips/s, Ray's start-up, peak memory.

The target is an AST of the default config's shape (``TrainConfig``) with random weights,
saved to a temporary folder and loaded by name through the model-family registry by both
engines (no trained model needed). The clips are the shared ESC-50 copy (``--clips``, all
2000 by default; ``data.limit`` picks them), and, with ``--synthetic 2000,20000``, folders of
that many short generated tones (0.5 s), to check that the Ray driver's memory does not grow
with the number of clips. With ``--tokens 300``, the token-level capture of an SAE layer
(``--tokens-layer``, default ``layers.2.out``: every position, float16 shards) on that many
ESC-50 clips with both engines, and the largest difference between the two captures.

Each run is a fresh process: ``activations.run_stage`` with ``record.engine`` set, on a fresh
run directory. Printed per run: clips, seconds of the stage without Ray's start-up, clips/s,
Ray's start-up (``ray.init`` on this machine) separately, the driver's peak RSS (``ru_maxrss``)
and, for Ray, the peak of all its processes together (driver, raylet, workers; sampled every
0.2 s with psutil). Ends with the Ray engine's overhead over the local one (start-up left
out) and the driver's peak ratio between the largest and the smallest synthetic set.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_ray.py [--clips 2000] [--engines local,ray]
[--synthetic 2000,20000] [--tokens 300] [--actors 1] [--batch-size 16]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def save_model(folder: Path) -> Path:
    """The default config's AST shape with random weights, saved with its feature extractor."""
    from transformers import ASTFeatureExtractor

    from andlib.config import load_config
    from andlib.models.train_loop import build_model

    t = load_config(None).train
    build_model(t, [str(i) for i in range(50)], seed=0).eval().save_pretrained(folder)
    ASTFeatureExtractor(num_mel_bins=t.num_mel_bins, max_length=t.max_length).save_pretrained(
        folder
    )
    return folder


def write_tones(folder: Path, n: int, seconds: float = 0.5, sr: int = 16000) -> Path:
    """``n`` short tones of distinct pitch as 16-bit WAV files (written once per folder)."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    for i in range(n):
        path = folder / f"tone{i:06d}.wav"
        if not path.exists():
            x = 0.3 * np.sin(2 * np.pi * (100 + (i % 4000) * 0.9) * t)
            sf.write(str(path), x.astype(np.float32), sr, subtype="PCM_16")
    return folder


class TreePeak:
    """The peak summed RSS of this process and all its descendants, sampled in a thread."""

    def __init__(self, every: float = 0.2):
        import psutil

        self.proc, self.every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            try:
                for p in [self.proc, *self.proc.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.every)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def child_tokens(cfg: Any, layer: str) -> None:
    """One token-level capture of ``layer`` in this process; prints one JSON line."""
    from andlib.data.probing import load_probing_set, probing_clips
    from andlib.models.layers import resolve_layers
    from andlib.models.record_ray import start_ray
    from andlib.models.record_ray_tokens import capture_tokens_ray
    from andlib.models.registry import load_target
    from andlib.models.sae_layer import capture_tokens

    target = load_target(cfg)  # the driver's; each Ray actor loads its own, timed
    module_path = resolve_layers(target.module, cfg.record.layers)[layer]
    folder = cfg.cache_path / "sae" / "tokens" / "bench"
    startup = 0.0
    with TreePeak() as tree:
        if cfg.record.engine == "ray":
            startup = start_ray(cfg.record.ray)
            t0 = time.perf_counter()
            meta = probing_clips(cfg).rows  # listed; the decoding tasks decode
            reader = capture_tokens_ray(cfg, meta, module_path, folder, key="bench")
        else:
            t0 = time.perf_counter()
            probing = load_probing_set(cfg)
            reader = capture_tokens(
                target,
                probing,
                module_path,
                folder,
                key="bench",
                batch_size=cfg.model.batch_size,
                shard_rows=cfg.sae.shard_rows,
            )
        seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "engine": cfg.record.engine,
                "clips": int(reader.meta["n_clips"]),
                "positions": reader.n_rows,
                "folder": str(folder),
                "seconds": seconds,
                "startup": startup,
                "driver_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "tree_peak_mib": tree.peak / 2**20,
            }
        )
    )


def max_difference(a: str, b: str) -> float:
    """The largest absolute difference between two captures (identical row ids required)."""
    from andlib.store_shards import ShardReader

    ra, rb = ShardReader(a), ShardReader(b)
    if not np.array_equal(ra.ids(), rb.ids()):
        return float("inf")
    return max(
        (
            float(np.abs(np.asarray(x, np.float32) - np.asarray(rb.shard(i), np.float32)).max())
            for i, (_, x) in enumerate(ra.iter_shards())
        ),
        default=0.0,
    )


def child(args: argparse.Namespace) -> None:
    """One recording (or token capture) in this process; prints one JSON line."""
    sys.path.insert(0, str(ROOT))
    from andlib.config import load_config
    from andlib.models import activations
    from andlib.models.record_ray import start_ray
    from andlib.store import RunDir

    overrides = json.loads(args.child)
    tokens = overrides.pop("tokens_layer", None)
    cfg = load_config(None, overrides)
    if tokens:
        return child_tokens(cfg, tokens)
    startup = 0.0
    with TreePeak() as tree:
        if cfg.record.engine == "ray":
            startup = start_ray(cfg.record.ray)
        t0 = time.perf_counter()
        summary = activations.run_stage(cfg, RunDir.from_config(cfg))
        seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "engine": cfg.record.engine,
                "clips": summary["clips"],
                "seconds": seconds,
                "startup": startup,
                "driver_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "tree_peak_mib": tree.peak / 2**20,
            }
        )
    )


def run_once(overrides: dict, label: str) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps(overrides)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        tail = (out.stderr or out.stdout).strip().splitlines()[-5:]
        raise SystemExit(f"{label} failed:\n" + "\n".join(tail))
    result = json.loads(lines[-1])
    result["label"] = label
    return result


def show(r: dict) -> None:
    rate = r["clips"] / r["seconds"] if r["seconds"] else float("nan")
    print(
        f"{r['label']:<22} {r['clips']:>6} clips {r['seconds']:8.1f} s {rate:8.1f} clips/s  "
        f"ray start-up {r['startup']:5.1f} s  driver peak {r['driver_peak_mib']:7.0f} MiB  "
        f"all processes {r['tree_peak_mib']:7.0f} MiB",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--clips", type=int, default=2000, help="ESC-50 clips (0: none)")
    ap.add_argument("--engines", default="local,ray")
    ap.add_argument("--synthetic", default="", help="e.g. 2000,20000: Ray driver memory")
    ap.add_argument("--tokens", type=int, default=0, help="ESC-50 clips of token capture (0: off)")
    ap.add_argument("--tokens-layer", default="layers.2.out", help="the layer to capture")
    ap.add_argument("--actors", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (CPUs) per actor")
    args = ap.parse_args()
    if args.child:
        return child(args)

    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    model = save_model(tmp / "model")
    base = {
        "cache_dir": str(tmp / "cache"),
        "model.name": str(model),
        "model.device": "cpu",
        "model.batch_size": args.batch_size,
        "record.ray.num_actors": args.actors,
        "record.ray.num_cpus_per_actor": float(args.threads),
    }
    print(
        f"{os.cpu_count()} CPUs; model: default-shaped AST (random weights); batch {args.batch_size}"
    )
    results: dict[str, dict] = {}
    if args.clips:
        for engine in args.engines.split(","):
            label = f"esc50 {engine}"
            over = {**base, "data.limit": args.clips, "record.engine": engine}
            over["run_dir"] = str(tmp / f"run-{engine}")
            results[label] = run_once(over, label)
            show(results[label])
        if {"esc50 local", "esc50 ray"} <= set(results):
            loc, ray = results["esc50 local"], results["esc50 ray"]
            print(f"Ray overhead without start-up: {ray['seconds'] / loc['seconds'] - 1:+.1%}")
    sizes = [int(s) for s in args.synthetic.split(",") if s]
    peaks = {}
    for n in sizes:
        folder = write_tones(tmp / f"tones-{n}", n)
        label = f"tones {n} ray"
        over = {
            **base,
            "run_dir": str(tmp / f"run-tones-{n}"),
            "data.dataset": "folder",
            "data.root": str(folder),
            "data.duration": 0.5,
            "record.engine": "ray",
            "record.layers": ["classifier"],
        }
        results[label] = run_once(over, label)
        show(results[label])
        peaks[n] = results[label]["driver_peak_mib"]
    if len(peaks) > 1:
        lo, hi = min(peaks), max(peaks)
        print(f"driver peak {hi} clips / {lo} clips: {peaks[hi] / peaks[lo]:.2f}x")
    if args.tokens:
        for engine in args.engines.split(","):
            label = f"tokens {engine}"
            over = {
                **base,
                "cache_dir": str(tmp / f"cache-tokens-{engine}"),
                "run_dir": str(tmp / f"run-tokens-{engine}"),
                "data.limit": args.tokens,
                "record.engine": engine,
                "tokens_layer": args.tokens_layer,
            }
            results[label] = run_once(over, label)
            show(results[label])
            r = results[label]
            print(f"  {r['positions']} positions, {r['positions'] / r['seconds']:.0f} positions/s")
        if {"tokens local", "tokens ray"} <= set(results):
            loc, ray = results["tokens local"], results["tokens ray"]
            diff = max_difference(ray["folder"], loc["folder"])
            print(
                f"token capture: Ray overhead without start-up {ray['seconds'] / loc['seconds'] - 1:+.1%}"
            )
            print(f"token capture: largest |ray - local| {diff:.3g}")
    print(f"(run directories under {tmp})")


if __name__ == "__main__":
    main()
