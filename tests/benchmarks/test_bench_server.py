"""Load on ``r2r serve`` (issue 21 item 5): 1, 4 and 16 concurrent clients sending DL19 queries with their 100 BM25
documents each to ``POST /v2/rerank`` (the embedded default student, ``--explain evidence``, every other setting
its default), then RSS over many cheaper requests. A benchmark, never a timed test: the only assertions are that
nothing failed (no 5xx, no transport error) and that each answer ranks every document sent.

The server is a real ``r2r serve`` subprocess on 127.0.0.1 (so its RSS is its own, and the clients' threads do not
share its interpreter lock); each client is a thread with its own ``httpx.Client`` sending its requests one after
another (a closed loop). Every level sends the same mix: the first ``R2R_BENCH_SERVER_QUERIES`` DL19 queries (default
4), each equally often, ``ROUNDS x max(clients, queries)`` requests in all; the cost of a request depends on its
documents, so levels with different queries would not compare. Per level: requests/s and passages/s (answered ones
over the level's wall time), p50/p95 latency, the server's peak RSS during the level (sampled from /proc every 0.1 s)
and the errors by status.

The deadline is raised (``--deadline-s``): the in-process student runs one request at a time, so with 16 clients a
request waits for the 15 before it, longer than the default 60 s whenever one request takes over 4 s (100 DL19
documents take 10-40 s here). Knobs (environment): ``R2R_BENCH_SERVER_ROUNDS`` the multiplier above (default 2),
``R2R_BENCH_SERVER_LEAK_REQUESTS`` (default 1000) and ``R2R_BENCH_SERVER_LEAK_DOCUMENTS`` (default 2) for the RSS
run, ``R2R_BENCH_SERVER_THREADS`` the server's OMP_NUM_THREADS (default 2), ``R2R_BENCH_SERVER_OUT`` a JSON file for
the results. Each level also prints a Markdown row.

    OMP_NUM_THREADS=1 pytest tests/benchmarks/test_bench_server.py -m benchmark -s -p no:cacheprovider
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

pytestmark = [pytest.mark.benchmark, pytest.mark.slow]

ROUNDS = int(os.environ.get("R2R_BENCH_SERVER_ROUNDS", "2"))
QUERIES = int(os.environ.get("R2R_BENCH_SERVER_QUERIES", "4"))
LEAK_REQUESTS = int(os.environ.get("R2R_BENCH_SERVER_LEAK_REQUESTS", "1000"))
LEAK_DOCUMENTS = int(os.environ.get("R2R_BENCH_SERVER_LEAK_DOCUMENTS", "2"))
THREADS = os.environ.get("R2R_BENCH_SERVER_THREADS", "2")
DEADLINE_S = 3600
#: Results by name, written to $R2R_BENCH_SERVER_OUT after each test.
RESULTS: dict[str, Any] = {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mb(pid: int, key: str = "VmRSS") -> float:
    """The process's resident set (``VmRSS``) or its peak since start (``VmHWM``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {key} in /proc/{pid}/status")


class RssSampler:
    """The server's highest VmRSS while the ``with`` block runs (sampled every 0.1 s)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = _rss_mb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, _rss_mb(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb(self.pid))


@dataclass
class Level:
    """One load level's measurements."""

    clients: int
    requests: int
    documents: int
    wall_s: float
    statuses: dict[str, int]
    latencies_s: list[float] = field(repr=False)
    peak_rss_mb: float = 0.0
    compute_s: list[float] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> int:
        return self.statuses.get("200", 0)

    @property
    def errors(self) -> int:
        return self.requests - self.ok

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_s)
        return {"clients": self.clients, "requests": self.requests, "documents_per_request": self.documents,
                "wall_s": round(self.wall_s, 1), "requests_per_s": round(self.ok / self.wall_s, 4),
                "passages_per_s": round(self.ok * self.documents / self.wall_s, 2),
                "p50_s": round(statistics.median(ordered), 2),
                "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered) + 0.5) - 1)], 2),
                "peak_rss_mb": round(self.peak_rss_mb), "errors": self.errors, "statuses": self.statuses,
                # the server's own seconds per request (its stages), and the share of the wall it was computing:
                # tells a slower machine (compute up, busy ~1) from server overhead (busy < 1)
                "compute_s_mean": round(statistics.fmean(self.compute_s), 2) if self.compute_s else None,
                "busy": round(sum(self.compute_s) / self.wall_s, 3)}


