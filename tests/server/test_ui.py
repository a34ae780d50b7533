"""``GET /ui`` through a real server: the trace page of the recent requests, read from ``trace_dir``, behind the
same keys as the API, with the page's Content-Security-Policy also sent as a header."""

from __future__ import annotations

import httpx

from .server_helpers import DOCUMENTS, QUERY

HOSTILE = "fleas </script><script>alert(1)</script> lifespan"


def test_ui_shows_the_recent_requests(make_server, tmp_path):
    traces = tmp_path / "traces"
    server = make_server(trace_dir=str(traces), api_keys=("ui-key",))
    auth = {"Authorization": "Bearer ui-key"}
    for query in (QUERY, "what tilts the earth's axis", HOSTILE):
        answer = httpx.post(server.url + "/v2/rerank", json={"query": query, "documents": DOCUMENTS, "top_n": 2},
                            headers=auth)
        assert answer.status_code == 200

    assert httpx.get(server.url + "/ui").status_code == 401  # the API's keys guard the page too
    page = httpx.get(server.url + "/ui", headers=auth)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert QUERY in page.text and "what tilts the earth" in page.text
    assert DOCUMENTS[0][:40] in page.text  # the passages are on the page (as data for its script)
    # The hostile query is data, never markup: "<" is escaped inside the page's JSON.
    assert "<script>alert(1)" not in page.text and "alert(1)" in page.text
    policy = page.headers["content-security-policy"]
    assert policy.startswith("default-src 'none'; script-src 'sha256-") and policy.endswith("frame-ancestors 'none'")
    own = policy.removesuffix("; frame-ancestors 'none'")
    assert f'<meta http-equiv="Content-Security-Policy" content="{own}">' in page.text  # the page's own policy
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["cache-control"] == "no-store"

    newest = httpx.get(server.url + "/ui?n=1", headers=auth).text
    assert "alert(1)" in newest and QUERY not in newest
    bad = httpx.get(server.url + "/ui?n=0", headers=auth)
    assert bad.status_code == 422 and bad.json()["field"] == "n"


def test_ui_skips_damaged_lines(make_server, tmp_path):
    traces = tmp_path / "traces"
    server = make_server(trace_dir=str(traces))
    assert httpx.post(server.url + "/v2/rerank", json={"query": QUERY, "documents": DOCUMENTS}).status_code == 200
    [trace] = traces.glob("serve-*.jsonl")
    with trace.open("ab") as handle:
        handle.write(b'{"query": "cut short by a crash\n\xff\xfe not utf-8\n')
    page = httpx.get(server.url + "/ui")
    assert page.status_code == 200 and QUERY in page.text and "cut short" not in page.text


def test_no_ui_without_a_trace_dir(client):
    missing = client.get("/ui")
    assert missing.status_code == 404 and "/ui" not in missing.json()["message"].split("routes:")[1]
