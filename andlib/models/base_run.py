"""The record stage's reuse of another run's recorded neurons (``record.base``).

A run whose ``record.base.run_dir`` names a *base run* (set by a comparison config's
``base_runs``: an SAE run on the default run's model, say) records no neuron itself. When the
base run holds a finished recording under exactly the key this run would record under
(:func:`andlib.models.recording.recording_key`: the record stage's ``RECORDING`` key, the model's
name and weight fingerprint, the layers, the pooling, the batch size and the clip ids),
:func:`reuse_recording` links its ``activations/`` into this run (hard links, copies across
file systems; every later write there replaces a file, so the base run is never changed) and
copies ``clips.csv`` and ``skipped.csv``. The record stage then adds only what this run adds
(the SAE layers) and writes its own top-K table and ``model.json``.

A base run that is missing (no finished recording) or stale (recorded under another key) is a
one-line :class:`ConfigError` naming ``record.base.command``, the command that makes it; with
``record.base.missing: record`` the neurons are recorded in this run instead, with a warning.

Public surface: :func:`base_run`, :func:`reuse_recording`, :data:`COPIED`.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from andlib.activation_cache import ACTIVATIONS, ActivationCache
from andlib.config import Config, ConfigError, resolve_path
from andlib.data.audio import ProbingSet
from andlib.models.base import TargetModel
from andlib.models.layers import resolve_layers
from andlib.models.recording import SKIPPED_LOG, target_recording_key
from andlib.store import RunDir

log = logging.getLogger(__name__)

COPIED = ("clips.csv", "skipped.csv")
"""The base run's files the run gets as they are, beside its ``activations/``."""


def _unusable(cfg: Config, base: Path, what: str) -> None:
    """A base run that cannot be reused: a one-line error naming the command that makes it,
    or under ``record.base.missing: record`` a warning (the caller records the neurons)."""
    if cfg.record.base.missing == "record":
        log.warning("the base run %s %s; recording the neurons in this run", base, what)
        return
    command = cfg.record.base.command or "the record stage of its config"
    raise ConfigError(
        f"record.base: the base run {base} {what}; make it with: {command}; "
        "or set record.base.missing=record to record the neurons in this run"
    )


def base_run(cfg: Config, run: RunDir) -> Path | None:
    """The directory of the run whose recording ``run`` reuses: ``None`` without
    ``record.base.run_dir``, or when that run has no finished recording and
    ``record.base.missing`` is ``record``; else a one-line :class:`ConfigError`."""
    if not cfg.record.base.run_dir:
        return None
    base = resolve_path(cfg.record.base.run_dir)
    if base.resolve() == run.path.resolve():
        raise ConfigError(f"record.base.run_dir: {base} is this run's own directory")
    if not (base / ACTIVATIONS / "index.json").is_file():
        _unusable(cfg, base, "has no finished recording")
        return None
    return base


def _link(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:  # another file system
        shutil.copy2(src, dest)


def reuse_recording(
    cfg: Config,
    run: RunDir,
    base: Path,
    target: TargetModel,
    probing_set: ProbingSet,
    key: str,
) -> ActivationCache | None:
    """Link ``base``'s recorded neurons into ``run`` when they are what ``run`` would record
    (``key``: its ``RECORDING`` key; ``target`` and ``probing_set`` loaded as for recording)
    and return them; no forward pass is made. A stale base run is a one-line
    :class:`ConfigError` (``None`` under ``record.base.missing: record``)."""
    layer_map = resolve_layers(target.module, cfg.record.layers)
    expected = target_recording_key(
        key, target, layer_map, cfg.record.pooling, cfg.model.batch_size, probing_set.clip_ids
    )
    source = base / ACTIVATIONS
    if not ActivationCache.is_complete(source, expected):
        what = "was recorded under another key (other settings, model, clips or older code)"
        _unusable(cfg, base, what)
        return None
    missing = [name for name in COPIED if not (base / name).is_file()]
    if missing:
        _unusable(cfg, base, f"has no {', '.join(missing)}")
        return None
    dest = run.path / ACTIVATIONS
    if dest.exists():
        shutil.rmtree(dest)
    recorded = ActivationCache(source)
    for layer in recorded.layers:
        for name in recorded.files(layer):
            _link(source / name, dest / name)
    if (source / SKIPPED_LOG).is_file():
        shutil.copyfile(source / SKIPPED_LOG, dest / SKIPPED_LOG)
    shutil.copyfile(source / "index.json", dest / "index.json")
    for name in COPIED:
        shutil.copyfile(base / name, run / name)
    log.info("reusing the neurons recorded in %s: nothing recorded", base)
    return ActivationCache(dest)
