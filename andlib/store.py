"""The run directory: one folder holds every stage's outputs, written atomically.

A stage records the hash of the inputs it depends on in ``.stages/<stage>.json``; when the
hash and the outputs are unchanged, :meth:`RunDir.is_fresh` says so and the stage is reused
instead of recomputed. Files are written to a temporary name and renamed into place, so an
interrupted run never leaves a half-written output behind.

Files a run directory holds (each written by the stage in brackets):

- ``config.yaml`` (every stage: the resolved config), ``skipped.csv`` (data)
- ``model.json`` (record: what was dissected)
- ``clips.csv`` (record: clip order of every activation array)
- ``activations/<layer>/`` (shards, :mod:`andlib.store_shards`) + ``activations/index.json``
  (record)
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

Every artifact has one reader here (:func:`read_table` by the artifact's :data:`TABLES` entry,
and ``read_<artifact>`` for the common ones; :class:`ActivationCache`, from
:mod:`andlib.activation_cache`, for the recording), and every list cell of a CSV artifact is
written by :func:`encode_list` and read by :func:`decode_list`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import pandas as pd

from andlib.activation_cache import ACTIVATIONS as ACTIVATIONS
from andlib.activation_cache import ActivationCache as ActivationCache
from andlib.activation_cache import TopK as TopK
from andlib.config import Config, dump_config, resolve_path
from andlib.store_shards import ShardReader

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
# Readers of the artifacts: one per artifact, and the one codec of their list cells
# --------------------------------------------------------------------------------------------

CONTROLS = "last_layer"
"""The folder of a run directory that holds the evaluate stage's control runs (made by
:mod:`andlib.pipeline`): ``<run>/last_layer/<name>/``, each a run directory of its own."""


def control_run_path(run: RunDir, name: str) -> Path:
    """``<run>/last_layer/<name>/`` (``name`` made file-safe: ``tagger+acoustic`` ->
    ``tagger_acoustic``): the control run ``name`` of the evaluate stage."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "captioner"
    return run.path / CONTROLS / slug


LIST_SEPARATOR = ";"
_ESCAPE = "\\"


def encode_list(items: Iterable[Any]) -> str:
    """A list cell of a CSV artifact: the items ``;``-joined, a ``\\`` or ``;`` inside an
    item escaped with ``\\`` (``["a;b", "c d"]`` -> ``"a\\;b;c d"``). Every writer of a list
    cell uses it and every reader :func:`decode_list`, so any item (a clip id with spaces,
    semicolons or commas) reads back as written. An empty list is ``""``."""
    return LIST_SEPARATOR.join(
        str(item).replace(_ESCAPE, _ESCAPE * 2).replace(LIST_SEPARATOR, _ESCAPE + LIST_SEPARATOR)
        for item in items
    )


def decode_list(cell: Any) -> list[str]:
    """The items of a list cell written by :func:`encode_list`, exactly as written (no
    stripping); an empty cell (``""``, ``None``, NaN) gives ``[]`` (so a list of one empty
    item reads back as ``[]``)."""
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return []
    text = str(cell)
    if not text:
        return []
    items, current, chars = [], [], iter(text)
    for ch in chars:
        if ch == _ESCAPE:
            current.append(next(chars, _ESCAPE))
        elif ch == LIST_SEPARATOR:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    return items


def activation_index(run: RunDir) -> dict[str, Any]:
    """``activations/index.json``: ``{"clip_ids": [...], "layers": {key: {file, module, n_neurons}}}``."""
    return ActivationCache.load(run).index


def load_activations(
    run: RunDir, layer: str, index: dict[str, Any] | None = None
) -> np.ndarray | ShardReader:
    """``[n_clips, n_neurons]`` float32 activations of one recorded layer, memory-mapped
    (:class:`ActivationCache`; ``index``: the :func:`activation_index` already read)."""
    return ActivationCache.load(run, index)[layer]


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


@dataclass(frozen=True)
class Table:
    """How one CSV artifact of a run directory is read (:func:`read_table`)."""

    stage: str
    """The stage that writes it (named when it is missing)."""
    text: tuple[str, ...] = ()
    """Columns read as text, ``""`` when empty (``("*",)``: every column but ``ints``); list
    cells among them are decoded by :func:`decode_list`."""
    ints: tuple[str, ...] = ()
    """Columns read as int."""
    numeric: bool = False
    """Empty cells of the other columns read as NaN (else as ``""``, as written)."""


