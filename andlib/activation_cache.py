"""The reader of a run's recorded activations: :class:`ActivationCache` (``activations/``).

``activations/index.json`` names every recorded layer's ``.npy`` file (float32
``[n_clips, n_neurons]``, row ``i`` = row ``i`` of ``clips.csv``); the arrays are
memory-mapped on first access. :meth:`ActivationCache.topk` gives every neuron's most extreme
clips at both ends (:class:`TopK`). :mod:`andlib.store` re-exports both names: it is where
every artifact's reader is found.

Public surface: :class:`ActivationCache`, :class:`TopK`, :data:`ACTIVATIONS`.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from andlib.store_shards import ShardReader, is_sharded

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


def _extreme_rows(a: np.ndarray, k: int, largest: bool) -> np.ndarray:
    """Row indices ``[k, n_cols]`` of each column's ``k`` most extreme values, most extreme
    first; equal values keep clip order."""
    s = -a if largest else a
    cand = np.argpartition(s, k - 1, axis=0)[:k] if k < len(a) else np.argsort(s, axis=0)
    order = np.lexsort((cand, np.take_along_axis(s, cand, axis=0)), axis=0)
    return np.take_along_axis(cand, order, axis=0)


class ActivationCache:
    """A finished recording: ``cache[layer]`` is a float32 ``[n_clips, n_neurons]`` array.

    Arrays are memory-mapped on first access. Row ``i`` is clip ``cache.clip_ids[i]`` (the
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
        self._arrays: dict[str, np.ndarray] = {}

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
        return index.get("key") == key and all(
            (folder / entry["file"]).exists()
            if "file" in entry
            else ShardReader(folder / entry["dir"]).complete
            if is_sharded(folder / entry["dir"])
            else False
            for entry in index["layers"].values()
        )

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

    def __getitem__(self, layer: str) -> np.ndarray:
        if layer not in self._arrays:
            entry = self._entry(layer)
            if "dir" in entry:  # a layer in the sharded layout (an SAE's latents), read whole
                self._arrays[layer] = np.asarray(ShardReader(self.folder / entry["dir"]))
            else:
                self._arrays[layer] = np.load(self.folder / entry["file"], mmap_mode="r")
        return self._arrays[layer]

    def files(self, layer: str) -> list[str]:
        """The layer's files, relative to the ``activations/`` folder (a stage's outputs)."""
        entry = self._entry(layer)
        if "dir" not in entry:
            return [entry["file"]]
        reader = ShardReader(self.folder / entry["dir"])
        names = [f for s in reader.index["shards"] for f in (s["file"], s["ids"])]
        return [f"{entry['dir']}/{name}" for name in ["index.json", *names]]

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

    def topk(self, layer: str, k: int) -> TopK:
        """Each neuron's ``k`` highest and ``k`` lowest activating clips (all neurons at once)."""
        a = np.asarray(self[layer])
        k = max(1, min(k, len(a)))
        high, low = _extreme_rows(a, k, largest=True), _extreme_rows(a, k, largest=False)
        return TopK(
            high=high.T,
            high_values=np.take_along_axis(a, high, axis=0).T,
            low=low.T,
            low_values=np.take_along_axis(a, low, axis=0).T,
        )

    def __repr__(self) -> str:
        total = sum(self.n_neurons(la) for la in self.layers)
        return f"ActivationCache({self.n_clips} clips, {len(self)} layers, {total} neurons)"
