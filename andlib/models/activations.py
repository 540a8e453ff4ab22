"""Recording activations: choose layers, hook them, store one pooled vector per clip and layer.

A *layer* is a stable key (``layers.3.mlp``, ``classifier`` or a module path) mapped to a
module of the target model; its *neurons* are the last dimension of the module's output.
:func:`resolve_layers` turns the config's specs (module names, ``fnmatch`` globs or presets)
into that mapping. :class:`ActivationRecorder` registers forward hooks that pool each output's
token/time axes (``mean``, ``max`` or ``cls``) and move it to the CPU as float32.
:func:`record_target` plays the probing set through the model in batches and writes each
layer's shards (``activations/<layer>/``, the :mod:`andlib.store_shards` layout, float32
``[n_clips, n_neurons]`` over its shards) plus ``activations/index.json``
(:class:`~andlib.models.recording.Recording`), so an interrupted recording resumes after the
last finished shard, and a recording with the same model, clips and layers is reused. With
``record.engine: ray`` the stage records through :mod:`andlib.models.record_ray` instead, into
the same layout; with ``record.base`` it links another run's recording instead
(:mod:`andlib.models.base_run`). :class:`ActivationCache` reads the result back lazily;
:func:`topk_table` lists each neuron's top-K highly and lowly activating clips
(``neuron_topk.csv``), streamed over the shards.

Public surface: :func:`resolve_layers`, :func:`known_presets`, :class:`LayerError`,
:func:`pool_output`, :class:`ActivationRecorder`, :func:`record_target`, :func:`record`,
:class:`ActivationCache`, :class:`TopK`, :func:`topk_table`, :func:`clips_frame`,
:func:`model_record`, :data:`SPEC` (the stage's cache key), :func:`run_stage`. The layer
resolution (:func:`resolve_layers`, :func:`known_presets`, :class:`LayerError`) lives in
:mod:`andlib.models.layers`; its names stay importable from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from andlib.config import Config
from andlib.data.audio import ClipList, ProbingSet
from andlib.data.probing import load_probing_set
from andlib.models.base import TargetModel
from andlib.models.base_run import base_run, reuse_recording
from andlib.models.families.registry import family_of
from andlib.models.hooks import POOLINGS as POOLINGS
from andlib.models.hooks import ActivationRecorder as ActivationRecorder
from andlib.models.hooks import pool_output as pool_output
from andlib.models.layers import LayerError as LayerError
from andlib.models.layers import known_presets as known_presets
from andlib.models.layers import resolve_layers as resolve_layers
from andlib.models.recording import Recording, fingerprint, recording_key
from andlib.models.recording import warn_long_clips as warn_long_clips
from andlib.models.registry import load_target
from andlib.store import (
    ACTIVATIONS,
    ActivationCache,
    RunDir,
    Stage,
    read_model_info,
)

log = logging.getLogger(__name__)

STAGE = "record"
VERSION = 2
"""Algorithm version of the record stage (part of its cache key): raise it when a change of
the code changes the recorded activations for the same config."""


# --------------------------------------------------------------------------------------------
# Recording with resume
# --------------------------------------------------------------------------------------------


def record_target(
    target: TargetModel,
    probing_set: ProbingSet,
    layers: Sequence[str] | Mapping[str, str],
    pooling: str,
    batch_size: int,
    run: RunDir,
    *,
    key: str | None = None,
    shard_rows: int = 1024,
    progress: bool = True,
    on_batch: Callable[[int, int], None] | None = None,
) -> ActivationCache:
    """Record ``layers`` of ``target`` on every clip into ``run/activations/``.

    Batches of ``batch_size`` clips run under ``torch.inference_mode()``; their pooled rows go
    to each layer's shards (:class:`~andlib.models.recording.Recording`, ``shard_rows`` clips
    a shard), so an interrupted call resumes after the last finished shard. When the run
    already holds a finished recording with the same ``key``, weights, layers, pooling, batch
    size and clip ids, it is returned without a forward pass. ``on_batch(batch_index,
    n_clips_done)`` is called after each stored batch.
    """
    layer_map = (
        dict(layers) if isinstance(layers, Mapping) else resolve_layers(target.module, layers)
    )
    clip_ids = probing_set.clip_ids
    n = len(clip_ids)
    folder = run.path / ACTIVATIONS
    weights = fingerprint(target.module)
    rec_key = recording_key(key, target.name, weights, layer_map, pooling, batch_size, clip_ids)
    if ActivationCache.is_complete(folder, rec_key):
        log.info("reusing stored activations in %s", folder)
        return ActivationCache(folder)

    warn_long_clips(target, probing_set)
    rec = Recording(folder, rec_key, layer_map, pooling, shard_rows)
    if rec.n_done:
        log.info("resuming recording at clip %d of %d", rec.n_done, n)
    module = target.module
    was_training = module.training
    module.eval()
    try:
        with (
            torch.inference_mode(),
            ActivationRecorder(module, layer_map, pooling) as recorder,
            _progress_bar(n, rec.n_done, progress) as bar,
        ):
            for start in range(rec.n_done, n, batch_size):
                batch = probing_set.audio[start : start + batch_size]
                target.forward(batch)
                rec.append(recorder.pop(), np.arange(start, start + len(batch)))
                bar.update(len(batch))
                if on_batch is not None:
                    on_batch(start // batch_size, start + len(batch))
    finally:
        module.train(was_training)
    return rec.close(clip_ids)


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
    """:func:`record_target` with the config's layers, pooling, batch size and shard size."""
    return record_target(
        target,
        probing_set,
        cfg.record.layers,
        cfg.record.pooling,
        cfg.model.batch_size,
        run,
        key=RECORDING.key(cfg, run),
        shard_rows=cfg.record.shard_rows,
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


def clips_frame(probing_set: ProbingSet | pd.DataFrame) -> pd.DataFrame:
    """``clips.csv``: the probing set's metadata (or that table), core columns first (row i =
    activation row i)."""
    meta = probing_set if isinstance(probing_set, pd.DataFrame) else probing_set.meta
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
    probing_set: ProbingSet | ClipList | None = None
    base = base_run(cfg, run)  # a run whose recorded neurons this one reuses (record.base)
    reused_from = None
    if base is not None:
        probing_set, target = load_probing_set(cfg), load_target(cfg)
        reused = reuse_recording(cfg, run, base, target, probing_set, RECORDING.key(cfg, run))
        cache = reused if reused is not None else _record_here(cfg, run, target, probing_set)
        reused_from = str(base) if reused is not None else None
    elif cfg.record.engine == "ray":
        from andlib.models.record_ray import record_ray

        target = load_target(cfg)
        result = record_ray(cfg, target, run, RECORDING.key(cfg, run))
        cache = result.cache
        run.write_csv("skipped.csv", result.skipped_frame())
        run.write_csv("clips.csv", clips_frame(result.meta))
        if cfg.sae.layers:  # listed only: the token-level capture decodes in Ray's tasks too
            probing_set = ClipList(cfg.data.dataset, result.meta, [])
    else:
        probing_set, target = load_probing_set(cfg), load_target(cfg)
        cache = _record_here(cfg, run, target, probing_set)
    from andlib.models.sae_layer import add_sae_layers  # the virtual layers (or none)

    cache = add_sae_layers(cfg, run, target, probing_set, cache, fingerprint(target.module))
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
    base_info = {"base_run": reused_from} if reused_from else {}
    run.mark_done(STAGE, key, outputs, seconds=seconds, **base_info)
    logger.info(
        "recorded %d layers on %d clips of %s in %.1f s%s",
        len(cache),
        cache.n_clips,
        target.name,
        seconds,
        f" (the neurons: those of {reused_from})" if reused_from else "",
    )
    return _summary(info, reused=False, seconds=seconds, **base_info)


def _record_here(
    cfg: Config, run: RunDir, target: TargetModel, probing_set: ProbingSet
) -> ActivationCache:
    """The local engine: ``skipped.csv``, ``clips.csv`` and the recording (:func:`record`)."""
    run.write_csv("skipped.csv", probing_set.skipped_frame())
    run.write_csv("clips.csv", clips_frame(probing_set))
    return record(cfg, target, probing_set, run)


def _summary(info: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "model": info.get("model_id"),
        "clips": info.get("n_clips"),
        "layers": len(info.get("layers", {})),
        "neurons": sum(v["n_neurons"] for v in info.get("layers", {}).values()),
        **extra,
    }
