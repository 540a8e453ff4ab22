"""Fixtures shared by the models tests: one torch thread, a tiny training config, and for
the Ray engine's tests a local Ray and a saved tiny AST with a folder of tones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import build_tiny_ast, write_tone


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread, above all on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = {
    "data.limit": 24,
    "train.hidden_size": 32,
    "train.num_hidden_layers": 1,
    "train.num_attention_heads": 2,
    "train.intermediate_size": 64,
    "train.num_mel_bins": 32,
    "train.max_length": 128,
    "train.batch_size": 8,
    "train.epochs": 2,
    "train.max_steps": 3,
    "train.pretrain_epochs": 1,
    "train.linear_epochs": 2,
    "train.time_mask": 16,
    "train.shift_frames": 20,
    "train.num_threads": 1,
}


@pytest.fixture
def tiny_cfg(tmp_cfg):
    """A config of the tiny training shape (:data:`TINY`), with ``extra`` overrides."""

    def make(**extra):
        return tmp_cfg({**TINY, **extra})

    return make


@pytest.fixture(scope="module")
def local_ray():
    """Ray on this machine's two CPUs for one test module; its workers import this checkout."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (the ray extra: .[ray])")
    root = str(Path(__file__).resolve().parents[2])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": root, "HF_HUB_OFFLINE": "1"}},
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_setup(tmp_path_factory):
    """A saved tiny AST and a folder of 11 tones in two classes plus one broken file."""
    base = tmp_path_factory.mktemp("ray")
    model, fe = build_tiny_ast(2)
    model.save_pretrained(base / "model")
    fe.save_pretrained(base / "model")
    for i in range(11):
        write_tone(base / "audio" / ("low" if i % 2 else "high") / f"t{i:02d}.wav", 200 + 90 * i)
    (base / "audio" / "low" / "t05b.wav").write_bytes(b"not audio")  # skipped by both engines
    return base
