"""Small typed records shared by the eval readers, metrics and runners.

``Qrel`` and ``ScoredDoc`` mirror ``ir_measures``' NamedTuples field for field, so lists of them can be handed to
``ir_measures`` directly.

A query's first-stage candidates are :class:`r2r_agent.Passage` objects, the core's passage type: ``id`` is the doc
id, ``first_stage_score`` the first-stage score and ``text`` the document text (:func:`candidate` makes one and checks
the id and the score). :class:`CandidateList` is one query with its candidates, one row of the shared
``*.top100.jsonl.gz`` format.

A candidate whose text is not available (BRIGHT without a local copy of its corpus) has the empty text, and its doc id
is listed in the ``missing_texts`` of its list (or dataset): a passage always has a text, and an empty one may be a
real (empty) document, so what is missing is recorded beside the candidates, never guessed from a text.
"""

from __future__ import annotations

import numbers
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from r2r_agent import Passage
from r2r_agent.errors import InvalidInputError

#: A file or folder path, as every evals reader and writer takes it.
PathLike = str | os.PathLike[str]
#: Judgments ``{query_id: {doc_id: relevance}}``.
Qrels = dict[str, dict[str, int]]
#: A run ``{query_id: {doc_id: score}}`` (one score per document; see :func:`r2r_agent.evals.evaluation.to_run`).
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


def candidate(docid: str, first_stage_score: float, text: str = "") -> Passage:
    """One first-stage candidate: a :class:`r2r_agent.Passage` with its doc id and first-stage score.

    Args:
        docid: The document id (non-empty).
        first_stage_score: The first-stage score (higher is better).
        text: The document text (``""`` when not available: list the id in ``missing_texts``).

    Raises:
        InvalidInputError: for an empty or non-string doc id, or a score that is not a number.

    Example:
        >>> c = candidate("d1", 12.5, "Fleas live 2-3 months.")
        >>> c.id, c.first_stage_score
        ('d1', 12.5)
    """
    if not isinstance(docid, str) or not docid:
        raise InvalidInputError(f"A candidate's docid must be a non-empty str, got {docid!r}.")
    if isinstance(first_stage_score, bool) or not isinstance(first_stage_score, numbers.Real):
        raise InvalidInputError(f"Candidate {docid!r}: the first-stage score must be a number, got "
                                f"{type(first_stage_score).__name__} {first_stage_score!r}.")
    if not isinstance(text, str):
        raise InvalidInputError(f"Candidate {docid!r}: the text must be a str (\"\" when not available, with the id "
                                f"in missing_texts), got {type(text).__name__}.")
    return Passage(text, id=docid, first_stage_score=float(first_stage_score))


def Candidate(docid: str, score: float, text: str | None = None) -> Passage:  # the former class's name and arguments
    """Deprecated, removed in 0.3: candidates are :class:`r2r_agent.Passage` objects; make them with
    :func:`candidate`. (A function spelled as the 0.1 class, so old code keeps running; it is not
    :class:`r2r_agent.candidate.Candidate`, the reranker's per-candidate state.)

    A ``None`` text becomes ``""`` here; record such ids in the dataset's ``missing_texts``.
    """
    warnings.warn("r2r_agent.evals.Candidate is deprecated and goes in 0.3: candidates are r2r_agent.Passage objects; "
                  "make them with r2r_agent.evals.candidate(docid, first_stage_score, text)", DeprecationWarning,
                  stacklevel=2)
    return candidate(docid, score, "" if text is None else text)


def docid(passage: Passage) -> str:
    """A candidate's doc id (``""`` for a passage without one, which :func:`candidate` never makes)."""
    return passage.id or ""


@dataclass(frozen=True)
class CandidateList:
    """One query with its first-stage candidates, in first-stage rank order (one row of ``*.top100.jsonl.gz``).

    Attributes:
        qid: The query id.
        query: The query text.
        candidates: The candidates (:func:`candidate`), best first.
        missing_texts: The doc ids among them whose text is not available (their text is ``""``).
    """

    qid: str
    query: str
    candidates: tuple[Passage, ...] = ()
    missing_texts: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "qid", str(self.qid))
        object.__setattr__(self, "candidates", tuple(self.candidates))
        object.__setattr__(self, "missing_texts", frozenset(self.missing_texts))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict in the shared schema: candidates as ``{"docid", "score", "text"}`` (the
        published name of the first-stage score is ``score``; a missing text is ``null``)."""
        return {"qid": self.qid, "query": self.query, "candidates": [
            {"docid": docid(c), "score": c.first_stage_score, "text": None if c.id in self.missing_texts else c.text}
            for c in self.candidates]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CandidateList:
        """Build from :meth:`to_dict` output (a candidate's score is read from ``first_stage_score`` too)."""
        rows = data.get("candidates") or ()
        score = [row["first_stage_score"] if "first_stage_score" in row else row["score"] for row in rows]
        return cls(
            qid=str(data["qid"]),
            query=data["query"],
            candidates=tuple(candidate(str(row["docid"]), s, row.get("text") or "") for row, s in zip(rows, score)),
            missing_texts=frozenset(str(row["docid"]) for row in rows if row.get("text") is None),
        )

    def scored_docs(self) -> list[ScoredDoc]:
        """The candidates as run entries of this query."""
        return [ScoredDoc(self.qid, docid(c), c.first_stage_score or 0.0) for c in self.candidates]


class PerQueryMeans:
    """Means per query of a record holding ``queries``, ``seconds`` and ``generated_tokens`` (0 without queries)."""

    queries: int
    seconds: float
    generated_tokens: int

    @property
    def seconds_per_query(self) -> float:
        """Mean seconds per query (model loading excluded)."""
        return self.seconds / self.queries if self.queries else 0.0

    @property
    def generated_tokens_per_query(self) -> float:
        """Mean tokens generated per query."""
        return self.generated_tokens / self.queries if self.queries else 0.0


def qrels_from_records(records: Iterable[Qrel]) -> Qrels:
    """Group judgments by query (a repeated ``(query, doc)`` pair keeps its last label)."""
    out: Qrels = {}
    for q in records:
        out.setdefault(q.query_id, {})[q.doc_id] = int(q.relevance)
    return out
