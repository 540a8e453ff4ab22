"""Simulation: from the description alone, predict the neuron's activation on every held-out
clip (the clips the description was not built from), and correlate prediction and truth.

The offline simulator predicts the cosine similarity of each clip's caption and the text
scored (``metric``: ``pearson``, ``spearman``; ``n``: the clips correlated). The ``oracle``
variant predicts the leave-one-out class-mean activation (no description: how much of the
neuron the label alone can explain). With a generative LLM (``llm.backend`` not
``extractive`` and ``evaluate.llm_simulation``), ``simulation_llm`` rows add an LLM's 0-10
ratings of a seeded sample of held-out captions (``evaluate.llm_simulation_clips``) for a
seeded subset of the neurons (``evaluate.llm_simulation_max_neurons``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import pandas as pd

from andlib.config import Config, rng
from andlib.evaluate.scorers.base import (
    DESCRIPTION_VARIANTS,
    LayerSample,
    Probe,
    Scorer,
    empty_scores,
    label_oracle,
)
from andlib.evaluate.scorers.metrics import pearson, spearman
from andlib.text.llm import LLMError
from andlib.text.prompts import simulation_messages

log = logging.getLogger(__name__)


def parse_ratings(reply: str, n: int) -> np.ndarray:
    """Ratings ``[n]`` from an LLM reply of ``"<number>: <rating>"`` lines (1-based); NaN if missing."""
    out = np.full(n, np.nan)
    for m in re.finditer(r"^\W*(\d+)\s*[:.)\-=]\s*(-?\d+(?:\.\d+)?)", reply, flags=re.M):
        i, value = int(m.group(1)) - 1, float(m.group(2))
        if 0 <= i < n and np.isnan(out[i]):
            out[i] = min(max(value, 0.0), 10.0)
    return out


def llm_simulate(
    llm: Any, descriptions: list[str], captions: list[list[str]], labels: list[str] | None = None
) -> list[np.ndarray]:
    """LLM ratings (0-10) of each neuron's captions against its description, one batch call."""
    prompts = [
        simulation_messages(desc, caps) for desc, caps in zip(descriptions, captions, strict=True)
    ]
    replies = llm.complete_many(prompts, labels)
    return [parse_ratings(r, len(c)) for r, c in zip(replies, captions, strict=True)]


def use_llm(cfg: Config) -> bool:
    """Whether the LLM simulators run: ``evaluate.llm_simulation`` and a generative backend."""
    return cfg.evaluate.llm_simulation and cfg.llm.backend != "extractive"


def llm_subset(cfg: Config, layer: str, n: int, purpose: str) -> list[int]:
    """The seeded subset of a layer's sampled neurons (column indices) an LLM scores."""
    gen = rng(cfg, purpose, layer, "llm")
    size = min(cfg.evaluate.llm_simulation_max_neurons, n)
    return sorted(gen.choice(n, size=size, replace=False).tolist())


class SimulationScorer(Scorer):
    name = "simulation"
    metrics = ("pearson", "spearman")

    def score(self, probe: Probe, sample: LayerSample) -> pd.DataFrame:
        frames = []
        acts, mask = sample.acts, sample.heldout
        for variant in DESCRIPTION_VARIANTS:
            keep = sample.defined(variant)
            self.note_undefined(probe, sample, variant)
            if not keep.any():
                continue
            pred = probe.cap_emb @ np.nan_to_num(probe.vectors(sample.texts[variant])).T
            frames.append(self._correlate(sample, variant, pred, keep))
        if probe.oracle_reason:
            probe.note_missing(
                sample.layer, self.name, "oracle", probe.oracle_reason, len(sample.neurons)
            )
        else:
            pred = label_oracle(acts, probe.categories, mask)
            frames.append(self._correlate(sample, "oracle", pred, None))
        if use_llm(probe.cfg) and probe.llm is not None:
            try:
                frames.append(self._llm(probe, sample))
            except LLMError as exc:  # an unreachable server must not cost the other scores
                log.warning("LLM simulator skipped for %s: %s", sample.layer, exc)
                probe.note_missing(
                    sample.layer, "simulation_llm", "own", f"LLM failed: {exc}", len(sample.neurons)
                )
        return pd.concat(frames, ignore_index=True) if frames else empty_scores()

    def _correlate(
        self, sample: LayerSample, variant: str, pred: np.ndarray, keep: np.ndarray | None
    ) -> pd.DataFrame:
        usable = sample.heldout & np.isfinite(pred)
        values = {
            "pearson": np.asarray(pearson(pred, sample.acts, usable)),
            "spearman": np.asarray(spearman(pred, sample.acts, usable)),
        }
        return self.rows(sample, variant, values, usable.sum(axis=0), keep)

    def _llm(self, probe: Probe, sample: LayerSample) -> pd.DataFrame:
        cfg = probe.cfg
        cols = llm_subset(cfg, sample.layer, len(sample.neurons), "simulation")
        gen = rng(cfg, "simulation", sample.layer, "llm", "clips")
        clip_sets = []
        for j in cols:
            pool = np.flatnonzero(sample.heldout[:, j])
            size = min(cfg.evaluate.llm_simulation_clips, len(pool))
            clip_sets.append(np.sort(gen.choice(pool, size=size, replace=False)))
        ratings = llm_simulate(
            probe.llm,
            [sample.texts["own"][j] for j in cols],
            [[probe.captions[i] for i in s] for s in clip_sets],
            [f"{sample.layer} neuron {sample.neurons[j]} (simulation)" for j in cols],
        )
        r_all = np.full(len(sample.neurons), np.nan)
        s_all = np.full(len(sample.neurons), np.nan)
        n_all = np.zeros(len(sample.neurons), dtype=np.int64)
        for j, s, r in zip(cols, clip_sets, ratings, strict=True):
            r_all[j] = pearson(r, sample.acts[s, j])
            s_all[j] = spearman(r, sample.acts[s, j])
            n_all[j] = int(np.isfinite(r).sum())
        keep = np.zeros(len(sample.neurons), dtype=bool)
        keep[cols] = True
        values = {"pearson": r_all, "spearman": s_all}
        return self.rows(sample, "own", values, n_all, keep, scorer="simulation_llm")
