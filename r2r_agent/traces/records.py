"""Trace records: what one rerank call saw (the candidates), did (the order, scores, stages) and said (the reasons).

A :class:`TraceRecord` is built from a :class:`~r2r_agent.Ranking` and the passages that went in
(:meth:`TraceRecord.from_ranking`), and round-trips through one JSON line (:meth:`TraceRecord.to_json`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import Any

from ..errors import InvalidInputError
from ..types import Passage, Ranking, StageCost, from_fields

#: Environment variable naming the JSONL file a default :class:`~r2r_agent.Reranker` appends traces to.
TRACE_PATH_ENV = "R2R_TRACE_PATH"
#: Environment variable with a run label stamped on those traces (e.g. the student version).
TRACE_RUN_ENV = "R2R_TRACE_RUN"
#: Version of the record layout written by :meth:`TraceRecord.to_dict`.
TRACE_FORMAT = 1
#: How many characters of each candidate's text a record keeps (enough to recognise it in ``r2r traces show``).
PREVIEW_CHARS = 200
#: Environment variable: ``0`` (or ``false``, ``no``, ``off``) makes trace sinks drop the returned passages' whole
#: text. By default a record keeps it, so the trace page can show the evidence in place. Privacy: a trace then holds
#: the user's query and the full text of every returned document (with or without it, the query, a 200-character
#: preview of every candidate, the evidence sentences and the explanations); treat trace files as you treat the
#: documents, or turn the text off.
TRACE_TEXT_ENV = "R2R_TRACE_TEXT"


def keep_text_default() -> bool:
    """Whether sinks keep the returned passages' text when not told: yes unless ``$R2R_TRACE_TEXT`` says no."""
    return os.environ.get(TRACE_TEXT_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class CallDetails:
    """What a rerank call knew that its :class:`~r2r_agent.Ranking` does not keep, for its trace record.

    Attributes:
        scores: ``input index (0-based) -> (score, stage)`` for every candidate: the value it was ordered by and
            what that value is.
        judged: ``input index -> (relevance, verdict)`` for each judged candidate.
        relevant_at: The calibrator's "relevant" threshold, if verdicts were given.
        partial_at: The calibrator's "partial" threshold.
    """

    scores: Mapping[int, tuple[float, str]] = field(default_factory=dict)
    judged: Mapping[int, tuple[float | None, str | None]] = field(default_factory=dict)
    relevant_at: float | None = None
    partial_at: float | None = None


@dataclass(frozen=True)
class TraceCandidate:
    """One passage as it came in.

    Attributes:
        input_rank: 1-based position in the input (the first-stage order).
        id: The passage id, if any.
        first_stage_score: The retriever's score, if one was passed in.
        preview: The start of the passage text (at most :data:`PREVIEW_CHARS` characters, whitespace collapsed).
        truncated: Whether a model cut the passage to its token budget; ``None`` when unknown (the passage was not
            among the returned ones).
        score: The student's score of it (the value the order was made from; see :attr:`stage` for what it is),
            also for a passage that was not returned; ``None`` in records written before this was kept.
        stage: What ``score`` is: ``"score"`` (the scorer's), ``"score+first_stage"`` (mixed with the retriever's),
            ``"rrf"`` (reciprocal-rank fusion), ``"rescore"``, ...
        relevance: Its calibrated relevance, when it was judged (returned, or dropped by ``min_relevance``).
        verdict: Its verdict, when it was judged.
    """

    input_rank: int
    id: str | None = None
    first_stage_score: float | None = None
    preview: str = ""
    truncated: bool | None = None
    score: float | None = None
    stage: str | None = None
    relevance: float | None = None
    verdict: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TraceCandidate:
        """Build from :meth:`to_dict` output (unknown keys are ignored, types are checked)."""
        return from_fields(cls, data)


@dataclass(frozen=True)
class TraceResult:
    """One returned passage.

    Attributes:
        rank: 1-based position in the reranked order.
        input_rank: 1-based position in the input (links to :class:`TraceCandidate`).
        id: The passage id, if any.
        score: The student's score (from ``stage``).
        stage: The cascade stage that produced ``score``.
        explanation: Why the passage is (or is not) relevant, or ``None`` when it was not explained.
        truncated: Whether a model cut the passage to its token budget.
        relevance: The probability that it answers the query (``None``: not judged).
        verdict: ``"relevant"``, ``"partial"`` or ``"not_relevant"`` (``None``: not judged).
        evidence: Its best-answering sentence.
        evidence_span: The evidence's character offsets in the passage.
        unsupported: Claims the guard removed from the explanation.
        text: The whole passage, so the evidence can be shown in place (``None`` when the sink keeps no text, see
            :data:`TRACE_TEXT_ENV`, or in records written before it was kept).
    """

    rank: int
    input_rank: int
    id: str | None
    score: float
    stage: str = "score"
    explanation: str | None = None
    truncated: bool = False
    relevance: float | None = None
    verdict: str | None = None
    evidence: str | None = None
    evidence_span: tuple[int, int] | None = None
    unsupported: tuple[str, ...] = ()
    text: str | None = None

    def __post_init__(self) -> None:
        if self.evidence_span is not None:
            span = tuple(self.evidence_span)
            if len(span) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in span):
                raise InvalidInputError(f"TraceResult.evidence_span must be two integer offsets, got {span!r:.80}")
            object.__setattr__(self, "evidence_span", span)
        unsupported = tuple(self.unsupported)
        if not all(isinstance(claim, str) for claim in unsupported):
            # A record read back from a file is untrusted: `"unsupported": [1, 2]` must be a bad line, not a crash
            # later in whatever renders it.
            raise InvalidInputError(f"TraceResult.unsupported must be a list of strings, got {unsupported!r:.80}")
        object.__setattr__(self, "unsupported", unsupported)

    @property
    def move(self) -> int:
        """How many places the passage moved up (negative: down)."""
        return self.input_rank - self.rank

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TraceResult:
        """Build from :meth:`to_dict` output (unknown keys are ignored, types are checked)."""
        return from_fields(cls, data)


