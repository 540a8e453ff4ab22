"""andlib.evaluate.scorers.registry: the scorers by name."""

from __future__ import annotations

import pytest

from andlib.config import ConfigError
from andlib.evaluate.scorers import registry
from andlib.evaluate.scorers.base import Scorer


def test_every_registered_scorer_loads_as_a_scorer_of_its_name():
    assert registry.scorer_names() == ["simulation", "detection", "intruder"]
    for name in registry.scorer_names():
        scorer = registry.get_scorer(name)
        assert isinstance(scorer, Scorer) and scorer.name == name


def test_scorer_lists_are_checked_and_deduplicated():
    assert registry.resolve_scorers(None) == registry.scorer_names()
    assert registry.resolve_scorers(["intruder", "intruder", "simulation"]) == [
        "intruder",
        "simulation",
    ]
    with pytest.raises(ConfigError, match="unknown scorer.*'nope'"):
        registry.resolve_scorers(["simulation", "nope"])
    with pytest.raises(ConfigError, match="registered: simulation"):
        registry.get_scorer("nope")
