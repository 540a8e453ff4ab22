"""Speed of the extractive summarizer: milliseconds per neuron, cold and with parsed captions.

    python benchmarks/bench_summarize.py [--captions runs/default] [--k 5] [--neurons 400]

The test suite checks the cost in operations (each distinct caption clause is parsed once,
ever: ``tests/describe/test_summarize.py``); this prints the time that buys. Each "neuron" summarizes
``k`` captions drawn (seeded) from a run's ``captions.csv`` when one is given or found, else
from a built-in pool in the style of the three offline captioners.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import andlib.text.caption_parse as caption_parse
import andlib.text.extractive as extractive
from andlib.config import PROJECT_ROOT

POOL = [
    "A loud, sharp, impulsive click with bright high-frequency content, and it starts suddenly.",
    "A quiet, steady, low-pitched, tonal hum (about 110 Hz). It has rich harmonics.",
    "The sound of a dog barking. A loud, sharp, intermittent, partly tonal sound.",
    "The sound of rain falling. A quiet, steady, noisy hiss with dull low-frequency content.",
    "Most likely a rooster crowing, possibly a hen clucking. A loud, high-pitched, tonal sound.",
    "Perhaps a rooster crowing or a dog barking; the source is unclear. A mid-pitched sound.",
] + [f"A loud sound with {n} short bursts and short silences between them." for n in range(40)]


def load_pool(path: str | None) -> tuple[list[str], str]:
    """The captions of a run directory (or of the run whose ``captions.csv`` ``path`` names),
    read by the store; else :data:`POOL`."""
    candidate = Path(path) if path else PROJECT_ROOT / "runs" / "default"
    folder = candidate.parent if candidate.name == "captions.csv" else candidate
    if (folder / "captions.csv").is_file():
        from andlib.store import RunDir, read_captions

        return read_captions(RunDir(folder))["caption"].tolist(), str(folder / "captions.csv")
    return POOL, "built-in pool"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--captions", help="a run directory or its captions.csv (default: runs/default, if any)"
    )
    ap.add_argument("--k", type=int, default=5, help="captions per neuron")
    ap.add_argument("--neurons", type=int, default=400)
    args = ap.parse_args()
    pool, source = load_pool(args.captions)
    rs = np.random.default_rng(0)
    neurons = [[pool[i] for i in rs.integers(0, len(pool), args.k)] for _ in range(args.neurons)]
    caption_parse._spacy()  # load the pipeline outside the timings
    parses = 0
    real = caption_parse._spacy

    class Counting:
        def __init__(self, nlp):
            self.nlp = nlp

        def pipe(self, texts, batch_size=256):
            nonlocal parses
            texts = list(texts)
            parses += len(texts)
            return self.nlp.pipe(texts, batch_size=batch_size)

    nlp = real()
    caption_parse._spacy = lambda: Counting(nlp)  # type: ignore[assignment]
    try:
        caption_parse._parsed.clear()
        print(f"{len(pool)} captions from {source}; {args.neurons} neurons of {args.k} captions")
        for label in ("cold (parsing on first use)", "warm (every caption parsed)"):
            before = parses
            t0 = time.perf_counter()
            for captions in neurons:
                extractive.summarize_captions(captions)
            ms = (time.perf_counter() - t0) / len(neurons) * 1000
            print(f"{label:30s} {ms:7.2f} ms/neuron, {parses - before} clauses parsed")
    finally:
        caption_parse._spacy = real  # type: ignore[assignment]


if __name__ == "__main__":
    main()
