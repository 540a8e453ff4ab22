"""One strategy's run of a comparison config (``strategies``), and the base run it reuses.

:func:`strategy_overrides` turns a strategies config into the config of one strategy's run:
``<run_dir>/<strategy>/`` (``seed<k>/`` below it for one training seed), its model
(``strategy_models``), its own settings (``strategy_settings``), and for a strategy of
``base_runs`` everything its recording is keyed by taken from the base run's config
(:func:`base_config`): the ``model``, ``data``, ``record`` and ``train`` settings that are not
about how a stage runs, and ``seed``. That run's ``record.base`` names the base run's directory
and the command that makes it, so its record stage links the base run's neurons instead of
recording them (:mod:`andlib.models.base_run`) and adds only its SAE layers.

A base config is a plain config (its one run) or a strategies config holding the same strategy
name (that strategy's run, ``<its run_dir>/<strategy>/``); either way its model must be the
strategy's model.

Public surface: :func:`strategy_overrides`, :func:`base_config`, :func:`base_overrides`,
:data:`RECORDING_SECTIONS`.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from andlib.config import (
    _CHOICES,
    EXECUTION,
    PROJECT_ROOT,
    Config,
    ConfigError,
    find_config_file,
    load_config,
)
from andlib.store import strategy_run_path

RECORDING_SECTIONS = ("model", "data", "record", "train")
"""The sections a strategy with a base run takes from the base config (with ``seed``): all
that its recording's key reads (``models.activations.RECORDING``, the trained model's folder)."""


def strategy_overrides(cfg: Config, strategy: str, seed: int | None) -> tuple[list[str], Path]:
    """The overrides that turn a strategies config into the config of one strategy's run (for
    training seed ``seed``, or one run), and that run's directory: ``strategies=[]``, its
    model, ``train.strategy``, ``train.seed`` (a trained strategy only), ``run_dir``
    (:func:`andlib.store.strategy_run_path`) and ``figures_dir``; then its
    ``strategy_settings``, and with a base run :func:`base_overrides`."""
    from andlib.models.families.registry import family_of

    trained = family_of(cfg.strategy_model(strategy)).trains
    folder = strategy_run_path(cfg, strategy, seed if trained else None)
    sub = [
        "strategies=[]",
        "strategy_models={}",
        *(["base_runs={}"] if cfg.base_runs else []),
        *(["strategy_settings={}"] if cfg.strategy_settings else []),
        *(["seeds=[]"] if seed is not None else []),
        f"model.name={cfg.strategy_model(strategy)}",
        *([f"train.strategy={strategy}"] if strategy in _CHOICES["train.strategy"] else []),
        *([f"train.seed={seed}"] if seed is not None and trained else []),
        f"run_dir={folder}",
        f"figures_dir={cfg.figures_path / folder.relative_to(cfg.run_path)}",
    ]
    settings = cfg.strategy_settings.get(strategy, {})
    sub += [_override(str(key), value) for key, value in settings.items()]
    if strategy in cfg.base_runs:
        sub += base_overrides(cfg, strategy)
    return sub, folder


def _override(key: str, value: Any) -> str:
    """``key=value`` as ``--set`` and :func:`andlib.config.load_config` read it back (YAML
    flow style, so a float, a list or a string with spaces round-trips)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip()
    if text.endswith("\n..."):  # a scalar's document end
        text = text[: -len("\n...")].strip()
    return f"{key}={text}"


def _shown(path: Path) -> str:
    """A path as a command names it (relative to the project when inside it)."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def base_config(cfg: Config, strategy: str) -> tuple[Config, str]:
    """The config of the base run of ``strategy`` (``base_runs[strategy]``) and the command
    that records it; a one-line :class:`ConfigError` when that config cannot be one."""
    name = f"base_runs.{strategy}"
    try:
        file = find_config_file(cfg.base_runs[strategy])
        base = load_config(file)
    except (ConfigError, FileNotFoundError) as exc:
        raise ConfigError(f"{name}: {exc}") from None
    shown = _shown(file)
    command = f"python -m andlib record --config {shown}"
    if base.strategies:
        if strategy not in base.strategies:
            raise ConfigError(
                f"{name}: {shown} compares {', '.join(base.strategies)}, not {strategy!r}"
            )
        if base.seeds or strategy in base.base_runs:
            why = "one run per seed" if base.seeds else "its own base run"
            raise ConfigError(f"{name}: {shown}'s run of {strategy!r} has {why}; name another")
        sub, folder = strategy_overrides(base, strategy, None)
        base = load_config(file, sub)
        given = [s for s in sub if not s.startswith(("run_dir=", "figures_dir="))]
        command += "".join(f" --set {shlex.quote(s)}" for s in given)
        command += f" --out {_shown(folder)}"
    command += f", or the whole run: make reproduce CONFIG={shown}"
    if base.model.name != cfg.strategy_model(strategy):
        raise ConfigError(
            f"{name}: {shown} dissects {base.model.name}, not {strategy!r}'s model "
            f"{cfg.strategy_model(strategy)}"
        )
    return base, command


def _leaves(obj: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every setting of a section that is keyed (not
    :data:`andlib.config.EXECUTION`), nested sections unfolded."""
    for f in dataclasses.fields(obj):
        if f.metadata.get(EXECUTION):
            continue
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value


def base_overrides(cfg: Config, strategy: str) -> list[str]:
    """The overrides that give ``strategy``'s run its base run's recording: each keyed
    setting of :data:`RECORDING_SECTIONS` and ``seed`` where the base config differs from
    ``cfg``, then ``record.base.run_dir`` and ``record.base.command``. A
    ``strategy_settings`` entry of those sections is a :class:`ConfigError` (the recording is
    the base run's)."""
    own = [
        str(k)
        for k in cfg.strategy_settings.get(strategy, {})
        if str(k) == "seed" or str(k).split(".")[0] in RECORDING_SECTIONS
    ]
    if own:
        raise ConfigError(
            f"strategy_settings.{strategy}.{own[0]}: {strategy!r} records what its base run "
            "records (base_runs); set it in the base config"
        )
    base, command = base_config(cfg, strategy)
    out = [_override("seed", base.seed)] if base.seed != cfg.seed else []
    for section in RECORDING_SECTIONS:
        mine = dict(_leaves(getattr(cfg, section), f"{section}."))
        out += [
            _override(key, value)
            for key, value in _leaves(getattr(base, section), f"{section}.")
            if mine.get(key, object()) != value
        ]
    out += [
        _override("record.base.run_dir", str(base.run_path)),
        _override("record.base.command", command),
    ]
    return out
