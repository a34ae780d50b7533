"""Timing benchmarks of the embedded default on 100 DL19-length passages (`make bench`; never pass/fail in CI).

Every figure sits beside the float32 all-MiniLM-L6-v2 bi-encoder scoring the same passages in the same run, so
results can be read as ratios on any machine. Peak RSS is measured in a separate process.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap

import pytest

from r2r_agent import EncoderScorer, Explainer, LMScorer, Reranker, Student

pytestmark = [pytest.mark.benchmark, pytest.mark.slow]


@pytest.fixture(scope="module")
def dl19(dl19_candidates):
    with gzip.open(dl19_candidates, "rt", encoding="utf-8") as handle:
        row = json.loads(handle.readline())
    return row["query"], [c["text"] for c in row["candidates"]]


@pytest.fixture(scope="module")
def student():
    return Student.default()


@pytest.fixture(scope="module")
def int8_scorer():
    return EncoderScorer.default(quantize="int8")


@pytest.fixture(scope="module")
def float32_scorer():
    return EncoderScorer.default(dtype="float32")


def _run(benchmark, fn, rounds=3):
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


def test_score100_minilm_float32_baseline(benchmark, dl19, float32_scorer):
    query, passages = dl19
    benchmark.extra_info["passages"] = len(passages)
    _run(benchmark, lambda: float32_scorer.score(query, passages))


def test_score100_minilm_default_dtype(benchmark, dl19, student):
    query, passages = dl19
    benchmark.extra_info["scorer"] = student.name
    _run(benchmark, lambda: student.scorer.score(query, passages))


def test_score100_minilm_int8(benchmark, dl19, int8_scorer):
    query, passages = dl19
    _run(benchmark, lambda: int8_scorer.score(query, passages))


def test_score100_smollm2_lm_scorer(benchmark, dl19, student):
    query, passages = dl19
    scorer: LMScorer = student.rescorer  # type: ignore[assignment]
    _run(benchmark, lambda: scorer.score(query, passages), rounds=1)


def test_explain5_batched(benchmark, dl19, student):
    query, passages = dl19
    explainer: Explainer = student.explainer  # type: ignore[assignment]
    result = _run(benchmark, lambda: explainer.explain(query, passages[:5]))
    benchmark.extra_info["generated_tokens"] = result.generated_tokens


def test_explain5_sequential(benchmark, dl19, student):
    query, passages = dl19
    explainer: Explainer = student.explainer  # type: ignore[assignment]
    result = _run(benchmark, lambda: [explainer.explain(query, [p]) for p in passages[:5]], rounds=1)
    benchmark.extra_info["generated_tokens"] = sum(r.generated_tokens for r in result)


def _cascade(benchmark, dl19, student, **settings):
    query, passages = dl19
    reranker = Reranker(student, **settings)
    ranking = _run(benchmark, lambda: reranker.rerank(query, passages, top_n=5))
    benchmark.extra_info["stages"] = {s.stage: round(s.seconds, 3) for s in ranking.stages}
    benchmark.extra_info["generated_tokens"] = sum(s.generated_tokens for s in ranking.stages)


def test_cascade_score100_explain5_evidence(benchmark, dl19, student):
    """explain="evidence": verdict, relevance and the best sentence of the top 5; no LM (target <= 1.2 s)."""
    _cascade(benchmark, dl19, student, explain="evidence", explain_top=5, compare_top=3)


def test_cascade_score100_explain5_full(benchmark, dl19, student):
    _cascade(benchmark, dl19, student, explain="full", explain_top=5, compare_top=0)


def test_cascade_score100_explain5_full_compare3(benchmark, dl19, student):
    """explain="full" with the grounded comparison of the top 3 (target <= 2.5 s)."""
    _cascade(benchmark, dl19, student, explain="full", explain_top=5, compare_top=3)


def test_cascade_score100_explain5_full_compare3_lm(benchmark, dl19, student):
    """The same with the comparison written by the LM (comparison="lm"), for the record."""
    _cascade(benchmark, dl19, student, explain="full", explain_top=5, compare_top=3, comparison="lm")


PEAK_RSS_SCRIPT = textwrap.dedent("""
    import gzip, json, resource, sys
    from r2r_agent import Reranker, Student
    row = json.loads(gzip.open(sys.argv[1], "rt", encoding="utf-8").readline())
    reranker = Reranker(Student.default(quantize=sys.argv[2]), explain_top=5, compare_top=3)
    query = row["query"] if sys.argv[3] == "dl19" else ("how long do fleas live " * 4500)  # a 100 kB query
    reranker.rerank(query, [c["text"] for c in row["candidates"]], top_n=5)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
""")


@pytest.mark.parametrize("quantize, query", [("int8", "dl19"), ("none", "dl19"), ("none", "100kB")])
def test_peak_rss_default_cascade(benchmark, quantize, query, dl19_candidates):
    path = str(dl19_candidates)

    def measure():
        out = subprocess.run([sys.executable, "-c", PEAK_RSS_SCRIPT, path, quantize, query], check=True,
                             capture_output=True, text=True).stdout
        return int(out.strip().splitlines()[-1])

    peak_mib = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info["peak_rss_mib"] = peak_mib
