"""Explanation traces: one record per rerank call, written to a sink, for debugging agents and comparing students.

A :class:`TraceRecord` holds what went in (the query, each candidate's id, input rank and first-stage score), what
came out (the order, the student's scores, the explanations and the comparison), and what it cost (the stages and the
wall time), with the model, adapter and prompt version that produced it.

A sink is any object with ``write(record)`` (:class:`TraceSink`). Two are provided: :class:`MemoryTraceSink` (a list)
and :class:`JsonlTraceSink` (one JSON line per call, appended). A :class:`~r2r_agent.Reranker` traces every call when
given ``trace=`` (a sink or a file path), or, by default, when the environment variable ``R2R_TRACE_PATH`` names a
file (``R2R_TRACE_RUN`` adds a run label). Tracing never fails a query: a sink that cannot write logs one warning.

Example:
    >>> sink = MemoryTraceSink()
    >>> reranker = Reranker(trace=sink)                                   # doctest: +SKIP
    >>> ranking = reranker.rerank("how long do fleas live", passages)   # doctest: +SKIP
    >>> sink.records[-1].moves()[0]                                      # doctest: +SKIP

:class:`OpenInferenceSink` sends each call as an OpenTelemetry RERANKER span (OpenInference conventions) to the
application's TracerProvider (or set ``R2R_OTEL=1``); :class:`TeeTraceSink` writes to several sinks.

``r2r traces show FILE`` renders a trace file; ``r2r traces diff A B`` compares two runs of the same queries.
"""

from __future__ import annotations

from .diff import (
    DocumentShift,
    QueryDiff,
    TraceDiff,
    diff_records,
    diff_traces,
    kendall_tau,
    rank_biased_overlap,
)
from .otel import OTEL_ENV, OpenInferenceSink, span_attributes
from .records import (
    PREVIEW_CHARS,
    TRACE_FORMAT,
    TRACE_PATH_ENV,
    TRACE_RUN_ENV,
    TRACE_TEXT_ENV,
    CallDetails,
    TraceCandidate,
    TraceRecord,
    TraceResult,
)
from .sinks import (
    JsonlTraceSink,
    MemoryTraceSink,
    TeeTraceSink,
    TraceFile,
    Tracer,
    TraceSink,
    load_traces,
    read_traces,
)

__all__ = [
    "OTEL_ENV",
    "PREVIEW_CHARS",
    "TRACE_FORMAT",
    "TRACE_PATH_ENV",
    "TRACE_RUN_ENV",
    "TRACE_TEXT_ENV",
    "CallDetails",
    "DocumentShift",
    "JsonlTraceSink",
    "MemoryTraceSink",
    "OpenInferenceSink",
    "QueryDiff",
    "TeeTraceSink",
    "TraceCandidate",
    "TraceDiff",
    "TraceFile",
    "TraceRecord",
    "TraceResult",
    "TraceSink",
    "Tracer",
    "diff_records",
    "diff_traces",
    "kendall_tau",
    "load_traces",
    "rank_biased_overlap",
    "read_traces",
    "span_attributes",
]
