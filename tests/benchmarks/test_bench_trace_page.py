"""Issue 22 item 5: the trace page for 1,000 calls in headless Chromium: HTML size, first paint, time to usable.

1,000 synthetic calls shaped like the default reranker's (100 candidates in, 10 returned with their text, evidence,
explanations, verdicts). Reported in ``extra_info``: the HTML's size, the first contentful paint and the time until
the page's script has rendered the index and the first call (``body[data-ready]``), best of 3 loads. The target is a
first paint <= 2 s on the 2-core reference machine (docs/traces.md has the measured numbers).

    pytest tests/benchmarks/test_bench_trace_page.py -m benchmark --benchmark-only
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from traces.browser import browser_missing, chromium, open_page

from r2r_agent.traces import TraceCandidate, TraceRecord, TraceResult
from r2r_agent.traces import load_traces as _load
from r2r_agent.traces.report import render_html

pytestmark = [pytest.mark.benchmark,
              pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))]

TEXT = ("Fleas are small wingless insects. An adult flea usually lives two to three months without a host. "
        "The life cycle has four stages: egg, larva, pupa and adult; it can take a year in cold weather. ") * 3


def calls(n: int, candidates: int = 100, returned: int = 10) -> list[TraceRecord]:
    """``n`` calls shaped like the default reranker's (``candidates`` in, ``returned`` out with text)."""
    out = []
    for i in range(n):
        results = tuple(
            TraceResult(rank=r, input_rank=(r * 7 + i) % candidates + 1, id=f"doc{i}-{(r * 7 + i) % candidates}",
                        score=5.0 - r / 3, explanation=f"Relevant: the passage says fleas live two to three months "
                        f"({r}).", relevance=max(0.05, 0.95 - r / 10),
                        verdict="relevant" if r < 4 else "partial" if r < 7 else "not_relevant",
                        evidence="An adult flea usually lives two to three months without a host.",
                        evidence_span=(34, 98), text=TEXT)
            for r in range(1, returned + 1))
        out.append(TraceRecord(
            query=f"how long do fleas live {i}", results=results, top_n=returned, model="synthetic",
            candidates=tuple(TraceCandidate(input_rank=c, id=f"doc{i}-{c - 1}", preview=TEXT[:200], score=1.0 / c,
                                            stage="score") for c in range(1, candidates + 1)),
            comparison="[1] answers the query; [2] only touches it.", answerable=i % 5 != 0, seconds=1.2,
            run="v1" if i % 2 else "v2", thresholds={"partial": 0.3, "relevant": 0.6},
            config={"top_n": returned, "explain": "full"}))
    return out


def test_first_paint_of_1000_calls(benchmark, tmp_path: Path):
    trace = tmp_path / "calls.jsonl"
    trace.write_text("".join(r.to_json() + "\n" for r in calls(1000)), encoding="utf-8")
    started = time.perf_counter()
    html = render_html([(str(trace), _load(trace))])
    render_seconds = time.perf_counter() - started
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    loads: list[tuple[float, float]] = []
    with chromium() as driver:

        def load() -> None:
            began = time.perf_counter()
            open_page(driver, page)
            ready = time.perf_counter() - began
            paint = driver.execute_script("var p = performance.getEntriesByName('first-contentful-paint')[0];"
                                          " return p ? p.startTime / 1000 : null;")
            loads.append((ready, paint))

        benchmark.pedantic(load, rounds=3, iterations=1)
        rows = len(driver.find_elements("css selector", "#calls .call"))
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    ready, paint = min(loads)
    benchmark.extra_info.update(calls=1000, trace_mb=round(trace.stat().st_size / 1e6, 2),
                                html_mb=round(page.stat().st_size / 1e6, 2),
                                render_html_seconds=round(render_seconds, 2),
                                first_contentful_paint_seconds=round(paint, 2), ready_seconds=round(ready, 2))
    assert rows == 50  # the index shows one page of 50; the rest is paged, not rendered
    assert paint is not None and errors == []
