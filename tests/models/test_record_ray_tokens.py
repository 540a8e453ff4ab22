"""andlib.models.record_ray_tokens: the SAE layers' token capture on Ray, against the local one.

Runs on a local Ray (``ray.init(num_cpus=2)``) with the tiny AST and folder of tones of the
Ray engine's tests, and whisper-tiny.en on tones of different lengths (a clip's own positions
only); skipped only where Ray is not installed. The record stage's path through Ray with an
SAE layer runs on ESC-50 clips (folds), where the shared copy is present.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from andlib.data.probing import load_probing_set
from andlib.models import record_ray_tokens as rt
from andlib.models import sae_layer
from andlib.models.layers import resolve_layers
from andlib.models.registry import load_target
from andlib.store_shards import ShardReader, ShardWriter
from tests.conftest import requires_esc50, write_tone

SHARD_ROWS = 40  # 18 positions a clip of the tiny AST: shards end inside clips


def _cfg(tmp_cfg, base: Path, **extra):
    return tmp_cfg(
        {
            "model.name": str(base / "model"),
            "model.batch_size": 2,
            "model.device": "cpu",
            "data.dataset": "folder",
            "data.root": str(base / "audio"),
            "data.duration": 1.0,
            "record.engine": "ray",
            "sae.shard_rows": SHARD_ROWS,
            **extra,
        }
    )


def _local(cfg, layer: str, folder: Path, key: str) -> tuple[ShardReader, str]:
    """The local capture of ``layer`` (a preset key) and its module path."""
    target = load_target(cfg)
    preset = "preset:whisper" if "whisper" in cfg.model.name else "preset:ast"
    module_path = resolve_layers(target.module, [preset])[layer]
    probing = load_probing_set(cfg)
    reader = sae_layer.capture_tokens(
        target,
        probing,
        module_path,
        folder,
        key=key,
        batch_size=cfg.model.batch_size,
        shard_rows=cfg.sae.shard_rows,
    )
    return reader, module_path


def _assert_same(got: ShardReader, want: ShardReader) -> None:
    """Equal shards: the same index and ids, and the same values up to float noise. Values
    stored in float16 may differ by one float16 step (a relative 2**-10) where the two engines'
    float32 results, equal to about 1e-6, round to either side of a float16 value."""
    assert got.complete and want.complete
    index = json.loads((want.folder / "index.json").read_text())
    assert json.loads((got.folder / "index.json").read_text()) == index
    np.testing.assert_array_equal(got.ids(), want.ids())
    rtol = 2**-10 if index["dtype"] == "float16" else 0.0
    for i in range(want.n_shards):
        np.testing.assert_allclose(
            np.asarray(got.shard(i), dtype=np.float32),
            np.asarray(want.shard(i), dtype=np.float32),
            rtol=rtol,
            atol=1e-6,
        )


@pytest.fixture(scope="module")
def local_capture(ray_setup, tmp_path_factory):
    """The local capture of the tiny AST's layers.1.out on the 11 readable tones."""
    from andlib.config import load_config

    tmp = tmp_path_factory.mktemp("local-tokens")
    cfg = load_config(
        None,
        {
            "run_dir": str(tmp / "run"),
            "cache_dir": str(tmp / "cache"),
            "model.name": str(ray_setup / "model"),
            "model.batch_size": 2,
            "model.device": "cpu",
            "data.dataset": "folder",
            "data.root": str(ray_setup / "audio"),
            "data.duration": 1.0,
            "sae.shard_rows": SHARD_ROWS,
        },
    )
    return _local(cfg, "layers.1.out", tmp / "tokens", key="k")


def test_the_capture_through_ray_equals_the_local_one(
    local_ray, ray_setup, tmp_cfg, tmp_path, local_capture
):
    want, module_path = local_capture
    cfg = _cfg(tmp_cfg, ray_setup)
    meta = load_probing_set(cfg).meta
    assert len(meta) == 11, "the broken file is not among the recorded clips"
    got = rt.capture_tokens_ray(cfg, meta, module_path, tmp_path / "tokens", key="k")
    assert got.n_rows == 11 * 18 and got.n_shards == 5 and got.dtype == np.float16
    _assert_same(got, want)
    stamp = (tmp_path / "tokens" / "index.json").stat().st_mtime_ns
    again = rt.capture_tokens_ray(cfg, meta, module_path, tmp_path / "tokens", key="k")
    assert again.n_rows == got.n_rows
    assert (tmp_path / "tokens" / "index.json").stat().st_mtime_ns == stamp, "reused"


