"""``r2r serve`` as an operator runs it: a subprocess on 127.0.0.1 with the tiny LM folder as the student. SIGTERM
finishes the request in flight and exits 0; ``kill -9`` and a restart leave the trace folder readable; API keys from
an environment variable; ``--workers 2``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from r2r_agent.traces import read_traces

from .server_helpers import DOCUMENTS, QUERY, free_port, wait_for

pytestmark = pytest.mark.slow


class Served:
    def __init__(self, *flags: str, env: dict[str, str] | None = None, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [sys.executable, "-m", "r2r_agent.cli", "serve", "--port", str(self.port), *flags]
        self.process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})

    def wait_ready(self, timeout: float = 180) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"r2r serve exited {self.process.returncode}:\n{self.log.read_text()}")
            try:
                return httpx.get(self.url + "/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, timeout, "r2r serve to be ready")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


@pytest.fixture
def serve(tmp_path):
    started: list[Served] = []

    def start(*flags: str, env: dict[str, str] | None = None) -> Served:
        served = Served(*flags, env=env, log=tmp_path / f"serve-{len(started)}.log")
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


def test_sigterm_finishes_the_request_in_flight_and_exits_0(serve, tiny_lm_dir, tmp_path):
    served = serve("--model", str(tiny_lm_dir), "--explain", "full", "--trace-dir", str(tmp_path / "traces"))
    served.wait_ready()
    documents = [f"{text} Passage {i}." for i in range(30) for text in DOCUMENTS[:1]]
    result: dict = {}

    def slow_request() -> None:
        result["response"] = httpx.post(served.url + "/v2/rerank", timeout=120, json={
            "query": QUERY, "documents": documents, "explain_top": 30})

    thread = threading.Thread(target=slow_request)
    thread.start()
    wait_for(lambda: b"r2r_requests_in_flight 1.0" in httpx.get(served.url + "/metrics").content, 30,
             "the request to be in flight")
    served.process.send_signal(signal.SIGTERM)
    thread.join(120)
    assert result["response"].status_code == 200
    assert len(result["response"].json()["results"]) == 30
    assert served.process.wait(60) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(served.url + "/health", timeout=2)
    log = served.log.read_text()
    assert "status=200 documents=30" in log and "fleas" not in log
    records = [r for f in (tmp_path / "traces").glob("*.jsonl") for r in read_traces(f)]
    assert len(records) == 1 and records[0].query == QUERY


def test_sigterm_past_the_shutdown_timeout_stops_the_work_and_exits_0(serve, tiny_lm_dir, tmp_path):
    """On SIGTERM the server stops accepting at once; a request still running when --shutdown-timeout-s ends is
    cancelled, and its work stops (it never reaches its trace record) instead of keeping the process alive."""
    traces = tmp_path / "traces"
    served = serve("--model", str(tiny_lm_dir), "--explain", "full", "--shutdown-timeout-s", "3", "--trace-dir",
                   str(traces))
    served.wait_ready()
    documents = [f"{DOCUMENTS[0]} Passage {i}." for i in range(400)]
    result: dict = {}

    def long_request() -> None:
        try:
            result["response"] = httpx.post(served.url + "/v2/rerank", timeout=600, json={
                "query": QUERY, "documents": documents, "explain_top": 400})
        except httpx.TransportError as exc:
            result["error"] = exc

    thread = threading.Thread(target=long_request)
    thread.start()
    wait_for(lambda: b"r2r_requests_running 1.0" in httpx.get(served.url + "/metrics").content, 30,
             "the request to be running")
    served.process.send_signal(signal.SIGTERM)

    def refused() -> bool:
        try:
            httpx.get(served.url + "/health", timeout=1)
        except httpx.ConnectError:
            return True
        except httpx.TimeoutException:  # a busy machine: ask again
            pass
        return False

    wait_for(refused, 10, "the server to stop accepting connections")
    assert not result, "the request ended before the server stopped accepting"  # it was still in flight
    assert served.process.wait(120) == 0
    thread.join(60)
    # a 503 saying so, or (when the loop closed first) a dropped connection; never a 500 or the whole answer
    assert "error" in result or result["response"].status_code == 503, served.log.read_text()[-3000:]
    if "response" in result:
        assert "shutting down" in result["response"].json()["message"]
    log = served.log.read_text()
    assert "timeout graceful shutdown exceeded" in log and "Event loop is closed" not in log
    assert not [r for f in traces.glob("*.jsonl") for r in read_traces(f)]


def test_kill_9_and_restart(serve, tiny_lm_dir, tmp_path):
    traces = tmp_path / "traces"
    first = serve("--model", str(tiny_lm_dir), "--explain", "evidence", "--trace-dir", str(traces))
    first.wait_ready()
    assert httpx.post(first.url + "/v2/rerank", json={"query": QUERY, "documents": DOCUMENTS}).status_code == 200
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(30)
    second = serve("--model", str(tiny_lm_dir), "--explain", "evidence", "--trace-dir", str(traces))
    second.wait_ready()
    assert httpx.post(second.url + "/v2/rerank", json={"query": QUERY, "documents": DOCUMENTS}).status_code == 200
    records = [r for f in sorted(traces.glob("*.jsonl")) for r in read_traces(f)]
    assert len(records) == 2 and all(r.query == QUERY for r in records)


def test_api_keys_from_an_environment_variable(serve, tiny_lm_dir):
    served = serve("--model", str(tiny_lm_dir), "--explain", "evidence", "--api-key-env", "R2R_TEST_KEYS",
                   env={"R2R_TEST_KEYS": "alpha,beta"})
    served.wait_ready()
    body = {"query": QUERY, "documents": DOCUMENTS}
    assert httpx.post(served.url + "/v2/rerank", json=body).status_code == 401
    ok = httpx.post(served.url + "/v2/rerank", json=body, headers={"Authorization": "Bearer beta"})
    assert ok.status_code == 200
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(60) == 0
    assert "alpha" not in served.log.read_text() and "beta" not in served.log.read_text()


def test_a_missing_key_variable_fails_before_loading(tmp_path):
    run = subprocess.run([sys.executable, "-m", "r2r_agent.cli", "serve", "--api-key-env", "R2R_UNSET_VAR_XYZ"],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 2 and "R2R_UNSET_VAR_XYZ" in run.stderr and "not set" in run.stderr


def test_two_workers(serve, tiny_lm_dir):
    served = serve("--model", str(tiny_lm_dir), "--explain", "evidence", "--workers", "2")
    served.wait_ready()
    # Each worker loads its own copy; a new connection may reach one still loading (503 until it is ready).
    streak = [0]

    def all_ready() -> bool:
        streak[0] = streak[0] + 1 if httpx.get(served.url + "/ready", timeout=5).status_code == 200 else 0
        return streak[0] >= 10

    wait_for(all_ready, 180, "both workers to be ready")
    started = time.monotonic()
    for _ in range(4):
        response = httpx.post(served.url + "/v2/rerank", json={"query": QUERY, "documents": DOCUMENTS}, timeout=60)
        assert response.status_code == 200 and len(response.json()["results"]) == 4
    assert time.monotonic() - started < 120
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(60) == 0
