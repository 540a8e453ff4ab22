"""The describe stages' speed-ups (caches, memos) change no result: on the smoke config,
``neurons.csv``, ``last_layer.json`` and ``scores.csv`` are byte for byte the same

- from the reference code path (embeddings remembered in memory only, as before the disk
  cache; every caption's sources and qualities worked out again for every neuron, as before
  the per-caption memo of the extractive summarizer; rank reorder with torch's stable sort,
  as before :func:`~andlib.describe.similarity.stable_argsort`; spaCy's parse of the
  calibrated summaries run before Module A, not in a thread beside it),
- from the fast path with a cold cache directory,
- and from the fast path again in a "new kernel" (nothing in memory) that reads every
  embedding from the disk cache the previous run filled, embedding nothing itself.
"""

from __future__ import annotations

import shutil
from concurrent.futures import Future
from pathlib import Path

import pytest
import torch

import andlib.describe.concepts as concepts
import andlib.describe.similarity as similarity
import andlib.text.caption_parse as caption_parse
import andlib.text.extractive as extractive
from andlib.config import load_config
from andlib.store import RunDir
from tests.conftest import requires_esc50

OUTPUTS = ("neurons.csv", "last_layer.json", "scores.csv")
UPSTREAM = ("train", "record", "caption")
# the stages (their cache records in .stages/) run by andlib.pipeline.stage_function
DOWNSTREAM = ("summarize", "concepts", "controls", "evaluate")


class _RightAway:
    """An executor that runs each task when it is submitted, in the calling thread."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def submit(self, fn, *args, **kwargs) -> Future:
        done: Future = Future()
        done.set_result(fn(*args, **kwargs))
        return done

    def shutdown(self, wait: bool = True) -> None:
        pass


def _fresh_memory() -> None:
    """What a new process starts with: no embedder objects, no remembered parses."""
    import andlib.text.embeddings as emb

    emb._cached.cache_clear()
    caption_parse._parsed.clear()
    extractive._items.clear()


def _describe(cfg_of, name: str, up: Path) -> dict[str, bytes]:
    from andlib.pipeline import stage_function

    dest = up.parent / name
    shutil.copytree(up, dest)
    cfg = cfg_of(dest)
    run = RunDir.from_config(cfg)
    for stage in DOWNSTREAM:
        run.invalidate(stage)
        stage_function(stage)(cfg, run)
    return {o: (dest / o).read_bytes() for o in OUTPUTS}


@pytest.mark.slow
@requires_esc50
def test_outputs_are_identical_before_and_after_the_speedups(tmp_path, monkeypatch):
    import andlib.text.embeddings as emb
    from andlib.pipeline import run_stage

    def cfg_of(run_dir: Path):
        return load_config(
            "configs/smoke.yaml",
            {
                "run_dir": str(run_dir),
                "cache_dir": str(tmp_path / "cache"),
                "figures_dir": str(run_dir / "figures"),
            },
        )

    up = tmp_path / "upstream"
    for stage in UPSTREAM:
        run_stage(stage, cfg_of(up))

    # The reference path: the code as it was before the disk cache and the memo.
    memo = extractive._caption_items

    def every_time(captions):
        extractive._items.clear()
        return memo(captions)

    with monkeypatch.context() as m:
        m.setenv("ANDLIB_EMBEDDING_CACHE", "off")
        m.setattr(extractive, "_caption_items", every_time)
        m.setattr(similarity, "stable_argsort", lambda x: torch.argsort(x, dim=-1, stable=True))
        m.setattr(concepts, "ThreadPoolExecutor", _RightAway)
        _fresh_memory()
        reference = _describe(cfg_of, "reference", up)
    assert not (tmp_path / "cache" / "embeddings").exists()

    _fresh_memory()
    cold = _describe(cfg_of, "cold", up)
    assert (tmp_path / "cache" / "embeddings" / emb.EmbeddingCache.FILE).exists()

    _fresh_memory()
    warm = _describe(cfg_of, "warm", up)
    assert emb.get_embedder(cfg_of(up)).computed == 0  # every vector came from the disk

    for name in OUTPUTS:
        assert cold[name] == reference[name], f"{name}: the fast path changed it"
        assert warm[name] == reference[name], f"{name}: the disk cache changed it"
