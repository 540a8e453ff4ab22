"""Run the chosen scorers (``evaluate.scorers``) over every scored layer of a run:
:func:`score_run` returns the rows of ``scores.csv`` and of ``score_missing.csv``."""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd

from andlib.config import Config
from andlib.evaluate.scorers.base import MISSING_COLUMNS, SCORE_COLUMNS, empty_scores
from andlib.evaluate.scorers.inputs import prepare
from andlib.evaluate.scorers.registry import get_scorer, resolve_scorers
from andlib.evaluate.scorers.simulation import use_llm
from andlib.store import RunDir

log = logging.getLogger(__name__)


def score_run(
    cfg: Config,
    run: RunDir,
    embedder: Any = None,
    llm: Any = None,
    names: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """``(scores, missing, seconds)``: every chosen scorer (``names``, default
    ``evaluate.scorers``) on every layer's sample; ``seconds`` per scorer (and ``prepare``)."""
    chosen = resolve_scorers(names if names is not None else cfg.evaluate.scorers)
    if embedder is None:
        from andlib.text.embeddings import get_embedder

        embedder = get_embedder(cfg)
    if llm is None and use_llm(cfg):
        from andlib.text.llm import get_llm

        llm = get_llm(cfg.llm, cfg.cache_path)
    t0 = time.perf_counter()
    probe, samples = prepare(cfg, run, embedder, llm)
    seconds = {"prepare": time.perf_counter() - t0}
    frames = []
    for name in chosen:
        scorer = get_scorer(name)
        t0 = time.perf_counter()
        for sample in samples:
            frames.append(scorer.score(probe, sample))
        seconds[name] = time.perf_counter() - t0
        log.info("scorer %s: %.1f s over %d layers", name, seconds[name], len(samples))
    frames = [f for f in frames if len(f)]
    scores = pd.concat(frames, ignore_index=True) if frames else empty_scores()
    missing = pd.DataFrame(probe.missing, columns=MISSING_COLUMNS)
    return scores[SCORE_COLUMNS], missing, seconds