# Raw surrogates survive json.dumps(ensure_ascii=False) (only inside strings) but not encoding to UTF-8.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _preview(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class TraceRecord:
    """What one rerank call saw, did and said.

    Attributes:
        query: The query.
        candidates: Every passage that came in, in input order.
        results: The returned passages, best first.
        comparison: Why the top passages are ordered as they are, or ``None``.
        top_n: How many results were asked for (``None``: all).
        model: The student that ranked (scorer and explainer).
        adapter: The distilled adapter in use, if any.
        prompt_version: The version of the prompts the student saw.
        stages: What each cascade stage cost.
        seconds: Wall-clock seconds of the whole call (``None`` when not measured).
        timestamp: When the record was made (ISO 8601, UTC).
        run: An optional label for the run (a student version, an experiment), set by the sink.
        answerable: Whether some returned passage was judged to answer the query (``None``: not judged).
        query_truncated: Whether a model cut the query.
        config: The call's settings (:class:`~r2r_agent.RerankConfig` as a dict), when recorded.
        thresholds: The calibrator's verdict thresholds (``{"partial": .., "relevant": ..}``), when verdicts were given.
        load_seconds: Seconds this call spent loading the student's models the first time (part of ``seconds``, in
            no stage); ``None`` when nothing was loaded.
    """

    query: str
    candidates: tuple[TraceCandidate, ...] = ()
    results: tuple[TraceResult, ...] = ()
    comparison: str | None = None
    top_n: int | None = None
    model: str = ""
    adapter: str | None = None
    prompt_version: str = ""
    stages: tuple[StageCost, ...] = ()
    seconds: float | None = None
    timestamp: str = field(default_factory=_now)
    run: str | None = None
    answerable: bool | None = None
    query_truncated: bool = False
    config: Mapping[str, Any] = field(default_factory=dict)
    thresholds: Mapping[str, Any] = field(default_factory=dict)
    load_seconds: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidates", tuple(self.candidates))
        object.__setattr__(self, "results", tuple(self.results))
        object.__setattr__(self, "stages", tuple(self.stages))
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0
                   for v in self.thresholds.values()):
            raise InvalidInputError(f"TraceRecord.thresholds must map verdicts to numbers in [0, 1], got "
                                    f"{dict(self.thresholds)!r:.80}")
        # An index for candidate(): rendering looks up every result's candidate, and a scan each time was
        # quadratic (a 50k-candidate record took 34.5 s to show).
        object.__setattr__(self, "_by_input_rank", {c.input_rank: c for c in reversed(self.candidates)})

    @classmethod
    def from_ranking(cls, ranking: Ranking, passages: Sequence[Passage] | None = None, *, top_n: int | None = None,
                     seconds: float | None = None, run: str | None = None,
                     preview_chars: int = PREVIEW_CHARS, config: Mapping[str, Any] | None = None,
                     details: CallDetails | None = None, load_seconds: float | None = None,
                     text: bool = True) -> TraceRecord:
        """Build a record from a :class:`~r2r_agent.Ranking` and the passages that went in.

        Args:
            ranking: The result of the call.
            passages: The input passages in input order (as :class:`~r2r_agent.Passage`). Without them the candidates
                are only those the ranking returned.
            top_n: The ``top_n`` the call asked for.
            seconds: Wall-clock seconds of the call.
            run: A run label.
            preview_chars: How many characters of each candidate's text to keep.
            config: The call's settings, to record.
            details: Every candidate's score and the judged verdicts, from the call (:class:`CallDetails`).
            load_seconds: Seconds the call spent loading models.
            text: Keep the returned passages' whole text.

        Raises:
            InvalidInputError: when ``passages`` do not match the ranking (a different number of candidates).
        """
        truncated = {j.input_rank: j.truncated for j in ranking}
        details = details or CallDetails()
        known = passages is not None and len(details.scores) == len(passages)

        def extra(index: int) -> dict[str, Any]:
            if not known or index not in details.scores:
                return {}
            score, stage = details.scores[index]
            relevance, verdict = details.judged.get(index, (None, None))
            return {"score": float(score), "stage": stage, "relevance": relevance, "verdict": verdict}

        if passages is not None:
            if ranking.num_candidates and len(passages) != ranking.num_candidates:
                raise InvalidInputError(
                    f"TraceRecord.from_ranking: the ranking was made from {ranking.num_candidates} passages but "
                    f"{len(passages)} were given; pass the same passages that went into the rerank call")
            candidates = tuple(
                TraceCandidate(input_rank=i, id=p.id, first_stage_score=p.first_stage_score,
                               preview=_preview(p.text, preview_chars), truncated=truncated.get(i), **extra(i - 1))
                for i, p in enumerate(passages, start=1))
        else:
            candidates = tuple(
                TraceCandidate(input_rank=j.input_rank, id=j.id, first_stage_score=j.first_stage_score,
                               preview=_preview(j.text, preview_chars), truncated=j.truncated, score=j.score,
                               stage=j.stage, relevance=j.relevance, verdict=j.verdict)
                for j in sorted(ranking, key=lambda j: j.input_rank))
        results = tuple(TraceResult(rank=j.rank, input_rank=j.input_rank, id=j.id, score=j.score, stage=j.stage,
                                    explanation=j.explanation, truncated=j.truncated, relevance=j.relevance,
                                    verdict=j.verdict, evidence=j.evidence, evidence_span=j.evidence_span,
                                    unsupported=j.unsupported, text=j.text if text else None) for j in ranking)
        thresholds = ({"partial": details.partial_at, "relevant": details.relevant_at}
                      if details.relevant_at is not None and details.partial_at is not None else {})
        return cls(query=ranking.query, candidates=candidates, results=results, comparison=ranking.comparison,
                   top_n=top_n, model=ranking.model, adapter=ranking.adapter, prompt_version=ranking.prompt_version,
                   stages=ranking.stages, seconds=seconds, run=run, answerable=ranking.answerable,
                   query_truncated=ranking.query_truncated, config=dict(config or {}), thresholds=thresholds,
                   load_seconds=load_seconds)

    def without_text(self) -> TraceRecord:
        """This record without the returned passages' whole text (previews and evidence stay)."""
        if all(r.text is None for r in self.results):
            return self
        return replace(self, results=tuple(replace(r, text=None) for r in self.results))

    @property
    def num_candidates(self) -> int:
        """How many passages came in."""
        return len(self.candidates)

    def candidate(self, input_rank: int) -> TraceCandidate | None:
        """The candidate at ``input_rank`` (1-based), if recorded."""
        by_rank: dict[int, TraceCandidate] = self._by_input_rank  # type: ignore[attr-defined]
        return by_rank.get(input_rank)

    def dropped(self) -> list[TraceCandidate]:
        """Candidates that were in the input's first ``len(results)`` places but are not returned (pushed out)."""
        returned = {r.input_rank for r in self.results}
        return [c for c in self.candidates if c.input_rank <= len(self.results) and c.input_rank not in returned]

    def moves(self) -> list[TraceResult]:
        """The returned passages ordered by how far they moved (largest first; ties keep the output order)."""
        return sorted(self.results, key=lambda r: (-abs(r.move), r.rank))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (with a ``format`` version)."""
        return {
            "format": TRACE_FORMAT,
            "query": self.query,
            "run": self.run,
            "timestamp": self.timestamp,
            "model": self.model,
            "adapter": self.adapter,
            "prompt_version": self.prompt_version,
            "top_n": self.top_n,
            "seconds": self.seconds,
            "stages": [s.to_dict() for s in self.stages],
            "candidates": [c.to_dict() for c in self.candidates],
            "results": [r.to_dict() for r in self.results],
            "comparison": self.comparison,
            "answerable": self.answerable,
            "query_truncated": self.query_truncated,
            "config": dict(self.config),
            "thresholds": dict(self.thresholds),
            "load_seconds": self.load_seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TraceRecord:
        """Build from :meth:`to_dict` output.

        Raises:
            InvalidInputError: when ``data`` is not a trace record of a known format.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("query"), str):
            raise InvalidInputError(
                "a trace record must be a JSON object with a string 'query' (as written by JsonlTraceSink), got "
                f"{type(data).__name__}" + (f" with keys {sorted(map(str, data))[:8]}" if isinstance(data, Mapping)
                                            else ""))
        version = data.get("format", TRACE_FORMAT)
        if version != TRACE_FORMAT:
            raise InvalidInputError(f"trace record format {version!r} is not supported (this version reads format "
                                    f"{TRACE_FORMAT}); upgrade r2r-agent to read it")
        def items(key: str) -> list[Any]:
            value = data.get(key) or []
            if not isinstance(value, list):
                raise InvalidInputError(f"a trace record's {key!r} must be a list, got {type(value).__name__}")
            return value

        scalars = {k: v for k, v in data.items() if k not in ("candidates", "results", "stages")}
        scalars.update({k: data.get(k) or "" for k in ("model", "prompt_version", "timestamp")})
        return replace(from_fields(cls, scalars),
                       candidates=tuple(TraceCandidate.from_dict(c) for c in items("candidates")),
                       results=tuple(TraceResult.from_dict(r) for r in items("results")),
                       stages=tuple(StageCost.from_dict(s) for s in items("stages")))

    def to_json(self) -> str:
        """One line of JSON (no newline), valid UTF-8 whatever the text held.

        A lone surrogate (``"\\ud800"``, which Python strings allow and UTF-8 cannot encode) is written as its JSON
        escape, so the record is kept and reads back to the same string; before, it could not be written and the
        call's record was lost.
        """
        text = json.dumps(self.to_dict(), ensure_ascii=False)
        return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)

    @classmethod
    def from_json(cls, text: str) -> TraceRecord:
        """Parse :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))


