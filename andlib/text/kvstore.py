"""One SQLite file shared by threads and processes: the storage under the on-disk caches.

:class:`SQLiteFile` opens one connection per thread and process (a connection is never shared
across a ``fork``) in WAL mode, so readers never wait for a writer and several writers (threads
of one run, or two runs or notebook kernels at once) take turns through SQLite's own locking
(``busy_timeout``). ``synchronous=NORMAL``: a commit costs no ``fsync``, and the file stays
consistent after a crash (at worst the last few entries are missing, which a cache re-creates).

Used by :class:`andlib.text.replies.ReplyCache` (LLM replies) and
:class:`andlib.text.embeddings.EmbeddingCache`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

BUSY_TIMEOUT_S = 120.0
"""How long a writer waits for another one before SQLite gives up ("database is locked")."""
CHUNK = 500
"""Keys per ``SELECT ... IN (...)``: below every SQLite build's host-parameter limit."""


class SQLiteFile:
    """A SQLite database at ``path``, created with ``schema`` on first use.

    ``schema`` is a script of ``CREATE ... IF NOT EXISTS`` statements. The file is created only
    when something is written (or read with ``create=True``), so merely looking at a cache
    leaves no file behind.
    """

    def __init__(self, path: str | os.PathLike, schema: str):
        self.path = Path(path)
        self.schema = schema
        self._local = threading.local()

    def connect(self, create: bool = True) -> sqlite3.Connection | None:
        """This thread's connection; ``None`` when the file does not exist and not ``create``."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        if not create and not self.path.exists():
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        _retry_locked(lambda: _setup(conn, self.schema))
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        conn = self.connect()
        assert conn is not None
        return _retry_locked(lambda: conn.execute(sql, params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """All ``rows`` in one transaction (one commit, however many rows)."""
        conn = self.connect()
        assert conn is not None
        rows = list(rows)
        if not rows:
            return

        def write() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(sql, rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        _retry_locked(write)

    def select_in(self, sql: str, keys: Sequence[Any], create: bool = False) -> Iterator[tuple]:
        """Rows of ``sql`` (which ends in ``IN ({})``) for ``keys``, ``CHUNK`` keys a query."""
        conn = self.connect(create=create)
        if conn is None:
            return
        keys = list(keys)
        for start in range(0, len(keys), CHUNK):
            part = keys[start : start + CHUNK]
            query = sql.format(",".join("?" * len(part)))
            yield from _retry_locked(lambda q=query, p=part: conn.execute(q, p).fetchall())

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _setup(conn: sqlite3.Connection, schema: str) -> None:
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode=WAL")  # persistent: set once per file
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(schema)


def _retry_locked(fn: Any, seconds: float = BUSY_TIMEOUT_S) -> Any:
    """``fn()``, retried while SQLite reports the file locked (switching to WAL, or creating
    the schema, takes a lock that the busy handler does not always wait for)."""
    deadline = time.monotonic() + seconds
    delay = 0.005
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
