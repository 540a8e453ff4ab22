"""Intruder: how coherent is what a neuron responds to, whatever its description says?

Each trial (``evaluate.intruder_trials`` per neuron, seeded) shows five held-out clips in a
seeded order: four drawn from the neuron's top 10 % of held-out clips and one (the intruder)
from below its median. Offline, the simulator picks the clip whose caption is least similar
(sentence embedder, mean cosine) to the other four. ``metric``: ``accuracy``, the share of
trials whose intruder was found (chance 0.2); ``n``: the trials. The ``label`` variant reads
the clips' class names in place of their captions (how coherent the neuron is by label
alone). No description is read, so there is no ``random`` or ``oracle`` baseline and no
sanity test.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from andlib.config import rng
from andlib.evaluate.scorers.base import LayerSample, Probe, Scorer, empty_scores

GROUP = 5
"""Clips per trial: four top clips and one intruder."""
TOP_SHARE = 0.1
CHUNK = 256
"""Neurons whose trials are embedded at once."""


def intruder_trials(
    acts: np.ndarray, heldout: np.ndarray, trials: int, gen: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(idx [n, trials, 5] clip rows, intruder [n, trials] position, valid [n, trials])``."""
    n_neurons = acts.shape[1]
    idx = np.zeros((n_neurons, trials, GROUP), dtype=np.int64)
    pos = gen.integers(GROUP, size=(n_neurons, trials))
    valid = np.zeros((n_neurons, trials), dtype=bool)
    for j in range(n_neurons):
        held = np.flatnonzero(heldout[:, j])
        if len(held) < 2 * GROUP:
            continue
        a = acts[held, j]
        top = held[np.argsort(-a, kind="stable")[: max(1, math.ceil(TOP_SHARE * len(held)))]]
        below = held[a < np.median(a)]
        if len(top) < GROUP - 1 or not len(below):
            continue
        for t in range(trials):
            group = gen.choice(top, size=GROUP - 1, replace=False).tolist()
            group.insert(int(pos[j, t]), int(gen.choice(below)))
            idx[j, t] = group
        valid[j] = True
    return idx, pos, valid


def pick_intruders(vectors: np.ndarray) -> np.ndarray:
    """``[..., 5, d]`` unit vectors -> ``[...]`` the position least similar to the other four."""
    sims = np.einsum("...id,...jd->...ij", vectors, vectors)
    mean_other = (sims.sum(axis=-1) - np.einsum("...ii->...i", sims)) / (GROUP - 1)
    return np.argmin(mean_other, axis=-1)


class IntruderScorer(Scorer):
    name = "intruder"
    metrics = ("accuracy",)
    reads_description = False

    def score(self, probe: Probe, sample: LayerSample) -> pd.DataFrame:
        gen = rng(probe.cfg, "intruder", sample.layer)
        idx, pos, valid = intruder_trials(
            sample.acts, sample.heldout, probe.cfg.evaluate.intruder_trials, gen
        )
        frames = []
        n_all = len(sample.neurons)
        for variant, emb in (("own", probe.cap_emb), ("label", probe.label_emb)):
            if variant == "label" and not probe.has_labels:
                probe.note_missing(
                    sample.layer, self.name, variant, "the probing set has no labels", n_all
                )
                continue
            correct = np.zeros(idx.shape[:2])
            for start in range(0, n_all, CHUNK):
                part = idx[start : start + CHUNK]
                correct[start : start + CHUNK] = (
                    pick_intruders(np.nan_to_num(emb[part])) == pos[start : start + CHUNK]
                )
            ok = valid & np.isfinite(emb).all(axis=1)[idx].all(axis=2)
            n = ok.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                acc = np.where(ok, correct, 0.0).sum(axis=1) / n
            keep = n > 0
            if (~keep).any():
                probe.note_missing(
                    sample.layer,
                    self.name,
                    variant,
                    "fewer than 10 held-out clips, or no usable trial",
                    int((~keep).sum()),
                )
            if keep.any():
                frames.append(self.rows(sample, variant, {"accuracy": acc}, n, keep))
        for variant in ("random", "oracle", "missing_label", "extra_label"):
            probe.note_missing(sample.layer, self.name, variant, "reads no description", n_all)
        return pd.concat(frames, ignore_index=True) if frames else empty_scores()
