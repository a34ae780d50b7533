"""Timing of a repeated call with the score cache (issue 20 item 2; `make bench`; never pass/fail in CI).

The default student on the first DL19 query's 100 BM25 passages, top 5: the first call (an empty cache) and the
same call repeated (every score, sentence score and explanation from the cache), in evidence mode and in full mode
(LM reasons for 5 + the LM-free grounded comparison), beside the MiniLM encode of the same passages as yardstick.
"""

from __future__ import annotations

import pytest

from r2r_agent import Reranker
from r2r_agent.score_cache import with_score_cache

pytestmark = [pytest.mark.benchmark, pytest.mark.slow]


def _run(benchmark, fn, rounds=3):
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


def test_cache_minilm_encode100_baseline(benchmark, dl19, student):
    query, passages = dl19
    _run(benchmark, lambda: student.scorer.score(query, passages))


@pytest.mark.parametrize("explain", ["evidence", "full"])
def test_cache_first_call(benchmark, dl19, student, explain):
    query, passages = dl19
    # A new cache each round: what the first call of a process pays (with the cache's hashing and filling).
    _run(benchmark, lambda: Reranker(with_score_cache(student), explain=explain).rerank(query, passages, top_n=5),
         rounds=2 if explain == "full" else 3)


@pytest.mark.parametrize("explain", ["evidence", "full"])
def test_cache_repeated_call(benchmark, dl19, student, explain):
    query, passages = dl19
    reranker = Reranker(with_score_cache(student), explain=explain)
    first = reranker.rerank(query, passages, top_n=5)
    ranking = _run(benchmark, lambda: reranker.rerank(query, passages, top_n=5), rounds=5)
    assert [j.id for j in ranking] == [j.id for j in first]
    benchmark.extra_info["score_cache_hits"] = next(s for s in ranking.stages if s.stage == "score").cache_hits
