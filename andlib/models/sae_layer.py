"""SAE latents as a virtual layer of the record stage: capture, train (cached), encode, pool.

For each layer of ``sae.layers`` (a recorded layer key) and each ``k`` (``sae.k`` and
``sae.sweep_k``) the record stage calls :func:`add_sae_layers`, which

1. captures the layer's output at every position of every clip, without pooling
   (:func:`capture_tokens`), streamed into the one sharded layout (:mod:`andlib.store_shards`,
   float16, row ids ``(clip index, position)``) under ``<cache_dir>/sae/tokens/<key>/``,
   keyed by the model's weights, the layer's module, the clips and :data:`CAPTURE_VERSION`;
   a Whisper model's padded positions are left out (``pool_lengths``), as pooling does;
   with ``record.engine: ray`` through Ray's decoding tasks and model actors instead
   (:func:`andlib.models.record_ray_tokens.capture_tokens_ray`: the same shards and index);
2. trains the SAE on the positions of ``sae.train_folds`` only (:func:`train_chunks`), unless
   ``<cache_dir>/sae/models/<layer>-k<k>-<key>/`` already holds it
   (:func:`andlib.models.sae.sae_key`: the capture's key and the SAE settings);
3. encodes every position once, pools the latents per clip with ``record.pooling``, counts
   the dead latents (active on no position of the probing set) and measures, on the clips of
   ``sae.eval_fold``, the variance explained and L0;
4. writes the live latents as ``activations/sae.<layer>.k<k>/``, a float32 layer in the
   sharded layout (``index.json`` entry ``{"dir": ...}``; neuron ``j`` = latent ``latents[j]``
   of that entry; the dead ones are left out and listed in the report),
   and ``sae.json`` (per virtual layer: training and evaluation report, dead latents).

Every later stage reads the virtual layer like any other; pruning leaves it out (it has no
module: pruning a latent needs the SAE spliced into the forward pass with its error term).

Public surface: :func:`add_sae_layers`, :func:`capture_tokens`, :func:`capture_key`,
:func:`train_chunks`, :func:`clip_folds`, :data:`REPORT`, :data:`CAPTURE_VERSION`.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from andlib.activation_cache import ACTIVATIONS, ActivationCache
from andlib.config import Config, ConfigError, stable_hash
from andlib.data.audio import ClipList, ProbingSet
from andlib.layout import SAE_PREFIX, is_sae_layer
from andlib.models import sae as sae_mod
from andlib.models.base import TargetModel
from andlib.models.hooks import token_positions
from andlib.store import RunDir, write_json
from andlib.store_shards import ShardReader, ShardWriter

log = logging.getLogger(__name__)

CAPTURE_VERSION = 1
"""Raised when a change of the capture changes the stored positions."""
REPORT = "sae.json"
"""The run file of the SAEs' reports (one entry per virtual layer)."""


def clip_folds(probing_set: ProbingSet | ClipList) -> np.ndarray:
    """Each clip's ESC-50 fold (``int``); a probing set without folds is a one-line error."""
    meta = probing_set.meta
    if "fold" not in meta.columns or meta["fold"].isna().any():
        raise ConfigError("sae.layers: the SAE trains and reports by fold; the clips have none")
    return meta["fold"].astype(int).to_numpy()


def capture_key(weights: str, module_path: str, clip_ids: list[str], model_name: str) -> str:
    """The key of one layer's token-level capture (what its positions depend on)."""
    return stable_hash(
        {
            "model": model_name,
            "weights": weights,
            "module": module_path,
            "clips": stable_hash(clip_ids),
            "version": CAPTURE_VERSION,
        }
    )


