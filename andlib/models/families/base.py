"""What a model family is: :class:`Family`.

A family is everything the pipeline needs to know about one kind of target model, in one
place: the names it answers to, how it loads (preprocessing included, in the
:class:`~andlib.models.base.TargetModel` it returns), the hook-point presets it brings, what
its output neurons are, whether it must be trained first, what the record stage's cache key
must add for it, and the name of its own config block (``model.<block>``). The stages ask the
family (:func:`andlib.models.families.registry.family_of`) and never test model names.

Public surface: :class:`Family`, :data:`OUTPUTS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from andlib.config import Config
from andlib.models.base import BlockPreset, TargetModel

OUTPUTS = ("classes", "pitch")
"""What a family's output (``classifier``) neurons are: ``classes`` (named classes, scored by
the last-layer evaluation) or ``pitch`` (pitch bins, scored by :mod:`andlib.evaluate.pitch`)."""


def _no_settings(cfg: Config) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Family:
    """One model family, registered once (``FAMILY`` in its module)."""

    name: str
    matches: Callable[[str], bool]
    """Whether a ``model.name`` belongs to this family."""
    load: Callable[[Config], TargetModel]
    """Load ``cfg.model.name`` (with ``cfg.model`` and the family's own block) as a target."""
    names: tuple[str, ...] = ()
    """The names (or name patterns) it answers to, for messages and docs."""
    presets: Mapping[str, BlockPreset] = field(default_factory=dict)
    """``preset:<name>`` hook points this family brings."""
    preset_aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """``preset:<alias>``: whichever of the named presets fits the model."""
    outputs: str = "classes"
    """What the output neurons are (one of :data:`OUTPUTS`)."""
    trains: bool = False
    """Whether the model is trained by the ``train`` stage before it can be loaded."""
    record_settings: Callable[[Config], dict[str, Any]] = _no_settings
    """What the record stage's cache key adds for this family (files the weights come from)."""
    options: str | None = None
    """The attribute of ``cfg.model`` holding the family's own settings (``whisper``)."""
    fit: Callable[[Config], dict[str, Any]] | None = None
    """What the ``train`` stage fits for a model of this family before it can be loaded,
    beside training it (the probe head of an encoder); returns what it reports. ``None``:
    nothing."""
    identity: Callable[[str], str] | None = None
    """Which model a name means, whatever its source: names of one model give one identity
    (``whisper-base`` and ``openai/whisper-base``: ``whisper base``). ``None``: the name itself,
    lowercased (see :meth:`model_identity`)."""

    def __post_init__(self) -> None:
        if self.outputs not in OUTPUTS:
            raise ValueError(f"family {self.name}: outputs {self.outputs!r} not in {OUTPUTS}")

    def model_identity(self, name: str) -> str:
        """``<family> <model>``: equal for two names of the same model (the same family and
        size, from any source)."""
        own = self.identity(name) if self.identity else name.strip().lower().rstrip("/")
        return f"{self.name} {own}"

    def settings(self, cfg: Config) -> Any:
        """The family's own config block (``cfg.model.<options>``), or ``None``."""
        return getattr(cfg.model, self.options) if self.options else None
