"""The server tests' helpers: a uvicorn server in a thread, the tiny calibrator, and a scorer that can be held (to fill
the queue, pass a deadline or let a client leave) and counts its calls."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from r2r_agent.calibration import Calibrator


class GatedScorer:
    """Wraps a scorer: each ``score`` call waits until :attr:`gate` is open, and is logged in :attr:`calls`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.gate = threading.Event()
        self.gate.set()
        self.calls: list[tuple[str, int]] = []
        self.waiting = 0
        self._lock = threading.Lock()

    def score(self, query: str, texts: Any) -> Any:
        with self._lock:
            self.waiting += 1
        try:
            if not self.gate.wait(timeout=60):
                raise RuntimeError("the test gate was never opened")
        finally:
            with self._lock:
                self.waiting -= 1
        self.calls.append((query, len(texts)))
        return self.inner.score(query, texts)

    def queries(self) -> list[str]:
        return [query for query, _ in self.calls]


def wait_for(condition: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


#: A calibrator for the tiny encoder's scores, so the tiny student gives relevance and verdicts.
TINY_CALIBRATOR = Calibrator(scorer="tiny-encoder", features=("score",), weights=(6.0,), bias=-1.0,
                             relevant_at=0.5, partial_at=0.3)

DOCUMENTS = [
    "Adult fleas live for two to three months. A flea needs a host to feed on.",
    "The seasons come from the tilt of the earth's axis as it orbits the sun.",
    "The cost of a concrete floor depends on the price per square foot.",
    "Flea eggs hatch in days; the larva becomes a pupa, then an adult flea.",
]
QUERY = "how long do fleas live"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningServer:
    """A uvicorn server in a thread; ``url`` is its root."""

    def __init__(self, app: Any, *, ready: bool = True, timeout: float = 120.0) -> None:
        import uvicorn

        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        if ready:
            self.wait_ready(deadline - time.monotonic())

    @property
    def state(self) -> Any:
        return self.app.state.r2r

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.state.ready:
            if self.state.error or time.monotonic() > deadline:
                raise RuntimeError(f"the test server is not ready: {self.state.error}")
            time.sleep(0.02)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@contextlib.contextmanager
def running(app: Any, **kwargs: Any) -> Iterator[RunningServer]:
    server = RunningServer(app, **kwargs)
    try:
        yield server
    finally:
        server.close()


