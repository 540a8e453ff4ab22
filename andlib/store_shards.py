"""Sharded activation storage: one folder of numbered ``.npy`` shards per layer, and its index.

The one on-disk format for activations, whichever engine wrote them (the local recorder, the
Ray recorder, token-level capture). A layer folder holds::

    index.json            {"format": 1, "dtype": "float32", "width": 768, "id_width": 1,
                           "key": "...", "complete": true, "meta": {...},
                           "shards": [{"file": "00000.npy", "ids": "00000.ids.npy",
                                       "rows": 1024}, ...]}
    00000.npy             dtype [rows, width]: the rows of shard 0
    00000.ids.npy         int64 [rows] (pooled: clip indices) or [rows, 2] (token level:
                          (clip index, position) pairs): the row ids shard 0 covers
    00001.npy ...

``dtype`` is ``float32`` for pooled activations; token-level capture may use ``float16``.
``id_width`` is 1 for pooled rows (one id a row) and 2 for token-level rows.

:class:`ShardWriter` appends row blocks and finishes a shard every ``shard_rows`` rows: the
shard's files are written under a temporary name and renamed, and the index is rewritten
(atomically) only after both are on disk, so the index lists finished shards only. A writer
opened again with the same ``key`` resumes after the last finished shard (files the index does
not list are the remains of a killed write and are removed); another key starts over.
:class:`ShardReader` memory-maps shards on first use and reads row ranges, columns (neurons)
over all rows, or shard after shard, without loading the whole layer.

Public surface: :class:`ShardWriter`, :class:`ShardReader`, :class:`ShardFormatError`,
:func:`is_sharded`, :data:`INDEX`, :data:`FORMAT`, :data:`DTYPES`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

INDEX = "index.json"
"""The index file of a layer folder."""
FORMAT = 1
"""The version of the layout; an index of another version is a :class:`ShardFormatError`."""
DTYPES = ("float32", "float16")
"""The dtypes a shard may hold: float32 (pooled activations), float16 (token-level capture)."""


class ShardFormatError(ValueError):
    """A layer folder that is not a readable sharded layer (the message names the file)."""


def is_sharded(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds a sharded layer (an ``index.json`` of this format)."""
    return (Path(folder) / INDEX).is_file()


