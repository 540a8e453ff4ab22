"""Throughput of the acoustic captioner on real ESC-50 clips (goal: >= 20 five-second clips/s).

    python benchmarks/bench_captioning.py [--n 200] [--workers 2] [--config configs/default.yaml]

Measures feature extraction without the cache (process-pool start-up included) with one
process and with the configured number, then composing the captions from the features.
The load average is printed too: on a shared machine other jobs slow everything down.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NUMBA_CACHE_DIR", str(os.path.join(".cache", "numba")))

from andlib.config import load_config  # noqa: E402
from andlib.data.probing import load_probing_set  # noqa: E402
from andlib.describe.features import FEATURE_COLUMNS, extract_features  # noqa: E402
from andlib.describe.wording import SetNorms, describe  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--n", type=int, default=200, help="clips (a stratified ESC-50 sample)")
    parser.add_argument("--workers", type=int, default=None, help="default: captioner.num_workers")
    args = parser.parse_args()
    cfg = load_config(args.config, [f"data.limit={args.n}"])
    workers = args.workers or cfg.captioner.num_workers

    t = time.perf_counter()
    ps = load_probing_set(cfg)
    print(f"loaded {len(ps)} clips ({cfg.data.duration} s each) in {time.perf_counter() - t:.1f} s")
    extract_features(ps.audio[:2], ps.sample_rate, 1)  # warm-up: imports, numba JIT
    sample = ps.audio[:20]
    t = time.process_time()
    extract_features(sample, ps.sample_rate, 1)
    cpu = (time.process_time() - t) / len(sample)
    print(
        f"CPU time per clip: {1000 * cpu:.0f} ms -> {1 / cpu:.0f} clips/s per idle core, "
        f"{workers / cpu:.0f} clips/s on {workers} idle cores"
    )

    for n_workers in sorted({1, workers}):
        clips = ps.audio if n_workers > 1 else ps.audio[: max(20, len(ps) // 4)]
        t = time.perf_counter()
        feats = extract_features(clips, ps.sample_rate, n_workers)
        dt = time.perf_counter() - t
        print(
            f"features, {n_workers} process(es): {len(clips) / dt:6.1f} clips/s ({len(clips)} clips, {dt:.1f} s)"
        )

    import pandas as pd

    table = pd.DataFrame(feats, columns=FEATURE_COLUMNS)
    t = time.perf_counter()
    norms = SetNorms(table)
    captions = [describe(row, norms, variant=i) for i, row in enumerate(table.to_dict("records"))]
    dt = time.perf_counter() - t
    print(f"wording: {len(captions) / dt:8.0f} captions/s")
    print(
        f"load average (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in os.getloadavg())}; cores: {os.cpu_count()}"
    )


if __name__ == "__main__":
    main()
