"""andlib.activation_cache: the reader of a run's recorded activations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from andlib.activation_cache import ActivationCache, topk_in_memory
from andlib.store import RunDir, activation_index, load_activations, save_npy


@pytest.fixture
def run(tmp_path) -> RunDir:
    run = RunDir(tmp_path / "run")
    acts = np.array([[0.0, 3.0], [2.0, 1.0], [1.0, 1.0], [5.0, -1.0]], dtype=np.float32)
    save_npy(run / "activations" / "a.npy", acts)
    run.write_json(
        "activations/index.json",
        {
            "clip_ids": ["c0", "c 1", "c;2", "c3"],
            "layers": {"layers.0.mlp": {"file": "a.npy", "module": "m.fc", "n_neurons": 2}},
        },
    )
    return run


def test_a_recording_reads_its_layers_clips_and_arrays(run):
    cache = ActivationCache.load(run)
    assert cache.layers == ["layers.0.mlp"] and "layers.0.mlp" in cache and len(cache) == 1
    assert cache.clip_ids == ["c0", "c 1", "c;2", "c3"] and cache.n_clips == 4
    assert cache.n_neurons("layers.0.mlp") == 2 and cache.module_path("layers.0.mlp") == "m.fc"
    assert cache["layers.0.mlp"].shape == (4, 2)
    assert ActivationCache.load(run.path).index == cache.index  # a path works too


def test_topk_orders_both_ends_and_keeps_clip_order_on_ties(run):
    top = ActivationCache.load(run).topk("layers.0.mlp", 2)
    assert top.high.tolist() == [[3, 1], [0, 1]]  # neuron 1: clips 1 and 2 tie, clip 1 first
    assert top.low.tolist() == [[0, 2], [3, 1]]
    assert top.high_values[0].tolist() == [5.0, 2.0]


def test_an_unrecorded_layer_names_close_matches(run):
    with pytest.raises(KeyError, match="close matches: layers.0.mlp"):
        ActivationCache.load(run)["layers.0.mpl"]


def test_a_missing_recording_names_the_record_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match="'record' stage"):
        ActivationCache.load(tmp_path)


def test_the_stores_helpers_read_through_it(run):
    index = activation_index(run)
    assert index["clip_ids"][1] == "c 1"
    assert load_activations(run, "layers.0.mlp", index)[3, 0] == 5.0


def test_a_layer_in_the_sharded_layout_reads_like_a_file(tmp_path):
    from andlib.store_shards import ShardWriter

    folder = tmp_path / "activations"
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    writer = ShardWriter(folder / "sae.a.k2", shard_rows=3, key="x")
    writer.append(rows, np.arange(4))
    writer.close()
    index = {"key": "k", "clip_ids": list("abcd"), "layers": {"sae.a.k2": {"dir": "sae.a.k2", "module": "sae:a", "n_neurons": 3}}}  # fmt: skip
    cache = ActivationCache(folder, index)
    np.testing.assert_array_equal(cache["sae.a.k2"], rows)
    assert cache.files("sae.a.k2")[0] == "sae.a.k2/index.json" and len(cache.files("sae.a.k2")) == 5
    (folder / "index.json").write_text(json.dumps(index))
    assert ActivationCache.is_complete(folder, "k") and not ActivationCache.is_complete(folder, "j")


def _sharded_run(tmp_path, acts: np.ndarray, shard_rows: int) -> RunDir:
    from andlib.store_shards import ShardWriter

    run = RunDir(tmp_path / "sharded")
    w = ShardWriter(run / "activations" / "l", shard_rows=shard_rows, key="k")
    for s in range(0, len(acts), 7):  # blocks that straddle the shards
        w.append(acts[s : s + 7], np.arange(s, min(s + 7, len(acts))))
    w.close()
    run.write_json(
        "activations/index.json",
        {
            "key": "k",
            "clip_ids": [f"c{i}" for i in range(len(acts))],
            "layers": {"l": {"dir": "l", "module": "m", "n_neurons": acts.shape[1]}},
        },
    )
    return run


def test_streaming_topk_equals_the_in_memory_one_over_many_shards(tmp_path):
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(250, 6)).astype(np.float32)
    acts[[3, 120, 249], 0] = [9.0, 8.0, 7.0]  # planted: neuron 0's top 3 in three shards
    acts[[17, 130, 240], 0] = [-9.0, -8.0, -7.0]
    acts[:, 5] = np.round(acts[:, 5])  # many ties, some across shard boundaries
    cache = ActivationCache.load(_sharded_run(tmp_path, acts, shard_rows=40))
    assert cache["l"].n_shards == 7
    top, stats = cache.summarize("l", 5)
    want = topk_in_memory(acts, 5)
    assert top.high[0, :3].tolist() == [3, 120, 249] and top.low[0, :3].tolist() == [17, 130, 240]
    for name in ("high", "low", "high_values", "low_values"):
        np.testing.assert_array_equal(getattr(top, name), getattr(want, name))
    np.testing.assert_allclose(stats.mean, acts.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, acts.astype(np.float64).std(0), rtol=1e-10)
    assert stats.n == 250 and (stats.max == acts.max(0)).all() and (stats.min == acts.min(0)).all()


def test_ties_at_the_kth_place_keep_clip_order():
    a = np.array([[1.0], [5.0], [1.0], [1.0], [0.0]], dtype=np.float32)
    assert topk_in_memory(a, 2).high[0].tolist() == [1, 0]
    assert topk_in_memory(a, 3).low[0].tolist() == [4, 0, 2]


def test_a_sharded_layer_reads_lazily_and_lists_its_files(tmp_path):
    acts = np.arange(40, dtype=np.float32).reshape(20, 2)
    cache = ActivationCache.load(_sharded_run(tmp_path, acts, shard_rows=8))
    layer = cache["l"]
    np.testing.assert_array_equal(layer[:, 1], acts[:, 1])
    np.testing.assert_array_equal(np.asarray(layer), acts)
    assert cache.files("l")[0] == "l/index.json" and len(cache.files("l")) == 1 + 2 * 3
    assert ActivationCache.is_complete(cache.folder, "k")
    assert not ActivationCache.is_complete(cache.folder, "other key")
