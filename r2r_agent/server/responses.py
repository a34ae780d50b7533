"""A :class:`~r2r_agent.Ranking` in each API's response shape, with r2r's own fields always added.

``relevance_score`` (Cohere) and ``score`` (TEI) are the judgment's calibrated relevance, the probability that the
passage answers the query, in [0, 1]. Without it (a student without a calibrator fitted for its scorer, or
``judge=false``) they are **rank-based**: ``(n - rank + 1) / n`` over the ``n`` documents sent, which orders the
results as the student does but is not a probability; ``relevance_score_kind`` says which (``"calibrated"`` or
``"rank"``). Never a raw cosine: TEI's ``raw_scores: true`` returns the student's own score.
"""

from __future__ import annotations

import math
from typing import Any

from ..types import Judgment, Ranking
from .requests import RerankRequest

#: Cohere bills one search unit per query with up to this many documents.
DOCUMENTS_PER_SEARCH_UNIT = 100


def relevance_score(judgment: Judgment, total: int) -> float:
    """The 0-1 relevance of ``judgment`` (see the module docs): calibrated, else rank-based."""
    if judgment.relevance is not None:
        return float(judgment.relevance)
    return (total - judgment.rank + 1) / total if total else 0.0


def relevance_kind(ranking: Ranking) -> str:
    """``"calibrated"`` when every returned judgment has a relevance, else ``"rank"``."""
    calibrated = all(j.relevance is not None for j in ranking)
    return "calibrated" if calibrated and len(ranking) else "rank"


def _reasons(judgment: Judgment) -> dict[str, Any]:
    """r2r's own fields of one result."""
    return {
        "verdict": judgment.verdict,
        "evidence": judgment.evidence,
        "evidence_span": list(judgment.evidence_span) if judgment.evidence_span is not None else None,
        "explanation": judgment.explanation,
        "rank": judgment.rank,
        "input_rank": judgment.input_rank,
    }


def _spans(judgment: Judgment, score: float, request: RerankRequest) -> list[dict[str, Any]]:
    """Cohere's ``relevant_spans`` of one result: the judged evidence sentence (one span per document), scored by the
    document's relevance, when at or above the threshold. Offsets are Python string indices: Unicode code points."""
    options = request.spans
    if options is None or judgment.evidence_span is None or score < options.threshold:
        return []
    start, end = judgment.evidence_span
    return [{"start": start, "end": end, "score": score}][: options.max_spans]


def _response_fields(ranking: Ranking) -> dict[str, Any]:
    """r2r's own fields of a response."""
    return {
        "answerable": ranking.answerable,
        "comparison": ranking.comparison,
        "stages": [stage.to_dict() for stage in ranking.stages],
        "relevance_score_kind": relevance_kind(ranking),
        "student": ranking.model,
    }


def cohere_response(ranking: Ranking, request: RerankRequest, request_id: str) -> dict[str, Any]:
    """The Cohere v1/v2 ``/rerank`` response, plus r2r's fields (per result and per response)."""
    total = len(request.passages)
    results = []
    for judgment in ranking:
        score = relevance_score(judgment, total)
        result: dict[str, Any] = {"index": judgment.input_rank - 1, "relevance_score": score}
        if request.return_documents:
            result["document"] = {"text": request.passages[judgment.input_rank - 1].text}
        if request.spans is not None:
            result["relevant_spans"] = _spans(judgment, score, request)
        result.update(_reasons(judgment))
        results.append(result)
    version = "1" if request.api == "v1" else "2"
    units = max(1, math.ceil(total / DOCUMENTS_PER_SEARCH_UNIT))
    return {"id": request_id, "results": results,
            "meta": {"api_version": {"version": version}, "billed_units": {"search_units": units}},
            **_response_fields(ranking)}


def tei_response(ranking: Ranking, request: RerankRequest) -> list[dict[str, Any]]:
    """TEI's ``/rerank`` response: ``[{index, score, text?}]`` best first, plus r2r's fields per item."""
    total = len(request.passages)
    out = []
    for judgment in ranking:
        item: dict[str, Any] = {"index": judgment.input_rank - 1,
                                "score": judgment.score if request.raw_scores else relevance_score(judgment, total)}
        if request.return_documents:
            item["text"] = request.passages[judgment.input_rank - 1].text
        item.update(_reasons(judgment))
        out.append(item)
    return out


__all__ = ["DOCUMENTS_PER_SEARCH_UNIT", "cohere_response", "relevance_kind", "relevance_score", "tei_response"]
