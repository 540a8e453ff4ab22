"""Measure DB similarity functions and their constants on a finished run, every layer.

For each setting it prints: the hidden-layer measure (top-1/top-5 against the class that a
strict majority of a neuron's top-k clips share, with its shuffled chance level), the largest
share of any hidden layer's neurons that one concept names, and the classifier layer's top-1.
The run needs the record, caption and summarize stages (activations, captions.csv,
clips.csv). Nothing is written; the table is printed.

    python scripts/db_experiment.py --config configs/default.yaml
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from andlib.config import load_config, rng
from andlib.describe.concepts import caption_concept_probs, load_concept_set
from andlib.describe.similarity import get_similarity, top_concepts
from andlib.evaluate.hidden import accuracy_and_chance, majority, shared_classes
from andlib.evaluate.scores import class_names, match_class
from andlib.store import ActivationCache, RunDir, read_clips
from andlib.text.embeddings import get_embedder

SETTINGS: list[tuple[str, str, dict]] = [
    ("soft_wpmi (CLIP-Dissect: top 100, prior neurons)", "soft_wpmi", {}),
    *[
        (f"soft_wpmi top {k}, prior neurons", "soft_wpmi", {"soft_wpmi_top_k": k})
        for k in (5, 10, 20, 40)
    ],
    *[
        (
            f"soft_wpmi top {k}, prior clips",
            "soft_wpmi",
            {"soft_wpmi_top_k": k, "soft_wpmi_prior": "clips"},
        )
        for k in (5, 10, 20, 40, 100)
    ],
    ("wpmi (CLIP-Dissect: top 28, prior neurons)", "wpmi", {}),
    *[
        (f"wpmi top {k}, prior clips", "wpmi", {"wpmi_top_k": k, "wpmi_prior": "clips"})
        for k in (5, 10, 28)
    ],
    *[(f"wpmi top {k}, prior neurons", "wpmi", {"wpmi_top_k": k}) for k in (5, 10)],
    ("cos", "cos", {}),
    ("cos3", "cos3", {}),
    ("rank_reorder (top 5 %)", "rank_reorder", {}),
    ("rank_reorder top 1 %", "rank_reorder", {"rank_reorder_top_fraction": 0.01}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/default.yaml")
    ap.add_argument("--only", default="", help="run settings whose label contains this text")
    args = ap.parse_args()
    cfg = load_config(args.config)
    run = RunDir.from_config(cfg)
    cache = ActivationCache.load(run)
    clips = read_clips(run, cache.clip_ids)
    captions = run.read_csv("captions.csv", dtype=str)
    caption_of = dict(zip(captions["clip_id"], captions["caption"], strict=True))
    concepts = load_concept_set(cfg.concepts.concept_set)
    probs = caption_concept_probs(
        [caption_of.get(c, "") for c in cache.clip_ids], concepts, get_embedder(cfg)
    )
    clip_concepts = []
    for label in clips["category"].fillna(""):
        i = match_class(label, concepts) if str(label).strip() else None
        clip_concepts.append(None if i is None else concepts[i])
    hidden = [la for la in cache.layers if la != cfg.evaluate.classifier_layer]
    truth = {
        la: shared_classes(cache.topk(la, cfg.k).high, clip_concepts, majority(cfg.k))
        for la in hidden
    }
    names = class_names(run, cache.n_neurons(cfg.evaluate.classifier_layer))
    print(
        f"{sum(c is not None for t in truth.values() for c in t)} hidden neurons with a shared class"
    )
    print(
        "| setting | hidden top-1 | hidden top-5 | chance top-1 | max share (layer, concept) | classifier top-1 | s |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, fn, params in SETTINGS:
        if args.only and args.only not in label:
            continue
        sp = dataclasses.replace(cfg.concepts.similarity_params, **params)
        score = get_similarity(fn, sp)
        t0 = time.time()
        r_all, t_all = [], []
        worst = (0.0, "", "")
        for la in hidden:
            ranked = top_concepts(score(probs, np.array(cache[la])), concepts, 5)
            tops = [r[0] for r in ranked]
            values, counts = np.unique(tops, return_counts=True)
            share = counts.max() / len(tops)
            if share > worst[0]:
                worst = (share, la, str(values[counts.argmax()]))
            keep = [i for i, c in enumerate(truth[la]) if c is not None]
            r_all += [ranked[i] for i in keep]
            t_all += [str(truth[la][i]) for i in keep]
        acc = accuracy_and_chance(r_all, t_all, rng(cfg, "hidden", "all"), 100)
        cls = top_concepts(
            score(probs, np.array(cache[cfg.evaluate.classifier_layer])), concepts, 1
        )
        ok = [n is not None for n in names] if names else []
        top1 = (
            np.mean([c[0] == n for c, n, k in zip(cls, names, ok, strict=True) if k])
            if names
            else float("nan")
        )
        print(
            f"| {label} | {acc['top1']:.3f} | {acc['top5']:.3f} | {acc['chance_top1']:.3f} | "
            f"{worst[0]:.2f} ({worst[1]}, {worst[2]}) | {top1:.2f} | {time.time() - t0:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
