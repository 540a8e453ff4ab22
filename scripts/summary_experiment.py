"""Measure how the extractive summarizer's settings move the simulation score on a finished run.

For each variant (``min_share``, ``max_items``, ``max_sources``) the high and low summaries of
every neuron are rebuilt from the run's own ``neuron_topk.csv`` and ``captions.csv``, Module B
calibrates them as the concepts stage does, and :func:`andlib.evaluate.scorers.runner.score_run` (the simulation scorer)
scores the calibrated descriptions in a scratch copy of the run (the run itself is not
touched). Prints one line a variant: mean Pearson r of the own description and of a random
other neuron's, and the mean words of the descriptions.

Run: ``.venv/bin/python scripts/summary_experiment.py runs/default [--share 0.5 0.4 ...]``
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pandas as pd

from andlib.config import load_config
from andlib.describe.concepts import (
    calibrate_many,
    contrast_vocabulary,
    load_adjective_lexicon,
    load_concept_set,
)
from andlib.evaluate.scorers.runner import score_run
from andlib.store import RunDir, caption_of, encode_list, read_topk
from andlib.text.embeddings import get_embedder
from andlib.text.extractive import summarize_captions


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--share", type=float, nargs="+", default=[0.5])
    ap.add_argument("--items", type=int, nargs="+", default=[5])
    ap.add_argument("--sources", type=int, nargs="+", default=[2])
    ap.add_argument("--source-share", type=float, nargs="+", default=[None])
    ap.add_argument("--config", help="the run's config file (default: its config.yaml)")
    args = ap.parse_args()
    cfg = load_config(args.config or str(args.run / "config.yaml"))
    run = RunDir(args.run)
    topk = read_topk(run)
    topk = topk[topk["rank"] < cfg.k].sort_values("rank", kind="stable")
    captions = caption_of(run)
    groups: dict[tuple[str, int], tuple[list[str], list[str]]] = {}
    for layer, neuron, end, clip in zip(
        topk["layer"], topk["neuron"], topk["end"], topk["clip_id"].astype(str), strict=True
    ):
        hi, lo = groups.setdefault((str(layer), int(neuron)), ([], []))
        (hi if end == "high" else lo).append(clip)
    frozen = {key: (tuple(hi), tuple(lo)) for key, (hi, lo) in groups.items()}
    embedder = get_embedder(cfg)
    lexicon = load_adjective_lexicon(cfg.concepts.adjective_lexicon)
    vocab = contrast_vocabulary(lexicon, load_concept_set(cfg.concepts.concept_set))
    with tempfile.TemporaryDirectory() as tmp:
        scratch = RunDir(tmp)
        for name in ("clips.csv", "captions.csv", "model.json"):
            shutil.copyfile(args.run / name, Path(tmp) / name)
        os.symlink((args.run / "activations").resolve(), Path(tmp) / "activations")
        scfg = dataclasses.replace(cfg, run_dir=tmp)
        grid = itertools.product(args.share, args.items, args.sources, args.source_share)
        for share, items, sources, source_share in grid:
            texts = {
                ids: summarize_captions(
                    [captions[c] for c in ids], items, share, sources, source_share
                )
                for pair in frozen.values()
                for ids in pair
            }
            highs = [texts[hi] for hi, _ in frozen.values()]
            lows = [texts[lo] for _, lo in frozen.values()]
            calibrated = calibrate_many(
                highs,
                lows,
                embedder,
                cfg.concepts.calibration_threshold,
                cfg.concepts.calibration_keep_contrasts,
                vocab,
            )
            neurons = pd.DataFrame(
                {
                    "layer": [k[0] for k in frozen],
                    "neuron": [k[1] for k in frozen],
                    "top_clips": [encode_list(hi) for hi, _ in frozen.values()],
                    "bottom_clips": [encode_list(lo) for _, lo in frozen.values()],
                    "high_summary": highs,
                    "low_summary": lows,
                    "calibrated_summary": calibrated,
                }
            )
            scratch.write_csv("neurons.csv", neurons)
            scores, _, _ = score_run(scfg, scratch, embedder, names=["simulation"])
            pearson = scores[scores["metric"] == "pearson"]
            mean = pearson.groupby("variant")["value"].mean()
            words = pd.Series(calibrated).str.split().str.len().mean()
            print(
                f"share {share} source_share {source_share} items {items} sources {sources}: "
                f"description {mean['own']:.3f} random "
                f"{mean['random']:.3f} words {words:.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
