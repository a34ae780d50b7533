"""The HTTP API through a real uvicorn server on 127.0.0.1: the Cohere and TEI shapes, r2r's fields, the same ranking
as in process, the errors, the limits, auth, CORS, logs, metrics and traces."""

from __future__ import annotations

import json
import logging
import re

import httpx
import pytest

from r2r_agent import Reranker
from r2r_agent.traces import read_traces

from .server_helpers import DOCUMENTS, QUERY


def rerank(client, route: str = "/v2/rerank", **body):
    return client.post(route, json={"query": QUERY, "documents": DOCUMENTS, **body})


def test_v2_matches_in_process_rerank(client, calibrated_student):
    response = rerank(client, model="rerank-v3.5", top_n=3, return_documents=True,
                      relevant_spans={"mode": "enabled", "threshold": 0.0, "max_spans": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = Reranker(calibrated_student, explain="evidence", trace=False).rerank(QUERY, DOCUMENTS, top_n=3)
    assert [r["index"] for r in body["results"]] == [j.input_rank - 1 for j in expected]
    for result, judgment in zip(body["results"], expected):
        assert result["relevance_score"] == pytest.approx(judgment.relevance)
        assert 0.0 <= result["relevance_score"] <= 1.0
        assert result["document"] == {"text": DOCUMENTS[result["index"]]}
        assert (result["verdict"], result["evidence"], result["explanation"]) == \
            (judgment.verdict, judgment.evidence, judgment.explanation)
        assert result["evidence_span"] == list(judgment.evidence_span)
        assert (result["rank"], result["input_rank"]) == (judgment.rank, judgment.input_rank)
        start, end = result["evidence_span"]
        assert DOCUMENTS[result["index"]][start:end] == result["evidence"]
        if result["relevance_score"] >= 0.0:
            assert result["relevant_spans"] == [{"start": start, "end": end, "score": result["relevance_score"]}]
    assert body["comparison"] == expected.comparison and body["comparison"]
    assert body["answerable"] == expected.answerable
    assert [s["stage"] for s in body["stages"]] == [s.stage for s in expected.stages]
    assert body["relevance_score_kind"] == "calibrated"
    assert body["meta"] == {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}
    assert body["id"] == response.headers["x-request-id"]


def test_v1_accepts_objects_and_rank_fields(client):
    docs = [{"text": d, "id": f"d{i}"} for i, d in enumerate(DOCUMENTS)]
    body = rerank(client, "/v1/rerank", documents=docs, return_documents=True).json()
    assert body["meta"]["api_version"] == {"version": "1"}
    assert sorted(r["index"] for r in body["results"]) == [0, 1, 2, 3]
    assert all(r["document"]["text"] == DOCUMENTS[r["index"]] for r in body["results"])
    fields = [{"title": "fleas", "body": DOCUMENTS[0]}, {"title": "seasons", "body": DOCUMENTS[1]}]
    ranked = rerank(client, "/v1/rerank", documents=fields, rank_fields=["title", "body"], return_documents=True)
    assert ranked.status_code == 200
    assert {r["document"]["text"] for r in ranked.json()["results"]} == {f"title: fleas\nbody: {DOCUMENTS[0]}",
                                                                          f"title: seasons\nbody: {DOCUMENTS[1]}"}


def test_settings_as_extra_fields(client):
    body = rerank(client, top_n=2, explain_top=1, compare_top=0, ordering="first_stage").json()
    assert [r["index"] for r in body["results"]] == [0, 1]  # the input order kept
    assert body["results"][0]["explanation"] and body["results"][1]["explanation"] is None
    assert body["comparison"] is None
    span_off = rerank(client, relevant_spans={"mode": "disabled"}).json()
    assert all("relevant_spans" not in r for r in span_off["results"])
    high = rerank(client, relevant_spans={"mode": "enabled", "threshold": 1.0}).json()
    assert all(r["relevant_spans"] == [] for r in high["results"])


def test_without_a_calibrator_the_score_is_rank_based(make_server, tiny_student):
    server = make_server(Reranker(tiny_student, explain="evidence", trace=False))
    body = httpx.post(server.url + "/v2/rerank", json={"query": QUERY, "documents": DOCUMENTS}).json()
    assert body["relevance_score_kind"] == "rank"
    assert [r["relevance_score"] for r in body["results"]] == [1.0, 0.75, 0.5, 0.25]
    assert all(r["verdict"] is None for r in body["results"])


def test_tei_shape(client, calibrated_student):
    response = client.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS, "return_text": True})
    assert response.status_code == 200
    items = response.json()
    expected = Reranker(calibrated_student, explain="evidence", trace=False).rerank(QUERY, DOCUMENTS)
    assert [i["index"] for i in items] == [j.input_rank - 1 for j in expected]
    assert [i["text"] for i in items] == [j.text for j in expected]
    assert [i["score"] for i in items] == pytest.approx([j.relevance for j in expected])
    raw = client.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS, "raw_scores": True}).json()
    assert [i["score"] for i in raw] == pytest.approx([j.score for j in expected])
    assert all("text" not in i and i["verdict"] for i in raw)


