"""A fake OpenAI-compatible chat server on 127.0.0.1 for teacher fault tests: answers, holds or fails requests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import keyword_reply


class FakeChatServer:
    """``POST /v1/chat/completions`` answered like the keyword teacher, after ``answer_first`` requests held open
    (until :meth:`release` or ``hold_seconds``), or always with HTTP ``status``; ``truncate_first`` replies cut short.

    Attributes:
        started: The monotonic times at which each request arrived.
        held: Requests waiting for :meth:`release` now.
    """

    def __init__(self, *, answer_first: int | None = None, status: int = 200, truncate_first: int = 0,
                 hold_seconds: float = 60.0) -> None:
        self.answer_first, self.status, self.truncate_first = answer_first, status, truncate_first
        self.hold_seconds = hold_seconds
        self.started: list[float] = []
        self.held = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server hook
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.started.append(time.monotonic())
                    number = len(server.started)
                    hold = server.answer_first is not None and number > server.answer_first
                    server.held += int(hold)
                if hold:
                    server._release.wait(server.hold_seconds)
                    with server._lock:
                        server.held -= 1
                if server.status != 200:
                    self._send(server.status, b'{"error": {"message": "bad request"}}')
                    return
                reply = json.dumps({"choices": [{"message": {"role": "assistant",
                                                             "content": keyword_reply(body["messages"])}}]}).encode()
                self._send(200, reply[: len(reply) // 2] if number <= server.truncate_first else reply)

            def _send(self, status: int, payload: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client left (an abandoned request)
                    pass

        return Handler

    def requests_since(self, moment: float) -> int:
        """Requests that arrived after the monotonic time ``moment``."""
        with self._lock:
            return sum(1 for t in self.started if t > moment)

    def wait_for_held(self, count: int, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) until ``count`` requests are held open."""
        deadline = time.monotonic() + timeout
        while self.held < count:
            assert time.monotonic() < deadline, f"only {self.held} of {count} requests arrived in {timeout}s"
            time.sleep(0.02)

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


def closed_port_url() -> str:
    """The URL of a port on 127.0.0.1 where nothing listens (a server that is down)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
