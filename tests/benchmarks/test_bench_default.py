"""Timing benchmarks of the embedded default on 100 DL19-length passages (`make bench`; never pass/fail in CI).

Every figure sits beside two yardsticks timed in the same run on the same passages, so results can be read as ratios
on any machine: sentence-transformers' own ``encode`` of all-MiniLM-L6-v2 (what a user would otherwise run) and the
float32 EncoderScorer. Each benchmark also records the process CPU seconds of its best round (``cpu_seconds``): on a
shared, busy machine wall time inflates, CPU time much less. Peak RSS is measured in a separate process.

    R2R_DATA_DIR=../shared/data pytest tests/benchmarks/test_bench_default.py -m benchmark --benchmark-json=bench.json
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from r2r_agent import EncoderScorer, Explainer, LMScorer, Reranker

pytestmark = [pytest.mark.benchmark, pytest.mark.slow]


@pytest.fixture(scope="module")
def onnx_student(student):
    """The default student with the ONNX Runtime int8 MiniLM as its scorer (prepared on first use, then cached)."""
    import dataclasses

    onnx_scorer = pytest.importorskip("r2r_agent.onnx_scorer")
    pytest.importorskip("onnxruntime")
    return dataclasses.replace(student, scorer=onnx_scorer.OnnxEncoderScorer.default(quantize="int8"))


@pytest.fixture(scope="module")
def int8_scorer():
    return EncoderScorer.default(quantize="int8")


@pytest.fixture(scope="module")
def float32_scorer():
    return EncoderScorer.default(dtype="float32")


def _run(benchmark, fn, rounds=3):
    cpu: list[float] = []

    def timed():
        start = time.process_time()
        result = fn()
        cpu.append(time.process_time() - start)
        return result

    result = benchmark.pedantic(timed, rounds=rounds, iterations=1, warmup_rounds=1)
    benchmark.extra_info["cpu_seconds"] = round(min(cpu[1:] or cpu), 3)  # the warm-up round not counted
    return result


def test_score100_sentence_transformers_encode_yardstick(benchmark, dl19):
    """sentence-transformers' encode of the same 100 passages and the query: the yardstick of issue 20 item 4."""
    from sentence_transformers import SentenceTransformer

    from r2r_agent.default_models import minilm_path

    query, passages = dl19
    model = SentenceTransformer(str(minilm_path()), device="cpu")
    _run(benchmark, lambda: (model.encode(passages, batch_size=32), model.encode([query])))


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


@pytest.mark.parametrize("quantize", ["int8", "none"])
def test_score100_minilm_onnx(benchmark, dl19, quantize):
    onnx_scorer = pytest.importorskip("r2r_agent.onnx_scorer")
    pytest.importorskip("onnxruntime")
    query, passages = dl19
    scorer = onnx_scorer.OnnxEncoderScorer.default(quantize=quantize)
    _run(benchmark, lambda: scorer.score(query, passages))


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
    benchmark.extra_info["explanations"] = [j.explanation for j in ranking]  # read them: speed must not cost sense
    benchmark.extra_info["comparison"] = ranking.comparison


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


def test_cascade_onnx_int8_score100_explain5_evidence(benchmark, dl19, onnx_student):
    """The evidence mode with the ONNX Runtime int8 scorer (target <= 1.2 s)."""
    _cascade(benchmark, dl19, onnx_student, explain="evidence", explain_top=5, compare_top=3)


def test_cascade_onnx_int8_score100_explain5_full_compare3(benchmark, dl19, onnx_student):
    """The full mode + comparison of 3 with the ONNX Runtime int8 scorer (target <= 2.5 s)."""
    _cascade(benchmark, dl19, onnx_student, explain="full", explain_top=5, compare_top=3)


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
