"""Paper scale: AST-base's 55,346 neurons described and scored, timed per stage, peak memory.

    python benchmarks/bench_scale.py [--sizes 3k,14k,55k] [--out .cache/bench_scale]
                                     [--llm-requests 20000] [--llm-concurrency 16]
                                     [--profile] [--rerun]

The probing set is the 2,000 ESC-50 clips (``/work/shared/data/esc50-16k`` or wherever
``configs/default.yaml`` finds them) with their real captions: the caption stage of the default
config (``tagger+acoustic``) runs once, offline, and is cached under ``--out``. The record stage
is replaced by activations *shaped* like a dissected AST and *structured* like real ones: each
neuron is a random sparse mixture of the clips' measured acoustic features (``features.csv``),
their class (one-hot) and a few shared latent factors, plus noise (GELU for MLP units), so
neurons' top-K sets overlap the way real ones do; the classifier's 50 neurons follow their
classes. Sizes (blocks x (attention + MLP + block output) + 50 classes):

- ``3k``: 4 x (128 + 512 + 128) + 50 = 3,122 (the project's default AST),
- ``14k``: 3 x (768 + 3072 + 768) + 50 = 13,874,
- ``55k``: 12 x (768 + 3072 + 768) + 50 = 55,346 (AST-base, the paper's model).

Every size runs in a fresh process (cold in-memory memos, a fresh embedding cache: what a new
notebook kernel sees) through the real stages with the offline backends: summarize, concepts
(Modules A/B/C), evaluate (last-layer accuracy with every captioner of ``evaluate.captioners``,
the caption-quality sweep, every scorer of ``evaluate.scorers``) and analysis. Then the LLM path at the largest
size: the summarize requests sent to a loopback OpenAI-compatible server that answers at once
(:mod:`andlib.text.loopback`, in its own process): client-side requests per second, the reply cache
filled to every request of the stage, and a fully cached re-run of the stage.

The last line is exactly ``scale: <N> neurons, <S> s, <M> ms/neuron, peak <G> GB, growth <R>x``:
``S`` the describe + evaluate + analysis seconds at the largest size, ``G`` the largest peak
resident memory of a stage there, ``R`` the cost per neuron at the largest size over the cost
per neuron at the smallest.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import andlib.text.caption_parse as caption_parse
import andlib.text.extractive as extractive

ROOT = Path(__file__).resolve().parents[1]
SIZES: dict[str, tuple[int, int, int]] = {
    "3k": (4, 128, 512),
    "14k": (3, 768, 3072),
    "55k": (12, 768, 3072),
}
N_CLASSES = 50
STAGES = ("summarize", "concepts", "evaluate", "analysis")
FUNCTIONS = {  # module -> functions timed inside the stages (when the module has them)
    "andlib.describe.summarize": ["summarize_all"],
    "andlib.text.extractive": ["caption_attributes"],
    "andlib.describe.concepts": [
        "calibrate_many",
        "_analyse",
        "judge_adjectives",
        "caption_concept_probs",
        "db_scores",
        "top_concepts",
        "icl_concepts",
    ],
    "andlib.pipeline": ["run_controls"],
    "andlib.evaluate.scores": ["last_layer_accuracy", "caption_quality_sweep"],
    "andlib.evaluate.scorers.runner": ["score_run"],
    "andlib.report.analysis": [
        "compute_tables",
        "make_figures",
        "top_clips_table",
        "caption_embeddings",
        "cluster_captions",
        "polysemanticity",
        "class_purity",
        "ridge_cv_r2",
    ],
}


def n_neurons(size: str) -> int:
    blocks, hidden, inter = SIZES[size]
    return blocks * (2 * hidden + inter) + N_CLASSES


def config(out: Path, name: str, cache: Path, extra: dict[str, Any] | None = None):
    from andlib.config import load_config

    overrides = {
        "run_dir": str(out / name),
        "cache_dir": str(cache),
        "figures_dir": str(out / name / "figures"),
        **(extra or {}),
    }
    return load_config(ROOT / "configs" / "default.yaml", overrides)


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


class PeakMemory:
    """Largest resident memory (this process and its children) while the block runs."""

    def __init__(self, interval: float = 0.05):
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.peak = 0

    def _rss(self) -> int:
        import psutil

        total = self.proc.memory_info().rss
        for child in self.proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):  # gone meanwhile
                pass
        return total

    def __enter__(self) -> PeakMemory:
        self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def gb(self) -> float:
        return self.peak / 2**30


def time_functions() -> dict[str, list[float]]:
    """Wrap the :data:`FUNCTIONS` in their modules: ``{name: [calls, seconds]}``."""
    import importlib

    totals: dict[str, list[float]] = {}
    for module_name, names in FUNCTIONS.items():
        module = importlib.import_module(module_name)
        for name in names:
            fn = getattr(module, name, None)
            if fn is None:
                continue
            key = f"{module_name.split('.')[-1]}.{name}"
            totals[key] = [0, 0.0]

            def timed(*args: Any, _fn: Any = fn, _key: str = key, **kwargs: Any) -> Any:
                t = time.perf_counter()
                try:
                    return _fn(*args, **kwargs)
                finally:
                    totals[_key][0] += 1
                    totals[_key][1] += time.perf_counter() - t

            setattr(module, name, functools.wraps(fn)(timed))
    return totals


# --------------------------------------------------------------------------------------------
# The probing set and its captions (once)
# --------------------------------------------------------------------------------------------


def prepare(out: Path) -> dict[str, Any]:
    """``<out>/base``: clips.csv, captions.csv, features.csv of the 2,000 clips (cached)."""
    from andlib.data.probing import load_probing_set
    from andlib.describe import captioning
    from andlib.describe.captioners import AcousticCaptioner
    from andlib.models.activations import clips_frame
    from andlib.store import RunDir

    cfg = config(out, "base", out / "cache")
    run = RunDir.from_config(cfg)
    t0 = time.perf_counter()
    if run.stage_key("caption") and run.exists("captions.csv") and run.exists("clips.csv"):
        return {"prepare_s": 0.0, "reused": True}
    ps = load_probing_set(cfg)
    run.write_csv("clips.csv", clips_frame(ps))
    run.write_csv("skipped.csv", ps.skipped_frame())
    info = captioning.run_stage(cfg, run)
    # The evaluate stage re-captions with the other captioners: fill their caption caches.
    for name in cfg.evaluate.captioners:
        if name in ("acoustic", "metadata+acoustic") and name != cfg.captioner.name:
            AcousticCaptioner(
                cfg.cache_path / "captions", cfg.captioner.num_workers, name != "acoustic"
            ).caption(ps)
    return {"prepare_s": round(time.perf_counter() - t0, 1), "caption": info}


# --------------------------------------------------------------------------------------------
# Structured activations shaped like an AST
# --------------------------------------------------------------------------------------------


def latent_factors(clips: pd.DataFrame, features: pd.DataFrame, seed: int) -> np.ndarray:
    """``[n_clips, d]``: standardized acoustic features, class one-hots, 8 shared factors."""
    feats = (
        features.set_index("clip_id").loc[clips["clip_id"]].apply(pd.to_numeric, errors="coerce")
    )
    x = feats.to_numpy(dtype=np.float64)
    x = (x - np.nanmean(x, 0)) / (np.nanstd(x, 0) + 1e-9)
    x = np.nan_to_num(x)
    onehot = np.zeros((len(clips), N_CLASSES))
    onehot[np.arange(len(clips)), clips["label"].astype(int).to_numpy()] = 2.0
    shared = np.random.default_rng([seed, 1]).standard_normal((len(clips), 8))
    return np.concatenate([x, onehot, shared], axis=1)


def layer_activations(z: np.ndarray, width: int, kind: str, seed: int) -> np.ndarray:
    """``[n_clips, width]`` float32: each unit mixes 1-4 latent factors, plus noise."""
    gen = np.random.default_rng(seed)
    d = z.shape[1]
    w = np.zeros((d, width))
    picks = gen.integers(1, 5, size=width)
    for j, m in enumerate(picks):
        w[gen.choice(d, size=m, replace=False), j] = gen.standard_normal(m)
    a = z @ w + 0.5 * gen.standard_normal((z.shape[0], width))
    if kind == "mlp":  # GELU (tanh form)
        a = 0.5 * a * (1 + np.tanh(0.7978845608 * (a + 0.044715 * a**3)))
    return a.astype(np.float32)


def build_run(out: Path, size: str, k: int) -> tuple[Path, float]:
    """``<out>/run-<size>``: the base run's captions plus synthetic record-stage outputs."""
    from andlib.models.activations import topk_table
    from andlib.store import ActivationCache, RunDir, read_clips, read_features, save_npy

    t0 = time.perf_counter()
    base = out / "base"
    dest = out / f"run-{size}"
    if dest.exists():
        shutil.rmtree(dest)
    (dest / ".stages").mkdir(parents=True)
    for name in ("clips.csv", "skipped.csv", "captions.csv", "features.csv"):
        shutil.copyfile(base / name, dest / name)
    for name in ("caption_accuracy.json", "tagger_predictions.csv"):
        if (base / name).exists():
            shutil.copyfile(base / name, dest / name)
    shutil.copyfile(base / ".stages" / "caption.json", dest / ".stages" / "caption.json")
    clips = read_clips(RunDir(dest))
    z = latent_factors(clips, read_features(RunDir(dest)), 0)
    blocks, hidden, inter = SIZES[size]
    layers: dict[str, dict[str, Any]] = {}
    acts_dir = dest / "activations"
    seed = 0
    for b in range(blocks):
        for part, width in (("attn", hidden), ("mlp", inter), ("out", hidden)):
            layers[f"layers.{b}.{part}"] = {"width": width, "kind": part}
    layers["classifier"] = {"width": N_CLASSES, "kind": "classifier"}
    index: dict[str, Any] = {"clip_ids": clips["clip_id"].tolist(), "layers": {}, "pooling": "mean"}
    for name, spec in layers.items():
        seed += 1
        if spec["kind"] == "classifier":
            gen = np.random.default_rng([0, seed])
            onehot = np.zeros((len(clips), N_CLASSES), np.float32)
            onehot[np.arange(len(clips)), clips["label"].astype(int).to_numpy()] = 1.0
            a = (3.0 * onehot + layer_activations(z, N_CLASSES, "out", seed) * 0.3).astype(
                np.float32
            ) + 0.2 * gen.standard_normal(onehot.shape).astype(np.float32)
        else:
            a = layer_activations(z, spec["width"], spec["kind"], seed)
        save_npy(acts_dir / f"{name}.npy", a)
        index["layers"][name] = {"file": f"{name}.npy", "module": name, "n_neurons": a.shape[1]}
    (acts_dir / "index.json").write_text(json.dumps(index))
    cache = ActivationCache(acts_dir)
    run = RunDir(dest)
    run.write_csv("neuron_topk.csv", topk_table(cache, k))
    names = clips.drop_duplicates("label").sort_values("label")["category"].tolist()
    run.write_json(
        "model.json",
        {
            "model_id": f"synthetic-ast-{size}",
            "source": "benchmarks/bench_scale.py",
            "kind": "classification",
            "label_names": names,
            "layers": {
                n: {"module": n, "n_neurons": v["n_neurons"]} for n, v in index["layers"].items()
            },
            "pooling": "mean",
            "n_clips": len(clips),
        },
    )
    outputs = ["clips.csv", "model.json", "neuron_topk.csv", "activations/index.json"]
    run.mark_done("record", f"bench-scale-{size}", outputs)
    return dest, time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# One size, in its own process
