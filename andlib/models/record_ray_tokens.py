"""Token-level capture for the SAE layers on Ray Data (``record.engine: ray``).

The same path as the Ray recorder (:mod:`andlib.models.record_ray`): the recorded clips' paths
go into decoding tasks (:func:`~andlib.models.record_ray.decode_batch`), the model runs in the
same pool of actors (:class:`~andlib.models.record_ray.ModelActor`, each loading the target
once through the model-family registry), which return every position of one layer instead of
pooled activations (a Whisper clip's own positions only), and the driver writes them shard by
shard into the layout and index :func:`andlib.models.sae_layer.capture_tokens` writes
(float16, row ids ``(clip index, position)``). A killed driver, or one that sees a worker fail
for good, resumes after the last finished shard; ``record.ray.fail_after_batches`` makes an
actor exit once, as for the recording.

Public surface: :func:`capture_tokens_ray`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from andlib.config import Config
from andlib.data.audio import AudioError
from andlib.models.record_ray import FAULT_MARK, _after_failure, _dataset, _ray, start_ray
from andlib.store_shards import ShardReader, ShardWriter

log = logging.getLogger(__name__)


def capture_tokens_ray(
    cfg: Config, meta: pd.DataFrame, module_path: str, folder: Path, *, key: str
) -> ShardReader:
    """Every position of the module ``module_path`` on the clips of ``meta`` (row ``i``, read
    from its ``path``, is clip ``i``), through Ray, into the sharded float16 layer at
    ``folder``: the shards, row ids and index that
    :func:`~andlib.models.sae_layer.capture_tokens` writes (``model.batch_size`` clips a
    batch, ``sae.shard_rows`` positions a shard).

    Decoding runs in CPU tasks and the model in the actor pool
    (:class:`~andlib.models.record_ray.ModelActor` returning the tokens of ``module_path``); the
    driver appends each batch's positions as they come back, in clip order, so it holds one
    shard and a few batches at most. A complete capture with the same ``key`` is reused; an
    unfinished one resumes after its last finished shard (the positions of the clip that shard
    ends in that are stored already are not written twice), also within one call after a
    failed worker (``record.ray.max_restarts``). A clip that no longer decodes is an
    :class:`~andlib.data.audio.AudioError` naming it: these are the recorded clips.
    """
    ray = _ray()
    rc = cfg.record.ray
    fault = str(Path(folder).parent / FAULT_MARK.format(key=key))
    for attempt in range(rc.max_restarts + 1):
        writer = ShardWriter(
            folder, shard_rows=cfg.sae.shard_rows, dtype="float16", id_width=2, key=key
        )
        if writer.complete:
            return ShardReader(folder)
        done = writer.done_ids()
        start, skip_to = (int(done[-1, 0]), int(done[-1, 1]) + 1) if len(done) else (0, 0)
        if len(done):
            log.info("resuming the token capture at clip %d of %d", start, len(meta))
        start_ray(rc)
        try:
            _stream_tokens(cfg, writer, meta, (start, skip_to), module_path, fault)
            break
        except ray.exceptions.RayError as e:
            _after_failure(e, attempt, rc, "token capture")
    if Path(fault).exists():
        log.warning("record.ray.fail_after_batches: an actor exited during the token capture")
        Path(fault).unlink()
    return writer.close(meta={"module": module_path, "n_clips": len(meta)})


def _stream_tokens(
    cfg: Config,
    writer: ShardWriter,
    meta: pd.DataFrame,
    resume: tuple[int, int],
    module_path: str,
    fault: str | None,
) -> None:
    """Capture clips ``resume[0]:`` of ``meta`` through Ray into ``writer``, in clip order,
    the first from position ``resume[1]`` on."""
    start, skip_to = resume
    paths = meta["path"].astype(str).tolist()
    items = pd.DataFrame({"clip": np.arange(start, len(paths)), "path": paths[start:]})
    if items.empty:
        return
    ds = _dataset(cfg, items, {}, fault, tokens=module_path)
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for clip, error, rows in zip(batch["clip"], batch["error"], batch["tokens"], strict=True):
            clip = int(clip)
            if error:
                raise AudioError(paths[clip], f"{error}; it decoded when the layers were recorded")
            first = skip_to if clip == start else 0
            pos = np.arange(first, len(rows))
            writer.append(
                np.asarray(rows)[first:], np.stack([np.full(len(pos), clip), pos], axis=1)
            )