def capture_tokens(
    target: TargetModel,
    probing_set: ProbingSet,
    module_path: str,
    folder: Path,
    *,
    key: str,
    batch_size: int,
    shard_rows: int,
) -> ShardReader:
    """Every position of one layer on every clip, into a sharded float16 layer at ``folder``.

    Clips run in batches; each clip's positions are appended with ids ``(clip, position)``.
    A capture with the same ``key`` is reused when complete and resumed otherwise (after the
    last finished shard: the positions of the clip it ends in that are already stored are
    not written twice).
    """
    writer = ShardWriter(folder, shard_rows=shard_rows, dtype="float16", id_width=2, key=key)
    if writer.complete:
        return ShardReader(folder)
    done = writer.done_ids()
    start_clip, skip_to = (int(done[-1, 0]), int(done[-1, 1]) + 1) if len(done) else (0, 0)
    captured: list[list[np.ndarray]] = []
    module = target.module

    def hook(mod: torch.nn.Module, args: Any, output: Any) -> None:
        captured.append(token_positions(output, getattr(module, "pool_lengths", None)))

    handle = module.get_submodule(module_path).register_forward_hook(hook)
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            for start in range(start_clip, len(probing_set.clip_ids), batch_size):
                captured.clear()
                target.forward(probing_set.audio[start : start + batch_size])
                if len(captured) != 1:
                    raise RuntimeError(f"{module_path} ran {len(captured)} times in one pass")
                for offset, rows in enumerate(captured[0]):
                    clip = start + offset
                    first = skip_to if clip == start_clip else 0
                    pos = np.arange(first, len(rows))
                    ids = np.stack([np.full(len(pos), clip), pos], axis=1)
                    writer.append(rows[first:], ids)
    finally:
        handle.remove()
        module.train(was_training)
    return writer.close(meta={"module": module_path, "n_clips": len(probing_set.clip_ids)})


def _capture(
    cfg: Config,
    target: TargetModel,
    clips: ProbingSet | ClipList,
    module_path: str,
    key: str,
) -> ShardReader:
    """One layer's capture by the record stage's engine, into ``<cache_dir>/sae/tokens/<key>``:
    :func:`capture_tokens` in this process, or with ``record.engine: ray``
    :func:`andlib.models.record_ray_tokens.capture_tokens_ray` (Ray's decoding tasks and actors,
    which read the clips by path: ``clips`` may be listed only)."""
    folder = cfg.cache_path / "sae" / "tokens" / key
    if cfg.record.engine == "ray":
        from andlib.models.record_ray_tokens import capture_tokens_ray

        return capture_tokens_ray(cfg, clips.meta, module_path, folder, key=key)
    if not isinstance(clips, ProbingSet):
        raise TypeError("record.engine: local captures decoded clips (a ProbingSet)")
    return capture_tokens(
        target,
        clips,
        module_path,
        folder,
        key=key,
        batch_size=cfg.model.batch_size,
        shard_rows=cfg.sae.shard_rows,
    )


def train_chunks(
    reader: ShardReader, train_clip: np.ndarray
) -> tuple[Callable[[np.random.Generator], Iterator[np.ndarray]], int]:
    """The training positions of a capture: ``(chunks, n_positions)`` for
    :func:`andlib.models.sae.training_batches`. ``train_clip[c]`` is true for the clips whose
    positions may be trained on; no other row is ever yielded."""
    masks = [train_clip[reader.shard_ids(i)[:, 0]] for i in range(reader.n_shards)]
    n_positions = int(sum(int(m.sum()) for m in masks))

    def chunks(rng: np.random.Generator) -> Iterator[np.ndarray]:
        for i in rng.permutation(reader.n_shards):
            if masks[i].any():
                yield np.asarray(reader.shard(int(i))[masks[i]], dtype=np.float32)

    return chunks, n_positions


def _blocks(reader: ShardReader) -> Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    for i in range(reader.n_shards):
        ids = reader.shard_ids(i)
        yield reader.shard(i), ids[:, 0], ids[:, 1]


def _ensure_sae(
    cfg: Config, layer: str, k: int, key: str, reader: ShardReader, train_clip: np.ndarray
) -> Path:
    """The SAE's cache folder, trained into it first when missing."""
    seed = cfg.sae.seed if cfg.sae.seed is not None else cfg.seed
    folder = (
        cfg.cache_path / "sae" / "models" / f"{layer}-k{k}-{sae_mod.sae_key(key, cfg.sae, k, seed)}"
    )
    if sae_mod.is_saved(folder):
        log.info("reusing the SAE in %s", folder)
        return folder
    chunks, n_train = train_chunks(reader, train_clip)
    sae_mod.check_plan(cfg.sae, {layer: reader.width}, n_train)
    n_passes = sae_mod.passes(cfg.sae.token_budget, n_train)
    log.info(
        "training a %s SAE on %s (k=%d, %d x %d) for %s positions: %.2f passes over %s",
        sae_mod.ARCHITECTURE,
        layer,
        k,
        cfg.sae.expansion,
        reader.width,
        f"{cfg.sae.token_budget:,}",
        n_passes,
        f"{n_train:,}",
    )
    trained = sae_mod.train_sae(
        sae_mod.training_batches(chunks, cfg.sae.batch_size, seed),
        reader.width,
        k=k,
        expansion=cfg.sae.expansion,
        token_budget=cfg.sae.token_budget,
        batch_size=cfg.sae.batch_size,
        lr=cfg.sae.lr,
        seed=seed,
        metadata={"model_name": cfg.model.name, "hook_name": layer},
    )
    extra = {
        "layer": layer,
        "train_folds": sorted(cfg.sae.train_folds),
        "train_positions": n_train,
        "passes": round(n_passes, 3),
        "capture_key": key,
    }
    return sae_mod.save_sae(trained, folder, extra)


