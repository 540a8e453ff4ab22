"""Benchmark the source tagger's features: cross-fitted top-1 / top-3 on the probing set.

For each of ``captioner.tagger_features`` (``hand``, ``hand+extra``, ``whisper-base``) and each
``captioner.tagger_model`` (``ensemble``, ``logistic``) it measures the features of every clip
(or reads them from the cache), fits the cross-fitted tagger exactly as the caption stage does
(:meth:`TaggerCaptioner.probabilities`: the same splits, ``C`` and classifier) and reports its
top-1 and top-3 accuracy, its log loss and the seconds each step took. With
``--blocks``, for an encoder, also the cross-fitted top-1 / top-3 of a tagger on each block's
pooled output (how :data:`andlib.describe.encoder_features.TAGGER_ENCODERS` was chosen).
Probabilities the caption stage cached (``<cache_dir>/taggers/``) are read, not refitted.

The probing set is the config's (default: ``configs/default.yaml``, all 2000 ESC-50 clips at
16 kHz, 5 s, cross-fitted on the official folds).

Run: ``nice -n 19 .venv/bin/python benchmarks/bench_tagger.py [--config FILE] [--set KEY=VALUE]
[--features hand hand+extra whisper-base] [--models ensemble logistic] [--blocks] [--out FILE.json]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time

import numpy as np

from andlib.config import load_config
from andlib.data.probing import load_probing_set
from andlib.describe.captioners import audio_digest
from andlib.describe.captioning import get_captioner
from andlib.describe.tagger import (
    TaggerCaptioner,
    cross_fitted_probabilities,
    topk_accuracy,
)


def measure(cfg, ps, features: str, model: str, blocks: bool) -> dict:
    """The ``model`` tagger on ``features``: feature and fit seconds, top-1, top-3, log loss
    (and per block)."""
    sub = dataclasses.replace(
        cfg,
        captioner=dataclasses.replace(cfg.captioner, tagger_features=features, tagger_model=model),
    )
    tagger = get_captioner(sub)
    assert isinstance(tagger, TaggerCaptioner)
    labels = ps.labels.astype(int)
    digests = [audio_digest(a, ps.sample_rate) for a in ps.audio]
    store = tagger.features
    t0 = time.perf_counter()
    store.get(ps.audio, digests, ps.sample_rate)  # measured here, or read from the cache
    t_features = time.perf_counter() - t0
    t0 = time.perf_counter()
    probs, splits, _ = tagger.probabilities(ps)  # as the caption stage fits (and caches) it
    t_fit = time.perf_counter() - t0
    splits = np.asarray(splits)
    out = {
        "features": features,
        "model": model,
        "tagger": store.description,
        "n_clips": len(ps),
        "n_splits": int(len(np.unique(splits))),
        "top1": round(topk_accuracy(probs, labels, 1), 4),
        "top3": round(topk_accuracy(probs, labels, 3), 4),
        "log_loss": round(
            float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-9, 1)).mean()), 3
        ),
        "top1_per_split": {
            str(int(f)): round(topk_accuracy(probs[splits == f], labels[splits == f], 1), 4)
            for f in np.unique(splits)
        },
        "feature_seconds": round(t_features, 1),
        "fit_seconds": round(t_fit, 1),
    }
    print(json.dumps(out), flush=True)
    if blocks and hasattr(store, "blocks"):
        per_block = {}
        for layer, xb in store.blocks(ps.audio, digests, ps.sample_rate).items():
            t0 = time.perf_counter()
            pb = cross_fitted_probabilities(
                xb, labels, splits, probs.shape[1], tagger.c, model, tagger.seed
            )
            per_block[layer] = {
                "top1": round(topk_accuracy(pb, labels, 1), 4),
                "top3": round(topk_accuracy(pb, labels, 3), 4),
                "fit_seconds": round(time.perf_counter() - t0, 1),
            }
            print(f"  {features} {layer}: {json.dumps(per_block[layer])}", flush=True)
        out["per_block"] = per_block
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/default.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--features", nargs="+", default=["hand", "whisper-base"])
    p.add_argument("--models", nargs="+", default=["ensemble", "logistic"])
    p.add_argument(
        "--blocks", action="store_true", help="also a cross-fitted tagger on every block"
    )
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = load_config(args.config, args.overrides)
    t0 = time.perf_counter()
    ps = load_probing_set(cfg)
    print(f"probing set: {len(ps)} clips loaded in {time.perf_counter() - t0:.0f} s", flush=True)
    results = []
    for features in args.features:
        for model in args.models:
            results.append(measure(cfg, ps, features, model, args.blocks))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
