"""Benchmark recording activations: capture overhead, clips per second, peak memory.

The target is an ``ASTForAudioClassification`` of the default config's shape (``TrainConfig``:
192 hidden, 4 blocks, 768 MLP units, 64 mel bins, 512 frames, 50 classes) with random
weights, so no trained model is needed; the clips are the first ``--clips`` of the shared
ESC-50 copy (stratified, as ``data.limit`` picks them), or synthetic noise with ``--synthetic``.

Two comparisons, each over the same clips and batches, repeated and interleaved (the minimum
of each is reported, since other processes share the CPU):

- end to end: ``record_target`` (feature extraction, forward, hooks on every ``preset:ast``
  layer, pooling, the resumable store, final ``.npy`` files) against the same loop of
  ``target.forward`` without hooks or storage;
- model only: the forward pass on precomputed features, bare against hooked + copying every
  batch's activations into preallocated arrays.

Peak memory: the process's peak RSS during one recording (``VmHWM`` reset through
``/proc/self/clear_refs``; Linux), ``ru_maxrss`` of the whole run, and the tracemalloc peak of
Python/NumPy allocations during the recording (torch tensors are not traced).

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_activations.py [--clips 256] [--threads 1]``
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from peak_rss import reset_peak_rss, status_mib

from andlib.config import load_config
from andlib.data.audio import ProbingSet
from andlib.data.probing import load_probing_set
from andlib.models.activations import ActivationRecorder, record_target, resolve_layers
from andlib.models.base import TargetModel
from andlib.store import RunDir


def default_shaped_target(seed: int = 0) -> TargetModel:
    """The default config's AST shape with random weights, wrapped as a TargetModel."""
    from transformers import ASTFeatureExtractor

    from andlib.models.train_loop import build_model

    t = load_config(None).train
    model = build_model(t, [str(i) for i in range(50)], seed=seed).eval()
    fe = ASTFeatureExtractor(num_mel_bins=t.num_mel_bins, max_length=t.max_length)
    labels = [str(i) for i in range(50)]

    def preprocess(batch):  # the AST extractor pads and truncates by itself
        arrays = [np.asarray(a, dtype=np.float32) for a in batch]
        return dict(fe(arrays, sampling_rate=16000, return_tensors="pt"))

    return TargetModel(model, preprocess, 16000, "bench-ast", labels, {})


def probing_clips(n: int, synthetic: bool) -> ProbingSet:
    if not synthetic:
        try:
            return load_probing_set(load_config(None, {"data.limit": n}))
        except Exception as exc:  # no shared copy: fall back to noise
            print(f"ESC-50 unavailable ({exc}); using synthetic noise")
    import pandas as pd

    rs = np.random.default_rng(0)
    audio = [(0.1 * rs.standard_normal(80000)).astype(np.float32) for _ in range(n)]
    meta = pd.DataFrame(
        {"clip_id": [f"noise{i}" for i in range(n)], "path": "", "label": -1, "category": ""}
    )
    return ProbingSet("noise", 16000, audio, meta)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--synthetic", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    ps = probing_clips(args.clips, args.synthetic)
    target = default_shaped_target()
    layers = resolve_layers(target.module, ["preset:ast"])
    n, bs = len(ps), args.batch_size
    batches = [ps.audio[i : i + bs] for i in range(0, n, bs)]
    n_params = sum(p.numel() for p in target.module.parameters())
    print(
        f"model: AST {n_params / 1e6:.2f} M parameters; {len(layers)} layers (preset:ast); "
        f"{n} clips ({ps.name}), batch {bs}, {args.threads} threads"
    )

    def bare() -> None:
        with torch.inference_mode():
            for batch in batches:
                target.forward(batch)

    def hooked(tmp: str) -> None:
        record_target(target, ps, layers, "mean", bs, RunDir(tmp), progress=False)

    inputs = [target.inputs(b) for b in batches]
    stores: dict[str, np.ndarray] = {}

    def model_bare() -> None:
        with torch.inference_mode():
            for x in inputs:
                target.module(**x)

    def model_hooked() -> None:
        with torch.inference_mode(), ActivationRecorder(target.module, layers) as rec:
            for i, x in enumerate(inputs):
                target.module(**x)
                for key, acts in rec.pop().items():
                    if key not in stores:
                        stores[key] = np.empty((n, acts.shape[1]), np.float32)
                    stores[key][i * bs : i * bs + len(acts)] = acts.numpy()

    bare()  # warm-up (allocator, lazy inits)
    times: dict[str, list[float]] = {k: [] for k in ("bare", "record", "model", "model+hooks")}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            bare()
            times["bare"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            hooked(tmp)
            times["record"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model_bare()
        times["model"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model_hooked()
        times["model+hooks"].append(time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as tmp:  # memory, untimed (tracemalloc slows Python)
        rss_before = status_mib("VmRSS")
        rss_ok = reset_peak_rss()
        tracemalloc.start()
        hooked(tmp)
        traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        peak_rss = status_mib("VmHWM") if rss_ok else None
        stored = sum(f.stat().st_size for f in Path(tmp, "activations").rglob("*.npy"))

    def line(name: str, key: str) -> str:
        best, med = min(times[key]), statistics.median(times[key])
        return f"  {name:<34} {best:7.2f} s (median {med:6.2f})  {n / best:7.1f} clips/s"

    print("\ntimes over the probing clips (min of repeats):")
    print(line("forward incl. features, bare", "bare"))
    print(line("record_target (hooks + storage)", "record"))
    print(line("model forward only, bare", "model"))
    print(line("model forward + hooks + copy", "model+hooks"))
    e2e = min(times["record"]) / min(times["bare"]) - 1
    model = min(times["model+hooks"]) / min(times["model"]) - 1
    print("\ncapture overhead (goal: within 10%):")
    print(f"  end to end (record_target vs bare forward): {100 * e2e:+.1f}%")
    print(f"  model only (hooks + copy vs bare):          {100 * model:+.1f}%")
    print("\nmemory:")
    if peak_rss is not None:
        print(f"  peak RSS during one recording: {peak_rss:.0f} MiB ({rss_before:.0f} MiB before)")
    print(
        f"  peak RSS of the whole process (ru_maxrss): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    print(f"  tracemalloc peak during one recording: {traced_peak:.1f} MiB")
    audio_mib = sum(a.nbytes for a in ps.audio) / 2**20
    print(
        f"  decoded audio held: {audio_mib:.0f} MiB; stored activations: {stored / 2**20:.2f} MiB"
    )


if __name__ == "__main__":
    main()