def _drop_sae_layers(folder: Path, index: dict[str, Any]) -> None:
    """Remove every virtual layer from the index and the folder (an earlier one's too)."""
    for layer in [la for la in index["layers"] if is_sae_layer(la)]:
        del index["layers"][layer]
    for path in folder.glob(f"{SAE_PREFIX}*"):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def _write_layer(folder: Path, pooled: np.ndarray, key: str) -> None:
    """A virtual layer in the sharded layout (float32, one row a clip, ids = clip rows)."""
    writer = ShardWriter(folder, shard_rows=max(1, len(pooled)), dtype="float32", key=key)
    writer.append(pooled, np.arange(len(pooled)))
    writer.close()


def add_sae_layers(
    cfg: Config,
    run: RunDir,
    target: TargetModel,
    probing_set: ProbingSet | ClipList | None,
    cache: ActivationCache,
    weights: str,
) -> ActivationCache:
    """Add (or refresh) the virtual layers of ``cfg.sae`` in ``run/activations/`` and write
    :data:`REPORT`; with no ``sae.layers``, remove any earlier ones (``probing_set`` may then be
    ``None``). ``weights``: the target's weight fingerprint (the capture key's). Returns the
    recording, re-read."""
    folder = run.path / ACTIVATIONS
    index = json.loads((folder / "index.json").read_text())
    planned = {
        sae_mod.layer_name(layer, k): (layer, k)
        for layer in cfg.sae.layers
        for k in dict.fromkeys([cfg.sae.k, *cfg.sae.sweep_k])
    }
    _drop_sae_layers(folder, index)
    if not planned:
        write_json(folder / "index.json", index)
        run.path.joinpath(REPORT).unlink(missing_ok=True)
        return ActivationCache(folder)
    widths = {la: int(e["n_neurons"]) for la, e in index["layers"].items()}
    sae_mod.check_plan(cfg.sae, widths)
    if probing_set is None or probing_set.clip_ids != index["clip_ids"]:
        raise ConfigError("sae.layers: the clips to capture are not the recorded clips")
    folds = clip_folds(probing_set)
    train_clip = np.isin(folds, cfg.sae.train_folds)
    eval_clip = folds == cfg.sae.eval_fold
    report: dict[str, Any] = {}
    readers: dict[str, tuple[ShardReader, str]] = {}
    for name, (layer, k) in planned.items():
        if layer not in readers:
            module_path = index["layers"][layer]["module"]
            key = capture_key(weights, module_path, probing_set.clip_ids, target.name)
            reader = _capture(cfg, target, probing_set, module_path, key)
            readers[layer] = (reader, key)
        reader, key = readers[layer]
        sae_folder = _ensure_sae(cfg, layer, k, key, reader, train_clip)
        sae = sae_mod.load_sae(sae_folder)
        pooled, stats = sae_mod.encode_clips(
            sae, _blocks(reader), len(probing_set.clip_ids), cfg.record.pooling, eval_clip
        )
        dead = stats.dead
        alive = np.setdiff1d(np.arange(pooled.shape[1]), dead)
        _write_layer(folder / name, np.ascontiguousarray(pooled[:, alive]), sae_folder.name)
        index["layers"][name] = {
            "dir": name,
            "module": f"sae:{index['layers'][layer]['module']}",
            "n_neurons": int(len(alive)),
            "sae": {"layer": layer, "k": k, "folder": str(sae_folder), "latents": alive.tolist()},
        }
        report[name] = {
            **sae_mod.read_info(sae_folder),
            **stats.report(),
            "eval_fold": cfg.sae.eval_fold,
            "dead_latents": dead.tolist(),
            "folder": str(sae_folder),
        }
        log.info("%s: %s", name, stats.report())
    write_json(folder / "index.json", index)
    run.write_json(REPORT, report)
    return ActivationCache(folder)
