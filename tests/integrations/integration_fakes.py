"""Fakes for the framework integration tests: a fast, deterministic student (no model is loaded)."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from r2r_agent import Reranker  # noqa: E402
from r2r_agent.explainer import Generation  # noqa: E402
from r2r_agent.scorers import Scores  # noqa: E402
from r2r_agent.student import Student  # noqa: E402

_WORD = re.compile(r"\w+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


class OverlapScorer:
    """Scores a passage by the share of query words it contains (ties broken by shorter passages)."""

    name = "fake-overlap"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls = 0
        self.threads: set[str] = set()

    def score(self, query: str, passages: Sequence[str]) -> Scores:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        q = _words(query)
        values = [len(q & _words(p)) / max(len(q), 1) - len(p) * 1e-6 for p in passages]
        return Scores(values=values, truncated=[len(p) > 200 for p in passages])


class EchoExplainer:
    """Explains by naming the passage's first words; compares by listing them in order."""

    name = "fake-echo"

    def explain(self, query: str, passages: Sequence[str], *, verdicts: Sequence[str | None] | None = None,
                evidence: Sequence[str | None] | None = None) -> Generation:
        return Generation(texts=[f"About {query!r}: {' '.join(p.split()[:3])}." for p in passages],
                          truncated=[False] * len(passages), generated_tokens=0, seconds=0.0)

    def compare_grounded(self, query: str, evidences: Sequence[str | None],
                         verdicts: Sequence[str | None]) -> Generation:
        order = " > ".join((e or "-").split()[0] for e in evidences)
        return Generation(texts=[f"Order for {query!r}: {order}."], truncated=[False], generated_tokens=0,
                          seconds=0.0)


#: The core's defaults (``Reranker().rerank``'s), for tests that compare an adapter's output with the core's: an
#: adapter's own defaults are ``ordering="rrf"``, ``explain="evidence"`` whatever reranker it is given.
CORE = {"ordering": "scorer", "explain": "full"}


def make_reranker(delay: float = 0.0, explain_top: int = 5, compare_top: int = 3) -> Reranker:
    student = Student(scorer=OverlapScorer(delay), explainer=EchoExplainer(), name="fake-student")
    return Reranker(student=student, explain_top=explain_top, compare_top=compare_top)


#: A query and passages (id, text, retrieval score); under :class:`OverlapScorer` d3 ranks first and d2 last.
QUERY = "how long do fleas live"
PASSAGES = [
    ("d1", "Fleas are small insects that live on cats.", 1.0),
    ("d2", "The stock market fell sharply on Monday.", 0.9),
    ("d3", "How long do fleas live? Adult fleas live two to three months.", 0.8),
    ("d4", "Dogs do get fleas in summer.", 0.7),
]
