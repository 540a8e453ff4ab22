"""SAE training with SAELens on an activation iterator, save/load, encoding, dead latents."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from andlib.config import ConfigError
from andlib.config_sections import SaeConfig
from andlib.models import sae as sae_mod

D_IN = 8


def planted(n: int, seed: int = 0) -> np.ndarray:
    """Positions that are sparse sums of 12 fixed directions (a dictionary an SAE can find)."""
    rng = np.random.default_rng(seed)
    atoms = np.random.default_rng(123).standard_normal((12, D_IN))
    codes = rng.random((n, 12)) * (rng.random((n, 12)) < 0.2)
    return (codes @ atoms).astype(np.float32)


def chunks_of(data: np.ndarray, size: int = 256):
    def chunks(rng: np.random.Generator):
        for i in rng.permutation(range(0, len(data), size)):
            yield data[i : i + size]

    return chunks


def small_sae(data: np.ndarray, k: int = 2, budget: int = 8192):
    batches = sae_mod.training_batches(chunks_of(data), batch_size=128, seed=0)
    return sae_mod.train_sae(
        batches, D_IN, k=k, expansion=4, token_budget=budget, batch_size=128, lr=3e-3, seed=0
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    data = planted(2048)
    trained = small_sae(data)
    folder = sae_mod.save_sae(trained, tmp_path_factory.mktemp("sae") / "one", {"layer": "x"})
    return folder, trained, data


def test_training_batches_have_the_batch_size_and_only_given_rows():
    data = np.arange(100 * 3, dtype=np.float32).reshape(100, 3)
    batches = sae_mod.training_batches(chunks_of(data, 30), batch_size=16, seed=1)
    seen = torch.cat([next(batches) for _ in range(20)])  # 320 rows: more than one pass
    assert seen.shape == (320, 3)
    assert set(seen[:, 0].tolist()) <= set(data[:, 0].tolist())
    assert len(set(seen[:96, 0].tolist())) == 96  # the first pass draws rows without repeats


def test_training_batches_fail_without_rows():
    batches = sae_mod.training_batches(lambda rng: iter([]), batch_size=4, seed=0)
    with pytest.raises(ValueError, match="no training positions"):
        next(batches)


def test_saved_sae_loads_back_with_sae_lens_and_gives_the_same_latents(saved):
    from sae_lens import SAE

    folder, trained, data = saved
    assert (folder / "cfg.json").exists() and (folder / "sae_weights.safetensors").exists()
    ours = sae_mod.encode(sae_mod.load_sae(folder), data[:300])
    theirs = SAE.load_from_disk(str(folder)).encode(torch.from_numpy(data[:300]))
    assert torch.equal(ours, theirs.detach())
    assert ours.shape == (300, 4 * D_IN)
    info = sae_mod.read_info(folder)
    assert info["architecture"] == "batchtopk" and info["saved_as"] == "jumprelu"
    assert info["layer"] == "x" and info["positions_trained"] == 8192


def test_trained_sae_reconstructs_planted_data(saved):
    folder, _, data = saved
    sae = sae_mod.load_sae(folder)
    eval_clip = np.ones(4, dtype=bool)
    clips = np.repeat(np.arange(4), 512)
    _, stats = sae_mod.encode_clips(
        sae, [(data, clips, np.tile(np.arange(512), 4))], 4, "mean", eval_clip
    )
    assert stats.variance_explained > 0.5
    assert 0 < stats.eval_l0 < 4 * D_IN
    assert stats.n_positions == stats.eval_positions == 2048


def test_encode_clips_pools_the_per_position_latents(saved):
    folder, _, data = saved
    sae = sae_mod.load_sae(folder)
    rows = data[:60]
    clips = np.array([0] * 25 + [1] * 35)
    positions = np.concatenate([np.arange(25), np.arange(35)])
    z = sae_mod.encode(sae, rows).numpy()
    # two blocks, clip 1 split between them, out of order
    blocks = [(rows[40:], clips[40:], positions[40:]), (rows[:40], clips[:40], positions[:40])]
    for pooling, expected in (
        ("mean", [z[:25].mean(0), z[25:].mean(0)]),
        ("max", [z[:25].max(0), z[25:].max(0)]),
        ("cls", [z[0], z[25]]),
    ):
        pooled, _ = sae_mod.encode_clips(sae, blocks, 2, pooling, [False, False])
        np.testing.assert_allclose(pooled, np.stack(expected), rtol=1e-5, atol=1e-6)


def test_dead_latents_are_those_active_on_no_position():
    class Planted:
        """An 'SAE' whose latents 1 and 3 never fire, and latent 2 fires on one position."""

        class cfg:
            d_sae = 4

        def encode(self, x):
            z = torch.zeros(len(x), 4)
            z[:, 0] = 1.0
            z[x[:, 0] > 0.5, 2] = 2.0
            return z

        def decode(self, z):
            return torch.zeros(len(z), 1)

    x = np.zeros((10, 1), dtype=np.float32)
    x[7, 0] = 1.0
    _, stats = sae_mod.encode_clips(
        Planted(), [(x, np.zeros(10, dtype=int), np.arange(10))], 1, "mean", [False]
    )
    assert stats.dead.tolist() == [1, 3]
    assert stats.active_positions.tolist() == [10, 0, 1, 0]
    assert stats.report()["n_dead"] == 2 and stats.report()["dead_share"] == 0.5


def test_check_plan_errors_are_one_line():
    sae = SaeConfig(layers=["layers.2.out"], k=32, expansion=2, token_budget=1000)
    with pytest.raises(ConfigError, match="'layers.2.out' was not recorded") as e:
        sae_mod.check_plan(sae, {"layers.0.out": 16})
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="not below the dictionary size"):
        sae_mod.check_plan(sae, {"layers.2.out": 16})
    with pytest.raises(ConfigError, match="10.0 passes over the 100 training positions"):
        sae_mod.check_plan(sae, {"layers.2.out": 64}, n_train_positions=100)
    sae_mod.check_plan(sae, {"layers.2.out": 64}, n_train_positions=500)


def test_sae_key_changes_with_what_shapes_training():
    base = SaeConfig(layers=["a"])
    key = sae_mod.sae_key("capture", base, 32, 0)
    assert key == sae_mod.sae_key("capture", SaeConfig(layers=["a"], eval_fold=5), 32, 0)
    assert key != sae_mod.sae_key("other", base, 32, 0)
    assert key != sae_mod.sae_key("capture", base, 16, 0)
    assert key != sae_mod.sae_key("capture", SaeConfig(layers=["a"], expansion=4), 32, 0)
    assert key != sae_mod.sae_key("capture", base, 32, 1)


def test_layer_name_is_the_virtual_layer_key():
    assert sae_mod.layer_name("layers.2.out", 32) == "sae.layers.2.out.k32"
