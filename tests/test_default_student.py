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
    "x" * 100_000,  # one 100k-character "word": a single unknown token to WordPiece
    "Fleas bite. " * 2_000,  # ~6,000 tokens: past the scorer's 4,096-token bound (read in windows up to it)
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
    judged = {j.id: j for j in default_reranker.rerank(QUERY, passages, explain_top=0, compare_top=0)}
    assert judged["p6"].truncated  # cut at max_tokens_per_passage
    assert math.isfinite(judged["p5"].score)  # read whole (one token), not a crash


#: Runs in a fresh interpreter (the point is what a new process loads): an evidence-mode call, then a full one.
LAZY_CHILD = r"""
import json, sys
from r2r_agent import Reranker
from r2r_agent.student import shared_default_student
query, passages = sys.argv[1], json.loads(sys.argv[2])
evidence = Reranker(explain="evidence", compare_top=0).rerank(query, passages, top_n=2)
student = shared_default_student()
loaded_after_evidence = student.explainer.shared.loaded or student.rescorer.built
full = Reranker(explain="full", explain_top=1, compare_top=0).rerank(query, passages, top_n=2)
print(json.dumps({"after_evidence": loaded_after_evidence, "after_full": student.explainer.shared.loaded,
                  "same_student": shared_default_student() is student,
                  "evidence": [j.explanation for j in evidence], "full": [j.explanation for j in full]}))
"""


def test_evidence_mode_never_loads_smollm2_and_full_mode_then_does():
    """Issue 20 item 6, in a new process: the adapters' default (explain="evidence") pays for MiniLM only."""
    import json
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != "R2R_TRACE_PATH"}  # no trace file written
    out = subprocess.run([sys.executable, "-c", LAZY_CHILD, QUERY, json.dumps(PASSAGES[:5])], capture_output=True,
                         text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["after_evidence"] is False and result["same_student"]
    assert result["after_full"] is True
    assert all(text and text.split(":")[0] in {"Relevant", "Partly relevant", "Not relevant"}
               for text in result["evidence"] + result["full"][:1])
    assert result["full"][1] is None  # explain_top=1
    assert result["full"][0] != result["evidence"][0]  # the LM wrote the first reason, not the evidence template
