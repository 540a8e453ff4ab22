"""andlib.text.kvstore: one SQLite file shared by threads and processes."""

from __future__ import annotations

import os
import sqlite3
import threading

import pytest

from andlib.text import kvstore
from andlib.text.kvstore import SQLiteFile

SCHEMA = "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT);"


def test_nothing_is_created_until_something_is_written(tmp_path):
    db = SQLiteFile(tmp_path / "sub" / "cache.sqlite", SCHEMA)
    assert db.connect(create=False) is None
    assert list(db.select_in("SELECT key FROM kv WHERE key IN ({})", ["a"])) == []
    assert not db.path.exists()
    db.executemany("INSERT INTO kv VALUES (?, ?)", [("a", "1")])
    assert db.path.exists()


def test_writes_are_read_back_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(kvstore, "CHUNK", 3)  # several SELECTs for 10 keys
    db = SQLiteFile(tmp_path / "cache.sqlite", SCHEMA)
    db.executemany("INSERT INTO kv VALUES (?, ?)", [(f"k{i}", str(i)) for i in range(10)])
    db.executemany("INSERT INTO kv VALUES (?, ?)", [])  # nothing to write: no transaction
    keys = [f"k{i}" for i in range(12)]  # two of them missing
    rows = dict(db.select_in("SELECT key, value FROM kv WHERE key IN ({})", keys))
    assert rows == {f"k{i}": str(i) for i in range(10)}
    assert db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"


def test_a_failed_batch_writes_nothing(tmp_path):
    db = SQLiteFile(tmp_path / "cache.sqlite", SCHEMA)
    with pytest.raises(sqlite3.IntegrityError):
        db.executemany("INSERT INTO kv VALUES (?, ?)", [("a", "1"), ("a", "2")])
    assert db.execute("SELECT COUNT(*) FROM kv").fetchone()[0] == 0


def test_each_thread_has_its_own_connection(tmp_path):
    db = SQLiteFile(tmp_path / "cache.sqlite", SCHEMA)
    mine = db.connect()
    assert db.connect() is mine  # reused within a thread
    seen = []

    def write(i: int) -> None:
        seen.append(db.connect())
        db.executemany("INSERT INTO kv VALUES (?, ?)", [(f"t{i}", str(i))])

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(c is not mine for c in seen)
    assert db.execute("SELECT COUNT(*) FROM kv").fetchone()[0] == 4
    db.close()
    assert db.connect() is not mine  # reopened after close


def test_a_forked_process_opens_its_own_connection(tmp_path, monkeypatch):
    db = SQLiteFile(tmp_path / "cache.sqlite", SCHEMA)
    first = db.connect()
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as in a child after fork
    assert db.connect() is not first


def test_a_locked_file_is_retried_until_it_frees(monkeypatch):
    monkeypatch.setattr(kvstore.time, "sleep", lambda s: None)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "done"

    assert kvstore._retry_locked(flaky) == "done" and len(calls) == 3
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        kvstore._retry_locked(
            lambda: (_ for _ in ()).throw(sqlite3.OperationalError("no such table"))
        )
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        kvstore._retry_locked(
            lambda: (_ for _ in ()).throw(sqlite3.OperationalError("database is locked")),
            seconds=-1,
        )