@pytest.mark.parametrize(("body", "status", "field", "words"), [
    (b"{not json", 400, None, "not JSON"),
    (b"[1, 2]", 422, None, "JSON object"),
    (b'"\xff"', 400, None, "UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, 400, None, "nested"),
    ({"documents": DOCUMENTS}, 422, "query", "query must be a string"),
    ({"query": "  ", "documents": DOCUMENTS}, 422, "query", "empty"),
    ({"query": QUERY, "documents": "one text"}, 422, "documents", "array"),
    ({"query": QUERY, "documents": [1]}, 422, "documents[0]", "must be a string"),
    ({"query": QUERY, "documents": ["a"], "top_n": 0}, 422, "top_n", ">= 1"),
    ({"query": QUERY, "documents": ["a"], "top_n": "3"}, 422, "top_n", "got str '3'"),
    ({"query": QUERY, "documents": ["a"], "return_documents": "yes"}, 422, "return_documents", "true or false"),
    ({"query": QUERY, "documents": ["a"], "topn": 2}, 422, "topn", "did you mean 'top_n'"),
    ({"query": QUERY, "documents": ["a"], "expalin": "full"}, 422, "expalin", "did you mean 'explain'"),
    ({"query": QUERY, "documents": ["a"], "explain": "loud"}, 422, "explain", "'evidence', 'full'"),
    ({"query": QUERY, "documents": ["a"], "min_relevance": 2}, 422, "min_relevance", "[0, 1]"),
    ({"query": QUERY, "documents": ["a"], "relevant_spans": {"mode": "on"}}, 422, "relevant_spans.mode", "enabled"),
    ({"query": QUERY, "documents": ["a"], "relevant_spans": {"mode": "enabled", "max_spans": 0}}, 422, "max_spans",
     ">= 1"),
    ({"query": QUERY, "documents": ["a"], "priority": -1}, 422, "priority", ">= 0"),
])
def test_bad_input_is_a_clear_4xx(client, body, status, field, words):
    response = client.post("/v2/rerank", content=body if isinstance(body, bytes) else json.dumps(body),
                           headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    message = response.json()["message"]
    assert words in message
    if field is not None:
        assert field in message and response.json()["field"] == field


def test_limits(make_server):
    server = make_server(max_documents=3, max_document_chars=50, max_body_bytes=2_000, max_query_chars=20)
    url = server.url + "/v2/rerank"
    too_many = httpx.post(url, json={"query": "q", "documents": ["a"] * 4})
    assert too_many.status_code == 422 and "at most 3" in too_many.json()["message"]
    too_long = httpx.post(url, json={"query": "q", "documents": ["ok", "x" * 51]})
    assert too_long.status_code == 422 and too_long.json()["field"] == "documents[1]"
    assert "max_document_chars" in too_long.json()["message"]
    long_query = httpx.post(url, json={"query": "q" * 21, "documents": ["a"]})
    assert long_query.status_code == 422 and long_query.json()["field"] == "query"
    body = httpx.post(url, json={"query": "q", "documents": ["y" * 40] * 60})
    assert body.status_code == 413 and "max_body_bytes" in body.json()["message"]

    def chunks():  # no content-length: refused while streaming, before the whole body is read
        for _ in range(100):
            yield b" " * 100
    streamed = httpx.post(url, content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert httpx.post(url, json={"query": "q", "documents": ["fine"]}).status_code == 200


def test_max_tokens_per_doc_cuts_words(client):
    body = rerank(client, documents=["one two three four five six"], max_tokens_per_doc=3, return_documents=True)
    assert body.json()["results"][0]["document"]["text"] == "one two three"


def test_unknown_route_and_method(client):
    assert client.get("/v2/rerank").status_code == 405
    missing = client.get("/nope")
    assert missing.status_code == 404 and "routes" in missing.json()["message"]


def test_health_ready_models_metrics(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"ready": True, "model": "tiny-student"}
    models = client.get("/v1/models").json()
    assert models["data"][0]["id"] == "tiny-student" and models["models"][0]["endpoints"] == ["rerank"]
    rerank(client)
    client.post("/v2/rerank", json={"query": ""})
    text = client.get("/metrics").text
    assert 'r2r_requests_total{route="/v2/rerank",status="200"} 1.0' in text
    assert 'r2r_requests_total{route="/v2/rerank",status="422"} 1.0' in text
    assert 'r2r_request_seconds_count{route="/v2/rerank"} 2.0' in text
    assert "r2r_passages_scored_total 4.0" in text
    assert "r2r_queue_depth 0.0" in text and "r2r_requests_in_flight 0.0" in text


def test_api_keys(make_server, caplog):
    caplog.set_level(logging.INFO, logger="r2r_agent.server")
    server = make_server(api_keys=("key-one", "key-two"))
    url = server.url + "/v2/rerank"
    body = {"query": QUERY, "documents": DOCUMENTS}
    missing = httpx.post(url, json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in missing.json()["message"]
    wrong = httpx.post(url, json=body, headers={"Authorization": "Bearer key-three"})
    assert wrong.status_code == 401 and "key-three" not in wrong.text
    assert httpx.post(url, json=body, headers={"Authorization": "Basic key-one"}).status_code == 401
    assert httpx.post(url, json=body, headers={"Authorization": "Bearer key-two"}).status_code == 200
    assert httpx.get(server.url + "/metrics").status_code == 401
    assert httpx.get(server.url + "/health").status_code == 200 and httpx.get(server.url + "/ready").status_code == 200
    assert "key-" not in caplog.text and "key-" not in repr(server.state.settings)


def test_cors_off_by_default(client, make_server):
    preflight = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/v2/rerank", headers=preflight).headers
    assert "access-control-allow-origin" not in rerank(client).headers
    allowed = make_server(cors_origins=("http://app.example",))
    answer = httpx.options(allowed.url + "/v2/rerank", headers={**preflight, "Origin": "http://app.example"})
    assert answer.headers["access-control-allow-origin"] == "http://app.example"


def test_one_log_line_per_request_without_texts(make_server, caplog):
    caplog.set_level(logging.INFO, logger="r2r_agent.server")
    server = make_server()
    caplog.clear()
    response = httpx.post(server.url + "/v2/rerank", json={"query": QUERY, "documents": DOCUMENTS},
                          headers={"X-Request-Id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123" and response.json()["id"] == "abc-123"
    lines = [r.getMessage() for r in caplog.records if r.name == "r2r_agent.server"]
    assert len(lines) == 1
    assert re.fullmatch(r"request_id=abc-123 POST /v2/rerank status=200 documents=4 seconds=\d+\.\d{3}", lines[0])
    assert QUERY not in caplog.text and "fleas" not in caplog.text
    odd = httpx.post(server.url + "/v2/rerank", json={"query": QUERY, "documents": DOCUMENTS},
                     headers={"X-Request-Id": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["x-request-id"])
    loud = make_server(log_texts=True)
    caplog.clear()
    httpx.post(loud.url + "/v2/rerank", json={"query": QUERY, "documents": DOCUMENTS})
    assert f"query={QUERY!r}" in caplog.text and DOCUMENTS[0] not in caplog.text


def test_trace_dir_records_each_request(make_server, tmp_path, capsys):
    server = make_server(trace_dir=str(tmp_path / "traces"))
    for top_n in (2, 3):
        assert httpx.post(server.url + "/v2/rerank", json={"query": QUERY, "documents": DOCUMENTS,
                                                            "top_n": top_n}).status_code == 200
    files = list((tmp_path / "traces").glob("serve-*.jsonl"))
    assert len(files) == 1
    records = read_traces(files[0])
    assert [r.query for r in records] == [QUERY, QUERY]
    assert [len(r.results) for r in records] == [2, 3] and records[0].num_candidates == 4
    # the request's own details too (what the trace page shows): every candidate's score, also the ones not returned
    assert all(c.score is not None and c.stage == "score" for c in records[0].candidates)
    assert records[0].config["top_n"] == 2 and records[0].thresholds
    # r2r traces show and diff read the server's file
    from r2r_agent.cli import main

    capsys.readouterr()
    assert main(["traces", "show", str(files[0])]) == 0
    assert QUERY in capsys.readouterr().out
    assert main(["traces", "diff", str(files[0]), str(files[0])]) == 0
