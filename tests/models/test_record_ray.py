"""andlib.models.record_ray: the record stage on Ray Data, against the local recorder.

Runs on a local Ray (``ray.init(num_cpus=2)``) with a tiny AST and a folder of generated
tones (one of them unreadable); skipped only where Ray is not installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from andlib.models import activations
from andlib.models import record_ray as rr
from andlib.models.recording import Recording
from andlib.store import ActivationCache, RunDir


def test_without_ray_the_engine_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(rr.RayUnavailable, match=r"not installed \(pip install .*\[ray\]"):
        rr._ray()


def test_decoding_blocks_are_whole_batches_small_and_not_too_many():
    assert rr.block_rows(2000, 16) == 16  # 125 tasks
    assert rr.block_rows(2_000_000, 64) == 256  # capped: a block of audio stays small
    assert rr.block_rows(20_000, 16) == 112  # about 200 tasks
    assert rr.block_rows(3, 16) == 16


ray = pytest.importorskip("ray", reason="Ray is not installed (the ray extra: .[ray])")


def _cfg(tmp_cfg, base: Path, run: str, **extra):
    return tmp_cfg(
        {
            "run_dir": str(base / run),
            "model.name": str(base / "model"),
            "model.batch_size": 2,
            "model.device": "cpu",
            "data.dataset": "folder",
            "data.root": str(base / "audio"),
            "data.duration": 1.0,
            "record.layers": ["preset:ast"],
            "record.shard_rows": 4,
            "k": 3,
            **extra,
        }
    )


def _outputs(run: RunDir) -> tuple[dict[str, np.ndarray], pd.DataFrame, pd.DataFrame, list]:
    cache = ActivationCache.load(run)
    arrays = {layer: np.asarray(cache[layer]) for layer in cache.layers}
    skipped = run.read_csv("skipped.csv")
    return (
        arrays,
        run.read_csv("neuron_topk.csv"),
        run.read_csv("clips.csv"),
        skipped.values.tolist(),
    )


@pytest.fixture(scope="module")
def local_run(ray_setup, tmp_path_factory):
    from andlib.config import load_config

    cfg = load_config(
        None,
        {
            "run_dir": str(ray_setup / "local"),
            "cache_dir": str(ray_setup / "cache"),
            "figures_dir": str(ray_setup / "figures"),
            "model.name": str(ray_setup / "model"),
            "model.batch_size": 2,
            "model.device": "cpu",
            "data.dataset": "folder",
            "data.root": str(ray_setup / "audio"),
            "data.duration": 1.0,
            "record.shard_rows": 4,
            "k": 3,
        },
    )
    activations.run_stage(cfg, RunDir.from_config(cfg))
    return _outputs(RunDir.from_config(cfg))


def _assert_same(got, want):
    arrays, topk, clips, skipped = got
    want_arrays, want_topk, want_clips, want_skipped = want
    assert list(arrays) == list(want_arrays)
    for layer in want_arrays:
        np.testing.assert_allclose(arrays[layer], want_arrays[layer], rtol=0, atol=1e-6)
    cols = ["layer", "neuron", "end", "rank", "clip_id"]
    pd.testing.assert_frame_equal(topk[cols], want_topk[cols])
    np.testing.assert_allclose(topk["activation"], want_topk["activation"], rtol=0, atol=1e-6)
    pd.testing.assert_frame_equal(clips, want_clips)
    assert skipped == want_skipped and len(skipped) == 1 and "t05b.wav" in skipped[0][0]


def test_ray_activations_and_topk_equal_the_local_recorders(
    local_ray, ray_setup, tmp_cfg, local_run
):
    cfg = _cfg(tmp_cfg, ray_setup, "ray", **{"record.engine": "ray"})
    run = RunDir.from_config(cfg)
    summary = activations.run_stage(cfg, run)
    assert summary["clips"] == 11 and not summary["reused"]
    assert ActivationCache.load(run)["layers.0.mlp"].n_shards == 3  # 11 clips, 4 a shard
    _assert_same(_outputs(run), local_run)
    assert activations.run_stage(cfg, run)["reused"]


def test_an_actor_that_exits_mid_run_is_replaced_and_the_outputs_are_unchanged(
    local_ray, ray_setup, tmp_cfg, local_run
):
    cfg = _cfg(
        tmp_cfg, ray_setup, "fault", **{"record.engine": "ray", "record.ray.fail_after_batches": 2}
    )
    run = RunDir.from_config(cfg)
    target = activations.load_target(cfg)
    result = rr.record_ray(cfg, target, run, activations.SPEC.key(cfg, run))
    assert result.injected_fault, "the actor exited once"
    activations.run_stage(cfg, run)  # writes the stage's tables from the stored recording
    _assert_same(_outputs(run), local_run)


class Killed(Exception):
    """The driver's process dying."""


def test_a_killed_driver_resumes_after_the_last_finished_shard(
    local_ray, ray_setup, tmp_cfg, local_run, monkeypatch
):
    cfg = _cfg(tmp_cfg, ray_setup, "killed", **{"record.engine": "ray"})
    run = RunDir.from_config(cfg)
    appended = []
    real_append = Recording.append

    def dies_on_the_fifth_batch(self, acts, ids):
        if len(appended) == 4:
            raise Killed
        appended.append(list(ids))
        real_append(self, acts, ids)

    monkeypatch.setattr(Recording, "append", dies_on_the_fifth_batch)
    with pytest.raises(Killed):
        activations.run_stage(cfg, run)
    monkeypatch.undo()
    starts = []
    real_stream = rr._stream

    def stream(c, rec, rows, start, fault):
        starts.append(start)
        real_stream(c, rec, rows, start, fault)

    monkeypatch.setattr(rr, "_stream", stream)
    activations.run_stage(cfg, run)
    assert starts and starts[0] > 0, "the second run starts after the finished shards"
    _assert_same(_outputs(run), local_run)


def test_an_unreachable_cluster_address_is_a_one_line_error_naming_it(monkeypatch):
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    from andlib.config import RayConfig

    with pytest.raises(rr.RayUnavailable) as err:
        rr.start_ray(RayConfig(address="127.0.0.1:9"))
    assert "127.0.0.1:9" in str(err.value) and "\n" not in str(err.value)
    from andlib.cli import project_error

    assert project_error(err.value), "the CLI prints it as one line, without a traceback"
