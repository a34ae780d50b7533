"""Small typed records shared by the eval readers, metrics and (later) runners.

``Qrel`` and ``ScoredDoc`` mirror ``ir_measures``' NamedTuples field for field, so lists of them can be handed to
``ir_measures`` directly. ``Candidate`` and ``CandidateList`` are one query's first-stage candidates with texts, the
shared ``*.top100.jsonl.gz`` format.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from r2r_agent.errors import InvalidInputError

#: Judgments ``{query_id: {doc_id: relevance}}``.
Qrels = dict[str, dict[str, int]]
#: A run ``{query_id: {doc_id: score}}`` (one score per document; see :func:`r2r_agent.evals.metrics.to_run`).
Run = dict[str, dict[str, float]]


class Qrel(NamedTuple):
    """One relevance judgment (same fields as ``ir_measures.Qrel``)."""

    query_id: str
    doc_id: str
    relevance: int
    iteration: str = "0"


class ScoredDoc(NamedTuple):
    """One retrieved document of a run (same fields as ``ir_measures.ScoredDoc``)."""

    query_id: str
    doc_id: str
    score: float


@dataclass(frozen=True)
class Candidate:
    """One first-stage candidate of a query.

    Args:
        docid: The document id.
        score: The first-stage score (higher is better).
        text: The document text; ``None`` when the texts are not available (BRIGHT without a local corpus).
    """

    docid: str
    score: float
    text: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.docid, str) or not self.docid:
            raise InvalidInputError(f"Candidate.docid must be a non-empty str, got {self.docid!r}.")
        object.__setattr__(self, "score", float(self.score))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict in the shared candidate-list schema (``docid``, ``score``, ``text``)."""
        return {"docid": self.docid, "score": self.score, "text": self.text}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        """Build from :meth:`to_dict` output (or one entry of a ``*.top100.jsonl.gz`` row)."""
        return cls(docid=str(data["docid"]), score=data["score"], text=data.get("text"))


@dataclass(frozen=True)
class CandidateList:
    """One query with its first-stage candidates, in first-stage rank order (one row of ``*.top100.jsonl.gz``)."""

    qid: str
    query: str
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "qid", str(self.qid))
        object.__setattr__(self, "candidates", tuple(self.candidates))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict in the shared schema."""
        return {"qid": self.qid, "query": self.query, "candidates": [c.to_dict() for c in self.candidates]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CandidateList:
        """Build from :meth:`to_dict` output."""
        return cls(
            qid=str(data["qid"]),
            query=data["query"],
            candidates=tuple(Candidate.from_dict(c) for c in data.get("candidates") or ()),
        )

    def scored_docs(self) -> list[ScoredDoc]:
        """The candidates as run entries of this query."""
        return [ScoredDoc(self.qid, c.docid, c.score) for c in self.candidates]


def qrels_from_records(records: Iterable[Qrel]) -> Qrels:
    """Group judgments by query (a repeated ``(query, doc)`` pair keeps its last label)."""
    out: Qrels = {}
    for q in records:
        out.setdefault(q.query_id, {})[q.doc_id] = int(q.relevance)
    return out
