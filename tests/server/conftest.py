"""Fixtures for the server tests: a real uvicorn server on 127.0.0.1 (a free port, in a thread) around an app built
from the tiny in-process student, and an httpx client for it."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")
httpx = pytest.importorskip("httpx")

from r2r_agent import Reranker  # noqa: E402
from r2r_agent.server import ServerSettings, create_app  # noqa: E402

from .server_helpers import TINY_CALIBRATOR, RunningServer, running  # noqa: E402


@pytest.fixture
def calibrated_student(tiny_student):
    return dataclasses.replace(tiny_student, calibrator=TINY_CALIBRATOR)


@pytest.fixture
def make_server(calibrated_student):
    """``make_server(**settings)``: a running server around the tiny calibrated student (closed after the test)."""
    stack = contextlib.ExitStack()

    def make(reranker: Reranker | None = None, *, ready: bool = True, **settings: Any) -> RunningServer:
        reranker = reranker or Reranker(calibrated_student, explain="evidence", trace=False)
        return stack.enter_context(running(create_app(reranker, ServerSettings(**settings)), ready=ready))

    with stack:
        yield make


@pytest.fixture
def server(make_server) -> RunningServer:
    return make_server()


@pytest.fixture
def client(server) -> Iterator[Any]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http
