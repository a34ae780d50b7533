"""Rerank calls as OpenTelemetry spans in the OpenInference conventions (a RERANKER span per call).

:class:`OpenInferenceSink` is a trace sink: give it to ``Reranker(trace=...)`` (alone, or beside a file sink through
:class:`~r2r_agent.traces.TeeTraceSink`), or set ``R2R_OTEL=1``. Each call becomes one span named ``r2r.rerank``,
a child of whatever span is current in the caller (a LlamaIndex or LangChain step traced by OpenInference, your own
``tracer.start_as_current_span``), so it shows up inside the agent's trace in Phoenix, Langfuse, LangSmith or any OTLP
backend. The span carries:

- ``openinference.span.kind = "RERANKER"``, ``reranker.query``, ``reranker.model_name``, ``reranker.top_k``,
  ``input.value`` (the query) and ``output.value`` (a JSON summary: answerable, the comparison, the ranked ids);
- ``reranker.output_documents.{i}.document.{id,content,score,metadata}``: the returned passages, best first, with
  r2r's verdict, relevance, evidence sentence and span, explanation, input rank and flags in ``metadata`` (JSON);
- ``reranker.input_documents.{i}.document.{id,content,score,metadata}``: the first candidates in input order (score =
  the retriever's score, content = the 200-character preview; r2r's score and verdict in ``metadata``);
- ``r2r.answerable``, ``r2r.comparison``, ``r2r.num_candidates``, ``r2r.thresholds.*``, ``r2r.stages.*``,
  ``r2r.seconds``, ``r2r.load_seconds``, ``r2r.run``, ``r2r.prompt_version``, ``r2r.adapter``, and ``metadata``.

Only ``opentelemetry-api`` is needed here; where the spans go (an OTLP exporter, Phoenix) is the application's
TracerProvider (``pip install 'r2r-agent[otel]'`` brings the SDK and the OTLP/HTTP exporter).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..errors import R2RError
from .records import TraceRecord, keep_text_default

logger = logging.getLogger(__name__)

#: Environment variable: ``1`` (or ``true``, ``yes``, ``on``) makes every Reranker also send each call as an
#: OpenTelemetry span (:class:`OpenInferenceSink`) to the global TracerProvider. Off by default.
OTEL_ENV = "R2R_OTEL"
#: The span's name.
SPAN_NAME = "r2r.rerank"
#: How many input documents a span lists by default. The OpenTelemetry SDK keeps 128 attributes per span unless
#: ``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`` says otherwise and drops the oldest beyond that; 16 inputs (4 attributes
#: each), 10 outputs and the span's own fit. The span's own attributes are set last, so they are never the ones lost.
INPUT_DOCUMENTS = 16


def otel_enabled() -> bool:
    """Whether ``$R2R_OTEL`` asks for spans."""
    return os.environ.get(OTEL_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _put(attributes: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` unless ``value`` is None (OpenTelemetry attributes cannot be null)."""
    if value is not None:
        attributes[key] = value


