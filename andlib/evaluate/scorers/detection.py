"""Detection: can a simulator that reads only the description tell a neuron's activating
held-out clips from non-activating ones?

**Samples** (:func:`detection_sample`). Only held-out clips (not among those the description
was built from) are drawn. The held-out clips are split in two halves (seeded); from each
half, the activating clips are its clips in the top 10 % of the neuron's held-out
activations, drawn one from each of as many equal sub-quantile bins of that decile as are
wanted (so they span the decile), and as many non-activating clips are drawn at random from
its clips below the median. ``evaluate.detection_samples`` activating clips are wanted in all
(half from each half), plus as many non-activating ones.

**Simulators.** Offline, the score of a clip is the cosine similarity of its caption and the
description (sentence embedder); the threshold is fitted on one half's samples (the highest
balanced accuracy) and applied to the other's, both ways (cross-fitted). The ``oracle``
variant scores a clip by the neuron's leave-one-out class-mean activation. With a generative
LLM, ``detection_llm`` asks yes/no per caption (one batched, cached request per neuron, the
captions in seeded order) for a seeded subset of the neurons; yes is the prediction.

**Metrics**: ``auroc``, ``auprc`` and, at the threshold, ``balanced_accuracy``, ``f1``,
``iou`` (``n``: the samples scored).
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import pandas as pd

from andlib.config import rng
from andlib.evaluate.scorers.base import (
    DESCRIPTION_VARIANTS,
    LayerSample,
    Probe,
    Scorer,
    empty_scores,
    label_oracle,
)
from andlib.evaluate.scorers.metrics import auprc, auroc, crossfit_predict, threshold_metrics
from andlib.evaluate.scorers.simulation import llm_subset, use_llm
from andlib.text.llm import LLMError
from andlib.text.prompts import detection_messages, parse_yes_no_lines

log = logging.getLogger(__name__)

TOP_SHARE = 0.1
"""The activating clips are the top 10 % of a neuron's held-out clips."""


@dataclasses.dataclass
class DetectionSample:
    """The clips one layer's detection scores, ``[n_neurons, m]`` each: ``idx`` clip rows,
    ``labels`` (activating or not), ``fold`` (0/1: the half a sample belongs to) and ``mask``
    (a real sample; a neuron with fewer held-out clips has fewer)."""

    idx: np.ndarray
    labels: np.ndarray
    fold: np.ndarray
    mask: np.ndarray

    def gather(self, pred: np.ndarray) -> np.ndarray:
        """``[n_neurons, m]`` values of a ``[n_clips, n_neurons]`` matrix at the samples."""
        out = np.take_along_axis(pred.T, self.idx, axis=1).astype(np.float64)
        return np.where(self.mask, out, np.nan)


