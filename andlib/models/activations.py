"""Recording activations: choose layers, hook them, store one pooled vector per clip and layer.

A *layer* is a stable key (``layers.3.mlp``, ``classifier`` or a module path) mapped to a
module of the target model; its *neurons* are the last dimension of the module's output.
:func:`resolve_layers` turns the config's specs (module names, ``fnmatch`` globs or presets)
into that mapping. :class:`ActivationRecorder` registers forward hooks that pool each output's
token/time axes (``mean``, ``max`` or ``cls``) and move it to the CPU as float32.
:func:`record_target` plays the probing set through the model in batches and writes
``activations/<layer>.npy`` (float32 ``[n_clips, n_neurons]``) plus ``activations/index.json``;
finished batches go to ``activations/.partial/`` first, so an interrupted recording resumes
from the last finished batch, and a recording with the same model, clips and layers is reused.
:class:`ActivationCache` reads the result back lazily; :func:`topk_table` lists each neuron's
top-K highly and lowly activating clips (``neuron_topk.csv``).

Public surface: :func:`resolve_layers`, :func:`known_presets`, :class:`LayerError`,
:func:`pool_output`, :class:`ActivationRecorder`, :func:`record_target`, :func:`record`,
:class:`ActivationCache`, :class:`TopK`, :func:`topk_table`, :func:`clips_frame`,
:func:`model_record`, :data:`SPEC` (the stage's cache key), :func:`run_stage`. The layer
resolution (:func:`resolve_layers`, :func:`known_presets`, :class:`LayerError`) lives in
:mod:`andlib.models.layers`; its names stay importable from here.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from andlib.config import Config, stable_hash
from andlib.data.audio import ProbingSet
from andlib.data.probing import load_probing_set
from andlib.models.base import TargetModel
from andlib.models.base import first_tensor as _first_tensor
from andlib.models.families.registry import family_of
from andlib.models.layers import LayerError as LayerError
from andlib.models.layers import known_presets as known_presets
from andlib.models.layers import resolve_layers as resolve_layers
from andlib.models.registry import load_target
from andlib.store import (
    ACTIVATIONS,
    ActivationCache,
    RunDir,
    Stage,
    read_model_info,
    save_npy,
    write_json,
)

log = logging.getLogger(__name__)

STAGE = "record"
VERSION = 1
"""Algorithm version of the record stage (part of its cache key): raise it when a change of
the code changes the recorded activations for the same config."""
POOLINGS = ("mean", "max", "cls")


# --------------------------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------------------------


def pool_output(
    output: Any, pooling: str = "mean", lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """One float32 CPU vector per example: ``[batch, ..., n_neurons] -> [batch, n_neurons]``.

    The axes between the batch and the last (neuron) axis are the token/time axes; they are
    pooled by ``mean``, ``max`` or ``cls`` (the first token). 2-D outputs such as logits pass
    through; 1-D outputs become one neuron. ``lengths`` (``[batch]``) restricts a
    ``[batch, tokens, n_neurons]`` output to each example's first ``lengths`` tokens (the
    clip's own positions in a padded input).
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
    x = _first_tensor(output).detach().float()
    if x.ndim == 3 and lengths is not None and bool((lengths < x.shape[1]).any()):
        keep = torch.arange(x.shape[1], device=x.device)[None, :] < lengths.to(x.device)[:, None]
        if pooling == "mean":
            w = keep.to(x.dtype)[..., None]
            return ((x * w).sum(1) / w.sum(1).clamp(min=1)).to("cpu")
        if pooling == "max":
            return x.masked_fill(~keep[..., None], float("-inf")).amax(dim=1).to("cpu")
    if x.ndim == 1:
        x = x[:, None]
    elif x.ndim > 2:
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        if pooling == "mean":
            x = x.mean(dim=1)
        elif pooling == "max":
            x = x.amax(dim=1)
        else:
            x = x[:, 0]
    return x.to("cpu")


