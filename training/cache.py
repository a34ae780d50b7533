"""A resumable SQLite cache of teacher answers, keyed by (teacher, prompt version, query id, window hash).

Each finished window is committed at once (WAL journal), so a crash or Ctrl-C loses at most the windows in flight;
running the same annotation again finds the finished windows here and asks the teacher only for the rest.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from .errors import CacheError
from .records import WindowAnnotation

logger = logging.getLogger(__name__)

CACHE_FORMAT = "r2r-agent-teacher-cache"
CACHE_SCHEMA_VERSION = 1
_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS windows (
    teacher TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    query_id TEXT NOT NULL,
    window_hash TEXT NOT NULL,
    ok INTEGER NOT NULL,
    record TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (teacher, prompt_version, query_id, window_hash)
);
"""


class AnnotationCache:
    """Teacher answers stored in one SQLite file; safe to share between threads of one process.

    Args:
        path: The cache file; created (with its folder) when absent.

    Raises:
        CacheError: when the file is not an SQLite database, is corrupt, or is an SQLite database of something else
            (or of another cache schema version); the message names the file.

    Example:
        >>> with AnnotationCache("runs/teacher-cache.sqlite") as cache:       # doctest: +SKIP
        ...     run = annotate(teacher, requests, cache=cache, progress=True)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._check_header()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise CacheError(f"cannot open the annotation cache {str(self.path)!r}: {exc}") from exc
        try:
            self._init_schema()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise self._corrupt(exc) from exc
        except CacheError:
            self._db.close()
            raise

    def _corrupt(self, exc: BaseException) -> CacheError:
        return CacheError(f"the annotation cache {str(self.path)!r} is corrupt or not a cache ({exc}). "
                          "Move it away (or delete it) and run again; finished windows in it cannot be reused.")

    def _check_header(self) -> None:
        if not self.path.exists():
            return
        if self.path.is_dir():
            raise CacheError(f"the annotation cache path {str(self.path)!r} is a directory; expected a file")
        with self.path.open("rb") as handle:
            head = handle.read(len(_SQLITE_MAGIC))
        if head and head != _SQLITE_MAGIC:
            raise CacheError(f"the annotation cache {str(self.path)!r} is not an SQLite database (it starts with "
                             f"{head[:8]!r}); expected a file made by AnnotationCache. Pass another path or move it.")

    def _init_schema(self) -> None:
        db = self._db
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "meta" not in tables:
            raise CacheError(f"{str(self.path)!r} is an SQLite database but not an r2r-agent annotation cache "
                             f"(tables: {sorted(tables)[:6]}); pass another path for the cache")
        if not tables:
            db.execute("PRAGMA journal_mode = WAL")
            db.executescript(_SCHEMA)
            db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                           [("format", CACHE_FORMAT), ("schema_version", str(CACHE_SCHEMA_VERSION))])
            return
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("format") != CACHE_FORMAT:
            raise CacheError(f"{str(self.path)!r} is not an r2r-agent annotation cache (format "
                             f"{meta.get('format')!r}, expected {CACHE_FORMAT!r}); pass another path for the cache")
        if meta.get("schema_version") != str(CACHE_SCHEMA_VERSION):
            raise CacheError(f"the annotation cache {str(self.path)!r} has schema version "
                             f"{meta.get('schema_version')!r}; this version of r2r-agent reads "
                             f"{CACHE_SCHEMA_VERSION}. Use a new cache file.")
        if "windows" not in tables:
            raise self._corrupt(RuntimeError("table 'windows' is missing"))
        db.execute("PRAGMA journal_mode = WAL")

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise self._corrupt(exc) from exc

    def get(self, teacher: str, prompt_version: str, query_id: str, window_hash: str) -> WindowAnnotation | None:
        """The stored window for this key, or ``None``."""
        rows = self._run("SELECT record FROM windows WHERE teacher = ? AND prompt_version = ? AND query_id = ? "
                         "AND window_hash = ?", (teacher, prompt_version, str(query_id), window_hash))
        if not rows:
            return None
        try:
            return WindowAnnotation.from_dict(json.loads(rows[0][0]))
        except (ValueError, KeyError, TypeError) as exc:
            raise self._corrupt(exc) from exc

    def put(self, query_id: str, window: WindowAnnotation) -> None:
        """Store (or replace) ``window``'s record for ``query_id``; committed before returning."""
        record = json.dumps(window.to_dict(), ensure_ascii=False)
        self._run("INSERT OR REPLACE INTO windows VALUES (?, ?, ?, ?, ?, ?, ?)",
                  (window.teacher, window.prompt_version, str(query_id), window.window_hash, int(window.ok), record,
                   time.time()))

    def counts(self) -> dict[str, int]:
        """How many windows are stored: ``{"ok": ..., "failed": ...}``."""
        rows = dict(self._run("SELECT ok, COUNT(*) FROM windows GROUP BY ok"))
        return {"ok": rows.get(1, 0), "failed": rows.get(0, 0)}

    def __len__(self) -> int:
        return self._run("SELECT COUNT(*) FROM windows")[0][0]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> AnnotationCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["CACHE_FORMAT", "CACHE_SCHEMA_VERSION", "AnnotationCache"]
