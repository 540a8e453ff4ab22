"""andlib.activation_cache: the reader of a run's recorded activations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from andlib.activation_cache import ActivationCache
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