@pytest.fixture(scope="module")
def dl19(dl19_candidates) -> list[tuple[str, list[str]]]:
    with gzip.open(dl19_candidates, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return [(row["query"], [c["text"] for c in row["candidates"]]) for row in rows]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``r2r serve`` with the embedded default and ``--explain evidence`` on a free port; yields (url, pid)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    command = [sys.executable, "-m", "r2r_agent.cli", "serve", "--port", str(port), "--explain", "evidence",
               "--deadline-s", str(DEADLINE_S), "--max-queue", "64", "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                               env={**os.environ, "OMP_NUM_THREADS": THREADS})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            if process.poll() is not None:
                raise AssertionError(f"r2r serve exited {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"r2r serve was not ready in 600 s:\n{log.read_text()}")
            time.sleep(0.5)
        RESULTS["ready_rss_mb"] = round(_rss_mb(process.pid))
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)
        RESULTS["server_exit_code"] = process.returncode
        _save()


def _save() -> None:
    out = os.environ.get("R2R_BENCH_SERVER_OUT")
    if out:
        Path(out).write_text(json.dumps(RESULTS, indent=2) + "\n", encoding="utf-8")


def load(url: str, pid: int, rows: list[tuple[str, list[str]]], clients: int, per_client: int,
         documents: int | None = None, extra: dict[str, Any] | None = None) -> Level:
    """``clients`` threads each sending ``per_client`` requests, one after another; query ``i`` of the level is
    ``rows[i % len(rows)]`` with its first ``documents`` documents (all when ``None``)."""
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    compute: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    sizes = set()

    def client(number: int) -> None:
        with httpx.Client(base_url=url, timeout=DEADLINE_S + 60) as http:
            start.wait()
            for k in range(per_client):
                query, texts = rows[(number * per_client + k) % len(rows)]
                texts = texts[:documents] if documents else texts
                began = time.perf_counter()
                try:
                    response = http.post("/v2/rerank", json={"query": query, "documents": texts, **(extra or {})})
                    status = str(response.status_code)
                    if response.status_code == 200:
                        answer = response.json()
                        if len(answer["results"]) != len(texts):
                            status = "200-short"
                        with lock:
                            compute.append(sum(stage["seconds"] for stage in answer["stages"]))
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with lock:
                    latencies.append(time.perf_counter() - began)
                    statuses[status] += 1
                    sizes.add(len(texts))

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    with RssSampler(pid) as rss:
        start.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
    assert len(sizes) == 1, f"the level mixed document counts {sizes}"
    return Level(clients, clients * per_client, sizes.pop(), wall, dict(statuses), latencies, rss.peak, compute)


def _row(level: dict[str, Any]) -> str:
    return (f"| {level['clients']} | {level['requests']} | {level['requests_per_s']:.3f} | "
            f"{level['passages_per_s']:.1f} | {level['p50_s']:.1f} | {level['p95_s']:.1f} | {level['peak_rss_mb']} | "
            f"{level['errors']} |")


@pytest.mark.parametrize("clients", [1, 4, 16])
def test_concurrent_clients(served, dl19, clients):
    url, pid = served
    per_client = ROUNDS * max(clients, QUERIES) // clients
    level = load(url, pid, dl19[:QUERIES], clients, per_client).summary()
    RESULTS[f"clients_{clients}"] = level
    if clients > 1 and "clients_1" in RESULTS:
        level["passages_per_s_vs_1_client"] = round(level["passages_per_s"] /
                                                    RESULTS["clients_1"]["passages_per_s"], 3)
    _save()
    print(f"\n{_row(level)}  {level}")  # noqa: T201 - the benchmark's table row is its output
    assert not any(status.startswith("5") for status in level["statuses"]), level["statuses"]
    assert level["errors"] == 0, level["statuses"]


def test_rss_growth_over_many_requests(served, dl19):
    """RSS after 50 warm-up requests, then after ``LEAK_REQUESTS`` more from 4 clients, each a DL19 query with its
    first ``LEAK_DOCUMENTS`` documents and the same settings (judge, evidence, comparison): the cheaper request
    runs the same server path (parsing, queue, cancellable student, response, metrics) many more times."""
    url, pid = served
    load(url, pid, dl19, 1, 50, LEAK_DOCUMENTS)
    before = _rss_mb(pid)
    level = load(url, pid, dl19, 4, LEAK_REQUESTS // 4, LEAK_DOCUMENTS).summary()
    after = _rss_mb(pid)
    result = {"documents_per_request": LEAK_DOCUMENTS, "requests": level["requests"],
              "rss_after_warmup_mb": round(before, 1), "rss_after_mb": round(after, 1),
              "growth_mb": round(after - before, 1), "peak_rss_mb": level["peak_rss_mb"],
              "requests_per_s": level["requests_per_s"], "errors": level["errors"], "statuses": level["statuses"]}
    RESULTS["rss_growth"] = result
    _save()
    print(f"\nRSS over {level['requests']} requests: {result}")  # noqa: T201 - its output
    assert level["errors"] == 0, level["statuses"]


def test_metrics_counted_every_request(served):
    """The server's own counters agree with what the clients sent (a cross-check of the load levels)."""
    url, _ = served
    text = httpx.get(url + "/metrics", timeout=30).text
    answered = [line for line in text.splitlines() if line.startswith('r2r_requests_total{route="/v2/rerank"')]
    RESULTS["metrics_v2_lines"] = answered
    _save()
    assert answered and all('status="200"' in line for line in answered), answered


if __name__ == "__main__":  # pragma: no cover - a convenience: the same as the pytest command in the docstring
    raise SystemExit(pytest.main([__file__, "-m", "benchmark", "-s", "-p", "no:cacheprovider"]))
