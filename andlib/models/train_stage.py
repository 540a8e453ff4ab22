"""The ``train`` stage: train (or reuse) the project's models that a config needs, or fit what
the target's family fits before it can be loaded (a Whisper encoder's probe head,
``Family.fit``). Training itself is :mod:`andlib.models.train`; this module sits above it and
the family registry, which loads what the stage makes.

Public surface: :data:`STAGE`, :data:`SPEC`, :func:`run_stage`.
"""

from __future__ import annotations

from typing import Any

from andlib.config import Config
from andlib.models import train
from andlib.models.families.registry import family_of
from andlib.store import RunDir, Stage


def _stage_settings(cfg: Config, run: RunDir) -> dict[str, Any]:
    return {"models": [path.name for _, _, path in train.planned_models(cfg)]}


def _fit_family(cfg: Config) -> dict[str, Any]:
    """What the target's family fits before it can be loaded (``Family.fit``: a Whisper
    encoder's probe head), for a config of one target; empty when there is nothing."""
    if cfg.strategies:
        return {}
    family = family_of(cfg.model.name)
    return family.fit(cfg) if family.fit is not None else {}


STAGE = "train"
SPEC = Stage(STAGE, settings=_stage_settings)
"""The ``train`` stage's key: the cache folder names of the models it makes, each a hash of
the training settings its strategy reads, the data settings and the training seed
(:func:`model_dir`). The models live in ``<cache_dir>/models/``, shared by every run."""


def run_stage(cfg: Config, run: RunDir) -> dict[str, Any]:
    """Train (or reuse) the model(s) the config needs; return their metrics.

    One strategy: its metrics and ``model_dir``. Several (``cfg.strategies``): the same keys
    prefixed ``<strategy>.``; with ``cfg.seeds``, every strategy once per training seed,
    prefixed ``<strategy>.seed<k>.``. A target that needs no training (a hub checkpoint, a
    pitch network, a Whisper encoder): nothing to do. Recorded as the run's ``train`` stage
    (:data:`SPEC`).
    """
    planned = train.planned_models(cfg)
    if not planned:
        fitted = _fit_family(cfg)
        if fitted:
            return fitted
        return {
            "train": f"nothing to train: model.name={cfg.model.name!r} is not trained:<strategy>"
        }
    key = SPEC.key(cfg, run)
    several = len({strategy for _, strategy, _ in planned}) > 1
    summary: dict[str, Any] = {}
    for seed, strategy, _ in planned:
        path = train.ensure_trained(train.with_train_seed(cfg, seed), strategy)
        metrics = train.read_metrics(path)
        row = {"model_dir": str(path), **{k: metrics.get(k) for k in train.SUMMARY_KEYS}}
        prefix = f"{strategy}." if several or seed is not None else ""
        prefix += f"seed{seed}." if seed is not None else ""
        summary.update({f"{prefix}{k}": v for k, v in row.items()})
    # the models live in the shared cache, not in the run: the record names them
    run.mark_done(STAGE, key, outputs=[], models=[str(p) for _, _, p in planned])
    return summary