TABLES: dict[str, Table] = {
    "clips.csv": Table("record", text=("clip_id",)),
    "neuron_topk.csv": Table("record", text=("layer", "end", "clip_id"), ints=("neuron", "rank")),
    "captions.csv": Table("caption", text=("clip_id", "caption")),
    "features.csv": Table("caption", text=("clip_id",), numeric=True),
    "tagger_predictions.csv": Table("caption", text=("clip_id", "top1", "top2", "top3")),
    "summaries.csv": Table("summarize", text=("*",), ints=("neuron",)),
    "neurons.csv": Table("summarize", text=("layer",), ints=("neuron",)),
    "concept_spread.csv": Table("summarize", text=("layer", "method", "top_concept"), numeric=True),
    "scores.csv": Table("evaluate", text=("layer", "scorer", "metric", "variant")),
    "hidden_layer_accuracy.csv": Table(
        "evaluate", text=("layer", "method", "label_top_class"), numeric=True
    ),
    "caption_quality.csv": Table("evaluate", text=("captioner", "method"), numeric=True),
    "score_sanity.csv": Table("evaluate", text=("scorer", "metric", "variant"), numeric=True),
    "score_baselines.csv": Table(
        "evaluate", text=("layer", "scorer", "metric", "variant"), numeric=True
    ),
    "score_missing.csv": Table("evaluate", text=("layer", "scorer", "variant", "reason")),
    "pruning.csv": Table("prune", text=("strategy", "concept"), numeric=True),
    "pruning_summary.csv": Table("prune", text=("strategy",), numeric=True),
}
"""The CSV artifacts whose columns need more than pandas' guess; any other run file is read
as written (empty cells as ``""``)."""


@overload
def read_table(run: RunDir, name: str, required: Literal[True] = True) -> pd.DataFrame: ...


@overload
def read_table(run: RunDir, name: str, required: bool) -> pd.DataFrame | None: ...


def read_table(run: RunDir, name: str, required: bool = True) -> pd.DataFrame | None:
    """The one reader of a CSV artifact ``name`` of ``run``, by its :data:`TABLES` entry. A
    missing file is an error naming the stage that writes it (``required=False``: ``None``)."""
    spec = TABLES.get(name, Table("earlier"))
    if not run.exists(name):
        if required:
            run.require(name, spec.stage)
        return None
    kwargs: dict[str, Any] = {"na_values": [""]} if spec.numeric else {}
    if spec.text == ("*",):
        kwargs["dtype"] = str
    elif spec.text:
        kwargs["dtype"] = dict.fromkeys(spec.text, str)
    df = run.read_csv(name, **kwargs)
    text = [c for c in df.columns if c not in spec.ints] if spec.text == ("*",) else spec.text
    for col in text:
        if col in df:
            df[col] = df[col].fillna("").astype(str)
    for col in spec.ints:
        if col in df:
            df[col] = pd.to_numeric(df[col]).astype(int)
    return df


def read_clips(run: RunDir, clip_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """``clips.csv`` (ids as str), in the activation arrays' row order when ``clip_ids`` is given."""
    clips = read_table(run, "clips.csv")
    if clip_ids is not None:
        clips = clips.set_index("clip_id").reindex(list(clip_ids)).reset_index()
    return clips


def read_topk(run: RunDir) -> pd.DataFrame:
    """``neuron_topk.csv``: ``layer, neuron, end, rank, clip_id, activation`` (ids as str)."""
    return read_table(run, "neuron_topk.csv")


def read_captions(run: RunDir) -> pd.DataFrame:
    """``captions.csv``: ``clip_id, caption``, both text."""
    return read_table(run, "captions.csv")


def caption_of(run: RunDir) -> dict[str, str]:
    """``{clip_id: caption}`` of ``captions.csv``."""
    caps = read_captions(run)
    return dict(zip(caps["clip_id"], caps["caption"], strict=True))


def read_features(run: RunDir) -> pd.DataFrame:
    """``features.csv``: ``clip_id`` (text) and the acoustic measurements (NaN where empty)."""
    return read_table(run, "features.csv")


def read_summaries(run: RunDir) -> pd.DataFrame:
    """``summaries.csv``: ``neuron`` as int, every other column text (``top_clips``,
    ``bottom_clips``: list cells, :func:`decode_list`)."""
    return read_table(run, "summaries.csv")


def read_neurons(run: RunDir) -> pd.DataFrame:
    """``neurons.csv``: ``layer`` as text, ``neuron`` as int, every other column as written
    (empty cells as ""; list cells decoded by :func:`decode_list`); ``adjectives`` and
    ``open_concepts`` are "" when absent."""
    df = read_table(run, "neurons.csv")
    for col in ("adjectives", "open_concepts"):
        if col not in df:
            df[col] = ""
    return df


def read_pruning(run: RunDir) -> pd.DataFrame:
    """``pruning.csv`` (prune stage): one row per strategy, concept and draw."""
    return read_table(run, "pruning.csv")


def read_pruning_summary(run: RunDir) -> pd.DataFrame | None:
    """``pruning_summary.csv`` (prune stage), ``None`` when the prune stage has not run."""
    return read_table(run, "pruning_summary.csv", required=False)


def read_model_info(run: RunDir, required: bool = False) -> dict[str, Any]:
    """``model.json`` (record stage: what was dissected), ``{}`` when it is not there
    (``required``: an error naming the record stage)."""
    if required or run.exists("model.json"):
        return dict(run.read_json("model.json", stage="record"))
    return {}


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
    df = read_table(run, SCORES, required=False)
    if df is None:
        return None
    df["neuron"] = pd.to_numeric(df["neuron"]).astype(int)
    df["n"] = pd.to_numeric(df["n"], errors="coerce").fillna(0).astype(int)
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    for col, want in (("scorer", scorer), ("metric", metric), ("variant", variant)):
        if want is not None:
            df = df[df[col] == want]
    return df.reset_index(drop=True)
