"""The run directory: one folder holds every stage's outputs, written atomically.

A stage records the hash of the inputs it depends on in ``.stages/<stage>.json``; when the
hash and the outputs are unchanged, :meth:`RunDir.is_fresh` says so and the stage is reused
instead of recomputed. Files are written to a temporary name and renamed into place, so an
interrupted run never leaves a half-written output behind.

Files a run directory holds (each written by the stage in brackets):

- ``config.yaml`` (every stage: the resolved config), ``skipped.csv`` (data)
- ``model.json`` (record: what was dissected)
- ``clips.csv`` (record: clip order of every activation array)
- ``activations/<layer>.npy`` + ``activations/index.json`` (record)
- ``neuron_topk.csv`` (record)
- ``captions.csv``, ``features.csv`` (caption)
- ``summaries.csv`` (summarize), ``neurons.csv`` (concepts)
- ``last_layer.json``, ``simulation_scores.csv`` (evaluate), ``pruning.csv`` (prune)
- ``notebooks/`` (reproduce: executed notebooks)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from andlib.config import Config, dump_config, resolve_path

_UMASK = os.umask(0)
os.umask(_UMASK)

RESOURCE_DIR = Path(__file__).resolve().parent / "resources"
"""The lexicons and concept sets shipped with andlib; ``$ANDLIB_RESOURCES`` names another
folder (a test points it at an edited copy)."""
PROMPT_PREFIX = "prompts:"


def resource_dir() -> Path:
    """The folder shipped resources are read from: ``$ANDLIB_RESOURCES``, else :data:`RESOURCE_DIR`."""
    env = os.environ.get("ANDLIB_RESOURCES", "").strip()
    return Path(env).expanduser() if env else RESOURCE_DIR


def resource_path(name: str | os.PathLike) -> Path:
    """A shipped resource by file name (``"sound_adjectives.txt"``, in :func:`resource_dir`),
    else a file path: as given when it exists, else relative to the project root."""
    p = Path(name).expanduser()
    if len(p.parts) == 1 and (resource_dir() / p).is_file():
        return resource_dir() / p
    return p if p.is_absolute() or p.exists() else resolve_path(p)


def _digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def resource_digest(*names: str) -> dict[str, str]:
    """What a stage's results depend on besides its config: ``{name: content hash}``.

    Each name is a resource file (a shipped one by file name, ``"sound_adjectives.txt"``, or
    any path, see :func:`resource_path`), hashed by its bytes, or ``"prompts:<task>"``: the
    templates of :data:`andlib.text.prompts.PROMPTS[task] <andlib.text.prompts.PROMPTS>`, hashed by
    their text. Stages put this into their cache key (:meth:`RunDir.is_fresh`), so editing a
    lexicon or a prompt recomputes exactly the stages that read it; the hash depends on
    contents only (never on where the project lives or on file times), so an unchanged
    resource leaves the key unchanged. A missing file is a ``FileNotFoundError``.
    """
    out: dict[str, str] = {}
    for name in names:
        name = str(name)
        if name.startswith(PROMPT_PREFIX):
            from andlib.text.prompts import PROMPTS

            task = name[len(PROMPT_PREFIX) :]
            if task not in PROMPTS:
                raise KeyError(f"{name}: no such prompt (tasks: {', '.join(PROMPTS)})")
            blob = json.dumps(PROMPTS[task], sort_keys=True).encode("utf-8")
        else:
            path = resource_path(name)
            if not path.is_file():
                raise FileNotFoundError(f"resource {name!r} does not exist ({path})")
            blob = path.read_bytes()
        out[name] = _digest_bytes(blob)
    return out


def _publish(tmp: str, path: Path) -> None:
    """Give the temp file ordinary permissions (mkstemp makes it 0600) and move it into place."""
    os.chmod(tmp, 0o666 & ~_UMASK)
    os.replace(tmp, path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a ``.npy`` file atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        _publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_csv(path: str | os.PathLike, df: pd.DataFrame) -> None:
    atomic_write_text(path, df.to_csv(index=False))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(
        path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    )


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


class RunDir:
    """A run directory; stages read their inputs from it and write their outputs into it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_config(cls, cfg: Config) -> RunDir:
        run = cls(cfg.run_path)
        atomic_write_text(run.path / "config.yaml", dump_config(cfg))
        return run

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def exists(self, name: str) -> bool:
        return (self.path / name).exists()

    def require(self, name: str, stage: str) -> Path:
        """The path of an input file, or an error saying which stage makes it."""
        p = self.path / name
        if not p.exists():
            raise FileNotFoundError(f"{p} is missing: run the {stage!r} stage first")
        return p

    # ---- reading and writing ---------------------------------------------------------------
    def write_csv(self, name: str, df: pd.DataFrame) -> Path:
        write_csv(self.path / name, df)
        return self.path / name

    def read_csv(self, name: str, stage: str | None = None, **kwargs: Any) -> pd.DataFrame:
        p = self.require(name, stage or "earlier") if stage else self.path / name
        return pd.read_csv(p, keep_default_na=False, **kwargs)

    def write_json(self, name: str, obj: Any) -> Path:
        write_json(self.path / name, obj)
        return self.path / name

    def read_json(self, name: str, stage: str | None = None) -> Any:
        p = self.require(name, stage or "earlier") if stage else self.path / name
        return json.loads(p.read_text())

    # ---- stage cache ----------------------------------------------------------------------
    def _stage_file(self, stage: str) -> Path:
        return self.path / ".stages" / f"{stage}.json"

    def is_fresh(self, stage: str, key: str) -> bool:
        """True when ``stage`` finished with this input ``key`` and its outputs still exist."""
        f = self._stage_file(stage)
        if not f.exists():
            return False
        rec = json.loads(f.read_text())
        return rec.get("key") == key and all(
            (self.path / o).exists() for o in rec.get("outputs", [])
        )

    def stage_key(self, stage: str) -> str | None:
        f = self._stage_file(stage)
        return json.loads(f.read_text()).get("key") if f.exists() else None

    def mark_done(self, stage: str, key: str, outputs: Iterable[str], **info: Any) -> None:
        write_json(
            self._stage_file(stage),
            {
                "key": key,
                "outputs": list(outputs),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                **info,
            },
        )

    def invalidate(self, stage: str) -> None:
        self._stage_file(stage).unlink(missing_ok=True)

    # ---- logging --------------------------------------------------------------------------
    def logger(self, stage: str) -> logging.Logger:
        """A logger that also appends to ``run.log`` in the run directory."""
        log = logging.getLogger(f"andlib.run.{stage}")
        target = str(self.path / "run.log")
        if not any(
            isinstance(h, logging.FileHandler) and h.baseFilename == target for h in log.handlers
        ):
            h = logging.FileHandler(target)
            h.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
            log.addHandler(h)
        log.setLevel(logging.INFO)
        return log


def show_logs(level: int = logging.INFO) -> None:
    """Print andlib's log lines (stage progress, timings, warnings) with their time, for a
    notebook or a script: ``logging.basicConfig`` at ``level`` (no-op when already set up)."""
    logging.basicConfig(level=level, format="%(asctime)s %(message)s")


def strategy_run_path(cfg: Config, strategy: str, seed: int | None = None) -> Path:
    """The run directory of one strategy of a strategies config: ``<run_dir>/<strategy>``, or
    for one training seed ``<run_dir>/<strategy>/seed<k>``."""
    path = cfg.run_path / strategy
    return path if seed is None else path / f"seed{seed}"
