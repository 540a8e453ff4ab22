"""andlib.models.recording: the shard writers of one recording and its index."""

from __future__ import annotations

import numpy as np
import pytest

from andlib.activation_cache import ActivationCache
from andlib.models.recording import Recording, read_skipped, recording_key
from andlib.store_shards import ShardReader, ShardWriter

LAYERS = {"a": "m.a", "b": "m.b"}


def _acts(start: int, n: int) -> dict[str, np.ndarray]:
    rows = np.arange(start, start + n, dtype=np.float32)[:, None]
    return {"a": np.repeat(rows, 2, axis=1), "b": np.repeat(-rows, 3, axis=1)}


def test_a_closed_recording_indexes_every_layer_and_drops_the_one_file_layout(tmp_path):
    folder = tmp_path / "activations"
    folder.mkdir()
    np.save(folder / "old.npy", np.zeros((2, 2)))
    rec = Recording(folder, "k", LAYERS, "mean", shard_rows=4)
    rec.append(_acts(0, 6), np.arange(6))
    cache = rec.close([f"c{i}" for i in range(6)])
    assert cache.layers == ["a", "b"] and cache.n_neurons("b") == 3
    assert cache.index["layers"]["a"] == {"dir": "a", "module": "m.a", "n_neurons": 2}
    np.testing.assert_array_equal(cache["b"][:, 0], -np.arange(6))
    assert not (folder / "old.npy").exists()
    assert ActivationCache.is_complete(folder, "k")


def test_layers_killed_between_their_shards_resume_from_the_same_row(tmp_path):
    folder = tmp_path / "activations"
    rec = Recording(folder, "k", LAYERS, "mean", shard_rows=2)
    rec.append(_acts(0, 4), np.arange(4))
    rec.writers["a"].append(_acts(4, 2)["a"], [4, 5])  # killed before layer b's shard
    assert ShardReader(folder / "a").n_rows == 6
    again = Recording(folder, "k", LAYERS, "mean", shard_rows=2)
    assert again.n_done == 4 and again.done_ids().tolist() == [0, 1, 2, 3]
    again.append(_acts(4, 2), [4, 5])
    cache = again.close([f"c{i}" for i in range(6)])
    np.testing.assert_array_equal(cache["a"][:, 1], np.arange(6))


def test_layers_whose_shards_do_not_line_up_are_recorded_anew(tmp_path):
    folder = tmp_path / "activations"
    for layer, shard_rows, n in (("a", 3, 6), ("b", 2, 4)):  # a ends shards on 3, 6; b on 2, 4
        w = ShardWriter(folder / layer, shard_rows=shard_rows, key="k")
        w.append(_acts(0, n)[layer], np.arange(n))
    rec = Recording(folder, "k", LAYERS, "mean", shard_rows=2)
    assert rec.n_done == 0 and ShardReader(folder / "a").n_rows == 0


def test_a_recording_with_too_few_rows_for_its_clips_is_refused(tmp_path):
    rec = Recording(tmp_path / "activations", "k", LAYERS, "mean", shard_rows=2)
    rec.append(_acts(0, 2), [0, 1])
    with pytest.raises(RuntimeError, match="2 rows recorded for 3 clips"):
        rec.close(["a", "b", "c"])


def test_skipped_clips_are_kept_once_in_clip_order(tmp_path):
    rec = Recording(tmp_path / "activations", "k", LAYERS, "mean", shard_rows=2)
    rec.skip(5, "/x/5.wav", "silent")
    rec.skip(1, "/x/1.wav", "file does not exist")
    rec.skip(5, "/x/5.wav", "silent")
    assert read_skipped(tmp_path / "activations") == [
        (1, "/x/1.wav", "file does not exist"),
        (5, "/x/5.wav", "silent"),
    ]
    assert rec.skipped(before=3) == [(1, "/x/1.wav", "file does not exist")]


def test_the_recording_key_follows_the_clips_and_the_weights():
    base = ("stage", "m", "w", LAYERS, "mean", 4, ["a", "b"])
    assert recording_key(*base) == recording_key(*base)
    assert recording_key(*base[:2], "w2", *base[3:]) != recording_key(*base)
    assert recording_key(*base[:6], ["b", "a"]) != recording_key(*base)
