"""Throughput of a served student across concurrent queries, against the local OpenAI-compatible test server
(tests/openai_server.py: the tiny random LM behind real HTTP, batching the one-token requests in flight like vLLM),
run in its own process so that client and server do not share one interpreter lock.

``Reranker.rerank_many`` over 16 queries x 16 passages with 1, 4 and 16 queries in flight; each query's 16 scoring
requests are always sent at once. Reported as passages/s (``extra_info``) and as the ratio to 1 query in flight. The
tiny model makes HTTP and JSON the cost, so the ratios say how well the client keeps a server busy, not how fast a
GPU server is: see docs/performance.md. Run with ``pytest tests/benchmarks/test_bench_served.py -m benchmark``.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("httpx")

from openai_server import build_answer_word_lm  # noqa: E402

from r2r_agent import Explainer, LMScorer, Reranker, Student  # noqa: E402

pytestmark = [pytest.mark.benchmark, pytest.mark.slow]

QUERIES = [f"how long do fleas live {i}" for i in range(16)]
PASSAGES = [f"adult fleas live {n} weeks on a cat or dog host in summer" for n in range(16)]
SCORING = {"judge": False, "explain_top": 0, "compare_top": 0}
EXPLAINING = {"judge": False, "explain_top": 2, "compare_top": 0}
#: Passages/s of one query in flight, per workload, for the ratios (filled by the concurrency=1 runs).
_BASELINE: dict[str, float] = {}


@pytest.fixture(scope="module")
def lm():
    return build_answer_word_lm(seed=1)


@pytest.fixture(scope="module")
def server_url():
    script = Path(__file__).resolve().parents[1] / "openai_server.py"
    process = subprocess.Popen([sys.executable, str(script), "--seed", "1"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        url = ""
        while process.stdout and not url.startswith("http"):  # the tokenizer trainer prints blank lines first
            line = process.stdout.readline()
            assert line, "the test server exited before printing its URL"
            url = line.strip()
        yield url
    finally:
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _rate(benchmark, passages: int) -> float:
    return passages / benchmark.stats.stats.min


@pytest.mark.parametrize("workload", ["scoring", "explaining"])
@pytest.mark.parametrize("concurrency", [1, 4, 16])
def test_served_queries_in_flight(benchmark, server_url, lm, workload, concurrency):
    settings = SCORING if workload == "scoring" else EXPLAINING
    # 20: vLLM's default --max-logprobs, so the answers are a real server's size. The tiny random model rarely puts
    # yes/no in its top 20, so most scores are the floor's 0: throughput is what this measures.
    student = Student.from_openai(server_url, "tiny", top_logprobs=20, max_new_tokens=8, timeout=60)
    reranker = Reranker(student, trace=False, **settings)
    benchmark.pedantic(lambda: reranker.rerank_many(QUERIES, [PASSAGES] * len(QUERIES), concurrency=concurrency),
                       rounds=3, iterations=1, warmup_rounds=1)
    rate = _rate(benchmark, len(QUERIES) * len(PASSAGES))
    if concurrency == 1:
        _BASELINE[workload] = rate
    benchmark.extra_info.update(workload=workload, concurrency=concurrency, passages_per_s=round(rate, 1),
                                vs_one_in_flight=round(rate / _BASELINE[workload], 2) if workload in _BASELINE
                                else None)


@pytest.mark.parametrize("workload", ["scoring", "explaining"])
def test_in_process_reference(benchmark, lm, workload):
    """The same model in process (LMScorer + Explainer, one query at a time): what the served path is read against."""
    model, tokenizer = copy.deepcopy(lm[0]), lm[1]
    student = Student(scorer=LMScorer(model, tokenizer), explainer=Explainer(model, tokenizer, max_new_tokens=8),
                      name="in-process")
    reranker = Reranker(student, trace=False, **(SCORING if workload == "scoring" else EXPLAINING))
    benchmark.pedantic(lambda: reranker.rerank_many(QUERIES, [PASSAGES] * len(QUERIES)), rounds=3, iterations=1,
                       warmup_rounds=1)
    benchmark.extra_info.update(workload=workload, passages_per_s=round(_rate(benchmark,
                                                                              len(QUERIES) * len(PASSAGES)), 1))
