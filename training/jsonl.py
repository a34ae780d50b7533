"""JSON Lines files, plain or gzip-compressed (by the ``.gz`` suffix): read row by row naming the bad line, and
written atomically."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

from .errors import AnnotationFormatError

T = TypeVar("T")


def open_text(path: str | os.PathLike[str], *, write: bool = False) -> IO[str]:
    """``path`` as UTF-8 text to read (or to ``write``), gzip-compressed when its name ends in ``.gz``."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "wt", encoding="utf-8") if write else gzip.open(path, "rt", encoding="utf-8")
    return path.open("w" if write else "r", encoding="utf-8")


def iter_json_rows(path: str | os.PathLike[str],
                   not_json: Callable[[str, json.JSONDecodeError], Exception]) -> Iterator[tuple[str, Any]]:
    """``(where, row)`` for each non-blank line, ``where`` being ``"PATH:LINE"``; a line that is not JSON raises
    ``not_json(where, error)``, so each reader keeps its own error type and wording."""
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise not_json(where, exc) from None
            yield where, row


def read_json_lines(path: str | os.PathLike[str], convert: Callable[[Any], T], *, what: str, expected: str,
                    limit: int | None = None) -> list[T]:
    """``convert(row)`` of each non-blank line (the first ``limit`` rows at most).

    Raises:
        AnnotationFormatError: at the first line that is not JSON or that ``convert`` rejects (``ValueError``,
            ``KeyError``, ``TypeError``), naming the file and line, ``what`` it is not and the ``expected`` form.
    """
    out: list[T] = []
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if limit is not None and len(out) >= limit:
                break
            try:
                out.append(convert(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                raise AnnotationFormatError(f"{path}:{number}: not {what} ({type(exc).__name__}: {exc}); expected "
                                            f"{expected}") from exc
    return out


def write_json_lines(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Write one JSON object per line through a temporary file and a rename: never half a file at ``path``."""
    from r2r_agent.files import atomic_text_writer

    with atomic_text_writer(path) as handle:  # a unique temporary name: two writers never share one
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


__all__ = ["iter_json_rows", "open_text", "read_json_lines", "write_json_lines"]
