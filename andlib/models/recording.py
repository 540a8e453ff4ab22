"""A recording in progress: one shard writer per layer under ``activations/``, and its index.

Both engines of the record stage write through :class:`Recording`: the local recorder
(:func:`andlib.models.activations.record_target`) and the Ray recorder
(:mod:`andlib.models.record_ray`). Each layer is a folder in the
:mod:`andlib.store_shards` layout (``activations/<layer>/``); ``activations/index.json``
(the clip ids, and per layer its folder, module and width) is written only when every layer
is complete, so a recording with an index is finished. A recording opened again under the
same key resumes after the last shard every layer has finished.

Public surface: :class:`Recording`, :func:`recording_key`, :func:`target_recording_key`,
:func:`fingerprint`, :func:`warn_long_clips`, :func:`read_skipped`, :data:`SKIPPED_LOG`.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from andlib.config import stable_hash
from andlib.data.audio import ProbingSet
from andlib.models.base import TargetModel
from andlib.store import ActivationCache, write_json
from andlib.store_shards import ShardWriter, is_sharded

log = logging.getLogger(__name__)

SKIPPED_LOG = ".skipped.jsonl"
"""Clips a recording found unusable so far (``{"clip": i, "path", "reason"}`` a line), kept
beside the shards so that a resumed recording still reports the clips it skipped earlier."""


def fingerprint(module: nn.Module) -> str:
    """A cheap identity of the weights (names, shapes, sums), so another model is never reused."""
    with torch.no_grad():
        parts = [
            (n, list(p.shape), float(p.detach().double().sum()))
            for n, p in module.named_parameters()
        ]
    return stable_hash(parts)


def recording_key(
    key: str | None,
    model: str,
    weights: str,
    layers: Mapping[str, str],
    pooling: str,
    batch_size: int,
    clip_ids: Sequence[str],
) -> str:
    """What a recording is of: the stage key, the model and its weights, the layers, the
    pooling, the batch size and the clips (a stored recording with another key is redone)."""
    return stable_hash(
        {
            "key": key,
            "model": model,
            "weights": weights,
            "layers": dict(layers),
            "pooling": pooling,
            "batch_size": batch_size,
            "clips": stable_hash(list(clip_ids)),
        }
    )


def target_recording_key(
    key: str | None,
    target: TargetModel,
    layers: Mapping[str, str],
    pooling: str,
    batch_size: int,
    clip_ids: Sequence[str],
) -> str:
    """:func:`recording_key` of ``target`` (its name and the :func:`fingerprint` of its
    weights) recording ``layers`` on ``clip_ids``."""
    return recording_key(
        key, target.name, fingerprint(target.module), layers, pooling, batch_size, clip_ids
    )


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


def read_skipped(folder: Path, before: int | None = None) -> list[tuple[int, str, str]]:
    """``(clip index, path, reason)`` of the clips a recording in ``folder`` skipped (those
    below ``before``), each once, in clip order."""
    path = Path(folder) / SKIPPED_LOG
    if not path.exists():
        return []
    seen: dict[int, tuple[int, str, str]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            e = json.loads(line)
            if before is None or e["clip"] < before:
                seen[int(e["clip"])] = (int(e["clip"]), e["path"], e["reason"])
    return [seen[k] for k in sorted(seen)]


class Recording:
    """The shard writers of one recording (``folder`` = ``<run>/activations``).

    ``layers`` maps layer keys to module paths. :attr:`n_done` is where the recording goes on
    (rows every layer has in finished shards); :meth:`append` takes one batch's pooled
    activations with the clip indices of its rows; :meth:`close` writes ``index.json``.
    """

    def __init__(
        self, folder: Path, key: str, layers: Mapping[str, str], pooling: str, shard_rows: int
    ):
        self.folder, self.key, self.pooling = Path(folder), key, pooling
        self.layers = dict(layers)
        (self.folder / "index.json").unlink(missing_ok=True)  # never an index over mixed shards
        self.writers = {
            layer: ShardWriter(self.folder / layer, shard_rows=shard_rows, key=key)
            for layer in self.layers
        }
        done = min(w.n_done for w in self.writers.values())
        try:
            for w in self.writers.values():
                w.truncate(done)  # a layer killed after its shard, before the others'
        except ValueError:  # shards of another size (record.shard_rows changed): start over
            log.warning("%s: the layers' shards do not line up; recording anew", self.folder)
            done = 0
            for w in self.writers.values():
                w.truncate(0)
        self.n_done = done
        """Rows stored in finished shards of every layer."""
        self._skipped_file = self.folder / SKIPPED_LOG
        if done == 0:
            self._skipped_file.unlink(missing_ok=True)

    def done_ids(self) -> np.ndarray:
        """The clip indices of the finished rows, in order."""
        return next(iter(self.writers.values())).done_ids()

    def append(self, acts: Mapping[str, np.ndarray | torch.Tensor], ids: np.ndarray) -> None:
        """Store one batch: ``acts[layer]`` is ``[rows, n_neurons]``, ``ids`` its clip indices."""
        for layer, writer in self.writers.items():
            x = acts[layer]
            writer.append(x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x), ids)

    def skip(self, clip: int, path: str, reason: str) -> None:
        """Note a clip that could not be used (read back by :meth:`skipped`)."""
        with self._skipped_file.open("a") as f:
            f.write(json.dumps({"clip": int(clip), "path": path, "reason": reason}) + "\n")

    def skipped(self, before: int | None = None) -> list[tuple[int, str, str]]:
        """The clips skipped so far (:func:`read_skipped`)."""
        return read_skipped(self.folder, before)

    def close(
        self, clip_ids: Sequence[str], meta: Mapping[str, Any] | None = None
    ) -> ActivationCache:
        """Finish every layer and write ``activations/index.json`` (row ``i`` = ``clip_ids[i]``);
        remove what an earlier recording of other layers or the one-file layout left."""
        widths = {}
        for layer, writer in self.writers.items():
            reader = writer.close(meta={"layer": layer, "module": self.layers[layer]})
            if reader.n_rows != len(clip_ids):
                raise RuntimeError(
                    f"{writer.folder}: {reader.n_rows} rows recorded for {len(clip_ids)} clips"
                )
            widths[layer] = reader.width
        for stale in self.folder.iterdir():
            if stale.name in self.layers or stale.name == SKIPPED_LOG:
                continue
            if stale.is_file() and stale.suffix == ".npy":
                stale.unlink()  # a layer of the one-file layout
            elif stale.is_dir() and (stale.name == ".partial" or is_sharded(stale)):
                shutil.rmtree(stale)
        index = {
            "key": self.key,
            "pooling": self.pooling,
            "clip_ids": list(clip_ids),
            **dict(meta or {}),
            "layers": {
                layer: {"dir": layer, "module": path, "n_neurons": widths[layer]}
                for layer, path in self.layers.items()
            },
        }
        write_json(self.folder / "index.json", index)
        return ActivationCache(self.folder)
