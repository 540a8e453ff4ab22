"""Measure DB similarity functions, their constants and the concept template on a finished run.

For each setting it prints: the hidden-layer measure (top-1/top-5 against the class that a
strict majority of a neuron's top-k clips share, with its shuffled chance level), the largest
share of any hidden layer's neurons that one concept names, and the classifier layer's top-1.
Then, for the configured default, each hidden layer's most common concept. The run needs the
record and caption stages (activations, captions.csv, clips.csv). Nothing is written.

    python scripts/db_experiment.py --config configs/default.yaml
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import numpy as np

from andlib.config import SimilarityConfig, load_config, rng
from andlib.describe.concepts import caption_concept_probs
from andlib.describe.similarity import get_similarity, top_concepts
from andlib.evaluate.hidden import accuracy_and_chance, clip_concepts, majority, shared_classes
from andlib.evaluate.scores import class_names
from andlib.store import ActivationCache, RunDir, caption_of, read_clips
from andlib.text.concept_sets import load_concept_set
from andlib.text.embeddings import get_embedder
from andlib.text.names import normalize_concept

BARE, ICL = "{}", "This is an audio about {}"
CLIP_DISSECT: dict[str, Any] = {
    "soft_wpmi_top_k": 100,
    "soft_wpmi_top_fraction": None,
    "soft_wpmi_prior": "neurons",
    "wpmi_top_k": 28,
    "wpmi_top_fraction": None,
    "wpmi_prior": "neurons",
}
"""CLIP-Dissect's top sets and p(c) (the settings every row below starts from)."""


def _soft(frac: float | None, prior: str) -> dict[str, Any]:
    size = {"soft_wpmi_top_k": 5, "soft_wpmi_top_fraction": frac} if frac else {}
    return {**size, "soft_wpmi_prior": prior}


def _wpmi(frac: float | None, prior: str) -> dict[str, Any]:
    size = {"wpmi_top_k": 5, "wpmi_top_fraction": frac} if frac else {}
    return {**size, "wpmi_prior": prior}


SETTINGS: list[tuple[str, str, dict[str, Any], str]] = [
    ("soft-WPMI, CLIP-Dissect (top 100, p(c) over neurons), bare name", "soft_wpmi", {}, BARE),
    ("soft-WPMI, CLIP-Dissect, template", "soft_wpmi", {}, ICL),
    (
        "soft-WPMI, top 0.25 %, p(c) over neurons, template",
        "soft_wpmi",
        _soft(0.0025, "neurons"),
        ICL,
    ),
    (
        "soft-WPMI, top 0.25 %, p(c) over clips, bare name",
        "soft_wpmi",
        _soft(0.0025, "clips"),
        BARE,
    ),
    *[
        (f"soft-WPMI, top {f:.2%}, p(c) over clips, template", "soft_wpmi", _soft(f, "clips"), ICL)
        for f in (0.0025, 0.005, 0.01, 0.02)
    ],
    ("WPMI, CLIP-Dissect (top 28, p(c) over neurons), bare name", "wpmi", {}, BARE),
    ("WPMI, CLIP-Dissect, template", "wpmi", {}, ICL),
    ("WPMI, top 0.25 %, p(c) over neurons, template", "wpmi", _wpmi(0.0025, "neurons"), ICL),
    ("WPMI, top 0.25 %, p(c) over clips, bare name", "wpmi", _wpmi(0.0025, "clips"), BARE),
    *[
        (f"WPMI, top {f:.2%}, p(c) over clips, template", "wpmi", _wpmi(f, "clips"), ICL)
        for f in (0.0025, 0.005, 0.01)
    ],
    *[
        (f"{fn}, {name}", fn, {}, t)
        for fn in ("cos", "cos3", "rank_reorder")
        for name, t in (("bare name", BARE), ("template", ICL))
    ],
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/default.yaml")
    args = ap.parse_args()
    cfg = load_config(args.config)
    run = RunDir.from_config(cfg)
    cache = ActivationCache.load(run)
    clips = read_clips(run, cache.clip_ids)
    captions = caption_of(run)
    texts = [captions.get(c, "") for c in cache.clip_ids]
    concepts = load_concept_set(cfg.concepts.concept_set)
    embedder = get_embedder(cfg)
    probs = {t: caption_concept_probs(texts, concepts, embedder, template=t) for t in (BARE, ICL)}
    per_clip = clip_concepts(clips["category"].tolist(), concepts)
    classifier = cfg.evaluate.classifier_layer
    hidden = [la for la in cache.layers if la != classifier]
    acts = {la: np.array(cache[la]) for la in cache.layers}
    truth = {
        la: shared_classes(cache.topk(la, cfg.k).high, per_clip, majority(cfg.k)) for la in hidden
    }
    names = class_names(run, cache.n_neurons(classifier)) or []
    n_truth = sum(c is not None for t in truth.values() for c in t)
    print(f"{n_truth} of {sum(len(t) for t in truth.values())} hidden neurons have a shared class")
    print(
        "| setting | hidden top-1 | hidden top-5 | chance top-1 | largest share (layer, concept) | classifier top-1 |"
    )
    print("|---|---|---|---|---|---|")

    def ranked_for(fn: str, params: SimilarityConfig, template: str, layer: str) -> list[list[str]]:
        return top_concepts(get_similarity(fn, params)(probs[template], acts[layer]), concepts, 5)

    for label, fn, extra, template in SETTINGS:
        params = SimilarityConfig(**{**CLIP_DISSECT, **extra})
        r_all: list[list[str]] = []
        t_all: list[str] = []
        worst = (0.0, "", "")
        for la in hidden:
            ranked = ranked_for(fn, params, template, la)
            concept, count = Counter(r[0] for r in ranked).most_common(1)[0]
            if count / len(ranked) > worst[0]:
                worst = (count / len(ranked), la, concept)
            keep = [i for i, c in enumerate(truth[la]) if c is not None]
            r_all += [ranked[i] for i in keep]
            t_all += [str(truth[la][i]) for i in keep]
        acc = accuracy_and_chance(r_all, t_all, rng(cfg, "hidden", "all hidden", fn), 100)
        out = ranked_for(fn, params, template, classifier)
        hits = [
            normalize_concept(r[0]) == normalize_concept(n)
            for r, n in zip(out, names, strict=False)
            if n
        ]
        top1 = float(np.mean(hits)) if hits else float("nan")
        print(
            f"| {label} | {acc['top1']:.3f} | {acc['top5']:.3f} | {acc['chance_top1']:.3f} | "
            f"{worst[0]:.2f} ({worst[1]}, {worst[2]}) | {top1:.2f} |",
            flush=True,
        )

    fn, params = cfg.concepts.db_default, cfg.concepts.similarity_params
    print(
        f"\nThe configured default (db_{fn}, template {cfg.concepts.db_template!r}), per hidden layer:"
    )
    print("| layer | most common concept | its share | neurons whose top clips share it |")
    print("|---|---|---|---|")
    if cfg.concepts.db_template not in probs:
        probs[cfg.concepts.db_template] = caption_concept_probs(
            texts, concepts, embedder, template=cfg.concepts.db_template
        )
    for la in hidden:
        ranked = ranked_for(fn, params, cfg.concepts.db_template, la)
        concept, count = Counter(r[0] for r in ranked).most_common(1)[0]
        shared = sum(c == concept for c in truth[la])
        print(f"| {la} | {concept} | {count / len(ranked):.2f} | {shared} of {len(ranked)} |")


if __name__ == "__main__":
    main()