class ActivationRecorder:
    """Forward hooks capturing one pooled vector per example for each layer.

    ::

        with ActivationRecorder(model, ["preset:ast"], pooling="mean") as rec:
            model(**inputs)
            acts = rec.pop()  # {"layers.0.attn": tensor [batch, n_neurons], ...}

    ``layers`` is a ``{key: module path}`` mapping (from :func:`resolve_layers`) or a list
    of specs to resolve. The hooks are removed on exit. A model that runs clips on more
    positions than their own (Whisper's padded window) sets ``pool_lengths`` (``[batch]``, the
    clip's leading token positions) in its forward; token outputs are then pooled over those.
    """

    def __init__(
        self, model: nn.Module, layers: Mapping[str, str] | Sequence[str], pooling: str = "mean"
    ):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
        self.model = model
        self.layers = dict(layers) if isinstance(layers, Mapping) else resolve_layers(model, layers)
        self.pooling = pooling
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._captured: dict[str, torch.Tensor] = {}

    def _hook(self, key: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if key in self._captured:
                raise RuntimeError(
                    f"layer {key!r} ({self.layers[key]}) ran twice in one forward pass; "
                    f"call pop() after each forward, or hook a module that runs once"
                )
            lengths = getattr(self.model, "pool_lengths", None)
            self._captured[key] = pool_output(output, self.pooling, lengths)

        return hook

    def attach(self) -> ActivationRecorder:
        """Register the hooks (idempotent)."""
        if not self._handles:
            for key, path in self.layers.items():
                module = self.model.get_submodule(path)
                self._handles.append(module.register_forward_hook(self._hook(key)))
        return self

    def detach(self) -> None:
        """Remove the hooks and drop anything captured."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._captured.clear()

    def __enter__(self) -> ActivationRecorder:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def pop(self) -> dict[str, torch.Tensor]:
        """What the last forward pass captured, ``{key: [batch, n_neurons]}``, in layer order."""
        missing = [k for k in self.layers if k not in self._captured]
        if missing:
            raise RuntimeError(f"no output captured for layers {missing} (did the forward run?)")
        out = {k: self._captured[k] for k in self.layers}
        self._captured = {}
        return out


# --------------------------------------------------------------------------------------------
# Recording with resume
# --------------------------------------------------------------------------------------------


class _PartialStore:
    """Finished batches of an unfinished recording: a ``.npy`` memmap per layer + progress.

    ``progress.json`` holds the recording's key and how many clips are done; it is written
    after the batch's rows are flushed, so a crash at any point loses at most that batch.
    """

    def __init__(self, folder: Path, key: str, n_clips: int):
        self.folder, self.key, self.n_clips = folder, key, n_clips
        self.progress = folder / "progress.json"
        self.done = 0
        if self.progress.exists():
            p = json.loads(self.progress.read_text())
            if p.get("key") == key:
                self.done = int(p["done"])
        if self.done == 0:
            shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, layer: str, n_neurons: int | None = None) -> np.ndarray:
        """The layer's ``[n_clips, n_neurons]`` memmap, created on the first batch."""
        if layer not in self.arrays:
            path = self.folder / f"{layer}.npy"
            if self.done:
                arr = np.lib.format.open_memmap(path, mode="r+")
                if len(arr) != self.n_clips or n_neurons not in (None, arr.shape[1]):
                    raise RuntimeError(
                        f"{path}: unexpected shape {arr.shape}; delete {self.folder}"
                    )
            else:
                if n_neurons is None:
                    raise RuntimeError(f"{layer}: no activations recorded yet")
                shape = (self.n_clips, n_neurons)
                arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
            self.arrays[layer] = arr
        return self.arrays[layer]

    def write(self, start: int, acts: Mapping[str, torch.Tensor]) -> None:
        end = start
        for layer, x in acts.items():
            arr = self.array(layer, x.shape[1])
            arr[start : start + len(x)] = x.numpy()
            if isinstance(arr, np.memmap):
                arr.flush()
            end = start + len(x)
        self.done = end
        write_json(self.progress, {"key": self.key, "done": end, "n_clips": self.n_clips})

    def close(self) -> None:
        self.arrays.clear()  # memmaps close when collected
        shutil.rmtree(self.folder, ignore_errors=True)


def _fingerprint(module: nn.Module) -> str:
    """A cheap identity of the weights (names, shapes, sums), so another model is never reused."""
    with torch.no_grad():
        parts = [
            (n, list(p.shape), float(p.detach().double().sum()))
            for n, p in module.named_parameters()
        ]
    return stable_hash(parts)


def warn_long_clips(target: TargetModel, probing_set: ProbingSet) -> list[str]:
    """Warn, naming them, about the clips longer than the model reads (``max_seconds``): the
    model sees their first ``max_seconds`` only. Returns their ids."""
    if target.max_seconds is None:
        return []
    limit = target.max_seconds * probing_set.sample_rate
    long = [
        (cid, len(a) / probing_set.sample_rate)
        for cid, a in zip(probing_set.clip_ids, probing_set.audio, strict=True)
        if len(a) > limit
    ]
    if long:
        shown = ", ".join(f"{cid} ({s:.1f} s)" for cid, s in long[:20])
        more = f" and {len(long) - 20} more" if len(long) > 20 else ""
        log.warning(
            "%s reads at most %g s: cut %d clip(s) to their first %g s: %s%s",
            target.name,
            target.max_seconds,
            len(long),
            target.max_seconds,
            shown,
            more,
        )
    return [cid for cid, _ in long]


def record_target(
    target: TargetModel,
    probing_set: ProbingSet,
    layers: Sequence[str] | Mapping[str, str],
    pooling: str,
    batch_size: int,
    run: RunDir,
    *,
    key: str | None = None,
    progress: bool = True,
    on_batch: Callable[[int, int], None] | None = None,
) -> ActivationCache:
    """Record ``layers`` of ``target`` on every clip into ``run/activations/``.

    Batches of ``batch_size`` clips run under ``torch.inference_mode()``; each finished batch
    is flushed to ``activations/.partial/``, so a call interrupted after batch *b* resumes at
    batch *b + 1*. When the run already holds a finished recording with the same ``key``,
    weights, layers, pooling, batch size and clip ids, it is returned without a forward pass.
    ``on_batch(batch_index, n_clips_done)`` is called after each stored batch.
    """
    layer_map = (
        dict(layers) if isinstance(layers, Mapping) else resolve_layers(target.module, layers)
    )
    clip_ids = probing_set.clip_ids
    n = len(clip_ids)
    folder = run.path / ACTIVATIONS
    rec_key = stable_hash(
        {
            "key": key,
            "model": target.name,
            "weights": _fingerprint(target.module),
            "layers": layer_map,
            "pooling": pooling,
            "batch_size": batch_size,
            "clips": stable_hash(clip_ids),
        }
    )
    if ActivationCache.is_complete(folder, rec_key):
        log.info("reusing stored activations in %s", folder)
        return ActivationCache(folder)

    warn_long_clips(target, probing_set)
    store = _PartialStore(folder / ".partial", rec_key, n)
    if store.done:
        log.info("resuming recording at clip %d of %d", store.done, n)
    module = target.module
    was_training = module.training
    module.eval()
    try:
        with (
            torch.inference_mode(),
            ActivationRecorder(module, layer_map, pooling) as recorder,
            _progress_bar(n, store.done, progress) as bar,
        ):
            for start in range(store.done, n, batch_size):
                batch = probing_set.audio[start : start + batch_size]
                target.forward(batch)
                store.write(start, recorder.pop())
                bar.update(len(batch))
                if on_batch is not None:
                    on_batch(start // batch_size, store.done)
    finally:
        module.train(was_training)

    (folder / "index.json").unlink(missing_ok=True)  # never an index over mixed arrays
    n_neurons = {}
    for layer in layer_map:
        arr = store.array(layer)
        save_npy(folder / f"{layer}.npy", np.asarray(arr))
        n_neurons[layer] = int(arr.shape[1])
    for stale in folder.glob("*.npy"):  # layers of an earlier recording
        if stale.stem not in layer_map:
            stale.unlink()
    index = {
        "key": rec_key,
        "pooling": pooling,
        "clip_ids": clip_ids,
        "layers": {
            layer: {"file": f"{layer}.npy", "module": path, "n_neurons": n_neurons[layer]}
            for layer, path in layer_map.items()
        },
    }
    write_json(folder / "index.json", index)
    store.close()
    return ActivationCache(folder)


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="clip", desc="record", disable=not enabled)


def _trained_model(cfg: Config, run: RunDir) -> dict[str, Any]:
    """What the model's family adds to the key: for a project-trained model
    (``trained:<strategy>``) its cache folder name (``trained``), which hashes exactly the
    training settings that strategy depends on; ``trained: None`` for any other model, plus
    whatever its family names (the files its weights come from)."""
    return {"trained": None, **family_of(cfg.model.name).record_settings(cfg)}


RECORDING = Stage(
    STAGE, sections=("model", "data", "record", "seed"), version=VERSION, settings=_trained_model
)
"""The key of the recorded neurons: model, data, layers/pooling and seed, the trained model's
cache folder (:func:`_trained_model`) and :data:`VERSION`. It reads no lexicon or prompt."""


def _with_sae(cfg: Config, run: RunDir) -> dict[str, Any]:
    """:func:`_trained_model`, plus the ``sae`` section and :data:`andlib.models.sae.VERSION`
    when it names layers (so a config without SAEs keeps its key)."""
    from andlib.models.sae import VERSION as SAE_VERSION

    extra = _trained_model(cfg, run)
    if cfg.sae.layers:
        extra["sae"] = {"settings": cfg.to_dict()["sae"], "version": SAE_VERSION}
    return extra


SPEC = Stage(
    STAGE, sections=("model", "data", "record", "seed"), version=VERSION, settings=_with_sae
)
"""The record stage's cache key: :data:`RECORDING`'s parts and, with ``sae.layers``, the SAE
settings (the virtual layers of :mod:`andlib.models.sae_layer` are recorded by this stage)."""


def record(
    cfg: Config, target: TargetModel, probing_set: ProbingSet, run: RunDir
) -> ActivationCache:
    """:func:`record_target` with the config's layers, pooling and batch size."""
    return record_target(
        target,
        probing_set,
        cfg.record.layers,
        cfg.record.pooling,
        cfg.model.batch_size,
        run,
        key=RECORDING.key(cfg, run),
    )


# --------------------------------------------------------------------------------------------
# Reading activations back
# --------------------------------------------------------------------------------------------


def topk_table(cache: ActivationCache, k: int) -> pd.DataFrame:
    """Top-``k`` highly and lowly activating clips of every neuron, one row per (neuron, end, rank).

    Columns ``layer, neuron, end`` (``high``/``low``), ``rank`` (0 = most extreme),
    ``clip_id``, ``activation``; rows ordered by layer, neuron, end (high first), rank.
    """
    clip_ids = np.asarray(cache.clip_ids, dtype=object)
    frames = []
    for layer in cache.layers:
        t = cache.topk(layer, k)
        n_neurons, kk = t.high.shape
        idx = np.stack([t.high, t.low], axis=1).ravel()  # [neuron, end, rank]
        values = np.stack([t.high_values, t.low_values], axis=1).ravel()
        frames.append(
            pd.DataFrame(
                {
                    "layer": layer,
                    "neuron": np.repeat(np.arange(n_neurons), 2 * kk),
                    "end": np.tile(np.repeat(["high", "low"], kk), n_neurons),
                    "rank": np.tile(np.arange(kk), 2 * n_neurons),
                    "clip_id": clip_ids[idx],
                    "activation": values.astype(np.float32),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------

CLIP_COLUMNS = ["clip_id", "path", "label", "category", "fold"]


def clips_frame(probing_set: ProbingSet) -> pd.DataFrame:
    """``clips.csv``: the probing set's metadata, core columns first (row i = activation row i)."""
    meta = probing_set.meta
    first = [c for c in CLIP_COLUMNS if c in meta.columns]
    return meta[first + [c for c in meta.columns if c not in first]]


def model_record(target: TargetModel, cache: ActivationCache) -> dict[str, Any]:
    """``model.json``: what was dissected (everything in ``target.info``) and which layers."""
    info = dict(target.info)
    head = {
        "model_id": info.pop("model_id", target.name),
        "source": info.pop("source", target.name),
        "kind": info.pop("kind", "classification" if target.is_classifier else "encoder"),
    }
    return {
        **head,
        **info,
        "label_names": target.label_names,
        "layers": {
            layer: {"module": cache.module_path(layer), "n_neurons": cache.n_neurons(layer)}
            for layer in cache.layers
        },
        "pooling": cache.pooling,
        "n_clips": cache.n_clips,
    }


def run_stage(cfg: Config, run: RunDir) -> dict[str, Any]:
    """Record the configured layers on the probing set; write ``clips.csv``, ``skipped.csv``,
    ``activations/``, ``neuron_topk.csv`` and ``model.json``. Reused when nothing changed."""
    key = SPEC.key(cfg, run)
    if run.is_fresh(STAGE, key):
        return _summary(read_model_info(run, required=True), reused=True)
    logger = run.logger(STAGE)
    t0 = time.time()
    probing_set = load_probing_set(cfg)
    run.write_csv("skipped.csv", probing_set.skipped_frame())
    run.write_csv("clips.csv", clips_frame(probing_set))
    target = load_target(cfg)
    cache = record(cfg, target, probing_set, run)
    from andlib.models.sae_layer import add_sae_layers  # the virtual layers (or none)

    cache = add_sae_layers(cfg, run, target, probing_set, cache, _fingerprint(target.module))
    run.write_csv("neuron_topk.csv", topk_table(cache, cfg.k))
    info = model_record(target, cache)
    run.write_json("model.json", info)
    outputs = [
        *(["sae.json"] if cfg.sae.layers else []),
        "clips.csv",
        "skipped.csv",
        "model.json",
        "neuron_topk.csv",
        f"{ACTIVATIONS}/index.json",
        *(f"{ACTIVATIONS}/{f}" for layer in cache.layers for f in cache.files(layer)),
    ]
    seconds = round(time.time() - t0, 1)
    run.mark_done(STAGE, key, outputs, seconds=seconds)
    logger.info(
        "recorded %d layers on %d clips of %s in %.1f s",
        len(cache),
        cache.n_clips,
        target.name,
        seconds,
    )
    return _summary(info, reused=False, seconds=seconds)


def _summary(info: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "model": info.get("model_id"),
        "clips": info.get("n_clips"),
        "layers": len(info.get("layers", {})),
        "neurons": sum(v["n_neurons"] for v in info.get("layers", {}).values()),
        **extra,
    }
