"""The project's own model: ``trained:<strategy>``, the small AST that the ``train`` stage
(:mod:`andlib.models.train`) trains offline on ESC-50 and saves with ``save_pretrained`` in the
cache; it then loads like any Hugging Face classifier (``preset:ast`` fits it). Loading never
trains: a model the ``train`` stage has not made yet is a ``ModelLoadError`` naming the
command that makes it.

Public surface: :data:`FAMILY`.
"""

from __future__ import annotations

from typing import Any

from andlib.config import Config
from andlib.models.base import TargetModel
from andlib.models.families.base import Family
from andlib.models.families.huggingface import load_pretrained

PREFIX = "trained:"


def strategy_of(name: str) -> str | None:
    """``"trained:ssl-frozen" -> "ssl-frozen"``; ``None`` for ``trained:`` (the config's)."""
    return name.split(":", 1)[1] or None


def _load(cfg: Config) -> TargetModel:
    from andlib.models import train

    strategy = strategy_of(cfg.model.name) or cfg.train.strategy
    path = train.trained_model(cfg, strategy)
    return load_pretrained(path, "classification", cfg.model.device, cfg.model.dtype)


def _record_settings(cfg: Config) -> dict[str, Any]:
    """The trained model's cache folder name, which hashes exactly the training settings that
    strategy depends on (not the whole ``train`` section)."""
    from andlib.models.train import model_dir

    return {"trained": model_dir(cfg, strategy_of(cfg.model.name)).name}


FAMILY = Family(
    name="trained",
    matches=lambda name: name.startswith(PREFIX),
    load=_load,
    names=("trained:<strategy>",),
    trains=True,
    record_settings=_record_settings,
)
