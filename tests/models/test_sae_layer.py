"""Token-level capture into shards, training on folds 1-4 only, the virtual layer of latents."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from andlib.config import ConfigError
from andlib.data.audio import ProbingSet
from andlib.models import sae as sae_mod
from andlib.models import sae_layer
from andlib.models.activations import record_target
from andlib.models.base import TargetModel
from andlib.store import RunDir
from andlib.store_shards import ShardReader

FRAME, WIDTH, FRAMES = 4, 6, 12


class Toy(nn.Module):
    """Waveform -> frames of 4 samples -> ``proj`` (the recorded layer, ``[batch, 12, 6]``)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(FRAME, WIDTH)
        self.head = nn.Linear(WIDTH, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x.reshape(x.shape[0], -1, FRAME))
        return self.head(h.mean(1))


def toy_target() -> TargetModel:
    return TargetModel.from_module(
        Toy(), lambda b: torch.from_numpy(np.stack(b)), 16000, name="toy"
    )


def probing(n_clips: int = 10, nan_fold: int | None = None) -> ProbingSet:
    rng = np.random.default_rng(0)
    folds = [1 + i % 5 for i in range(n_clips)]
    audio = []
    for fold in folds:
        a = rng.standard_normal(FRAME * FRAMES).astype(np.float32)
        audio.append(np.full_like(a, np.nan) if fold == nan_fold else a)
    meta = pd.DataFrame(
        {
            "clip_id": [f"c{i}" for i in range(n_clips)],
            "path": "",
            "label": 0,
            "category": "x",
            "fold": folds,
        }
    )
    return ProbingSet("toy", 16000, audio, meta)


def test_capture_stores_every_position_as_float16_with_clip_and_position_ids(tmp_path):
    target, ps = toy_target(), probing()
    reader = sae_layer.capture_tokens(
        target, ps, "proj", tmp_path / "t", key="a", batch_size=3, shard_rows=7
    )
    assert reader.shape == (10 * FRAMES, WIDTH) and reader.dtype == np.float16
    ids = reader.ids()
    assert ids[:, 0].tolist() == np.repeat(np.arange(10), FRAMES).tolist()
    assert ids[:, 1].tolist() == np.tile(np.arange(FRAMES), 10).tolist()
    with torch.no_grad():
        expected = target.module.proj(torch.from_numpy(np.stack(ps.audio)).reshape(10, -1, FRAME))
    np.testing.assert_allclose(
        np.asarray(reader, dtype=np.float32), expected.reshape(-1, WIDTH).numpy(), atol=2e-3
    )


def test_an_interrupted_capture_resumes_without_repeating_positions(tmp_path):
    ps = probing()
    whole = sae_layer.capture_tokens(
        toy_target(), ps, "proj", tmp_path / "whole", key="a", batch_size=3, shard_rows=7
    )
    broken = toy_target()
    calls = {"n": 0}
    forward = broken.forward

    def failing(batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed")
        return forward(batch)

    broken.forward = failing  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="killed"):
        sae_layer.capture_tokens(
            broken, ps, "proj", tmp_path / "part", key="a", batch_size=3, shard_rows=7
        )
    assert 0 < ShardReader(tmp_path / "part").n_rows < whole.n_rows
    resumed = sae_layer.capture_tokens(
        toy_target(), ps, "proj", tmp_path / "part", key="a", batch_size=3, shard_rows=7
    )
    np.testing.assert_array_equal(resumed.ids(), whole.ids())
    np.testing.assert_array_equal(np.asarray(resumed), np.asarray(whole))


def test_training_never_sees_fold_5_positions(tmp_path):
    ps = probing(nan_fold=5)  # fold 5's positions are NaN: one of them would poison training
    reader = sae_layer.capture_tokens(
        toy_target(), ps, "proj", tmp_path / "t", key="a", batch_size=4, shard_rows=5
    )
    folds = sae_layer.clip_folds(ps)
    chunks, n_train = sae_layer.train_chunks(reader, np.isin(folds, [1, 2, 3, 4]))
    assert n_train == 8 * FRAMES
    rows = np.concatenate(list(chunks(np.random.default_rng(0))))
    assert len(rows) == n_train and not np.isnan(rows).any()
    trained = sae_mod.train_sae(
        sae_mod.training_batches(chunks, 16, seed=0),
        WIDTH,
        k=2,
        expansion=2,
        token_budget=320,
        batch_size=16,
        lr=1e-3,
        seed=0,
    )
    assert all(torch.isfinite(p).all() for p in trained.sae.parameters())


def test_clips_without_folds_are_a_one_line_error():
    ps = probing()
    ps.meta = ps.meta.drop(columns="fold")
    with pytest.raises(ConfigError, match="the clips have none"):
        sae_layer.clip_folds(ps)


