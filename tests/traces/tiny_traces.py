"""Trace files for the page tests: a small in-process student (a lookup-table scorer, a calibrator, an echoing
explainer), so a trace has verdicts, evidence spans, explanations and stage costs without loading a model."""

from __future__ import annotations

from collections.abc import Sequence

from r2r_agent import Passage, Reranker, Scores, Student
from r2r_agent.calibration import Calibrator
from r2r_agent.explainer import Generation
from r2r_agent.traces import MemoryTraceSink, TraceRecord

FLEAS = "how long do fleas live"
PASSAGES = [
    Passage("Flea collars release an insecticide. They work for months.", id="d1", first_stage_score=9.0),
    Passage("Seasons happen because Earth's axis is tilted.", id="d2", first_stage_score=8.0),
    Passage("Émile’s dog 🐕 has fleas. An adult flea usually lives two to three months.", id="d3",
            first_stage_score=7.0),
    Passage("The flea life cycle has four stages: egg, larva, pupa and adult.", id="d4", first_stage_score=6.0),
    Passage("Cats sleep a lot.", id="d5", first_stage_score=5.0),
]
WORDS = ("flea", "live", "month", "adult", "cycle", "stage")


class WordScorer:
    """Scores a text by how many of a few query words it has (so sentences score too: evidence gets picked)."""

    name = "words"

    def __init__(self, bonus: dict[str, float] | None = None):
        self.bonus = bonus or {}

    def score(self, query, passages):
        values = [sum(p.lower().count(w) for w in WORDS) / 3.0 + self.bonus.get(p, 0.0) for p in passages]
        return Scores(values=values, truncated=[False] * len(passages))


class EchoExplainer:
    name = "echo"

    def explain(self, query, passages, *, verdicts=None, evidence=None):
        return Generation(texts=[f"It mentions {p.split()[1]}." for p in passages], truncated=[False] * len(passages))

    def compare(self, query, passages):
        return Generation(texts=[f"{len(passages)} passages, the most specific first."], truncated=[False])


CALIBRATOR = Calibrator(scorer="words", features=("score",), weights=(3.0,), bias=-2.5, relevant_at=0.6,
                        partial_at=0.3)


def student(bonus: dict[str, float] | None = None) -> Student:
    return Student(scorer=WordScorer(bonus), explainer=EchoExplainer(), calibrator=CALIBRATOR, name="tiny-words")


def records(run: str = "v1", bonus: dict[str, float] | None = None, extra: Sequence[tuple[str, list[Passage]]] = ()
            ) -> list[TraceRecord]:
    """Three calls (one not answerable) and any ``extra`` ``(query, passages)`` calls."""
    sink = MemoryTraceSink(run=run)
    reranker = Reranker(student(bonus), trace=sink, explain_top=3, compare_top=3)
    reranker.rerank(FLEAS, PASSAGES, top_n=4)
    reranker.rerank("flea life cycle stages", PASSAGES, top_n=3)
    reranker.rerank("why do cats purr", [PASSAGES[1], PASSAGES[4]], top_n=2)
    for query, passages in extra:
        reranker.rerank(query, passages, top_n=len(passages))
    return sink.records


def write(path, items) -> str:
    path.write_text("".join(r.to_json() + "\n" for r in items), encoding="utf-8")
    return str(path)
