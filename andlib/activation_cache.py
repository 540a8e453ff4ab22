"""The reader of a run's recorded activations: :class:`ActivationCache` (``activations/``).

``activations/index.json`` lists the clips (row ``i`` = row ``i`` of ``clips.csv``) and every
recorded layer; a layer is a folder of shards in the :mod:`andlib.store_shards` layout
(``{"dir": "<layer>"}``, float32 ``[n_clips, n_neurons]`` over its shards), or, in
recordings made before the sharded layout, one ``.npy`` file (``{"file": "<layer>.npy"}``).
Either is memory-mapped on first access, so any neuron's activations over all clips are read
without loading the layer. :meth:`ActivationCache.summarize` gives every neuron's most
extreme clips at both ends (:class:`TopK`) and its statistics (:class:`NeuronStats`) in one
streaming pass over the shards (:class:`StreamingSummary`). :mod:`andlib.store` re-exports
the cache: it is where every artifact's reader is found.

Public surface: :class:`ActivationCache`, :class:`TopK`, :class:`NeuronStats`,
:class:`StreamingSummary`, :func:`topk_in_memory`, :data:`ACTIVATIONS`.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from andlib.store_shards import ShardReader

ACTIVATIONS = "activations"
"""The folder of a run directory that holds the recorded activations."""


@dataclass
class TopK:
    """The top-``k`` clips of every neuron of one layer at both ends.

    Arrays are ``[n_neurons, k]``; column 0 is the most extreme clip (``high``: largest
    activation first, ``low``: smallest first). ``high``/``low`` hold clip row indices.
    """

    high: np.ndarray
    high_values: np.ndarray
    low: np.ndarray
    low_values: np.ndarray


@dataclass
class NeuronStats:
    """Per-neuron statistics of one layer over all clips (arrays ``[n_neurons]``, float64)."""

    n: int
    mean: np.ndarray
    std: np.ndarray
    """The population standard deviation."""
    min: np.ndarray
    max: np.ndarray


def _extreme_rows(a: np.ndarray, k: int, largest: bool) -> np.ndarray:
    """Row indices ``[k, n_cols]`` of each column's ``k`` most extreme values, most extreme
    first; equal values keep row order (also where a tie straddles the ``k``-th place)."""
    s = -a if largest else a
    if k >= len(a):
        return np.argsort(s, axis=0, kind="stable")
    cand = np.argpartition(s, k - 1, axis=0)[:k]
    vals = np.take_along_axis(s, cand, axis=0)
    order = np.lexsort((cand, vals), axis=0)
    cand = np.take_along_axis(cand, order, axis=0)
    # argpartition picks any of the rows that tie with the k-th value: redo those columns
    kth = np.take_along_axis(vals, order, axis=0)[-1]
    tied = (s == kth).sum(axis=0) > (np.take_along_axis(s, cand, axis=0) == kth).sum(axis=0)
    for col in np.flatnonzero(tied):
        cand[:, col] = np.argsort(s[:, col], kind="stable")[:k]
    return cand


def topk_in_memory(a: np.ndarray, k: int) -> TopK:
    """Each column's ``k`` highest and ``k`` lowest rows of an array held in memory (the
    reference :class:`StreamingSummary` matches)."""
    a = np.asarray(a)
    k = max(1, min(k, len(a)))
    high, low = _extreme_rows(a, k, largest=True), _extreme_rows(a, k, largest=False)
    return TopK(
        high=high.T,
        high_values=np.take_along_axis(a, high, axis=0).T,
        low=low.T,
        low_values=np.take_along_axis(a, low, axis=0).T,
    )


class StreamingSummary:
    """Top-``k``, bottom-``k`` and statistics of every column, merged block by block.

    ``update(block, start)`` takes rows ``start : start + len(block)`` (blocks in row order);
    ``result()`` gives what :func:`topk_in_memory` and a full-array mean/std/min/max give, with
    only one block and ``2 k`` rows a column in memory. A row's candidates from each block
    are merged with the running ones by (value, row), so ties keep row order exactly.
    """

    def __init__(self, k: int):
        self.k = max(1, k)
        self.n = 0
        self._ends: dict[bool, tuple[np.ndarray, np.ndarray] | None] = {True: None, False: None}
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None
        self._min: np.ndarray | None = None
        self._max: np.ndarray | None = None

    def update(self, block: np.ndarray, start: int) -> None:
        block = np.asarray(block)
        if not len(block):
            return
        for largest in (True, False):
            kk = min(self.k, len(block))
            rows = _extreme_rows(block, kk, largest)
            vals = np.take_along_axis(block, rows, axis=0)
            rows = rows.astype(np.int64) + start
            prev = self._ends[largest]
            if prev is not None:
                vals, rows = np.concatenate([prev[0], vals]), np.concatenate([prev[1], rows])
            keys = -vals if largest else vals
            order = np.lexsort((rows, keys), axis=0)[: self.k]
            self._ends[largest] = (
                np.take_along_axis(vals, order, axis=0),
                np.take_along_axis(rows, order, axis=0),
            )
        x = block.astype(np.float64)
        n_b, mean_b = len(x), x.mean(axis=0)
        m2_b = ((x - mean_b) ** 2).sum(axis=0)
        if self._mean is None or self._m2 is None or self._min is None or self._max is None:
            self._mean, self._m2 = mean_b, m2_b
            self._min, self._max = x.min(axis=0), x.max(axis=0)
        else:  # Chan et al.'s pairwise merge of means and squared deviations
            total = self.n + n_b
            delta = mean_b - self._mean
            self._mean = self._mean + delta * (n_b / total)
            self._m2 = self._m2 + m2_b + delta**2 * (self.n * n_b / total)
            self._min = np.minimum(self._min, x.min(axis=0))
            self._max = np.maximum(self._max, x.max(axis=0))
        self.n += n_b

    def result(self) -> tuple[TopK, NeuronStats]:
        high, low = self._ends[True], self._ends[False]
        if high is None or low is None or self._mean is None or self._m2 is None:
            raise ValueError("no rows were summarized")
        assert self._min is not None and self._max is not None
        top = TopK(high=high[1].T, high_values=high[0].T, low=low[1].T, low_values=low[0].T)
        std = np.sqrt(self._m2 / self.n)
        return top, NeuronStats(self.n, self._mean, std, self._min, self._max)


class ActivationCache:
    """A finished recording: ``cache[layer]`` is a float32 ``[n_clips, n_neurons]`` array,
    a :class:`~andlib.store_shards.ShardReader` (array-like: ``[rows, cols]`` indexing,
    ``np.asarray``) or, for a recording of the older one-file layout, a memory map.

    Shards are memory-mapped on first access. Row ``i`` is clip ``cache.clip_ids[i]`` (the
    row order of ``clips.csv``); column ``j`` is neuron ``j`` of the layer.
    """

    def __init__(self, folder: str | Path, index: dict[str, Any] | None = None):
        self.folder = Path(folder)
        index_file = self.folder / "index.json"
        if index is None:
            if not index_file.exists():
                raise FileNotFoundError(f"{index_file} is missing: run the 'record' stage first")
            index = json.loads(index_file.read_text())
        self.index: dict[str, Any] = index
        """``index.json``, read once (or the one given)."""
        self._arrays: dict[str, np.ndarray | ShardReader] = {}

    @classmethod
    def load(cls, run: Any, index: dict[str, Any] | None = None) -> ActivationCache:
        """The recording stored in a run directory (``run/activations/``; ``run`` a
        :class:`~andlib.store.RunDir` or its path; ``index``: its ``index.json``, already
        read)."""
        path = Path(getattr(run, "path", run))
        return cls(path / ACTIVATIONS, index)

    @staticmethod
    def is_complete(folder: Path, key: str) -> bool:
        """True when ``folder`` holds a finished recording with this key."""
        index_file = folder / "index.json"
        if not index_file.exists():
            return False
        index = json.loads(index_file.read_text())
        if index.get("key") != key:
            return False
        n_clips = len(index["clip_ids"])
        for entry in index["layers"].values():
            if "dir" not in entry:
                return False  # the older one-file layout: recorded again
            try:
                reader = ShardReader(folder / entry["dir"])
            except (OSError, ValueError):
                return False
            if not reader.complete or reader.n_rows != n_clips:
                return False
        return True

    @property
    def layers(self) -> list[str]:
        """Layer keys in recording order."""
        return list(self.index["layers"])

    @property
    def clip_ids(self) -> list[str]:
        return list(self.index["clip_ids"])

    @property
    def n_clips(self) -> int:
        return len(self.index["clip_ids"])

    @property
    def pooling(self) -> str | None:
        return self.index.get("pooling")

    def _entry(self, layer: str) -> dict[str, Any]:
        if layer not in self.index["layers"]:
            close = difflib.get_close_matches(layer, self.layers, n=5, cutoff=0.5)
            raise KeyError(
                f"layer {layer!r} was not recorded; "
                + (f"close matches: {', '.join(close)}" if close else f"layers: {self.layers}")
            )
        return self.index["layers"][layer]

    def __getitem__(self, layer: str) -> np.ndarray | ShardReader:
        if layer not in self._arrays:
            entry = self._entry(layer)
            if "dir" in entry:
                self._arrays[layer] = ShardReader(self.folder / entry["dir"])
            else:
                self._arrays[layer] = np.load(self.folder / entry["file"], mmap_mode="r")
        return self._arrays[layer]

    def files(self, layer: str) -> list[str]:
        """The layer's files, relative to the ``activations/`` folder (a stage's outputs)."""
        entry = self._entry(layer)
        if "dir" not in entry:
            return [entry["file"]]
        reader = self[layer]
        assert isinstance(reader, ShardReader)
        shards = [(s["file"], s["ids"]) for s in reader.index["shards"]]
        return [f"{entry['dir']}/index.json"] + [f"{entry['dir']}/{f}" for p in shards for f in p]

    def blocks(self, layer: str, rows: int = 1024) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, block)`` over the layer in row order: its shards, or for a one-file
        layer blocks of ``rows`` rows (one block in memory at a time)."""
        arr = self[layer]
        if isinstance(arr, ShardReader):
            yield from arr.iter_shards()
        else:
            for start in range(0, len(arr), rows):
                yield start, arr[start : start + rows]

    def __contains__(self, layer: object) -> bool:
        return layer in self.index["layers"]

    def __iter__(self) -> Iterator[str]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.index["layers"])

    def n_neurons(self, layer: str) -> int:
        return int(self._entry(layer)["n_neurons"])

    def module_path(self, layer: str) -> str:
        return str(self._entry(layer)["module"])

    def summarize(self, layer: str, k: int) -> tuple[TopK, NeuronStats]:
        """Each neuron's ``k`` highest and ``k`` lowest activating clips and its statistics,
        in one streaming pass over the layer's shards."""
        summary = StreamingSummary(k)
        for start, block in self.blocks(layer):
            summary.update(block, start)
        return summary.result()

    def topk(self, layer: str, k: int) -> TopK:
        """Each neuron's ``k`` highest and ``k`` lowest activating clips (all neurons at once,
        streamed over the shards)."""
        return self.summarize(layer, k)[0]

    def stats(self, layer: str) -> NeuronStats:
        """Each neuron's count, mean, standard deviation, minimum and maximum over the clips."""
        return self.summarize(layer, 1)[1]

    def __repr__(self) -> str:
        total = sum(self.n_neurons(la) for la in self.layers)
        return f"ActivationCache({self.n_clips} clips, {len(self)} layers, {total} neurons)"