def _atomic_save(path: Path, array: np.ndarray | None = None, text: str | None = None) -> None:
    """Write an array (``.npy``) or a text to ``path`` through a temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if array is not None:
                np.save(f, array)
            else:
                f.write((text or "").encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_index(folder: Path) -> dict[str, Any]:
    path = folder / INDEX
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: no sharded layer here") from None
    except json.JSONDecodeError as e:
        raise ShardFormatError(f"{path}: not valid JSON ({e.msg})") from None
    if index.get("format") != FORMAT:
        raise ShardFormatError(f"{path}: format {index.get('format')!r}, expected {FORMAT}")
    if index.get("dtype") not in DTYPES:
        raise ShardFormatError(f"{path}: dtype {index.get('dtype')!r} is not one of {DTYPES}")
    return index


class ShardWriter:
    """Appends row blocks to a layer folder, finishing a shard every ``shard_rows`` rows.

    ::

        w = ShardWriter(folder, shard_rows=1024, key=recording_key)
        start = w.n_done                   # rows already in finished shards (0 when new)
        w.append(block, ids)               # block [n, width]; ids [n] or [n, 2]
        reader = w.close(meta={...})       # the last, shorter shard; marks the layer complete

    ``key`` identifies what is recorded: a folder holding another key (or none) is emptied,
    one with the same key resumes after its last finished shard. Rows still buffered when the
    process dies are lost; finished shards never are.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        shard_rows: int = 1024,
        dtype: str = "float32",
        id_width: int = 1,
        key: str | None = None,
    ):
        if shard_rows < 1:
            raise ValueError(f"shard_rows must be at least 1, got {shard_rows}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        if id_width not in (1, 2):
            raise ValueError(f"id_width must be 1 (clip) or 2 (clip, position), got {id_width}")
        self.folder = Path(folder)
        self.shard_rows = shard_rows
        self.dtype = dtype
        self.id_width = id_width
        self.key = key
        self.folder.mkdir(parents=True, exist_ok=True)
        self.index = self._resume_or_start()
        self._blocks: list[np.ndarray] = []
        self._ids: list[np.ndarray] = []
        self._buffered = 0

    def _resume_or_start(self) -> dict[str, Any]:
        old: dict[str, Any] | None = None
        if (self.folder / INDEX).exists():
            try:
                old = _read_index(self.folder)
            except ShardFormatError:
                old = None
        if not (
            old is not None
            and old.get("key") == self.key
            and old["dtype"] == self.dtype
            and old.get("id_width") == self.id_width
        ):
            old = {
                "format": FORMAT,
                "dtype": self.dtype,
                "width": None,
                "id_width": self.id_width,
                "key": self.key,
                "complete": False,
                "meta": {},
                "shards": [],
            }
            (self.folder / INDEX).unlink(missing_ok=True)
        listed = {s[f] for s in old["shards"] for f in ("file", "ids")} | {INDEX}
        for path in self.folder.iterdir():  # a killed write's shard, an earlier recording's
            if path.is_file() and path.name not in listed:
                path.unlink()
        return old

    @property
    def n_done(self) -> int:
        """Rows in finished shards (where a resumed job starts again)."""
        return sum(int(s["rows"]) for s in self.index["shards"])

    @property
    def complete(self) -> bool:
        """True once :meth:`close` has run for this key."""
        return bool(self.index["complete"])

    def done_ids(self) -> np.ndarray:
        """The row ids of every finished shard, in order (``[n_done]`` or ``[n_done, 2]``)."""
        parts = [np.load(self.folder / s["ids"]) for s in self.index["shards"]]
        shape = (0,) if self.id_width == 1 else (0, 2)
        return np.concatenate(parts) if parts else np.zeros(shape, dtype=np.int64)

    def append(self, block: np.ndarray, ids: Sequence[int] | np.ndarray) -> None:
        """Buffer ``block`` (``[n, width]``) with its row ids; finish every full shard."""
        if self.complete:
            raise RuntimeError(f"{self.folder}: the layer is complete; open a new writer")
        block = np.asarray(block)
        ids_arr = np.asarray(ids, dtype=np.int64)
        if block.ndim != 2:
            raise ValueError(f"a row block is [rows, width], got shape {block.shape}")
        expected = (len(block),) if self.id_width == 1 else (len(block), 2)
        if ids_arr.shape != expected:
            raise ValueError(f"ids of shape {ids_arr.shape} for {len(block)} rows: {expected}")
        width = self.index["width"]
        if width is None:
            self.index["width"] = int(block.shape[1])
        elif block.shape[1] != width:
            raise ValueError(f"{self.folder}: a block of width {block.shape[1]}, expected {width}")
        self._blocks.append(block.astype(self.dtype, copy=False))
        self._ids.append(ids_arr)
        self._buffered += len(block)
        while self._buffered >= self.shard_rows:
            self._write_shard(self.shard_rows)

    def flush(self) -> None:
        """Finish a shard of whatever is buffered (shorter than ``shard_rows``)."""
        if self._buffered:
            self._write_shard(self._buffered)

    def _write_shard(self, rows: int) -> None:
        data, ids = np.concatenate(self._blocks), np.concatenate(self._ids)
        number = len(self.index["shards"])
        file, ids_file = f"{number:05d}.npy", f"{number:05d}.ids.npy"
        _atomic_save(self.folder / file, np.ascontiguousarray(data[:rows]))
        _atomic_save(self.folder / ids_file, ids[:rows])
        entry = {"file": file, "ids": ids_file, "rows": rows}
        self.index["shards"].append(entry)
        self._save_index()
        rest, rest_ids = data[rows:], ids[rows:]
        self._blocks, self._ids = ([rest], [rest_ids]) if len(rest) else ([], [])
        self._buffered = len(rest)

    def truncate(self, n_rows: int) -> None:
        """Drop the finished shards past the first ``n_rows`` rows (layers of one recording
        killed between their writes are brought back to the same row); ``n_rows`` must fall on
        a shard boundary."""
        if self._buffered:
            raise RuntimeError(f"{self.folder}: truncate before appending rows")
        while self.n_done > n_rows:
            entry = self.index["shards"].pop()
            self.index["complete"] = False
            self._save_index()
            for name in (entry["file"], entry["ids"]):
                (self.folder / name).unlink(missing_ok=True)
        if self.n_done != n_rows:
            raise ValueError(f"{self.folder}: no shard ends at row {n_rows}")

    def _save_index(self) -> None:
        _atomic_save(self.folder / INDEX, text=json.dumps(self.index, indent=1) + "\n")

    def close(self, meta: dict[str, Any] | None = None) -> ShardReader:
        """Finish the last shard, store ``meta`` in the index, mark the layer complete."""
        if not self.complete:
            self.flush()
            if meta:
                self.index["meta"] = dict(meta)
            self.index["complete"] = True
            self._save_index()
        return ShardReader(self.folder)


class ShardReader:
    """A sharded layer read lazily: each shard is memory-mapped the first time it is needed.

    Behaves like a read-only ``[n_rows, width]`` array for the common cases: ``len``,
    ``shape``, ``dtype``, ``reader[i]``, ``reader[a:b]``, ``reader[rows, cols]`` (rows an
    int, a slice or an index array; cols anything numpy takes) and ``np.asarray(reader)``
    (which loads everything: prefer :meth:`rows`, :meth:`columns` or :meth:`iter_shards`).
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.index = _read_index(self.folder)
        """The layer's ``index.json``."""
        self._shards = list(self.index["shards"])
        sizes = np.array([int(s["rows"]) for s in self._shards], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        """``starts[i]``: the first row of shard ``i``; ``starts[-1]``: the number of rows."""
        self._maps: dict[int, np.ndarray] = {}

    @property
    def n_rows(self) -> int:
        return int(self.starts[-1])

    @property
    def width(self) -> int:
        return int(self.index["width"] or 0)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_rows, self.width)

    @property
    def ndim(self) -> int:
        return 2

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.index["dtype"])

    @property
    def n_shards(self) -> int:
        return len(self._shards)

    @property
    def complete(self) -> bool:
        return bool(self.index.get("complete"))

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.index.get("meta") or {})

    def __len__(self) -> int:
        return self.n_rows

    def shard(self, i: int) -> np.ndarray:
        """Shard ``i``'s ``[rows, width]`` array, memory-mapped (read-only)."""
        if i not in self._maps:
            path = self.folder / self._shards[i]["file"]
            try:
                arr = np.load(path, mmap_mode="r")
            except FileNotFoundError:
                raise FileNotFoundError(f"{path} is missing: the layer is damaged") from None
            if arr.shape != (int(self._shards[i]["rows"]), self.width):
                raise ShardFormatError(f"{path}: shape {arr.shape}, index says otherwise")
            self._maps[i] = arr
        return self._maps[i]

    def shard_ids(self, i: int) -> np.ndarray:
        """The row ids shard ``i`` covers (``[rows]`` or ``[rows, 2]``)."""
        return np.load(self.folder / self._shards[i]["ids"])

    def ids(self) -> np.ndarray:
        """Every row's id, in row order."""
        parts = [self.shard_ids(i) for i in range(self.n_shards)]
        shape = (0,) if self.index.get("id_width", 1) == 1 else (0, 2)
        return np.concatenate(parts) if parts else np.zeros(shape, dtype=np.int64)

    def iter_shards(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, shard array)`` for each shard in order, one memory map at a time."""
        for i in range(self.n_shards):
            yield int(self.starts[i]), self.shard(i)
            self._maps.pop(i, None)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as one array (only the shards they lie in are read)."""
        start, stop = max(0, start), min(stop, self.n_rows)
        out = np.empty((max(0, stop - start), self.width), dtype=self.dtype)
        if stop <= start:
            return out
        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        for i in range(first, self.n_shards):
            s0 = int(self.starts[i])
            if s0 >= stop:
                break
            a, b = max(start, s0), min(stop, int(self.starts[i + 1]))
            out[a - start : b - start] = self.shard(i)[a - s0 : b - s0]
        return out

    def columns(self, cols: Any) -> np.ndarray:
        """Columns ``cols`` (an int, a slice or an index array) over all rows, shard by shard:
        ``[n_rows, n_cols]``, or ``[n_rows]`` for one int column."""
        parts = [self.shard(i)[:, cols] for i in range(self.n_shards)]
        if parts:
            return np.concatenate(parts)
        return np.empty((0, self.width), dtype=self.dtype)[:, cols]

    def take(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The rows at these indices, in the order given (negative indices count from the end)."""
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        idx = np.where(idx < 0, idx + self.n_rows, idx)
        if len(idx) and (idx.min() < 0 or idx.max() >= self.n_rows):
            raise IndexError(f"row index out of range for {self.n_rows} rows")
        out = np.empty((len(idx), self.width), dtype=self.dtype)
        shard_of = np.searchsorted(self.starts, idx, side="right") - 1
        for i in np.unique(shard_of):
            sel = shard_of == i
            out[sel] = self.shard(int(i))[idx[sel] - self.starts[i]]
        return out

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple) and len(key) != 2:
            raise IndexError(f"a sharded layer takes [rows] or [rows, cols], got {key!r}")
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        if isinstance(rows, slice) and rows == slice(None):
            full = isinstance(cols, slice) and cols == slice(None)
            return self.rows(0, self.n_rows) if full else self.columns(cols)
        if isinstance(rows, int | np.integer):
            row = int(rows) + (self.n_rows if rows < 0 else 0)
            if not 0 <= row < self.n_rows:
                raise IndexError(f"row {rows} is out of range for {self.n_rows} rows")
            return self.rows(row, row + 1)[0][cols]
        if isinstance(rows, slice):
            start, stop, step = rows.indices(self.n_rows)
            block = self.rows(start, stop) if step == 1 else self.take(range(start, stop, step))
            return block[:, cols]
        mask = np.asarray(rows)
        if mask.dtype == bool:
            mask = np.flatnonzero(mask)
        return self.take(mask)[:, cols]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.rows(0, self.n_rows)
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"ShardReader({self.folder}, {self.n_rows}x{self.width} {self.dtype}, {self.n_shards} shards)"
