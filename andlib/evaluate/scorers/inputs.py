"""Reading a run into what the scorers score: one :class:`~.base.Probe` and one
:class:`~.base.LayerSample` per layer (:func:`prepare`).

Every scorer scores the same neurons: per layer a seeded sample of
``evaluate.simulation_max_neurons`` described neurons (all when null), the classifier layer
(``evaluate.classifier_layer``) always whole. Captions, descriptions, their variants
(:mod:`.variants`) and class names are embedded once each.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from andlib.config import Config
from andlib.evaluate.scorers import variants as V
from andlib.evaluate.scorers.base import (
    LayerSample,
    Probe,
    description_clips,
    description_of,
    heldout_mask,
    sample_neurons,
)
from andlib.store import (
    RunDir,
    activation_index,
    caption_of,
    decode_list,
    load_activations,
    read_clips,
    read_neurons,
)
from andlib.text.names import normalize_concept

log = logging.getLogger(__name__)

MIN_ORACLE_CLASS = 5
"""The label oracle (a leave-one-out class mean) needs classes of at least this many
held-out clips, as a median over the labelled clips; with fewer it is undefined (one clip per
class gives no mean, two give a mean that anti-correlates)."""


def oracle_reason(categories: list[str], usable: np.ndarray) -> str:
    """Why the label oracle is undefined on this probing set ("" when it applies)."""
    if not any(categories):
        return "the probing set has no labels"
    sizes = V.class_sizes(categories, usable)
    labelled = sizes[sizes > 0]
    median = float(np.median(labelled)) if len(labelled) else 0.0
    if median < MIN_ORACLE_CLASS:
        return (
            f"classes too small for a leave-one-out class mean (median {median:g} clips per "
            f"class, at least {MIN_ORACLE_CLASS} needed)"
        )
    return ""


def _embedder_fn(embedder: Any) -> Any:
    memo: dict[str, np.ndarray] = {}

    def embed(texts: list[str]) -> np.ndarray:
        todo = sorted({t for t in texts if t not in memo})
        if todo:
            vecs = np.asarray(embedder.encode(todo), dtype=np.float64)
            memo.update(zip(todo, vecs, strict=True))
        if not texts:
            return np.zeros((0, 0))
        return np.stack([memo[t] for t in texts])

    return embed


def prepare(
    cfg: Config, run: RunDir, embedder: Any, llm: Any = None
) -> tuple[Probe, list[LayerSample]]:
    """The probing set and every scored layer's sample (see the module docstring)."""
    index = activation_index(run)
    clip_ids = [str(c) for c in index["clip_ids"]]
    neurons = read_neurons(run)
    clips = read_clips(run, clip_ids)
    caption_by_clip = caption_of(run)
    captions = [caption_by_clip.get(c, "").strip() for c in clip_ids]
    has_caption = np.array([bool(c) for c in captions])
    categories = (
        clips["category"].fillna("").astype(str).str.strip().tolist()
        if "category" in clips
        else [""] * len(clip_ids)
    )
    category_of = dict(zip(clip_ids, categories, strict=True))
    embed = _embedder_fn(embedder)

    cap_emb = embed([c or " " for c in captions])
    cap_emb[~has_caption] = np.nan
    cat_names = sorted({c for c in categories if c})
    label_emb = np.full_like(cap_emb, np.nan)
    if cat_names:
        vec = dict(zip(cat_names, embed([normalize_concept(c) for c in cat_names]), strict=True))
        for i, c in enumerate(categories):
            if c:
                label_emb[i] = vec[c]
    probe = Probe(
        cfg=cfg,
        clip_ids=clip_ids,
        captions=captions,
        categories=categories,
        cap_emb=cap_emb,
        label_emb=label_emb,
        embed=embed,
        llm=llm,
        oracle_reason=oracle_reason(categories, has_caption),
    )
    vocabulary = V.source_vocabulary([c for c in captions if c], cat_names)
    phrases = V.class_phrases(captions, categories) if cat_names else {}

    layers = cfg.evaluate.simulation_layers or list(index["layers"])
    samples = []
    for layer in layers:
        if layer not in index["layers"]:
            raise KeyError(f"evaluate.simulation_layers: {layer!r} was not recorded")
        rows = neurons[neurons["layer"] == layer]
        cells = {
            col: rows[col].tolist() if col in rows else [""] * len(rows)
            for col in ("calibrated_summary", "high_summary", "top_clips", "bottom_clips")
        }
        records = [
            dict(zip(cells, values, strict=True)) for values in zip(*cells.values(), strict=True)
        ]
        row_of = dict(zip([int(n) for n in rows["neuron"]], records, strict=True))
        desc_of = {n: description_of(r) for n, r in row_of.items()}
        described = [n for n, d in desc_of.items() if d]
        if len(described) < 2:
            log.info("scorers: %s has fewer than two described neurons; not scored", layer)
            continue
        limit = (
            None if layer == cfg.evaluate.classifier_layer else cfg.evaluate.simulation_max_neurons
        )
        picked = sample_neurons(cfg, layer, described, limit)
        others = V.random_others(cfg, layer, picked, described)
        own = [desc_of[n] for n in picked]
        majority = V.majority_classes(
            [decode_list(row_of[n].get("top_clips")) for n in picked], category_of
        )
        missing, extra, reasons = V.sanity_variants(cfg, layer, own, majority, phrases, vocabulary)
        reasons["label"] = (
            "the probing set has no labels" if not cat_names else ("no top clip has a label")
        )
        acts = np.asarray(load_activations(run, layer, index)[:, picked], dtype=np.float64)
        held = heldout_mask(clip_ids, [description_clips(row_of[n]) for n in picked])
        samples.append(
            LayerSample(
                layer=layer,
                neurons=picked,
                acts=acts,
                heldout=held & has_caption[:, None],
                texts={
                    "own": own,
                    "random": [desc_of[n] for n in others],
                    "label": V.label_texts(majority),
                    "missing_label": missing,
                    "extra_label": extra,
                },
                reasons=reasons,
            )
        )
    # every text any scorer reads, embedded in one call
    embed(sorted({t for s in samples for texts in s.texts.values() for t in texts if t}))
    return probe, samples
