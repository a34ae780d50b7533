"""Bounded HTTP reads for the served client: a byte cap on the decoded body and a deadline on a whole attempt.

``httpx`` timeouts bound each socket operation, not a request: a server that sends one byte every 0.4 s keeps a
``timeout=2`` read alive forever, and a 300 kB gzip body can inflate to a gigabyte. :class:`BodyReader` decodes
``gzip``/``deflate`` itself, a bounded piece at a time, and stops past the cap; :func:`attempt_deadline` with
:func:`install_deadlines` shortens every socket read, write and connect of the calling thread so that they end
when the attempt's time is up (the sync path; the async one cancels the attempt with ``asyncio.wait_for``).
Nothing here imports ``httpx``: the backends are wrapped by duck typing.
"""

from __future__ import annotations

import contextlib
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

#: Codings :class:`BodyReader` decodes (``identity`` aside); others are refused, and only these are asked for.
CODINGS = ("gzip", "x-gzip", "deflate")
ACCEPT_ENCODING = "gzip, deflate"


class BodyError(ValueError):
    """A response body that cannot be read: an unknown or broken ``Content-Encoding``."""


class BodyTooLarge(BodyError):
    """A response body over the byte cap (counted before and after decompression)."""


class BodyReader:
    """Collects a response body, decoding ``gzip``/``deflate``, and stops at ``limit`` bytes.

    Args:
        encoding: The ``Content-Encoding`` header (``None``: identity).
        limit: Most bytes read off the wire and most bytes after decoding.
        truncate: At the cap, stop quietly and keep the first ``limit`` bytes (error bodies, shown cut anyway)
            instead of raising :class:`BodyTooLarge`.

    Example:
        >>> import gzip
        >>> reader = BodyReader("gzip", limit=100_000)
        >>> reader.feed(gzip.compress(b"x" * 10_000_000))  # 10 kB on the wire
        Traceback (most recent call last):
        ...
        r2r_agent.bounded_http.BodyTooLarge: more than 100000 bytes after decompression
    """

    def __init__(self, encoding: str | None, limit: int, *, truncate: bool = False) -> None:
        codings = [c.strip().lower() for c in (encoding or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in CODINGS):
            raise BodyError(f"Content-Encoding {encoding!r} is not read (only one of {', '.join(CODINGS)})")
        self.coding = codings[0] if codings else None
        self.limit, self.truncate = limit, truncate
        self.full = False  # the cap was reached in truncate mode: read no more
        self._wire = self._size = 0
        self._parts: list[bytes] = []
        self._inflate: Any = None
        if self.coding is not None:
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16 if "gzip" in self.coding else zlib.MAX_WBITS)
        self._first = True

    def feed(self, data: bytes) -> None:
        """Add the next bytes off the wire."""
        if self.full or not data:
            return
        self._wire += len(data)
        if self._wire > self.limit and (not self.truncate or self._inflate is not None):
            if not self.truncate:
                raise BodyTooLarge(f"more than {self.limit} bytes")
            self.full = True  # a compressed error body that long: what came out so far is plenty
            return
        if self._inflate is None:
            self._add(data)
            return
        chunk = data
        try:
            while not self.full:
                room = self.limit - self._size + 1
                out = self._inflate.decompress(data, room)
                data = self._inflate.unconsumed_tail
                self._first = False
                self._add(out)
                if not data and len(out) < room:  # all input used and no output held back
                    break
        except zlib.error as exc:
            if self._first and self.coding == "deflate":  # some servers send raw deflate without the zlib header
                self._inflate, self._first = zlib.decompressobj(-zlib.MAX_WBITS), False
                self._wire -= len(chunk)
                self.feed(chunk)
                return
            raise BodyError(f"a {self.coding} body that does not decompress ({exc})") from None

    def _add(self, out: bytes) -> None:
        if self._size + len(out) > self.limit:
            if not self.truncate:
                raise BodyTooLarge(f"more than {self.limit} bytes after decompression")
            out, self.full = out[: self.limit - self._size], True
        self._size += len(out)
        self._parts.append(out)

    def body(self) -> bytes:
        """The decoded body (call when the wire has no more)."""
        if self._inflate is not None and not self.full:
            try:
                self._add(self._inflate.flush())
            except zlib.error as exc:
                raise BodyError(f"a {self.coding} body that does not decompress ({exc})") from None
            if not self._inflate.eof and not self.truncate:
                raise BodyError(f"a {self.coding} body cut short")
        return b"".join(self._parts)


