"""Layer resolution: turn the config's layer specs into ``{key: module path}`` of a model.

A *layer* is a stable key (``layers.3.mlp``, ``classifier`` or a module path) mapped to a
module of the target model. :func:`resolve_layers` accepts module names, ``fnmatch`` globs
over module paths or preset keys, ``classifier`` and presets (``preset:<name>``, the
:class:`~andlib.models.base.BlockPreset` every model family brings, see
:func:`known_presets`); a spec that names nothing raises :class:`LayerError`, listing close
matches.

Public surface: :func:`resolve_layers`, :func:`known_presets`, :class:`LayerError`.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Sequence

from torch import nn

from andlib.models.base import BlockPreset
from andlib.models.families.registry import all_preset_aliases, all_presets


class LayerError(ValueError):
    """A layer spec names no module of the model (the message lists close matches)."""


def known_presets() -> dict[str, BlockPreset]:
    """``{name: BlockPreset}``: the presets every model family brings (``preset:ast``,
    ``preset:wav2vec2``, ``preset:crepe``, ``preset:pesto``, ``preset:whisper``, ...)."""
    return all_presets()


_GLOB_CHARS = set("*?[")


def resolve_layers(model: nn.Module, specs: Sequence[str]) -> dict[str, str]:
    """Map stable layer keys to module paths of ``model``, in spec order.

    Each spec is one of

    - ``preset:<name>`` (see :func:`known_presets`): ``preset:ast`` gives ``layers.<i>.attn``
      (attention output projection), ``layers.<i>.mlp`` (MLP hidden units after the
      activation), ``layers.<i>.out`` (block output) and ``classifier``; ``preset:wav2vec2``
      gives ``layers.<i>.mlp`` (feed-forward units after the activation), ``layers.<i>.out``
      and ``classifier`` when the model has a head;
    - ``classifier``: the classification head, whose outputs are the logits;
    - a module path (``audio_spectrogram_transformer.layers.0.mlp.fc1``) or an ``fnmatch``
      glob over module paths (``*.mlp.fc1``): the key is the module path;
    - a key of a preset that fits the model (``layers.3.mlp``), or a glob over such keys
      (``layers.*.mlp``) when it matches no module path.

    Raises :class:`LayerError` for a spec that names nothing, listing close matches.
    """
    names = [n for n, _ in model.named_modules(remove_duplicate=False) if n]
    presets: dict[str, dict[str, str] | None] = {}

    def preset(name: str) -> dict[str, str] | None:
        if name not in presets:
            try:
                presets[name] = _resolve_preset(model, name, names)
            except LayerError:
                presets[name] = None
        return presets[name]

    out: dict[str, str] = {}
    for spec in specs:
        spec = spec.strip()
        if spec.startswith("preset:"):
            found = _resolve_preset(model, spec.removeprefix("preset:"), names)
        elif spec == "classifier":
            found = {"classifier": _classifier_path(model, names)}
        elif _GLOB_CHARS & set(spec):
            found = {n: n for n in names if fnmatch.fnmatchcase(n, spec)}
            for p in filter(
                None, map(preset, known_presets())
            ):  # else a glob over keys: layers.*.mlp
                found = found or {k: v for k, v in p.items() if fnmatch.fnmatchcase(k, spec)}
            if not found:
                raise LayerError(_not_found(model, spec, names, "no module matches the glob"))
        elif _has_module(model, spec):
            found = {spec: spec}
        else:
            fitting = [p for p in map(preset, known_presets()) if p]
            keyed = [p for p in fitting if spec in p]
            if not keyed:
                known = [key for p in fitting for key in p if key not in names]
                raise LayerError(_not_found(model, spec, names + known, "no module named"))
            found = {spec: keyed[0][spec]}
        for key, path in found.items():
            out.setdefault(key, path)
    return out


def _has_module(model: nn.Module, path: str) -> bool:
    try:
        model.get_submodule(path)
    except AttributeError:
        return False
    return True


def _resolve_preset(model: nn.Module, name: str, names: list[str]) -> dict[str, str]:
    aliases = all_preset_aliases()  # preset:pitch: whichever pitch-network preset fits
    if name in aliases:
        errors = []
        for alias in aliases[name]:
            try:
                return _resolve_preset(model, alias, names)
            except LayerError as exc:
                errors.append(str(exc))
        raise LayerError(f"preset:{name} fits no preset of {aliases[name]}: {errors}")
    known = known_presets()
    if name not in known:
        raise LayerError(f"unknown preset {name!r}; presets: {', '.join(known)}")
    p = known[name]
    tried = []
    for suffix in p.containers:
        for cpath in (n for n in names if n == suffix or n.endswith("." + suffix)):
            blocks = model.get_submodule(cpath)
            if not isinstance(blocks, nn.ModuleList) or len(blocks) == 0:
                continue
            parts = {
                part: _first_existing(model, f"{cpath}.0", subs) for part, subs in p.parts.items()
            }
            if any(sub is None for sub in parts.values()):
                tried.append(cpath)
                continue
            out = {}
            for i in range(len(blocks)):
                for part, sub in parts.items():
                    path = f"{cpath}.{i}" + (f".{sub}" if sub else "")
                    model.get_submodule(path)  # every block has the same structure
                    out[f"layers.{i}.{part}"] = path
            if p.classifier:
                try:
                    out["classifier"] = _classifier_path(model, names)
                except LayerError:
                    pass  # an encoder without a head
            return out
    wanted = "; ".join(
        f"{part}: {' or '.join(s or '<block>' for s in subs)}" for part, subs in p.parts.items()
    )
    raise LayerError(
        f"preset:{name} does not fit {type(model).__name__}: no block list "
        f"({' or '.join(p.containers)}) whose blocks have {wanted}"
        + (f" (tried {', '.join(tried)})" if tried else "")
    )


def _first_existing(model: nn.Module, block: str, subs: tuple[str, ...]) -> str | None:
    for sub in subs:
        if _has_module(model, f"{block}.{sub}" if sub else block):
            return sub
    return None


def _classifier_path(model: nn.Module, names: list[str]) -> str:
    """The classification head: ``classifier``, else the shallowest ``*.classifier``."""
    heads = sorted((n for n in names if n == "classifier" or n.endswith(".classifier")), key=len)
    if not heads:
        raise LayerError(
            f"{type(model).__name__} has no classification head (no module named 'classifier'); "
            f"load the model with a head (model.kind=classification) or name a module instead"
        )
    return heads[0]


def _not_found(model: nn.Module, spec: str, names: list[str], what: str) -> str:
    tail = [n for n in names if n.endswith("." + spec.lstrip("*."))][:5]
    close = tail + [
        m for m in difflib.get_close_matches(spec, names, n=5, cutoff=0.5) if m not in tail
    ]
    hint = (
        f"close matches: {', '.join(close)}" if close else f"some modules: {', '.join(names[:8])}"
    )
    return (
        f"{what} {spec!r} in {type(model).__name__}\n  {hint}\n  (specs are module paths, "
        f"globs like *.mlp.fc1, 'classifier' or {', '.join('preset:' + p for p in known_presets())})"
    )
