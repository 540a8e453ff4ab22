"""The disk cache of language-model replies: ``<cache_dir>/llm/replies.sqlite``.

:class:`ReplyCache` is one SQLite file in WAL mode (:class:`andlib.text.kvstore.SQLiteFile`),
safe for threads and processes writing at once and read in batches, keyed by the SHA-256 of
(backend, model, messages, sampling settings). Caches of the earlier one-JSON-file-per-reply
layout are imported on first use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from andlib.text.kvstore import SQLiteFile

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Disk cache
# --------------------------------------------------------------------------------------------


class ReplyCache:
    """Replies on disk in one SQLite file, ``<cache_dir>/llm/replies.sqlite``.

    Keyed by :meth:`key` (the SHA-256 of the request), as the one-JSON-file-per-reply layout
    of earlier versions (``<cache_dir>/llm/<key[:2]>/<key>.json``) was: those files are
    imported into the store the first time it is opened (once; they are left in place), and a
    key still missing is looked up there too, so an existing cache keeps working. WAL mode:
    threads and processes (two runs, notebook kernels) read and write it at once (see
    :mod:`andlib.text.kvstore`). Only complete replies are ever stored (an empty one reads as a
    miss). Each reply's request is kept too, zlib-compressed (:meth:`request`), so an entry
    says what was asked.
    """

    FILE = "replies.sqlite"
    SCHEMA = """
        CREATE TABLE IF NOT EXISTS replies (
            key TEXT PRIMARY KEY, reply TEXT NOT NULL, request BLOB NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
    """

    def __init__(self, cache_dir: str | os.PathLike):
        self.root = Path(cache_dir) / "llm"
        self.db = SQLiteFile(self.root / self.FILE, self.SCHEMA)
        self._legacy: bool | None = None  # whether the old layout is there (looked up once)

    @staticmethod
    def key(request: dict[str, Any]) -> str:
        blob = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    # ---- the layout of earlier versions: one JSON file per reply -----------------------------

    def _legacy_dirs(self) -> list[Path]:
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        return sorted(
            Path(e.path)
            for e in entries
            if e.is_dir() and len(e.name) == 2 and all(c in "0123456789abcdef" for c in e.name)
        )

    def _legacy_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    @staticmethod
    def _read_legacy(path: Path) -> tuple[str, bytes] | None:
        """``(reply, request JSON)`` of one old cache file, or ``None`` (missing, unreadable)."""
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            reply = record["reply"]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, OSError):
            log.warning("ignoring unreadable LLM cache entry %s", path)
            return None
        if not (isinstance(reply, str) and reply.strip()):
            return None
        return reply, _pack(record.get("request"))

    def _migrate(self) -> None:
        """Import the old layout's files into the store, once per store (idempotent)."""
        if self._legacy is not None:
            return
        dirs = self._legacy_dirs()
        self._legacy = bool(dirs)
        if not dirs:
            return
        done = self.db.execute("SELECT value FROM meta WHERE name = 'legacy_imported'").fetchone()
        if done is not None:
            return
        t0 = time.monotonic()
        rows = []
        for d in dirs:
            for path in d.glob("*.json"):
                got = self._read_legacy(path)
                if got is not None:
                    rows.append((path.stem, got[0], got[1]))
        self.db.executemany("INSERT OR IGNORE INTO replies VALUES (?, ?, ?)", rows)
        self.db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('legacy_imported', ?)", (str(len(rows)),)
        )
        log.info(
            "imported %d cached LLM replies from %s/??/*.json into %s (%.1f s)",
            len(rows),
            self.root,
            self.db.path,
            time.monotonic() - t0,
        )

    # ---- reads and writes --------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        """``{key: reply}`` for the ``keys`` that are cached, in a few batched queries."""
        self._migrate()
        found: dict[str, str] = {}
        for key, reply in self.db.select_in(
            "SELECT key, reply FROM replies WHERE key IN ({})", sorted(set(keys))
        ):
            if isinstance(reply, str) and reply.strip():
                found[key] = reply
        if self._legacy:  # written by an older version after the import
            for key in set(keys) - set(found):
                got = self._read_legacy(self._legacy_path(key))
                if got is not None:
                    found[key] = got[0]
                    self.db.execute(
                        "INSERT OR IGNORE INTO replies VALUES (?, ?, ?)", (key, got[0], got[1])
                    )
        return found

    def put(self, key: str, request: dict[str, Any], reply: str) -> None:
        """Store one complete reply (committed at once, so an interrupted run keeps it)."""
        self.put_many([(key, request, reply)])

    def put_many(self, items: Sequence[tuple[str, dict[str, Any], str]]) -> None:
        """Store complete replies in one transaction; empty replies are refused."""
        rows = []
        for key, request, reply in items:
            if not (isinstance(reply, str) and reply.strip()):
                raise ValueError(f"refusing to cache an empty reply under {key}")
            rows.append((key, reply, _pack(request)))
        self.db.executemany("INSERT OR REPLACE INTO replies VALUES (?, ?, ?)", rows)

    def request(self, key: str) -> dict[str, Any] | None:
        """What was asked for the reply stored under ``key`` (``None`` when there is none)."""
        self._migrate()
        rows = list(self.db.select_in("SELECT request FROM replies WHERE key IN ({})", [key]))
        if not rows:
            return None
        blob = rows[0][0]
        return json.loads(zlib.decompress(blob) if isinstance(blob, bytes) else blob)

    def __len__(self) -> int:
        self._migrate()
        conn = self.db.connect(create=False)
        return (
            0 if conn is None else int(conn.execute("SELECT COUNT(*) FROM replies").fetchone()[0])
        )

    def items(self) -> list[tuple[str, str]]:
        """Every ``(key, reply)`` stored, by key."""
        self._migrate()
        conn = self.db.connect(create=False)
        if conn is None:
            return []
        return [tuple(r) for r in conn.execute("SELECT key, reply FROM replies ORDER BY key")]


def _pack(request: Any) -> bytes:
    """A request as compressed JSON (the summarize prompts of 10^5 neurons shrink ~10x)."""
    blob = json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return zlib.compress(blob, 6)
