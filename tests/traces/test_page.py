"""Issue 22: the trace page as HTML (``r2r traces html``/``view``), without a browser: self-contained, the data intact
and inert, damaged lines counted, the comparison matched. The browser tests are in test_page_browser.py."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from r2r_agent.cli import main
from r2r_agent.traces import TRACE_PATH_ENV, TRACE_RUN_ENV, TRACE_TEXT_ENV, load_traces
from r2r_agent.traces.report import page_data, render_html, serve_page

from .tiny_traces import FLEAS, PASSAGES, Passage, records, write

HOSTILE = ("</script><script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">"
           "<a href=\"javascript:window.__pwned=3\">x</a>\u202eevil\u202c \x1b[31m\x00 <!-- {{JS}}")


@pytest.fixture(autouse=True)
def _no_trace_env(monkeypatch):
    for name in (TRACE_PATH_ENV, TRACE_RUN_ENV, TRACE_TEXT_ENV):
        monkeypatch.delenv(name, raising=False)


def _data(page: str) -> dict:
    match = re.search(r'<script id="r2r-data" type="application/json">(.*?)</script>', page, re.S)
    assert match
    return json.loads(match.group(1))


def test_the_page_is_one_self_contained_file(tmp_path):
    path = write(tmp_path / "t.jsonl", records())
    page = render_html([(path, load_traces(path))])
    assert page.count("<script") == 2 and page.count("</script>") == 2  # the data and the page's own script
    assert "<link" not in page and not re.search(r"\b(src|href)\s*=", page)  # nothing to fetch
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    data = _data(page)
    assert [c["q"] for c in data["calls"]] == [FLEAS, "flea life cycle stages", "why do cats purr"]
    first = data["calls"][0]
    assert first["res"][0]["text"] == PASSAGES[2].text and first["thr"] == {"partial": 0.3, "relevant": 0.6}
    start, end = first["res"][0]["span"]
    assert PASSAGES[2].text[start:end] == first["res"][0]["ev"]
    assert [c["in"] for c in first["out"]] == [5] and first["out"][0]["score"] is not None
    assert data["calls"][2]["ans"] is False


def test_hostile_text_stays_data(tmp_path):
    hostile = [Passage(HOSTILE + " flea lives a month", id=HOSTILE), Passage("x " * 600_000, id="big")]
    path = write(tmp_path / "t.jsonl", records(extra=[(HOSTILE, hostile)]))
    page = render_html([(path, load_traces(path))], title=HOSTILE)
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert "<img" not in page and "<a href" not in page and "<!--" not in page
    assert page.count("(function () {") == 1  # "{{JS}}" in the title and the data is text, not the script again
    assert "<title>&lt;/script&gt;&lt;script&gt;" in page
    call = _data(page)["calls"][3]
    assert call["q"] == HOSTILE
    assert {r["id"] for r in call["res"]} == {HOSTILE, "big"}


def test_damaged_lines_are_skipped_and_counted(tmp_path):
    good = [r.to_json() for r in records()]
    path = tmp_path / "t.jsonl"
    path.write_text(good[0] + "\n{oops\n" + json.dumps({"query": "q", "results": [{"rank": 1, "input_rank": 1,
                    "id": "a", "score": 1, "unsupported": [1, 2]}]}) + "\n" + good[1] + "\n", encoding="utf-8")
    data = page_data([(str(path), load_traces(path))])
    assert len(data["calls"]) == 2 and data["skipped_count"] == 2 and "line 2" in data["skipped"][0]


def test_diff_data_matches_queries_and_says_what_moved(tmp_path):
    a = write(tmp_path / "a.jsonl", records("v1"))
    # B prefers the collar passage: it moves up, and the life-cycle passage leaves B's top 3 of the second query.
    b = write(tmp_path / "b.jsonl", records("v2", bonus={PASSAGES[0].text: 3.0}))
    data = page_data([(a, load_traces(a))], [(b, load_traces(b))])
    assert data["diff_summary"]["compared"] == 3 and data["diff_summary"]["changed"] >= 1
    fleas = data["diffs"][0]
    assert fleas["b"] == 0 and fleas["keys"]["B"][0] == "d1" and fleas["reordered"]
    moved = {s["key"]: s for s in fleas["shifts"]}
    assert moved["d1"]["ra"] == 3 and moved["d1"]["rb"] == 1 and moved["d1"]["va"] == "partial"


def test_cli_html_and_view(tmp_path, capsys):
    a = write(tmp_path / "a.jsonl", records("v1"))
    b = write(tmp_path / "b.jsonl", records("v2", bonus={PASSAGES[0].text: 3.0}))
    out = tmp_path / "report.html"
    assert main(["traces", "html", a, "--diff", b, "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert len(_data(out.read_text(encoding="utf-8"))["b_calls"]) == 3
    assert main(["traces", "html", str(tmp_path / "missing.jsonl"), "-o", str(out)]) == 2
    assert "not found" in capsys.readouterr().err


def test_the_page_server_serves_only_the_page(tmp_path):
    path = write(tmp_path / "t.jsonl", records())
    page = render_html([(path, load_traces(path))])
    server = serve_page(page).start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.url, timeout=10) as response:
            assert response.read().decode("utf-8") == page
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(server.url + "../etc/passwd", timeout=10)
        assert error.value.code == 404
    finally:
        server.close()