def span_attributes(record: TraceRecord, *, text: bool = True, max_input_documents: int | None = INPUT_DOCUMENTS
                    ) -> dict[str, Any]:
    """The OpenInference RERANKER attributes of one traced call, least important first (see :data:`INPUT_DOCUMENTS`).

    Args:
        record: The call.
        text: Put each returned passage's whole text in its ``document.content`` (when the record has it); without,
            the evidence sentence or the preview.
        max_input_documents: How many input documents to list (``None``: all).

    Example:
        >>> from r2r_agent.traces import TraceRecord, TraceResult
        >>> record = TraceRecord(query="q", results=(TraceResult(rank=1, input_rank=2, id="d2", score=0.9,
        ...                                                       verdict="relevant"),), model="m", answerable=True)
        >>> attributes = span_attributes(record)
        >>> attributes["openinference.span.kind"], attributes["reranker.output_documents.0.document.id"]
        ('RERANKER', 'd2')
        >>> json.loads(attributes["reranker.output_documents.0.document.metadata"])["verdict"]
        'relevant'
    """
    attributes: dict[str, Any] = {}
    inputs = record.candidates if max_input_documents is None else record.candidates[:max(0, max_input_documents)]
    for i, c in enumerate(inputs):
        prefix = f"reranker.input_documents.{i}.document."
        _put(attributes, prefix + "id", c.id)
        _put(attributes, prefix + "content", c.preview)
        _put(attributes, prefix + "score", c.first_stage_score)
        attributes[prefix + "metadata"] = _json({k: v for k, v in (
            ("input_rank", c.input_rank), ("r2r_score", c.score), ("stage", c.stage), ("verdict", c.verdict),
            ("relevance", c.relevance)) if v is not None})
    for i, r in enumerate(record.results):
        prefix = f"reranker.output_documents.{i}.document."
        candidate = record.candidate(r.input_rank)
        content = r.text if text and r.text is not None else r.evidence or (candidate.preview if candidate else None)
        _put(attributes, prefix + "id", r.id)
        _put(attributes, prefix + "content", content)
        attributes[prefix + "score"] = float(r.score)
        attributes[prefix + "metadata"] = _json({k: v for k, v in (
            ("rank", r.rank), ("input_rank", r.input_rank), ("verdict", r.verdict), ("relevance", r.relevance),
            ("evidence", r.evidence), ("evidence_span", list(r.evidence_span) if r.evidence_span else None),
            ("explanation", r.explanation), ("stage", r.stage), ("truncated", r.truncated or None),
            ("unsupported", list(r.unsupported) or None)) if v is not None})
    for i, stage in enumerate(record.stages):
        attributes[f"r2r.stages.{i}.name"] = stage.stage
        attributes[f"r2r.stages.{i}.seconds"] = float(stage.seconds)
        attributes[f"r2r.stages.{i}.items"] = int(stage.items)
    for name, value in record.thresholds.items():
        attributes[f"r2r.thresholds.{name}"] = float(value)
    _put(attributes, "r2r.seconds", record.seconds)
    _put(attributes, "r2r.load_seconds", record.load_seconds)
    _put(attributes, "r2r.run", record.run)
    _put(attributes, "r2r.adapter", record.adapter)
    _put(attributes, "r2r.prompt_version", record.prompt_version or None)
    attributes["r2r.num_candidates"] = record.num_candidates
    attributes["r2r.query_truncated"] = record.query_truncated
    summary = {"answerable": record.answerable, "comparison": record.comparison,
               "ranked": [{"id": r.id, "input_rank": r.input_rank, "verdict": r.verdict} for r in record.results]}
    attributes["output.value"] = _json(summary)
    attributes["output.mime_type"] = "application/json"
    attributes["input.value"] = record.query
    attributes["input.mime_type"] = "text/plain"
    attributes["metadata"] = _json({k: v for k, v in (("answerable", record.answerable), ("run", record.run),
                                                      ("num_candidates", record.num_candidates)) if v is not None})
    _put(attributes, "r2r.comparison", record.comparison)
    _put(attributes, "r2r.answerable", record.answerable)
    attributes["reranker.top_k"] = record.top_n if record.top_n is not None else len(record.results)
    attributes["reranker.model_name"] = record.model
    attributes["reranker.query"] = record.query
    attributes["openinference.span.kind"] = "RERANKER"
    return attributes


class OpenInferenceSink:
    """A trace sink that sends each rerank call as an OpenInference RERANKER span (see the module docs).

    The span is started and ended when the call's record is written, which the Reranker does on the calling thread
    just before the call returns, so its parent is the caller's current span; its start is set ``record.seconds``
    before its end, so it covers the call. ``rerank_many`` and ``arerank`` carry the caller's context into their
    worker threads, so their spans nest as well.

    Args:
        tracer_provider: Where the spans go (default: the global one, ``opentelemetry.trace.set_tracer_provider``).
        run: A label stamped on records that have none (``r2r.run``).
        text: Put the returned passages' whole text in the span (default: yes unless ``$R2R_TRACE_TEXT`` is ``0``).
            A span then holds the query and the text of every returned document: treat the backend as you treat the
            documents.
        max_input_documents: How many input documents each span lists (``None``: all; mind the SDK's attribute
            limit, :data:`INPUT_DOCUMENTS`).

    Raises:
        R2RError: when ``opentelemetry-api`` is not installed.
    """

    def __init__(self, *, tracer_provider: Any = None, run: str | None = None, text: bool | None = None,
                 max_input_documents: int | None = INPUT_DOCUMENTS) -> None:
        try:
            from opentelemetry import trace as trace_api
        except ImportError:
            raise R2RError("OpenInferenceSink needs OpenTelemetry: pip install 'r2r-agent[otel]' (or "
                           "opentelemetry-api with your own SDK setup)") from None
        if max_input_documents is not None and (isinstance(max_input_documents, bool) or
                                                not isinstance(max_input_documents, int) or max_input_documents < 0):
            raise R2RError(f"OpenInferenceSink: max_input_documents must be an integer >= 0 or None, got "
                           f"{max_input_documents!r:.40}")
        self._trace_api = trace_api
        self._tracer = trace_api.get_tracer("r2r_agent", tracer_provider=tracer_provider)
        self.run = run
        self.text = keep_text_default() if text is None else text
        self.max_input_documents = max_input_documents

    def write(self, record: TraceRecord) -> None:
        """Send ``record`` as one ended span, a child of the current span."""
        end = time.time_ns()
        seconds = record.seconds if isinstance(record.seconds, (int, float)) and record.seconds > 0 else 0.0
        if self.run is not None and record.run is None:
            record = replace(record, run=self.run)
        attributes: Mapping[str, Any] = span_attributes(record, text=self.text,
                                                        max_input_documents=self.max_input_documents)
        span = self._tracer.start_span(SPAN_NAME, start_time=end - int(seconds * 1e9), attributes=attributes)
        span.end(end_time=end)

    def __repr__(self) -> str:
        return f"OpenInferenceSink(run={self.run!r}, text={self.text!r})"
