"""andlib.text.replies: the LLM reply cache (one SQLite file, concurrent writers, the old one-file-
per-reply layout)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from andlib.config import LLMConfig
from andlib.text.llm import ReplyCache, get_llm
from andlib.text.loopback import LoopbackServer

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def request(i: int) -> dict:
    return {"backend": "openai", "model": "m", "messages": [{"role": "user", "content": f"q{i}"}]}


def test_round_trip_and_batched_reads(tmp_path):
    cache = ReplyCache(tmp_path)
    assert len(cache) == 0 and cache.get_many(["nope"]) == {}
    assert not (tmp_path / "llm" / ReplyCache.FILE).exists()  # reading creates no file
    keys = [ReplyCache.key(request(i)) for i in range(1200)]  # more than one query's worth
    cache.put_many([(k, request(i), f"reply {i} — ü") for i, k in enumerate(keys)])
    cache.put(keys[0], request(0), "replaced")
    again = ReplyCache(tmp_path)
    got = again.get_many(keys + keys[:3] + ["missing"])
    assert len(got) == 1200 and got[keys[0]] == "replaced" and got[keys[7]] == "reply 7 — ü"
    assert again.get(keys[5]) == "reply 5 — ü" and again.get("missing") is None
    assert again.request(keys[3]) == request(3) and again.request("missing") is None
    assert len(again) == 1200
    with pytest.raises(ValueError, match="empty reply"):
        cache.put("k", request(0), "  ")


def test_keys_are_those_of_the_json_layout():
    req = {"backend": "openai", "model": "m", "messages": [], "sampling": {"temperature": 0}}
    # the SHA-256 of the sorted, compact JSON, as in every earlier version
    assert ReplyCache.key(req) == (
        __import__("hashlib")
        .sha256(json.dumps(req, sort_keys=True, separators=(",", ":")).encode())
        .hexdigest()
    )


def test_threads_write_at_once(tmp_path):
    cache = ReplyCache(tmp_path)
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for i in range(100):
                n = 1000 * t + i
                cache.put(ReplyCache.key(request(n)), request(n), f"r{n}")
                assert cache.get(ReplyCache.key(request(n))) == f"r{n}"
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(ReplyCache(tmp_path)) == 800


WRITER = textwrap.dedent(
    """
    import sys
    from andlib.text.llm import ReplyCache
    root, first = sys.argv[1], int(sys.argv[2])
    cache = ReplyCache(root)
    for n in range(first, first + 300):
        req = {"n": n}
        cache.put(ReplyCache.key(req), req, f"r{n}")
        if n % 7 == 0:
            cache.put_many([(ReplyCache.key({"m": n}), {"m": n}, "batch")])
    """
)


def test_two_processes_write_at_once(tmp_path):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(first)], cwd=PROJECT_ROOT
        )
        for first in (0, 300)
    ]
    reader = ReplyCache(tmp_path)
    while any(p.poll() is None for p in procs):  # reading while they write
        reader.get_many([ReplyCache.key({"n": n}) for n in range(0, 600, 13)])
    assert [p.returncode for p in procs] == [0, 0]
    got = reader.get_many([ReplyCache.key({"n": n}) for n in range(600)])
    assert len(got) == 600 and got[ReplyCache.key({"n": 431})] == "r431"
    assert len(reader) == 600 + len(range(0, 600, 7))


def write_legacy(root: Path, req: dict, reply: str) -> str:
    """One entry in the layout of earlier versions: ``llm/<key[:2]>/<key>.json``."""
    key = ReplyCache.key(req)
    path = root / "llm" / key[:2] / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"key": key, "request": req, "reply": reply}
    path.write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
    return key


def test_the_old_layout_is_imported_and_still_read(tmp_path):
    keys = [write_legacy(tmp_path, request(i), f"old {i}") for i in range(20)]
    write_legacy(tmp_path, request(99), "")  # an empty reply was never valid: a miss
    bad = tmp_path / "llm" / "ab" / ("ab" + "0" * 62 + ".json")
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("{not json")
    cache = ReplyCache(tmp_path)
    assert cache.get_many(keys) == {k: f"old {i}" for i, k in enumerate(keys)}
    assert cache.get(ReplyCache.key(request(99))) is None
    assert len(cache) == 20  # imported once, into the SQLite file
    assert cache.request(keys[4]) == request(4)
    # written by an older version after the import: found on a miss, and imported too
    late = write_legacy(tmp_path, request(50), "late")
    assert ReplyCache(tmp_path).get(late) == "late"
    (tmp_path / "llm" / late[:2] / f"{late}.json").unlink()
    assert ReplyCache(tmp_path).get(late) == "late" and len(ReplyCache(tmp_path)) == 21


def test_an_old_cache_makes_a_rerun_call_nothing(tmp_path):
    srv = LoopbackServer()
    try:
        cfg = LLMConfig(backend="openai", model="fake", base_url=srv.url, retry_backoff=0.01)
        batch = [[{"role": "user", "content": f"question {i}"}] for i in range(5)]
        first = get_llm(cfg, tmp_path / "new")
        replies = first.complete_many(batch)
        # the same replies laid out as an earlier version wrote them
        old = tmp_path / "old"
        for m, reply in zip(batch, replies, strict=True):
            write_legacy(old, first.request(m), reply)
        again = get_llm(cfg, old)
        assert again.complete_many(batch) == replies
        assert again.calls == 0 and again.cache_hits == 5 and srv.count == 5
    finally:
        srv.close()