# --------------------------------------------------------------------------------------------


def worker(out: Path, size: str, profile: bool, rerun: bool) -> dict[str, Any]:
    from andlib.store import CONTROLS, RunDir

    cache = out / f"cache-{size}"  # a fresh cache (embeddings, LLM) ...
    if cache.exists():
        shutil.rmtree(cache)
    cache.mkdir(parents=True)
    for shared in ("captions", "taggers"):  # ... sharing the probing set's caption caches
        if (out / "cache" / shared).exists():
            (cache / shared).symlink_to(out / "cache" / shared)
    cfg0 = config(out, f"run-{size}", cache)
    dest, build_s = build_run(out, size, cfg0.k)
    cfg = config(out, f"run-{size}", cache)
    run = RunDir(dest)
    from andlib.config import dump_config
    from andlib.store import atomic_write_text

    atomic_write_text(dest / "config.yaml", dump_config(cfg))
    totals = time_functions()
    from andlib.pipeline import stage_function

    # benchmark stage -> pipeline stages (evaluate: its control runs, then the stage itself)
    parts = {"evaluate": ("controls", "evaluate")}

    def run_stage(stage: str) -> Any:
        info = None
        for part in parts.get(stage, (stage,)):
            info = stage_function(part)(cfg, run)
        return info

    result: dict[str, Any] = {
        "size": size,
        "neurons": n_neurons(size),
        "build_s": round(build_s, 1),
        "stages": {},
    }
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    for stage in STAGES:
        with PeakMemory() as mem:
            t = time.perf_counter()
            if profiler:
                profiler.enable()
            info = run_stage(stage)
            if profiler:
                profiler.disable()
            seconds = time.perf_counter() - t
        result["stages"][stage] = {"s": round(seconds, 2), "peak_gb": round(mem.gb, 3)}
        print(f"  {size} {stage}: {seconds:.1f} s, peak {mem.gb:.2f} GB", flush=True)
        if stage == "concepts" and isinstance(info, dict) and "timings" in info:
            result["concept_timings"] = info["timings"]
    result["functions"] = {k: [int(n), round(s, 2)] for k, (n, s) in totals.items() if n}
    if rerun:  # the stages again as a new kernel runs them: nothing in memory, caches warm
        import andlib.text.embeddings

        andlib.text.embeddings._cached.cache_clear()
        caption_parse._parsed.clear()
        extractive._items.clear()
        for stage in STAGES:
            run.invalidate(stage)
        shutil.rmtree(dest / CONTROLS, ignore_errors=True)  # the control runs too
        t = time.perf_counter()
        for stage in STAGES:
            run_stage(stage)
        result["rerun_s"] = round(time.perf_counter() - t, 1)
    if profiler:
        import io
        import pstats

        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("cumulative").print_stats(45)
        (out / f"profile-{size}.txt").write_text(buf.getvalue())
        result["profile"] = str(out / f"profile-{size}.txt")
    for name in ("neurons.csv", "last_layer.json", "scores.csv"):
        result.setdefault("digests", {})[name] = _digest(dest / name)
    return result


