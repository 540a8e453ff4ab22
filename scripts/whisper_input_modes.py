"""Whisper's two input modes compared: probe accuracy, cost and agreement of the activations.

For one model, in ``trimmed`` (the clip's own frames) and ``padded`` (Whisper's 30-s window,
only the clip's positions pooled) input, the probe head of ``configs/whisper.yaml`` is trained
as the pipeline trains it (block chosen by cross-validation inside folds 1-4, scored once on
fold 5). Printed per mode: the chosen block, the CV accuracy per block, the fold-5 accuracy
of the chosen block and of every block, and the seconds the pooled features and the fits took
(from an empty feature cache, the features are most of it). Then the agreement of the two
modes: per block, the mean cosine between a clip's pooled block output in the two modes.

``--limit N`` keeps a seeded stratified subset of N clips (``data.limit``; the folds stay as
they are), for models whose padded input is too slow on all 2000 clips.

Run: ``nice .venv/bin/python scripts/whisper_input_modes.py --model whisper-tiny.en
[--limit 500] [--out results.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODES = ("trimmed", "padded")


def measure(model: str, limit: int | None) -> dict:
    import numpy as np

    from andlib.config import load_config
    from andlib.data.probing import load_probing_set
    from andlib.models.families.whisper import fit_head, probe_features
    from andlib.models.registry import load_target

    out: dict = {"model": model, "limit": limit, "modes": {}}
    feats = {}
    for mode in MODES:
        cfg = load_config(
            "configs/whisper.yaml",
            {
                "strategies": [],
                "strategy_models": {},
                "reference_runs": {},
                "model.name": model,
                "model.whisper.input": mode,
                "data.limit": limit,
            },
        )
        t0 = time.perf_counter()
        fit_head(cfg)  # the train stage's work: fit (or reuse) the probe head
        seconds = time.perf_counter() - t0
        target = load_target(cfg)
        info = target.info
        probing = load_probing_set(cfg)
        feats[mode] = probe_features(cfg, target, probing, np.arange(len(probing.meta)))
        out["n_clips"] = len(probing.meta)
        out["modes"][mode] = {
            "head_layer": info["head_layer"],
            "cv_accuracy": info["head_cv_accuracy"],
            "heldout_accuracy": info["heldout_accuracy"],
            "heldout_per_layer": info["head_heldout_per_layer"],
            "n_train": info["n_train"],
            "n_heldout": info["n_heldout"],
            "seconds": round(seconds, 1),
        }
        print(mode, json.dumps(out["modes"][mode]), flush=True)
    agreement = {}
    for layer, a in feats["trimmed"].items():
        b = feats["padded"][layer]
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
        agreement[layer] = float(cos.mean())
    out["mean_cosine_trimmed_vs_padded"] = agreement
    print("agreement", json.dumps(agreement), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="whisper-tiny.en")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    result = measure(args.model, args.limit)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
