"""The scorers by name: adding a scorer is one module with a :class:`~.base.Scorer` subclass
plus one line in :data:`SCORERS`.

Entries are ``"module:Class"`` strings, imported on use, so that this registry imports no
scorer module (and nothing imports a scorer it does not run).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from andlib.config import ConfigError

if TYPE_CHECKING:
    from andlib.evaluate.scorers.base import Scorer

SCORERS: dict[str, str] = {
    "simulation": "andlib.evaluate.scorers.simulation:SimulationScorer",
    "detection": "andlib.evaluate.scorers.detection:DetectionScorer",
    "intruder": "andlib.evaluate.scorers.intruder:IntruderScorer",
}
"""Scorer name -> ``"module:Class"`` of its :class:`~.base.Scorer` subclass, in report order."""


def scorer_names() -> list[str]:
    """Every registered scorer, in report order."""
    return list(SCORERS)


def get_scorer(name: str) -> Scorer:
    """A fresh instance of the scorer registered as ``name``; :class:`ConfigError` otherwise."""
    if name not in SCORERS:
        raise ConfigError(
            f"evaluate.scorers: unknown scorer {name!r} (registered: {', '.join(SCORERS)})"
        )
    module, _, cls = SCORERS[name].partition(":")
    scorer: Scorer = getattr(importlib.import_module(module), cls)()
    return scorer


def resolve_scorers(names: Sequence[str] | None) -> list[str]:
    """``evaluate.scorers`` as a checked list (``None``: every registered scorer)."""
    if names is None:
        return scorer_names()
    out = list(dict.fromkeys(str(n) for n in names))
    unknown = [n for n in out if n not in SCORERS]
    if unknown:
        raise ConfigError(
            f"evaluate.scorers: unknown scorer(s) {', '.join(map(repr, unknown))} "
            f"(registered: {', '.join(SCORERS)})"
        )
    return out
