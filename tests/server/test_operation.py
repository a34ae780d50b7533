"""What an operator relies on, through a real server: start-up and warm-up, the bounded queue (429 + Retry-After,
then recovery), priorities, the deadline (504, work stopped), disconnects (work stopped), and no unbounded request."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time

import httpx
import pytest

from r2r_agent import Reranker
from r2r_agent.server.app import WARMUP

from .server_helpers import DOCUMENTS, QUERY, TINY_CALIBRATOR, GatedScorer, wait_for


@pytest.fixture
def gated(tiny_student):
    """The tiny student with a scorer the test can hold, and a reranker around it (evidence explanations)."""
    scorer = GatedScorer(tiny_student.scorer)
    student = dataclasses.replace(tiny_student, scorer=scorer, calibrator=TINY_CALIBRATOR)
    return scorer, Reranker(student, explain="evidence", trace=False)


def post(url: str, query: str = QUERY, **body) -> httpx.Response:
    return httpx.post(url + "/v2/rerank", json={"query": query, "documents": DOCUMENTS, **body}, timeout=60)


def in_thread(function, *args, **kwargs):
    result: dict = {}

    def run():
        try:
            result["value"] = function(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def test_models_load_once_at_start_up_with_a_warm_up(make_server, gated):
    scorer, reranker = gated
    loads = []
    release = threading.Event()
    student = reranker.student

    def factory():
        loads.append(1)
        release.wait(30)
        return student

    server = make_server(Reranker(student_factory=factory, explain="evidence", trace=False), ready=False)
    wait_for(lambda: loads, what="the load to start at start-up, before any request")
    assert httpx.get(server.url + "/health").status_code == 200  # alive while loading
    not_ready = httpx.get(server.url + "/ready")
    assert not_ready.status_code == 503 and not_ready.json() == {"ready": False}
    early = post(server.url)
    assert early.status_code == 503 and early.headers["retry-after"] and "not ready" in early.json()["message"]
    assert scorer.calls == []
    release.set()
    server.wait_ready(30)
    assert scorer.queries() == [WARMUP[0], WARMUP[0]]  # the warm-up (score, judge) ran before /ready said yes
    assert httpx.get(server.url + "/ready").json()["ready"] is True
    for _ in range(3):
        assert post(server.url).status_code == 200
    assert loads == [1]


def test_a_failed_load_is_reported_by_ready(make_server):
    def factory():
        raise OSError("no weights here")

    server = make_server(Reranker(student_factory=factory, trace=False), ready=False)
    wait_for(lambda: server.state.error, what="the load to fail")
    ready = httpx.get(server.url + "/ready")
    assert ready.status_code == 503 and "no weights here" in ready.json()["error"]
    assert post(server.url).status_code == 503


def test_full_queue_gives_429_with_retry_after_then_recovers(make_server, gated):
    scorer, reranker = gated
    server = make_server(reranker, max_queue=1)
    scorer.gate.clear()
    first, first_result = in_thread(post, server.url, "first")
    wait_for(lambda: scorer.waiting == 1, what="the first request to run")
    second, second_result = in_thread(post, server.url, "second")
    wait_for(lambda: server.state.admission.queued == 1, what="the second request to queue")
    assert server.state.metrics.sample("r2r_queue_depth") == 1.0
    refused = post(server.url, "third")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1 and "queue full" in refused.json()["message"]
    scorer.gate.set()
    first.join(30)
    second.join(30)
    assert first_result["value"].status_code == 200 and second_result["value"].status_code == 200
    assert post(server.url, "fourth").status_code == 200  # recovered
    assert "third" not in scorer.queries()
    assert server.state.metrics.sample("r2r_requests_total", {"route": "/v2/rerank", "status": "429"}) == 1.0


def test_lower_priority_value_goes_first(make_server, gated):
    scorer, reranker = gated
    server = make_server(reranker, max_queue=5)
    scorer.gate.clear()
    threads = [in_thread(post, server.url, "running")[0]]
    wait_for(lambda: scorer.waiting == 1, what="the first request to run")
    for queued, (query, priority) in enumerate((("later", 5), ("sooner", 0)), start=1):
        threads.append(in_thread(post, server.url, query, priority=priority)[0])
        wait_for(lambda n=queued: server.state.admission.queued == n, what=f"{query} to queue")
    scorer.gate.set()
    for thread in threads:
        thread.join(30)
    order = [q for q in dict.fromkeys(scorer.queries()) if q in ("running", "sooner", "later")]
    assert order == ["running", "sooner", "later"]


def test_deadline_gives_504_and_stops_the_work(make_server, gated):
    scorer, reranker = gated
    server = make_server(reranker, deadline_s=0.5)
    scorer.gate.clear()
    started = time.monotonic()
    late = post(server.url, "slow")
    assert late.status_code == 504 and "deadline of 0.5 s" in late.json()["message"]
    assert time.monotonic() - started < 10
    assert server.state.admission.running == 1  # the slot is held until the work has really ended
    scorer.gate.set()
    wait_for(lambda: server.state.admission.running == 0, what="the stopped work to end")
    # The scoring call in progress finished; the judging call after it (sentences) never started.
    assert scorer.queries().count("slow") == 1
    assert post(server.url, "next").status_code == 200


def test_a_request_queued_past_its_deadline_never_runs(make_server, gated):
    scorer, reranker = gated
    server = make_server(reranker, deadline_s=1.0)
    scorer.gate.clear()
    first, _ = in_thread(post, server.url, "first")
    wait_for(lambda: scorer.waiting == 1, what="the first request to run")
    assert post(server.url, "queued").status_code == 504
    assert server.state.admission.queued == 0
    scorer.gate.set()
    first.join(30)
    wait_for(lambda: server.state.admission.running == 0, what="the slot to free")
    assert "queued" not in scorer.queries()


def test_a_client_that_disconnects_cancels_its_work(make_server, gated):
    scorer, reranker = gated
    server = make_server(reranker)
    scorer.gate.clear()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v2/rerank", json={"query": "gone", "documents": DOCUMENTS}, timeout=0.5)
    metrics = server.state.metrics
    wait_for(lambda: metrics.sample("r2r_requests_total", {"route": "/v2/rerank", "status": "499"}) == 1.0,
             what="the disconnect to be seen")
    scorer.gate.set()
    wait_for(lambda: server.state.admission.running == 0, what="the stopped work to end")
    assert scorer.queries().count("gone") == 1  # scoring finished, judging never started
    assert post(server.url).status_code == 200


def test_clients_that_disconnect_at_once(server):
    """Bounded: 20 clients send a request and close the socket at once; the server answers the next one."""
    body = b'{"query": "q", "documents": ["a", "b"]}'
    request = (b"POST /v2/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
               + str(len(body)).encode() + b"\r\n\r\n")
    for i in range(20):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(request + (body if i % 2 else body[:10]))  # half of them leave mid-body
    wait_for(lambda: server.state.admission.running == 0 and server.state.metrics.sample(
        "r2r_requests_in_flight") == 0.0, what="the abandoned requests to end")
    assert post(server.url).status_code == 200
    for status in ("500", "200"):
        assert not server.state.metrics.sample("r2r_requests_total", {"route": "/v2/rerank", "status": status}) \
            or status == "200"


def test_a_4_mb_document(make_server):
    """Refused at the default limit (100 kB) in bounded time; with the limit raised, answered or stopped by the
    deadline, never a 500, and the server stays responsive meanwhile."""
    text = ("Fleas live for two to three months on a host and lay eggs daily. " * 62_000)[:4_000_000]
    server = make_server(deadline_s=30)
    started = time.monotonic()
    refused = post(server.url, documents=[text, "short"])
    assert refused.status_code == 422 and refused.json()["field"] == "documents[0]"
    assert time.monotonic() - started < 20
    raised = make_server(max_document_chars=5_000_000, deadline_s=20)
    # max_tokens_per_doc far above the text: the whole 4 MB reaches the student (by default it is cut to 4,096 words)
    thread, result = in_thread(post, raised.url, documents=[text, "short"], max_tokens_per_doc=10**7)
    time.sleep(0.5)
    assert httpx.get(raised.url + "/health", timeout=5).status_code == 200
    thread.join(60)
    assert result["value"].status_code in (200, 504), result["value"].text
    wait_for(lambda: raised.state.admission.running == 0, timeout=120, what="the long document's work to end")
    assert post(raised.url).status_code == 200


def test_a_passage_of_2000_tiny_sentences(make_server):
    text = " ".join(f"A{i % 10}." for i in range(2000))
    server = make_server(deadline_s=30)
    started = time.monotonic()
    response = post(server.url, documents=[text, DOCUMENTS[0]], relevant_spans={"mode": "enabled",
                                                                                 "threshold": 0.0})
    assert response.status_code in (200, 504), response.text
    assert time.monotonic() - started < 60
    if response.status_code == 200:
        for result in response.json()["results"]:
            start, end = result["evidence_span"]
            source = [text, DOCUMENTS[0]][result["index"]]
            assert source[start:end] == result["evidence"]