def detection_sample(
    acts: np.ndarray, heldout: np.ndarray, n_per_side: int, gen: np.random.Generator
) -> DetectionSample:
    """Draw every neuron's detection samples (see the module docstring)."""
    n_neurons = acts.shape[1]
    m = 2 * n_per_side
    idx = np.zeros((n_neurons, m), dtype=np.int64)
    labels = np.zeros((n_neurons, m), dtype=bool)
    fold = np.zeros((n_neurons, m), dtype=np.int64)
    mask = np.zeros((n_neurons, m), dtype=bool)
    wanted = (math.ceil(n_per_side / 2), n_per_side // 2)
    for j in range(n_neurons):
        held = np.flatnonzero(heldout[:, j])
        if len(held) < 4:
            continue
        a = acts[held, j]
        order = np.argsort(-a, kind="stable")
        top = held[order[: max(1, math.ceil(TOP_SHARE * len(held)))]]  # highest first
        below = held[a < np.median(a)]
        half = np.zeros(acts.shape[0], dtype=np.int64)
        half[held[gen.permutation(len(held))]] = np.arange(len(held)) % 2
        pos = 0
        for f in (0, 1):
            top_f = top[half[top] == f]
            below_f = below[half[below] == f]
            k = min(wanted[f], len(top_f), len(below_f))
            if k == 0:
                continue
            picks = [int(gen.choice(b)) for b in np.array_split(top_f, k)]
            picks += gen.choice(below_f, size=k, replace=False).tolist()
            n = len(picks)
            idx[j, pos : pos + n] = picks
            labels[j, pos : pos + k] = True
            fold[j, pos : pos + n] = f
            mask[j, pos : pos + n] = True
            pos += n
    return DetectionSample(idx, labels, fold, mask)


def detection_metrics(
    scores: np.ndarray, sample: DetectionSample, crossfit: bool = True
) -> dict[str, np.ndarray]:
    """``{auroc, auprc, balanced_accuracy, f1, iou}`` per neuron; the threshold cross-fitted
    (``crossfit``) or 0.5 (a yes/no simulator's 1/0)."""
    usable = sample.mask & np.isfinite(scores)
    if crossfit:
        pred, _ = crossfit_predict(scores, sample.labels, sample.fold, usable)
    else:
        pred = np.nan_to_num(scores) >= 0.5
    return {
        "auroc": auroc(scores, sample.labels, usable),
        "auprc": auprc(scores, sample.labels, usable),
        **threshold_metrics(pred, sample.labels, usable),
    }


class DetectionScorer(Scorer):
    name = "detection"
    metrics = ("auroc", "auprc", "balanced_accuracy", "f1", "iou")

    def sample(self, probe: Probe, layer: LayerSample) -> DetectionSample:
        gen = rng(probe.cfg, "detection", layer.layer)
        return detection_sample(
            layer.acts, layer.heldout, probe.cfg.evaluate.detection_samples, gen
        )

    def score(self, probe: Probe, sample: LayerSample) -> pd.DataFrame:
        det = self.sample(probe, sample)
        frames = []
        for variant in DESCRIPTION_VARIANTS:
            keep = sample.defined(variant)
            self.note_undefined(probe, sample, variant)
            if not keep.any():
                continue
            pred = probe.cap_emb @ np.nan_to_num(probe.vectors(sample.texts[variant])).T
            frames.append(self._rows(sample, det, variant, det.gather(pred), keep))
        if probe.oracle_reason:
            probe.note_missing(
                sample.layer, self.name, "oracle", probe.oracle_reason, len(sample.neurons)
            )
        else:
            pred = label_oracle(sample.acts, probe.categories, sample.heldout)
            frames.append(self._rows(sample, det, "oracle", det.gather(pred), None))
        if use_llm(probe.cfg) and probe.llm is not None:
            try:
                frames.append(self._llm(probe, sample, det))
            except LLMError as exc:  # an unreachable server must not cost the other scores
                log.warning("LLM detection skipped for %s: %s", sample.layer, exc)
                probe.note_missing(
                    sample.layer, "detection_llm", "own", f"LLM failed: {exc}", len(sample.neurons)
                )
        return pd.concat(frames, ignore_index=True) if frames else empty_scores()

    def _rows(
        self,
        sample: LayerSample,
        det: DetectionSample,
        variant: str,
        scores: np.ndarray,
        keep: np.ndarray | None,
        crossfit: bool = True,
        scorer: str | None = None,
    ) -> pd.DataFrame:
        values = detection_metrics(scores, det, crossfit)
        n = (det.mask & np.isfinite(scores)).sum(axis=1)
        return self.rows(sample, variant, values, n, keep, scorer=scorer)

    def _llm(self, probe: Probe, sample: LayerSample, det: DetectionSample) -> pd.DataFrame:
        cols = llm_subset(probe.cfg, sample.layer, len(sample.neurons), "detection")
        gen = rng(probe.cfg, "detection", sample.layer, "llm", "order")
        orders = [gen.permutation(np.flatnonzero(det.mask[j])) for j in cols]
        replies = probe.llm.complete_many(
            [
                detection_messages(
                    sample.texts["own"][j], [probe.captions[det.idx[j, s]] for s in order]
                )
                for j, order in zip(cols, orders, strict=True)
            ],
            [f"{sample.layer} neuron {sample.neurons[j]} (detection)" for j in cols],
        )
        scores = np.full(det.idx.shape, np.nan)
        for j, order, reply in zip(cols, orders, replies, strict=True):
            for s, answer in zip(order, parse_yes_no_lines(reply, len(order)), strict=True):
                if answer is not None:
                    scores[j, s] = float(answer)
        keep = np.zeros(len(sample.neurons), dtype=bool)
        keep[cols] = True
        return self._rows(sample, det, "own", scores, keep, crossfit=False, scorer="detection_llm")
