"""A hostile HTTP server on 127.0.0.1 for the served client's attack tests: it answers with whatever bytes a test
scripts, as slowly as the test says (a drip, a gzip bomb, an echoed key, a body that never ends).

Every pause waits on the server's stop event and every loop has a bound, so no test can hang on it.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

#: A scripted answer: bytes to send, or a float: pause that many seconds.
Piece = bytes | float


@dataclass(frozen=True)
class Request:
    """One request the server read: its request line, headers (lower-case names) and body."""

    line: str
    headers: dict[str, str]
    body: bytes


def response(status: int = 200, body: bytes | str | dict[str, Any] = b"", headers: dict[str, str] | None = None,
             *, chunked: bool = False) -> bytes:
    """The bytes of a whole HTTP/1.1 response (``Content-Length`` unless ``chunked`` or given in ``headers``)."""
    if isinstance(body, dict):
        body = json.dumps(body)
    data = body.encode() if isinstance(body, str) else body
    head = {"Content-Type": "application/json", "Connection": "close", **(headers or {})}
    if chunked:
        head["Transfer-Encoding"] = "chunked"
        data = (f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n") if data else b"0\r\n\r\n"
    elif not any(k.lower() == "content-length" for k in head):
        head["Content-Length"] = str(len(data))
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in head.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def drip(data: bytes, every: float, *, limit: int = 400) -> Iterator[Piece]:
    """``data`` one byte at a time, ``every`` seconds apart (at most ``limit`` bytes)."""
    for byte in data[:limit]:
        yield bytes([byte])
        yield every


def gzip_bomb(size: int) -> bytes:
    """A gzip body of ``size`` zero bytes (about 1000 times smaller on the wire)."""
    return gzip.compress(b"\0" * size, compresslevel=9)


class HostileServer:
    """Answers every connection's request with ``answer(request)``: an iterable of :data:`Piece`.

    Attributes:
        requests: Every request read.
        sent: Bytes written, over all connections.
    """

    def __init__(self, answer: Callable[[Request], Iterable[Piece]]) -> None:
        self.answer = answer
        self.requests: list[Request] = []
        self.sent = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept, daemon=True, name="hostile-accept")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}/v1"

    def credentials_url(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self._socket.getsockname()[1]}/v1"

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._serve, args=(connection,), daemon=True, name="hostile-conn").start()

    def _read_request(self, connection: socket.socket) -> Request | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk or len(data) > 1 << 20:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        line, *rest = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in rest)}
        length = int(headers.get("content-length") or 0)
        while len(body) < length:
            chunk = connection.recv(65536)
            if not chunk:
                break
            body += chunk
        return Request(line, headers, body)

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(10)
            try:
                request = self._read_request(connection)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                for piece in self.answer(request):
                    if self._stop.is_set():
                        return
                    if isinstance(piece, float):
                        if self._stop.wait(piece):
                            return
                        continue
                    connection.sendall(piece)
                    with self._lock:
                        self.sent += len(piece)
                connection.shutdown(socket.SHUT_WR)
            except OSError:  # the client hung up: what the attacks expect of it
                return