#: Most bytes of an error body read (its first 300 characters are shown).
ERROR_BODY_BYTES = 64 * 2**10


def response_reader(response: Any, limit: int) -> BodyReader:
    """The reader of an ``httpx`` response's body: up to ``limit`` bytes for a 2xx (a larger ``Content-Length`` is
    :class:`BodyTooLarge` at once), the first :data:`ERROR_BODY_BYTES` of an error body (cut quietly)."""
    status = response.status_code
    if response.is_stream_consumed:  # a transport that built the body in memory (tests): httpx decoded it
        encoding = None
    else:
        encoding = response.headers.get("content-encoding")
        length = response.headers.get("content-length", "")
        if status < 300 and length.isdigit() and int(length) > limit:
            raise BodyTooLarge(f"Content-Length {length}")
    if status < 300:
        return BodyReader(encoding, limit)
    try:
        return BodyReader(encoding, min(limit, ERROR_BODY_BYTES), truncate=True)
    except BodyError:  # an error body in a coding not read: its status still says what went wrong
        return BodyReader(None, 0, truncate=True)


class AttemptTimeout(Exception):
    """The attempt's deadline passed while its body was still arriving."""


def read_response(response: Any, limit: int, deadline: float) -> bytes:
    """The body of a streamed ``httpx`` response, within ``limit`` and by ``deadline`` (``time.monotonic()``).

    Raises:
        BodyTooLarge: over ``limit`` (2xx).
        BodyError: a coding not read, or a broken one.
        AttemptTimeout: ``deadline`` passed between two chunks.
    """
    reader = response_reader(response, limit)
    if response.is_stream_consumed:
        reader.feed(response.content)
        return reader.body()
    for chunk in response.iter_raw():
        reader.feed(chunk)
        if reader.full:
            break
        if time.monotonic() > deadline:
            raise AttemptTimeout
    return reader.body()


async def aread_response(response: Any, limit: int) -> bytes:
    """:func:`read_response` for an async ``httpx`` response (the caller bounds the time)."""
    reader = response_reader(response, limit)
    if response.is_stream_consumed:
        reader.feed(response.content)
        return reader.body()
    async for chunk in response.aiter_raw():
        reader.feed(chunk)
        if reader.full:
            break
    return reader.body()


# -- the attempt deadline (sync path) -----------------------------------------------------------------------------

_state = threading.local()


@contextlib.contextmanager
def attempt_deadline(seconds: float) -> Iterator[float]:
    """Within this block, the calling thread's socket operations on an installed backend end by ``seconds`` from
    now (they raise the ``httpx`` timeout they would raise at their own timeout). Yields the deadline
    (``time.monotonic()`` clock)."""
    previous = getattr(_state, "deadline", None)
    _state.deadline = deadline = time.monotonic() + seconds
    try:
        yield deadline
    finally:
        _state.deadline = previous


def _clamp(timeout: float | None) -> float | None:
    deadline = getattr(_state, "deadline", None)
    if deadline is None:
        return timeout
    left = max(deadline - time.monotonic(), 0.001)  # ~0: the socket times out at once, as httpx reports it
    return left if timeout is None else min(timeout, left)


class _DeadlineStream:
    """An ``httpcore`` network stream whose reads and writes end by the thread's attempt deadline."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout))  # type: ignore[no-any-return]

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend:
    """An ``httpcore`` network backend whose connections and streams end by the thread's attempt deadline."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> Any:
        return _DeadlineStream(self._inner.connect_tcp(host, port, _clamp(timeout), local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        return _DeadlineStream(self._inner.connect_unix_socket(path, _clamp(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def install_deadlines(client: Any) -> int:
    """Wrap the network backend of each of an ``httpx.Client``'s transports (its own and its proxies') so that
    :func:`attempt_deadline` bounds them; returns how many were wrapped (0 for a transport without sockets, e.g.
    ``httpx.MockTransport``: there the body's chunks are still checked against the deadline)."""
    wrapped = 0
    mounts = getattr(client, "_mounts", {}) or {}
    for transport in (getattr(client, "_transport", None), *mounts.values()):
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is not None and not isinstance(backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]
            wrapped += 1
    return wrapped


__all__ = ["ACCEPT_ENCODING", "CODINGS", "ERROR_BODY_BYTES", "AttemptTimeout", "BodyError", "BodyReader",
           "BodyTooLarge", "aread_response", "attempt_deadline", "install_deadlines", "read_response",
           "response_reader"]
