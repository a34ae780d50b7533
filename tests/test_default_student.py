"""End to end on the real embedded default (MiniLM + SmolLM2-135M): slow, run by `make test` and CI."""

from __future__ import annotations

import math

import pytest

from r2r_agent import Passage, Reranker, Student

pytestmark = pytest.mark.slow

QUERY = "how long do fleas live"
PASSAGES = [
    "Flea collars release an insecticide that spreads over the pet's skin.",
    "An adult flea usually lives two to three months. Without a host, an adult flea survives a few days to two weeks.",
    "The flea life cycle has four stages: egg, larva, pupa and adult.",
    "Seasons happen because Earth's axis is tilted about 23.5 degrees.",
    "Cat fleas can live for more than 100 days on a host animal.",
    "x" * 100_000,
]


@pytest.fixture(scope="module")
def default_reranker():
    return Reranker(Student.default(), rescore_top=3)


def test_default_student_end_to_end(default_reranker, no_network):
    passages = [Passage(text, id=f"p{i}") for i, text in enumerate(PASSAGES)]
    first = default_reranker.rerank(QUERY, passages, top_n=4, explain_top=3, compare_top=3)
    second = default_reranker.rerank(QUERY, passages, top_n=4, explain_top=3, compare_top=3)
    assert len(first) == 4
    assert all(math.isfinite(j.score) for j in first)
    assert [(j.id, j.score, j.explanation) for j in first] == [(j.id, j.score, j.explanation) for j in second]
    explained = [j for j in first if j.explanation is not None]
    assert len(explained) == 3 and all(j.explanation.strip() for j in explained)
    assert first.comparison and first.comparison.strip()
    # The bi-encoder puts the lifespan passage above the unrelated astronomy one.
    order = [j.id for j in default_reranker.rerank(QUERY, passages, explain_top=0, compare_top=0)]
    assert order.index("p1") < order.index("p3")
    long_judgment = next(j for j in default_reranker.rerank(QUERY, passages, explain_top=0, compare_top=0)
                         if j.id == "p5")
    assert long_judgment.truncated