def _digest(path: Path) -> str | None:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else None


# --------------------------------------------------------------------------------------------
# The LLM path against an instant loopback server
# --------------------------------------------------------------------------------------------


def llm_worker(out: Path, size: str, requests: int, concurrency: int) -> dict[str, Any]:
    """Requests per second of the summarize stage through the openai backend, the reply
    cache filled to every request of the stage, and a fully cached re-run."""
    from andlib.describe import summarize
    from andlib.store import RunDir, caption_of, read_topk
    from andlib.text.llm import LLM, OpenAILLM, ReplyCache, get_llm
    from andlib.text.loopback import loopback_process

    src = out / f"run-{size}"
    dest = out / f"llm-run-{size}"
    cache = out / f"llm-cache-{size}"
    for p in (dest, cache):
        if p.exists():
            shutil.rmtree(p)
    (dest / ".stages").mkdir(parents=True)
    for name in ("clips.csv", "captions.csv", "neuron_topk.csv"):
        shutil.copyfile(src / name, dest / name)
    for stage in ("record", "caption"):
        shutil.copyfile(src / ".stages" / f"{stage}.json", dest / ".stages" / f"{stage}.json")
    topk = read_topk(RunDir(dest))
    captions = caption_of(RunDir(dest))
    keys = topk[["layer", "neuron"]].drop_duplicates()
    n_all = 2 * len(keys)
    n_first = max(1, min(requests, n_all) // 2)
    first = keys.iloc[:n_first]
    in_first = topk.set_index(["layer", "neuron"]).index.isin(pd.MultiIndex.from_frame(first))
    result: dict[str, Any] = {"size": size, "requests_total": n_all, "concurrency": concurrency}
    with loopback_process() as url:
        overrides = {
            "llm.backend": "openai",
            "llm.model": "loopback",
            "llm.base_url": url,
            "llm.concurrency": concurrency,
            "llm.retry_backoff": 0.01,
        }
        cfg = config(out, f"llm-run-{size}", cache, overrides)
        llm = get_llm(cfg.llm, cfg.cache_path)
        t = time.perf_counter()
        summarize.summarize_all(topk[in_first], captions, llm, cfg.k)
        seconds = time.perf_counter() - t
        result["http_requests"] = llm.calls
        result["http_s"] = round(seconds, 1)
        result["req_per_s"] = round(llm.calls / seconds, 1)
        print(f"  llm: {llm.calls} requests in {seconds:.1f} s: {llm.calls / seconds:.0f}/s")

        class Instant(OpenAILLM):  # the rest of the stage's requests, through the cache path
            def _generate(self, batch, labels, on_reply):  # type: ignore[override]
                for j, messages in enumerate(batch):
                    on_reply(j, "summary of: " + messages[-1]["content"][-40:])
                return {}

        filler: LLM = Instant(cfg.llm, cfg.cache_path)
        t = time.perf_counter()
        summarize.summarize_all(topk[~in_first], captions, filler, cfg.k)
        result["fill_requests"] = filler.calls
        result["fill_s"] = round(time.perf_counter() - t, 1)
        db = ReplyCache(cache)
        result["cache_entries"] = len(db)
        result["cache_mb"] = round(db.db.path.stat().st_size / 2**20, 1)

        # A fully cached re-run of the stage (a new process would see the same).
        run = RunDir(dest)
        with PeakMemory() as mem:
            t = time.perf_counter()
            info = summarize.run_stage(cfg, run)
            seconds = time.perf_counter() - t
        result["cached_rerun_s"] = round(seconds, 1)
        result["cached_rerun_calls"] = info.get("llm_calls")
        result["cached_rerun_hits"] = info.get("llm_cached")
        result["cached_rerun_peak_gb"] = round(mem.gb, 2)
        print(f"  llm: cached re-run of {n_all} requests in {seconds:.1f} s ({info})")

        all_keys = [k for (k,) in db.db.execute("SELECT key FROM replies").fetchall()]
        fresh = ReplyCache(cache)
        t = time.perf_counter()
        got = fresh.get_many(all_keys)
        result["get_many_s"] = round(time.perf_counter() - t, 2)
        result["get_many_entries"] = len(got)
    return result


# --------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------


def _child(args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("MPLBACKEND", "Agg")
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = proc.stdout.splitlines()
    for line in lines[:-1]:
        print(line, flush=True)
    if proc.returncode != 0 or not lines or not lines[-1].startswith("{"):
        raise SystemExit(f"bench_scale: {' '.join(args)} failed (exit {proc.returncode})")
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="3k,14k,55k", help=f"of {', '.join(SIZES)}")
    ap.add_argument("--out", default=str(ROOT / ".cache" / "bench_scale"))
    ap.add_argument(
        "--llm-requests",
        type=int,
        default=20000,
        help="summarize requests sent over HTTP (the rest of the stage's go straight to the "
        "cache); 0 skips the LLM part",
    )
    ap.add_argument("--llm-concurrency", type=int, default=16)
    ap.add_argument("--llm-size", help="size whose requests the LLM part sends (the largest)")
    ap.add_argument("--profile", action="store_true", help="cProfile each size's stages")
    ap.add_argument("--rerun", action="store_true", help="time a warm re-run of the stages")
    ap.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--llm-worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    if args.prepare:
        print(json.dumps(prepare(out)))
        return
    if args.worker:
        print(json.dumps(worker(out, args.worker, args.profile, args.rerun)))
        return
    if args.llm_worker:
        print(json.dumps(llm_worker(out, args.llm_worker, args.llm_requests, args.llm_concurrency)))
        return

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise SystemExit(f"--sizes: unknown {unknown}; use {', '.join(SIZES)}")
    sizes.sort(key=n_neurons)
    t = time.perf_counter()
    prep = _child(["--out", str(out), "--prepare"])
    print(
        f"probing set and captions: {prep.get('prepare_s', 0)} s (reused: {prep.get('reused', False)})"
    )
    results = []
    for size in sizes:
        flags = ["--profile"] * args.profile + ["--rerun"] * args.rerun
        results.append(_child(["--out", str(out), "--worker", size, *flags]))
    llm = None
    if args.llm_requests > 0:
        size = args.llm_size or sizes[-1]
        llm = _child(
            [
                "--out",
                str(out),
                "--llm-worker",
                size,
                "--llm-requests",
                str(args.llm_requests),
                "--llm-concurrency",
                str(args.llm_concurrency),
            ]
        )
    (out / "results.json").write_text(json.dumps({"sizes": results, "llm": llm}, indent=1))

    print()
    header = (
        f"{'neurons':>8} "
        + " ".join(f"{s:>10}" for s in STAGES)
        + f" {'total s':>8} {'ms/neuron':>9} {'peak GB':>8}"
    )
    print(header)
    per_neuron = {}
    for r in results:
        total = sum(r["stages"][s]["s"] for s in STAGES)
        peak = max(r["stages"][s]["peak_gb"] for s in STAGES)
        per_neuron[r["size"]] = total / r["neurons"]
        cells = " ".join(f"{r['stages'][s]['s']:>10.1f}" for s in STAGES)
        print(
            f"{r['neurons']:>8} {cells} {total:>8.1f} {1000 * total / r['neurons']:>9.2f} {peak:>8.2f}"
        )
    for r in results:
        top = sorted(r["functions"].items(), key=lambda kv: -kv[1][1])[:8]
        print(
            f"  {r['neurons']} neurons, slowest functions: "
            + ", ".join(f"{k} {v[1]:.1f} s" for k, v in top)
        )
        if "rerun_s" in r:
            print(f"  {r['neurons']} neurons, warm re-run of the stages: {r['rerun_s']} s")
    if llm:
        print(
            f"llm: {llm['http_requests']} summarize requests to an instant loopback server, "
            f"concurrency {llm['concurrency']}: {llm['req_per_s']} req/s; reply cache "
            f"{llm['cache_entries']} entries ({llm['cache_mb']} MB); fully cached re-run of the "
            f"stage ({llm['requests_total']} requests): {llm['cached_rerun_s']} s "
            f"({llm['cached_rerun_calls']} calls); get_many of every entry: {llm['get_many_s']} s"
        )
    print(f"benchmark wall time: {time.perf_counter() - t:.0f} s")
    big, small = results[-1], results[0]
    total = sum(big["stages"][s]["s"] for s in STAGES)
    peak = max(big["stages"][s]["peak_gb"] for s in STAGES)
    growth = per_neuron[big["size"]] / per_neuron[small["size"]]
    print(
        f"scale: {big['neurons']} neurons, {total:.0f} s, {1000 * total / big['neurons']:.2f} "
        f"ms/neuron, peak {peak:.2f} GB, growth {growth:.2f}x"
    )


if __name__ == "__main__":
    main()