def test_an_actor_that_exits_mid_capture_is_replaced_and_the_capture_is_unchanged(
    local_ray, ray_setup, tmp_cfg, tmp_path, local_capture, caplog
):
    want, module_path = local_capture
    cfg = _cfg(tmp_cfg, ray_setup, **{"record.ray.fail_after_batches": 2})
    meta = load_probing_set(cfg).meta
    with caplog.at_level(logging.WARNING, logger=rt.__name__):
        got = rt.capture_tokens_ray(cfg, meta, module_path, tmp_path / "tokens", key="k")
    assert "an actor exited during the token capture" in caplog.text
    assert not list(tmp_path.glob(".fault-*")), "the fault fires once and leaves nothing"
    _assert_same(got, want)


class Killed(Exception):
    """The driver's process dying."""


def test_a_killed_driver_resumes_after_the_last_finished_shard(
    local_ray, ray_setup, tmp_cfg, tmp_path, local_capture, monkeypatch
):
    want, module_path = local_capture
    cfg = _cfg(tmp_cfg, ray_setup)
    meta = load_probing_set(cfg).meta
    appended = []
    real_append = ShardWriter.append

    def dies_on_the_sixth_clip(self, block, ids):
        if len(appended) == 5:
            raise Killed
        appended.append(len(block))
        real_append(self, block, ids)

    monkeypatch.setattr(ShardWriter, "append", dies_on_the_sixth_clip)
    with pytest.raises(Killed):
        rt.capture_tokens_ray(cfg, meta, module_path, tmp_path / "tokens", key="k")
    monkeypatch.undo()
    assert ShardReader(tmp_path / "tokens").n_rows == 2 * SHARD_ROWS  # 90 rows appended
    resumed = []
    real_stream = rt._stream_tokens

    def stream(c, writer, m, resume, path, fault):
        resumed.append(resume)
        real_stream(c, writer, m, resume, path, fault)

    monkeypatch.setattr(rt, "_stream_tokens", stream)
    got = rt.capture_tokens_ray(cfg, meta, module_path, tmp_path / "tokens", key="k")
    assert resumed == [(4, 80 - 4 * 18)], "clip 4 from its first position not yet stored"
    _assert_same(got, want)


def test_whisper_clips_keep_their_own_positions_through_ray(local_ray, tmp_cfg, tmp_path):
    for i, seconds in enumerate([0.5, 1.2, 0.8, 0.3, 1.0]):
        write_tone(tmp_path / "audio" / f"t{i}.wav", 300 + 100 * i, seconds=seconds)
    cfg = tmp_cfg(
        {
            "model.name": "whisper-tiny.en",
            "model.batch_size": 2,
            "model.device": "cpu",
            "data.dataset": "folder",
            "data.root": str(tmp_path / "audio"),
            "data.duration": None,
            "record.engine": "ray",
            "sae.shard_rows": 64,
        }
    )
    want, module_path = _local(cfg, "layers.1.out", tmp_path / "local", key="w")
    lengths = np.bincount(want.ids()[:, 0])
    assert len(set(lengths.tolist())) == 5, "each clip has positions of its own length"
    meta = load_probing_set(cfg).meta
    got = rt.capture_tokens_ray(cfg, meta, module_path, tmp_path / "ray", key="w")
    _assert_same(got, want)


@requires_esc50
def test_the_record_stage_on_ray_captures_for_the_sae_through_ray(
    local_ray, ray_setup, tmp_cfg, tmp_path, monkeypatch
):
    from andlib.models import activations

    def settings(engine: str) -> dict:
        return {
            "run_dir": str(tmp_path / engine / "run"),
            "cache_dir": str(tmp_path / engine / "cache"),
            "model.name": str(ray_setup / "model"),
            "model.batch_size": 4,
            "model.device": "cpu",
            "data.dataset": "esc50",
            "data.limit": 15,
            "record.engine": engine,
            "record.layers": ["layers.1.out"],
            "sae.layers": ["layers.1.out"],
            "sae.k": 4,
            "sae.expansion": 2,
            "sae.token_budget": 1024,
            "sae.batch_size": 64,
            "sae.shard_rows": 100,
        }

    local = tmp_cfg(settings("local"))
    activations.run_stage(local, activations.RunDir.from_config(local))
    ray_cfg = tmp_cfg(settings("ray"))
    monkeypatch.setattr(activations, "load_probing_set", None)  # nothing decoded in the driver
    activations.run_stage(ray_cfg, activations.RunDir.from_config(ray_cfg))
    folders = [next((c.cache_path / "sae" / "tokens").iterdir()) for c in (ray_cfg, local)]
    assert folders[0].name == folders[1].name, "the same capture key"
    _assert_same(ShardReader(folders[0]), ShardReader(folders[1]))
    caches = [
        activations.ActivationCache.load(activations.RunDir(c.run_path)) for c in (ray_cfg, local)
    ]
    name = "sae.layers.1.out.k4"
    assert caches[0].layers == caches[1].layers == ["layers.1.out", name]
    np.testing.assert_allclose(caches[0][name], caches[1][name], rtol=0, atol=1e-5)
