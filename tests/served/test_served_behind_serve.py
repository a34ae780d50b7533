"""``r2r serve --server URL --server-model NAME`` (issue 21 item 6): r2r's HTTP API in front of a student served by an
OpenAI-compatible server (vLLM in production; here the test server around the tiny LM), built from the command-line
flags as ``r2r serve`` builds it. The answers equal in-process ``Reranker.rerank`` on the same served student, and
several requests run at once (the served student's concurrency, not the in-process lock of one)."""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import socket
import threading
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")

from r2r_agent import Reranker, Student  # noqa: E402
from r2r_agent.server.cli import add_arguments, build_app  # noqa: E402

from .served_helpers import MODEL, PASSAGES, QUERY, bounded  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_in_front_of_a_served_student(server):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--server", server.url, "--server-model", MODEL, "--explain", "evidence",
                              "--explain-top", "2"])
    app = build_app(args)
    port = _free_port()
    front = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=front.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not (front.started and app.state.r2r.ready):
            assert app.state.r2r.error is None and time.monotonic() < deadline, app.state.r2r.error
            time.sleep(0.05)
        assert app.state.r2r.admission.capacity == 8  # the served student's concurrency: 8 requests at once

        body = {"query": QUERY, "documents": PASSAGES, "top_n": 3}
        answer = bounded(lambda: httpx.post(url + "/v2/rerank", json=body, timeout=60), 90)
        assert answer.status_code == 200, answer.text
        expected = Reranker(Student.from_openai(server.url, MODEL), explain="evidence", explain_top=2,
                            trace=False).rerank(QUERY, PASSAGES, top_n=3)
        results = answer.json()["results"]
        assert [r["index"] for r in results] == [j.input_rank - 1 for j in expected]
        assert [r["evidence"] for r in results] == [j.evidence for j in expected]
        assert answer.json()["student"] == expected.model == f"{MODEL} @ {server.url}"

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda q: httpx.post(url + "/v2/rerank", timeout=60, json={
                "query": q, "documents": PASSAGES}).status_code, [f"{QUERY} {i}" for i in range(4)]))
        assert statuses == [200] * 4
        assert any("fleas live 3" in json.dumps(b) for _, _, b in server.requests)  # they reached the server
    finally:
        front.should_exit = True
        thread.join(30)
