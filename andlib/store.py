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
- ``last_layer/<name>/`` (the evaluate stage's control runs, made by :mod:`andlib.pipeline`:
  run directories of their own)
- ``last_layer.json``, ``caption_quality.csv``, ``scores.csv``, ``score_sanity.csv``,
  ``score_baselines.csv``, ``score_missing.csv`` (evaluate),
  ``pruning.csv`` (prune)
- ``notebooks/`` (reproduce: executed notebooks)

What a stage's key covers is declared once per stage, as a :class:`Stage` (``SPEC`` in the
stage's module).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
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
    templates of :data:`andlib.templates.PROMPTS[task] <andlib.templates.PROMPTS>`, hashed by
    their text. Stages put this into their cache key (:meth:`RunDir.is_fresh`), so editing a
    lexicon or a prompt recomputes exactly the stages that read it; the hash depends on
    contents only (never on where the project lives or on file times), so an unchanged
    resource leaves the key unchanged. A missing file is a ``FileNotFoundError``.
    """
    out: dict[str, str] = {}
    for name in names:
        name = str(name)
        if name.startswith(PROMPT_PREFIX):
            from andlib.templates import PROMPTS

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


@dataclass(frozen=True)
class Stage:
    """What a stage's outputs depend on, declared once; :meth:`key` hashes it.

    A stage is skipped when its key is unchanged (:meth:`RunDir.is_fresh`). The key covers

    - ``sections``: the config keys it reads (dotted: ``"train.heldout_fold"``);
    - ``upstream``: the stages whose outputs it reads in the same run directory (their keys,
      so a recomputed upstream stage recomputes this one);
    - ``resources``: the lexicons, concept sets and prompt templates it reads
      (:func:`resource_digest` names; a callable ``cfg -> names`` when the config picks them);
    - ``version``: the algorithm version, raised when the code changes its outputs;
    - ``inputs``: run files fingerprinted by size and time (:func:`input_fingerprint`), for
      inputs whose writer may not record a key;
    - ``settings``: anything else, a callable ``(cfg, run) -> {name: JSON-able}`` of further
      named parts (a captioner's own settings, the clip order).

    Parts a stage does not declare are left out of the hash, so declaring a new kind of part
    for one stage leaves the other stages' keys as they were.
    """

    name: str
    sections: tuple[str, ...] = ()
    upstream: tuple[str, ...] = ()
    resources: tuple[str, ...] | Callable[[Config], Iterable[str]] = ()
    version: Any = None
    inputs: tuple[str, ...] = ()
    settings: Callable[[Config, RunDir], dict[str, Any]] | None = None

    def resource_names(self, cfg: Config) -> list[str]:
        names = self.resources(cfg) if callable(self.resources) else self.resources
        return [str(n) for n in names]

    def key(self, cfg: Config, run: RunDir) -> str:
        """The hash of everything the stage's outputs depend on (see the class docstring)."""
        extra: dict[str, Any] = {}
        if self.upstream:
            extra["upstream"] = {s: run.stage_key(s) for s in self.upstream}
        if self.resources:
            extra["resources"] = resource_digest(*self.resource_names(cfg))
        if self.version is not None:
            extra["version"] = self.version
        if self.inputs:
            extra["inputs"] = input_fingerprint(run, self.inputs)
        if self.settings is not None:
            own = self.settings(cfg, run)
            clash = set(own) & set(extra)
            if clash:
                raise ValueError(f"stage {self.name!r}: settings {sorted(clash)} name key parts")
            extra.update(own)
        return cfg.section_hash(*self.sections, extra=extra)


def show_logs(level: int = logging.INFO) -> None:
    """Print andlib's log lines (stage progress, timings, warnings) with their time, for a
    notebook or a script: ``logging.basicConfig`` at ``level`` (no-op when already set up)."""
    logging.basicConfig(level=level, format="%(asctime)s %(message)s")


def strategy_run_path(cfg: Config, strategy: str, seed: int | None = None) -> Path:
    """The run directory of one strategy of a strategies config: ``<run_dir>/<strategy>``, or
    for one training seed ``<run_dir>/<strategy>/seed<k>``."""
    path = cfg.run_path / strategy
    return path if seed is None else path / f"seed{seed}"


# --------------------------------------------------------------------------------------------
# Readers of the artifacts: one per artifact
# --------------------------------------------------------------------------------------------

ACTIVATIONS = "activations"
"""The folder of a run directory that holds the recorded activations."""


@dataclass
class TopK:
    """The top-``k`` clips of every neuron of one layer at both ends.

    Arrays are ``[n_neurons, k]``; column 0 is the most extreme clip (``high``: largest
    activation first, ``low``: smallest first). ``high``/``low`` hold clip row indices.
    """

    high: np.ndarray
    high_values: np.ndarray
    low: np.ndarray
    low_values: np.ndarray


def _extreme_rows(a: np.ndarray, k: int, largest: bool) -> np.ndarray:
    """Row indices ``[k, n_cols]`` of each column's ``k`` most extreme values, most extreme
    first; equal values keep clip order."""
    s = -a if largest else a
    cand = np.argpartition(s, k - 1, axis=0)[:k] if k < len(a) else np.argsort(s, axis=0)
    order = np.lexsort((cand, np.take_along_axis(s, cand, axis=0)), axis=0)
    return np.take_along_axis(cand, order, axis=0)


class ActivationCache:
    """A finished recording: ``cache[layer]`` is a float32 ``[n_clips, n_neurons]`` array.

    Arrays are memory-mapped on first access. Row ``i`` is clip ``cache.clip_ids[i]`` (the
    row order of ``clips.csv``); column ``j`` is neuron ``j`` of the layer.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        index_file = self.folder / "index.json"
        if not index_file.exists():
            raise FileNotFoundError(f"{index_file} is missing: run the 'record' stage first")
        self.index: dict[str, Any] = json.loads(index_file.read_text())
        self._arrays: dict[str, np.ndarray] = {}

    @classmethod
    def load(cls, run: RunDir | str | Path) -> ActivationCache:
        """The recording stored in a run directory (``run/activations/``)."""
        path = run.path if isinstance(run, RunDir) else Path(run)
        return cls(path / ACTIVATIONS)

    @staticmethod
    def is_complete(folder: Path, key: str) -> bool:
        """True when ``folder`` holds a finished recording with this key."""
        index_file = folder / "index.json"
        if not index_file.exists():
            return False
        index = json.loads(index_file.read_text())
        return index.get("key") == key and all(
            (folder / entry["file"]).exists() for entry in index["layers"].values()
        )

    @property
    def layers(self) -> list[str]:
        """Layer keys in recording order."""
        return list(self.index["layers"])

    @property
    def clip_ids(self) -> list[str]:
        return list(self.index["clip_ids"])

    @property
    def n_clips(self) -> int:
        return len(self.index["clip_ids"])

    @property
    def pooling(self) -> str | None:
        return self.index.get("pooling")

    def _entry(self, layer: str) -> dict[str, Any]:
        if layer not in self.index["layers"]:
            close = difflib.get_close_matches(layer, self.layers, n=5, cutoff=0.5)
            raise KeyError(
                f"layer {layer!r} was not recorded; "
                + (f"close matches: {', '.join(close)}" if close else f"layers: {self.layers}")
            )
        return self.index["layers"][layer]

    def __getitem__(self, layer: str) -> np.ndarray:
        if layer not in self._arrays:
            self._arrays[layer] = np.load(self.folder / self._entry(layer)["file"], mmap_mode="r")
        return self._arrays[layer]

    def __contains__(self, layer: object) -> bool:
        return layer in self.index["layers"]

    def __iter__(self) -> Iterator[str]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.index["layers"])

    def n_neurons(self, layer: str) -> int:
        return int(self._entry(layer)["n_neurons"])

    def module_path(self, layer: str) -> str:
        return str(self._entry(layer)["module"])

    def topk(self, layer: str, k: int) -> TopK:
        """Each neuron's ``k`` highest and ``k`` lowest activating clips (all neurons at once)."""
        a = np.asarray(self[layer])
        k = max(1, min(k, len(a)))
        high, low = _extreme_rows(a, k, largest=True), _extreme_rows(a, k, largest=False)
        return TopK(
            high=high.T,
            high_values=np.take_along_axis(a, high, axis=0).T,
            low=low.T,
            low_values=np.take_along_axis(a, low, axis=0).T,
        )

    def __repr__(self) -> str:
        total = sum(self.n_neurons(la) for la in self.layers)
        return f"ActivationCache({self.n_clips} clips, {len(self)} layers, {total} neurons)"


CONTROLS = "last_layer"
"""The folder of a run directory that holds the evaluate stage's control runs (made by
:mod:`andlib.pipeline`): ``<run>/last_layer/<name>/``, each a run directory of its own."""


def control_run_path(run: RunDir, name: str) -> Path:
    """``<run>/last_layer/<name>/`` (``name`` made file-safe: ``tagger+acoustic`` ->
    ``tagger_acoustic``): the control run ``name`` of the evaluate stage."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "captioner"
    return run.path / CONTROLS / slug


def split_list(cell: Any) -> list[str]:
    """A list cell of ``neurons.csv`` (``"dog;rain;wind"``) as a list; empty cells give ``[]``.

    Lists are ``;``-joined; ``|`` and ``,`` are accepted too (concept names contain none).
    """
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return []
    text = str(cell).strip()
    if not text:
        return []
    sep = next((s for s in (";", "|", ",") if s in text), None)
    parts = text.split(sep) if sep else [text]
    return [p.strip() for p in parts if p.strip()]


def activation_index(run: RunDir) -> dict[str, Any]:
    """``activations/index.json``: ``{"clip_ids": [...], "layers": {key: {file, module, n_neurons}}}``."""
    return run.read_json("activations/index.json", stage="record")


def load_activations(run: RunDir, layer: str, index: dict[str, Any] | None = None) -> np.ndarray:
    """``[n_clips, n_neurons]`` float32 activations of one recorded layer."""
    index = index or activation_index(run)
    if layer not in index["layers"]:
        raise KeyError(f"layer {layer!r} was not recorded; recorded: {', '.join(index['layers'])}")
    return np.load(run / "activations" / index["layers"][layer]["file"], mmap_mode="r")


def read_neurons(run: RunDir) -> pd.DataFrame:
    """``neurons.csv``: ``layer`` as text, ``neuron`` as int, every other column as written
    (empty cells as ""); ``adjectives`` and ``open_concepts`` are "" when absent."""
    df = run.read_csv("neurons.csv", stage="summarize")
    df["layer"] = df["layer"].astype(str)
    df["neuron"] = df["neuron"].astype(int)
    for col in ("adjectives", "open_concepts"):
        if col not in df:
            df[col] = ""
    return df


CLOSED_SET_EXTRA = ("tab", "icl", "icl_embedding")
"""The closed-set concept columns of ``neurons.csv`` besides ``db_<fn>``: TAB and ICL
(``icl_embedding``: ICL ranked by embedding similarity, without an LLM)."""


class ArtifactError(ValueError):
    """A run's file lacks what a stage needs (a column, a layer): the message names the file,
    what is missing and the stage that writes it."""


def concept_columns(columns: Iterable[str], with_top5: bool = False) -> list[str]:
    """The top-1 closed-set concept columns among ``columns`` (of ``neurons.csv``): every
    ``db_<fn>`` in order, then ``tab``, ``icl``, ``icl_embedding``. ``with_top5``: each
    followed by its ``_top5`` list when present. Never the ``_top5_scores`` columns."""
    cols = list(columns)
    top1 = [c for c in cols if re.fullmatch(r"db_(?!.*_top5(?:_scores)?$).+", c)]
    top1 += [c for c in CLOSED_SET_EXTRA if c in cols]
    if not with_top5:
        return top1
    return [x for c in top1 for x in (c, f"{c}_top5") if x in cols]


def read_clips(run: RunDir, clip_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """``clips.csv`` (ids as str), in the activation arrays' row order when ``clip_ids`` is given."""
    clips = run.read_csv("clips.csv", stage="record", dtype={"clip_id": str})
    if clip_ids is not None:
        clips = clips.set_index("clip_id").reindex(list(clip_ids)).reset_index()
    return clips


def input_fingerprint(run: RunDir, names: Iterable[str]) -> dict[str, list[int] | None]:
    """Size and modification time of input files: part of a stage key, so a stage reruns when
    an upstream file is rewritten even if the upstream stage key is unknown."""
    out: dict[str, list[int] | None] = {}
    for name in names:
        p = run / name
        out[name] = [p.stat().st_size, p.stat().st_mtime_ns] if p.exists() else None
    return out


SCORES = "scores.csv"
"""The explanation scores of the evaluate stage: ``layer, neuron, scorer, metric, variant,
value, n``."""


def read_scores(
    run: RunDir,
    scorer: str | None = None,
    metric: str | None = None,
    variant: str | None = None,
) -> pd.DataFrame | None:
    """``scores.csv`` (``layer`` and ``scorer, metric, variant`` as text, ``neuron`` and ``n``
    as int, ``value`` as float, NaN where undefined), optionally only the rows of one
    ``scorer``, ``metric`` and/or ``variant``; ``None`` when the evaluate stage has not written
    it."""
    if not run.exists(SCORES):
        return None
    df = run.read_csv(SCORES)
    for col in ("layer", "scorer", "metric", "variant"):
        df[col] = df[col].astype(str)
    df["neuron"] = pd.to_numeric(df["neuron"]).astype(int)
    df["n"] = pd.to_numeric(df["n"], errors="coerce").fillna(0).astype(int)
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    for col, want in (("scorer", scorer), ("metric", metric), ("variant", variant)):
        if want is not None:
            df = df[df[col] == want]
    return df.reset_index(drop=True)
