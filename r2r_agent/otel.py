"""OpenTelemetry export of rerank calls: each call as an OpenInference RERANKER span (off by default).

Install the extra (``pip install 'r2r-agent[otel]'``), set up a TracerProvider with an exporter as usual, then either
pass the sink or set ``R2R_OTEL=1``::

    from r2r_agent import Reranker
    from r2r_agent.otel import OpenInferenceSink

    reranker = Reranker(trace=OpenInferenceSink())
    # or, beside a trace file: Reranker(trace=TeeTraceSink(JsonlTraceSink("traces.jsonl"), OpenInferenceSink()))

The span nests under the caller's current span. The attributes are listed in :mod:`r2r_agent.traces.otel`; the
implementation lives there, beside the other trace sinks.
"""

from __future__ import annotations

from .traces.otel import INPUT_DOCUMENTS, OTEL_ENV, SPAN_NAME, OpenInferenceSink, otel_enabled, span_attributes
from .traces.sinks import TeeTraceSink

__all__ = ["INPUT_DOCUMENTS", "OTEL_ENV", "SPAN_NAME", "OpenInferenceSink", "TeeTraceSink", "otel_enabled",
           "span_attributes"]
