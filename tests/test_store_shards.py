"""andlib.store_shards: the sharded activation layout, its writer and its lazy reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from andlib.store_shards import INDEX, ShardFormatError, ShardReader, ShardWriter, is_sharded


def _data(n: int = 23, width: int = 5) -> np.ndarray:
    return np.arange(n * width, dtype=np.float32).reshape(n, width) / 7


def _write(folder, data, shard_rows=10, block=4, key="k", close=True):
    w = ShardWriter(folder, shard_rows=shard_rows, key=key)
    for s in range(w.n_done, len(data), block):
        w.append(data[s : s + block], np.arange(s, min(s + block, len(data))))
    return w.close() if close else w


def test_rows_are_split_into_full_shards_and_a_shorter_last_one(tmp_path):
    data = _data()
    reader = _write(tmp_path / "l", data)
    assert is_sharded(tmp_path / "l") and reader.complete
    assert reader.n_shards == 3 and reader.shape == (23, 5) and reader.dtype == np.float32
    assert [s["rows"] for s in reader.index["shards"]] == [10, 10, 3]
    np.testing.assert_array_equal(np.asarray(reader), data)
    np.testing.assert_array_equal(reader.ids(), np.arange(23))


def test_row_ranges_columns_and_indexing_match_the_full_array(tmp_path):
    data = _data()
    reader = _write(tmp_path / "l", data)
    np.testing.assert_array_equal(reader.rows(8, 21), data[8:21])
    np.testing.assert_array_equal(reader.columns([4, 0]), data[:, [4, 0]])
    np.testing.assert_array_equal(reader.columns(2), data[:, 2])
    np.testing.assert_array_equal(reader[:, [1, 3]], data[:, [1, 3]])
    np.testing.assert_array_equal(reader[-1], data[-1])
    np.testing.assert_array_equal(reader[3, 2], data[3, 2])
    np.testing.assert_array_equal(reader[5:19:3], data[5:19:3])
    np.testing.assert_array_equal(reader[[22, 0, 11], 1:3], data[[22, 0, 11], 1:3])
    mask = data[:, 0] > 5
    np.testing.assert_array_equal(reader[mask], data[mask])
    with pytest.raises(IndexError, match="out of range"):
        reader[23]


def test_a_column_read_maps_each_shard_without_loading_the_layer(tmp_path):
    reader = _write(tmp_path / "l", _data(), shard_rows=4)
    reader.columns([0])
    assert all(isinstance(m, np.memmap) for m in reader._maps.values())
    assert len(reader._maps) == reader.n_shards == 6
    fresh = ShardReader(tmp_path / "l")
    for start, shard in fresh.iter_shards():
        assert isinstance(shard, np.memmap) and list(fresh._maps) == [start // 4]


def test_a_killed_write_resumes_after_the_last_finished_shard(tmp_path):
    data = _data()
    w = _write(tmp_path / "l", data[:17], close=False)  # 10 rows finished, 7 only buffered
    assert w.n_done == 10 and not w.complete
    (tmp_path / "l" / "00001.npy").write_bytes(b"half a shard")  # the kill hit a rename
    del w
    again = ShardWriter(tmp_path / "l", shard_rows=10, key="k")
    assert again.n_done == 10 and not (tmp_path / "l" / "00001.npy").exists()
    np.testing.assert_array_equal(again.done_ids(), np.arange(10))
    reader = _write(tmp_path / "l", data)
    np.testing.assert_array_equal(np.asarray(reader), data)


def test_another_key_starts_the_layer_over(tmp_path):
    _write(tmp_path / "l", _data())
    w = ShardWriter(tmp_path / "l", shard_rows=10, key="other")
    assert w.n_done == 0 and sorted(p.name for p in (tmp_path / "l").iterdir()) == []


def test_token_level_rows_carry_clip_and_position_ids_in_float16(tmp_path):
    w = ShardWriter(tmp_path / "t", shard_rows=4, dtype="float16", id_width=2)
    ids = np.array([[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]])
    w.append(np.ones((5, 3)), ids)
    reader = w.close(meta={"layer": "x"})
    assert reader.dtype == np.float16 and reader.meta == {"layer": "x"}
    np.testing.assert_array_equal(reader.ids(), ids)
    with pytest.raises(ValueError, match="ids of shape"):
        ShardWriter(tmp_path / "u", id_width=2).append(np.ones((2, 3)), [0, 1])


def test_a_block_of_another_width_is_refused(tmp_path):
    w = ShardWriter(tmp_path / "l")
    w.append(np.ones((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="width 4, expected 3"):
        w.append(np.ones((2, 4)), [2, 3])


def test_an_index_of_another_format_is_a_one_line_error(tmp_path):
    (tmp_path / "l").mkdir()
    (tmp_path / "l" / INDEX).write_text(json.dumps({"format": 99, "dtype": "float32"}))
    with pytest.raises(ShardFormatError, match="format 99, expected 1"):
        ShardReader(tmp_path / "l")


def test_truncate_drops_the_shards_past_a_row_on_a_shard_boundary(tmp_path):
    data = _data()
    w = _write(tmp_path / "l", data[:20], close=False)
    w.truncate(10)
    assert w.n_done == 10 and not (tmp_path / "l" / "00001.npy").exists()
    with pytest.raises(ValueError, match="no shard ends at row 5"):
        w.truncate(5)
