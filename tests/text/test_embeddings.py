"""andlib.text.embeddings: the sentence embedding cache."""

from __future__ import annotations

import numpy as np

from andlib.config import load_config
from andlib.text.embeddings import Embedder, EmbeddingCache, embedder_device, get_embedder

TEXTS = ["a dog barks", "rain on a tin roof", "This is an audio about wind", "a dog barks"]


def test_vectors_are_embedded_once_and_read_back_bitwise(tmp_path):
    first = Embedder("all-MiniLM-L6-v2", cache_dir=tmp_path)
    a = first.encode(TEXTS)
    assert first.computed == 3 and a.shape == (4, first.dim) and a.dtype == np.float32
    assert np.array_equal(a[0], a[3])
    assert len(EmbeddingCache(tmp_path)) == 3
    second = Embedder("all-MiniLM-L6-v2", cache_dir=tmp_path)  # another kernel, same cache
    b = second.encode(TEXTS[::-1] + ["a new sentence"])
    assert second.computed == 1 and np.array_equal(b[:4], a[::-1])
    assert len(EmbeddingCache(tmp_path)) == 4


def test_the_cache_is_keyed_by_embedder_name(tmp_path):
    cache = EmbeddingCache(tmp_path)
    assert cache.get_many("m", ["x"]) == {}  # reading creates nothing
    cache.put_many("m", {"x": np.ones(3, np.float32)})
    cache.put_many("m", {"x": np.zeros(3, np.float32)})  # the first vector stays
    cache.put_many("other", {"x": np.full(3, 2.0, np.float32)})
    assert cache.get_many("m", ["x", "y"])["x"].tolist() == [1.0, 1.0, 1.0]
    assert cache.get_many("other", ["x"])["x"].tolist() == [2.0, 2.0, 2.0]


def test_get_embedder_of_a_config_caches_under_its_cache_dir(tmp_path):
    cfg = load_config(None, {"cache_dir": str(tmp_path), "model.device": "cpu"})
    emb = get_embedder(cfg)
    assert emb is get_embedder(cfg) and emb.disk is not None and emb.device == "cpu"
    emb.encode(["a cached sentence for this test"])
    assert (tmp_path / "embeddings" / EmbeddingCache.FILE).exists()
    assert get_embedder().disk is None  # a section (or nothing): memory only


def test_embedder_device_follows_model_device():
    import torch

    assert embedder_device("cpu") == "cpu"
    assert embedder_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
