"""Reading and writing the project's own files safely: bounded reads of regular files, atomic writes.

* :func:`read_bytes_bounded` / :func:`read_text_bounded` read a *regular* file of at most ``limit`` bytes. The file is
  opened without blocking and checked with ``fstat`` on the open handle, so a FIFO, ``/dev/zero`` or a directory is
  refused at once (a plain ``read_text`` would hang on a FIFO or eat memory on ``/dev/zero``).
* :func:`atomic_write_text` / :func:`atomic_write_bytes` write to a temporary file in the target's folder, flush it to
  disk and rename it over the target (``os.replace``), so a failed or interrupted write leaves the old file as it was,
  never a half-written one that no longer loads.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

#: The default bound of :func:`read_bytes_bounded`: larger than any file the project reads as a whole.
DEFAULT_READ_LIMIT = 64 * 1024 * 1024


class FileReadError(OSError):
    """A file could not be read as asked: not a regular file, or larger than the bound."""


def read_bytes_bounded(path: str | os.PathLike[str], limit: int = DEFAULT_READ_LIMIT) -> bytes:
    """The bytes of the regular file ``path``, which must be at most ``limit`` bytes long.

    Raises:
        FileReadError: ``path`` is not a regular file (a folder, FIFO, device...) or holds more than ``limit`` bytes.
        OSError: It cannot be opened (missing, unreadable).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(os.fspath(path), flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileReadError(f"{os.fspath(path)} is not a regular file")
        if info.st_size > limit:
            raise FileReadError(f"{os.fspath(path)} holds {info.st_size} bytes, more than the {limit} this reads")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:  # it grew while being read
            raise FileReadError(f"{os.fspath(path)} holds more than the {limit} bytes this reads")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text_bounded(path: str | os.PathLike[str], limit: int = DEFAULT_READ_LIMIT) -> str:
    """:func:`read_bytes_bounded`, decoded as UTF-8 (raises ``UnicodeDecodeError`` on bad bytes)."""
    return read_bytes_bounded(path, limit).decode("utf-8")


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: str = "w", *, encoding: str | None = "utf-8",
                  newline: str | None = None) -> Iterator[IO]:  # type: ignore[type-arg]
    """A file handle whose content replaces ``path`` only once the ``with`` block ends without an error.

    The parent folder is created. An existing file's permission bits are kept; a new file gets the usual ``0o666``
    less the umask (``mkstemp`` alone would make it ``0o600``).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        try:
            mode_bits = stat.S_IMODE(target.stat().st_mode)
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode_bits = 0o666 & ~umask
        os.chmod(tmp, mode_bits)
        binary = "b" in mode
        with os.fdopen(fd, mode, encoding=None if binary else encoding,
                       newline=None if binary else newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_text_writer(path: str | os.PathLike[str]) -> Iterator[IO[str]]:
    """:func:`atomic_writer` for UTF-8 text, gzip-compressed when the name ends in ``.gz``."""
    if not os.fspath(path).endswith(".gz"):
        with atomic_writer(path, "w") as handle:
            yield handle
        return
    with atomic_writer(path, "wb") as raw, gzip.open(raw, "wt", encoding="utf-8") as handle:
        yield handle  # closing the gzip stream writes its trailer; the raw file is then synced and renamed


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docs); returns the path."""
    with atomic_writer(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see the module docs); returns the path."""
    with atomic_writer(path, "w", encoding=encoding) as handle:
        handle.write(text)
    return Path(path)


__all__ = ["DEFAULT_READ_LIMIT", "FileReadError", "atomic_text_writer", "atomic_write_bytes", "atomic_write_text",
           "atomic_writer",
           "read_bytes_bounded", "read_text_bounded"]