TOY_SAE = {
    "sae.layers": ["proj"],
    "sae.k": 2,
    "sae.expansion": 2,
    "sae.token_budget": 384,
    "sae.batch_size": 32,
    "sae.shard_rows": 20,
}
"""The SAE settings of the toy target's tests: a small SAE on ``proj``."""


def sae_config(tmp_cfg, **sae):
    return tmp_cfg(
        {
            "record.layers": ["proj"],
            "model.batch_size": 4,
            **TOY_SAE,
            **{f"sae.{k}": v for k, v in sae.items()},
        }
    )


def recorded(cfg, target, ps):
    run = RunDir(cfg.run_path)
    cache = record_target(target, ps, {"proj": "proj"}, cfg.record.pooling, 4, run, key="r")
    return run, cache


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_recorded_latents_are_the_encoder_per_position_then_pooled(tmp_cfg, pooling):
    cfg = sae_config(tmp_cfg)
    cfg.record.pooling = pooling
    target, ps = toy_target(), probing(15)
    run, cache = recorded(cfg, target, ps)
    cache = sae_layer.add_sae_layers(cfg, run, target, ps, cache, "w")
    name = "sae.proj.k2"
    assert cache.layers == ["proj", name]
    entry = cache.index["layers"][name]
    latents = entry["sae"]["latents"]
    report = json.loads((run.path / "sae.json").read_text())[name]
    assert sorted(latents + report["dead_latents"]) == list(range(2 * WIDTH))
    assert cache.n_neurons(name) == len(latents) == 2 * WIDTH - report["n_dead"]
    assert report["architecture"] == "batchtopk" and report["train_folds"] == [1, 2, 3, 4]
    assert report["train_positions"] == 12 * FRAMES and report["eval_fold"] == 5
    sae = sae_mod.load_sae(entry["sae"]["folder"])
    tokens = ShardReader(next((cfg.cache_path / "sae" / "tokens").iterdir()))
    z = sae_mod.encode(sae, np.asarray(tokens, dtype=np.float32)).numpy()
    z = z.reshape(15, FRAMES, -1)
    pooled = z.mean(1) if pooling == "mean" else z.max(1)
    np.testing.assert_allclose(cache[name], pooled[:, latents], rtol=1e-5, atol=1e-6)


def test_sae_layers_are_reused_and_removed_with_the_config(tmp_cfg):
    cfg = sae_config(tmp_cfg, sweep_k=[3])
    target, ps = toy_target(), probing(15)
    run, cache = recorded(cfg, target, ps)
    cache = sae_layer.add_sae_layers(cfg, run, target, ps, cache, "w")
    assert cache.layers == ["proj", "sae.proj.k2", "sae.proj.k3"]
    assert cache.files("sae.proj.k2") == [
        "sae.proj.k2/index.json",
        "sae.proj.k2/00000.npy",
        "sae.proj.k2/00000.ids.npy",
    ]
    folders = sorted((cfg.cache_path / "sae" / "models").iterdir())
    stamp = [f.joinpath("andlib.json").stat().st_mtime_ns for f in folders]
    cache = sae_layer.add_sae_layers(cfg, run, target, ps, cache, "w")
    assert [f.joinpath("andlib.json").stat().st_mtime_ns for f in folders] == stamp
    cfg.sae.layers = []
    cache = sae_layer.add_sae_layers(cfg, run, target, ps, cache, "w")
    assert cache.layers == ["proj"]
    assert not (run.path / "sae.json").exists()
    assert not [p for p in (run.path / "activations").iterdir() if p.name.startswith("sae.")]


def test_an_unrecorded_layer_is_a_one_line_error(tmp_cfg):
    cfg = sae_config(tmp_cfg, layers=["layers.2.out"])
    target, ps = toy_target(), probing(15)
    run, cache = recorded(cfg, target, ps)
    with pytest.raises(ConfigError, match="'layers.2.out' was not recorded; recorded: proj"):
        sae_layer.add_sae_layers(cfg, run, target, ps, cache, "w")


def test_a_budget_of_too_many_passes_states_them(tmp_cfg):
    cfg = sae_config(tmp_cfg, token_budget=10_000)
    target, ps = toy_target(), probing(15)
    run, cache = recorded(cfg, target, ps)
    with pytest.raises(ConfigError, match=r"69.4 passes over the 144 training positions"):
        sae_layer.add_sae_layers(cfg, run, target, ps, cache, "w")


def test_clips_other_than_the_recorded_ones_are_a_one_line_error(tmp_cfg):
    cfg = sae_config(tmp_cfg)
    target, ps = toy_target(), probing(15)
    run, cache = recorded(cfg, target, ps)
    with pytest.raises(ConfigError, match="not the recorded clips"):
        sae_layer.add_sae_layers(cfg, run, target, probing(14), cache, "w")
    with pytest.raises(ConfigError, match="not the recorded clips"):
        sae_layer.add_sae_layers(cfg, run, target, None, cache, "w")
