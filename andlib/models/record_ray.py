"""The record stage on Ray Data (``record.engine: ray``): many CPUs and GPUs, one layout.

The driver reads the probing set's clip list (:func:`andlib.data.probing.probing_clips`,
nothing decoded here) into a Ray dataset; decoding and resampling run as CPU tasks
(:func:`decode_batch`, the same :func:`~andlib.data.audio.load_audio` as the local path); the
model runs in a pool of actors (:class:`ModelActor`), each loading the target once through
the model-family registry (:func:`~andlib.models.registry.load_target`) and returning the
pooled activations of its batch; the driver streams the batches back in clip order into the
shards of :class:`~andlib.models.recording.Recording`, the layout the local recorder writes.

Faults: Ray Data restarts a dead actor and retries its batch; a driver that is killed, or
that sees a worker fail for good, resumes after the last finished shard (up to
``record.ray.max_restarts`` times within one call). A clip that fails to decode goes to
``skipped.csv`` by path and reason and never stops the job (``data.on_error: raise`` stops it,
naming the clip). ``record.ray.fail_after_batches`` makes the first actor to reach that many
batches exit once, for the tests. ``record.ray.address`` joins a cluster; one that cannot be
reached is a one-line error naming it.

Token-level capture for the SAE layers takes the same path
(:mod:`andlib.models.record_ray_tokens`): :class:`ModelActor` then returns every position of
one layer instead of pooled activations.

Public surface: :func:`record_ray`, :class:`RayRecording`, :class:`ModelActor`,
:func:`decode_batch`, :func:`block_rows`, :func:`start_ray`, :class:`RayRecordError`,
:class:`RayUnavailable`.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from andlib.config import Config, RayConfig
from andlib.data.audio import AudioError, load_audio
from andlib.data.probing import probing_clips
from andlib.models.base import TargetModel
from andlib.models.hooks import ActivationRecorder, token_positions
from andlib.models.layers import resolve_layers
from andlib.models.recording import Recording, read_skipped, target_recording_key
from andlib.models.registry import load_target
from andlib.store import ACTIVATIONS, ActivationCache, RunDir

log = logging.getLogger(__name__)

INSTALL = 'pip install -c constraints.txt -e ".[ray]"'
"""How to install the optional Ray extra (pinned in ``constraints.txt``)."""
FAULT_MARK = ".fault-{key}"
"""The file (in ``activations/``) an injected fault leaves, so that it fires once a recording."""


class RayRecordError(RuntimeError):
    """The Ray engine cannot record (a one-line message; the CLI prints it as it is)."""


class RayUnavailable(RayRecordError):
    """Ray is not installed, or the cluster named by ``record.ray.address`` cannot be reached."""


@dataclass
class RayRecording:
    """What :func:`record_ray` gives back: the recording, the kept clips' rows (``clips.csv``
    order), the skipped clips and how long Ray took to start."""

    cache: ActivationCache
    meta: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)
    startup_seconds: float = 0.0
    """Seconds spent starting or joining Ray (0 when it was already running)."""
    injected_fault: bool = False
    """True when ``record.ray.fail_after_batches`` made an actor exit during this call."""

    def skipped_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.skipped, columns=["path", "reason"])


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailable(
            f"record.engine: ray needs Ray, which is not installed ({INSTALL})"
        ) from None
    return ray


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A one-line :class:`RayUnavailable` naming ``address`` when nothing listens there."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailable(
            f"record.ray.address: {address!r} is not auto, <host>:<port> or ray://<host>:<port>"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise RayUnavailable(
            f"record.ray.address: no Ray cluster reachable at {address} ({e.strerror or e})"
        ) from None


def start_ray(rc: RayConfig) -> float:
    """Join ``rc.address`` or start Ray on this machine (unless it is already running);
    return the seconds it took. Workers started here import this copy of ``andlib``."""
    ray = _ray()
    if ray.is_initialized():
        return 0.0
    t0 = time.perf_counter()
    root = str(Path(__file__).resolve().parents[2])
    env = {k: v for k, v in os.environ.items() if k.endswith("_OFFLINE")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": False,
    }
    if rc.address:
        _check_reachable(rc.address)
        try:
            ray.init(address=rc.address, **kwargs)
        except (ConnectionError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RayUnavailable(
                f"record.ray.address: cannot join the Ray cluster at {rc.address} ({first})"
            ) from None
    else:
        ray.init(runtime_env={"env_vars": env}, **kwargs)
    return time.perf_counter() - t0


def decode_batch(batch: dict[str, np.ndarray], data: Any) -> dict[str, np.ndarray]:
    """Decode and resample a batch of clips (``clip``, ``path``) as a CPU task: ``audio``
    (float32 arrays, empty for a clip that failed) and ``error`` (``""`` or the reason)."""
    audio, errors = [], []
    for path in batch["path"]:
        try:
            audio.append(load_audio(str(path), data.sample_rate, data.duration, data.silence_dbfs))
            errors.append("")
        except AudioError as e:
            audio.append(np.zeros(0, dtype=np.float32))
            errors.append(e.reason)
    out = np.empty(len(audio), dtype=object)
    out[:] = audio
    return {"clip": batch["clip"], "path": batch["path"], "audio": out, "error": np.array(errors)}


class ModelActor:
    """One model replica: loads the target once (through the model-family registry) and
    records each batch it is given: ``a<i>`` is layer ``i``'s ``[rows, n_neurons]`` float32
    activations (NaN rows for clips that failed to decode).

    With ``tokens`` (a module path) it returns that module's output at every position instead,
    not pooled: ``tokens`` holds one float16 ``[positions, d]`` array per clip (a Whisper
    clip's own positions only, as :func:`~andlib.models.sae_layer.capture_tokens` stores them;
    an empty array for a clip that failed to decode)."""

    def __init__(
        self,
        cfg: Config,
        layers: dict[str, str],
        fault_mark: str | None,
        fail_after: int | None,
        tokens: str | None = None,
    ):
        torch.set_num_threads(max(1, int(cfg.record.ray.num_cpus_per_actor)))
        self.target: TargetModel = load_target(cfg)
        self.target.module.eval()
        self.layers, self.pooling, self.tokens = layers, cfg.record.pooling, tokens
        self.fault_mark, self.fail_after = fault_mark, fail_after
        self.batches = 0
        probe = np.zeros(cfg.data.sample_rate, dtype=np.float32)  # one second: the widths
        self.widths = {k: v.shape[1] for k, v in self._record([probe]).items()} if layers else {}

    def _record(self, audio: list[np.ndarray]) -> dict[str, torch.Tensor]:
        with (
            torch.inference_mode(),
            ActivationRecorder(self.target.module, self.layers, self.pooling) as recorder,
        ):
            self.target.forward(audio)
            return recorder.pop()

    def _positions(self, audio: list[np.ndarray]) -> list[np.ndarray]:
        """Each clip's float16 ``[positions, d]`` output of the module ``tokens``."""
        module, captured = self.target.module, []

        def hook(mod: torch.nn.Module, args: Any, output: Any) -> None:
            captured.append(token_positions(output, getattr(module, "pool_lengths", None)))

        handle = module.get_submodule(str(self.tokens)).register_forward_hook(hook)
        try:
            with torch.inference_mode():
                self.target.forward(audio)
        finally:
            handle.remove()
        if len(captured) != 1:
            raise RuntimeError(f"{self.tokens} ran {len(captured)} times in one pass")
        return captured[0]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = np.array([e == "" for e in batch["error"]], dtype=bool)
        n = len(ok)
        out: dict[str, np.ndarray] = {"clip": batch["clip"], "error": batch["error"]}
        audio = [batch["audio"][i] for i in np.flatnonzero(ok)]
        if self.tokens is not None:
            found = iter(self._positions(audio) if audio else [])
            rows = np.empty(n, dtype=object)
            rows[:] = [next(found) if good else np.zeros((0, 0), np.float16) for good in ok]
            out["tokens"] = rows
        acts = self._record(audio) if audio and self.layers else {}
        for i, layer in enumerate(self.layers):
            a = np.full((n, self.widths[layer]), np.nan, dtype=np.float32)
            if acts:
                a[ok] = acts[layer].numpy()
            out[f"a{i}"] = a
        self.batches += 1
        if self.fail_after is not None and self.fault_mark and self.batches >= self.fail_after:
            try:
                os.close(os.open(self.fault_mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                log.warning("fault injection: an actor exits after %d batches", self.batches)
                os._exit(1)
        return out


def block_rows(n_clips: int, batch_size: int, max_blocks: int = 200, max_rows: int = 256) -> int:
    """Clips a decoding task takes: whole batches, at most ``max_rows`` (a block of decoded
    audio stays small) and, below that, few enough for about ``max_blocks`` tasks."""
    per_block = -(-n_clips // (batch_size * max_blocks))
    return batch_size * max(1, min(max(1, max_rows // batch_size), per_block))


def _dataset(
    cfg: Config,
    items: pd.DataFrame,
    layers: dict[str, str],
    fault: str | None,
    tokens: str | None = None,
) -> Any:
    ray = _ray()
    rc, bs = cfg.record.ray, cfg.model.batch_size
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    import pyarrow as pa

    table = pa.table({"clip": items["clip"].to_numpy(), "path": items["path"].astype(str).tolist()})
    block = block_rows(len(items), bs)
    ds = ray.data.from_arrow([table.slice(s, block) for s in range(0, len(items), block)])
    ds = ds.map_batches(
        decode_batch,
        batch_size=bs,
        batch_format="numpy",
        fn_kwargs={"data": cfg.data},
        num_cpus=rc.num_cpus_per_decode,
    )
    return ds.map_batches(
        ModelActor,
        batch_size=bs,
        batch_format="numpy",
        fn_constructor_kwargs={
            "cfg": cfg,
            "layers": layers,
            "fault_mark": fault,
            "fail_after": rc.fail_after_batches,
            "tokens": tokens,
        },
        compute=ray.data.ActorPoolStrategy(size=rc.num_actors),
        num_cpus=rc.num_cpus_per_actor,
        num_gpus=rc.num_gpus_per_actor or None,
    )


def _stream(cfg: Config, rec: Recording, rows: pd.DataFrame, start: int, fault: str | None) -> None:
    """Record clips ``start:`` of ``rows`` through Ray into ``rec``, in clip order."""
    items = pd.DataFrame({"clip": np.arange(start, len(rows)), "path": rows["path"][start:]})
    if items.empty:
        return
    layers = list(rec.layers)
    for batch in _dataset(cfg, items, rec.layers, fault).iter_batches(
        batch_size=None, batch_format="numpy"
    ):
        clips = np.asarray(batch["clip"], dtype=np.int64)
        ok = np.array([e == "" for e in batch["error"]], dtype=bool)
        for c in np.flatnonzero(~ok):
            path, reason = str(rows["path"].iloc[clips[c]]), str(batch["error"][c])
            if cfg.data.on_error == "raise":
                raise AudioError(path, reason)
            log.warning("skipping %s: %s", path, reason)
            rec.skip(int(clips[c]), path, reason)
        if ok.any():
            acts = {layer: np.asarray(batch[f"a{i}"])[ok] for i, layer in enumerate(layers)}
            rec.append(acts, clips[ok])


def record_ray(cfg: Config, target: TargetModel, run: RunDir, key: str | None) -> RayRecording:
    """Record the configured layers of ``target`` (loaded here for its layers and weights'
    identity; each actor loads its own) on the probing set's clips through Ray into
    ``run/activations/``. Reused when a finished recording with the same key is there."""
    ray = _ray()
    clips = probing_clips(cfg)
    rows = clips.rows.reset_index(drop=True)
    layer_map = resolve_layers(target.module, cfg.record.layers)
    folder = run.path / ACTIVATIONS
    rec_key = target_recording_key(
        key, target, layer_map, cfg.record.pooling, cfg.model.batch_size, rows["clip_id"].tolist()
    )
    fault = str(folder / FAULT_MARK.format(key=rec_key))
    startup = 0.0
    if ActivationCache.is_complete(folder, rec_key):
        log.info("reusing stored activations in %s", folder)
        cache = ActivationCache(folder)
        position = {cid: i for i, cid in enumerate(rows["clip_id"])}
        kept_idx = [position[c] for c in cache.clip_ids]
    else:
        for attempt in range(cfg.record.ray.max_restarts + 1):
            rec = Recording(folder, rec_key, layer_map, cfg.record.pooling, cfg.record.shard_rows)
            done = rec.done_ids()
            start = int(done[-1]) + 1 if len(done) else 0
            if start:
                log.info("resuming the Ray recording at clip %d of %d", start, len(rows))
            startup += start_ray(cfg.record.ray)
            try:
                _stream(cfg, rec, rows, start, fault)
                break
            except ray.exceptions.RayError as e:
                _after_failure(e, attempt, cfg.record.ray, "recording")
        kept_idx = _finish_ids(rec)
        if not kept_idx:
            raise AudioError(
                cfg.data.root or clips.name, f"no usable audio among {len(rows)} files"
            )
        cache = rec.close(rows["clip_id"].iloc[kept_idx].tolist())
    injected = Path(fault).exists()
    Path(fault).unlink(missing_ok=True)
    skipped = [(p, r) for _, p, r in read_skipped(folder)]
    meta = rows.iloc[kept_idx].reset_index(drop=True)
    return RayRecording(cache, meta, skipped, startup, injected)


def _finish_ids(rec: Recording) -> list[int]:
    """Every recorded row's clip index once the stream is through (buffered rows flushed)."""
    for w in rec.writers.values():
        w.flush()
    return [int(i) for i in rec.done_ids()]


def _after_failure(error: Exception, attempt: int, rc: RayConfig, what: str) -> None:
    """Warn that a Ray worker failed and the driver resumes, or, after ``rc.max_restarts``
    resumptions, raise the one-line :class:`RayRecordError`."""
    brief = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if attempt == rc.max_restarts:
        raise RayRecordError(
            f"record: the Ray {what} failed {attempt + 1} times; last: {brief}"
        ) from None
    log.warning("a Ray worker failed (%s); resuming after the last shard", brief)
