"""Append-only JSON Lines files, the form of every evals cache: read row by row, appended and flushed at once.

A run killed mid-write leaves at most one torn last line; readers skip unreadable lines with one warning instead of
failing, so the next run resumes from every complete row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


def read_rows(path: Path, parse: Callable[[dict[str, Any]], T]) -> Iterator[T]:
    """``parse(row)`` of each JSON object in ``path`` (none when the file does not exist).

    A line that is not JSON, or that ``parse`` rejects with ``KeyError``, ``TypeError`` or ``ValueError``, is skipped;
    the count is logged once at the end.
    """
    if not path.is_file():
        return
    bad = 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                yield parse(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                bad += 1
    if bad:
        logger.warning("%s: skipped %d unreadable lines (an interrupted write?)", path, bad)


def append_row(path: Path, row: Mapping[str, Any]) -> None:
    """Append ``row`` as one JSON line and flush it, creating the folder if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()


__all__ = ["append_row", "read_rows"]
