"""Speed of the offline scorers (simulation, detection, intruder): seconds per scorer on a run.

    python benchmarks/bench_scorers.py [--config configs/default.yaml] [--set k=v ...]

Reads a finished run (its activations, captions and ``neurons.csv``: the record, caption,
summarize and concepts stages must have run) and times :func:`andlib.evaluate.scorers.runner.
score_run` on it, the control runs not included: reading and embedding (``prepare``: warm
embedding cache after the first run) and each scorer, over the run's own neuron sample
(``evaluate.simulation_max_neurons`` per layer, the classifier layer whole). Nothing is
written into the run.
"""

from __future__ import annotations

import argparse
import time

from andlib.config import load_config
from andlib.store import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--repeat", type=int, default=2, help="timed passes (the first warms)")
    args = parser.parse_args()

    from andlib.evaluate.scorers.runner import score_run
    from andlib.text.embeddings import get_embedder

    cfg = load_config(args.config, args.set)
    run = RunDir(cfg.run_path)
    if not run.exists("neurons.csv"):
        raise SystemExit(f"{run.path}/neurons.csv is missing: run the pipeline up to concepts")
    embedder = get_embedder(cfg)
    for i in range(args.repeat):
        t = time.perf_counter()
        scores, missing, seconds = score_run(cfg, run, embedder)
        total = time.perf_counter() - t
        n = scores[scores["variant"] == "own"].groupby(["layer", "neuron"]).ngroups
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items())
        print(
            f"pass {i + 1}: {n} neurons, {len(scores)} score rows, "
            f"every offline scorer {total:.2f} s ({parts})"
        )


if __name__ == "__main__":
    main()
