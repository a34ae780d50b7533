"""Issue 22 item 7: each rerank call as an OpenInference RERANKER span, checked with the OpenTelemetry SDK's in-memory
exporter (nesting under the caller's span, the documents and r2r's fields), and the ``R2R_OTEL`` switch."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from r2r_agent import Reranker  # noqa: E402
from r2r_agent.otel import OTEL_ENV, OpenInferenceSink, TeeTraceSink  # noqa: E402
from r2r_agent.traces import TRACE_PATH_ENV, TRACE_RUN_ENV, TRACE_TEXT_ENV, MemoryTraceSink, Tracer  # noqa: E402

from .tiny_traces import FLEAS, PASSAGES, student  # noqa: E402


@pytest.fixture(autouse=True)
def _no_trace_env(monkeypatch):
    for name in (TRACE_PATH_ENV, TRACE_RUN_ENV, TRACE_TEXT_ENV, OTEL_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def spans():
    """A TracerProvider of our own (not the global one) and what it exported."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _docs(attributes, which: str) -> list[dict]:
    docs: dict[int, dict] = {}
    prefix = f"reranker.{which}_documents."
    for key, value in attributes.items():
        if key.startswith(prefix):
            index, _, field = key[len(prefix):].partition(".document.")
            docs.setdefault(int(index), {})[field] = value
    return [docs[i] for i in sorted(docs)]


def test_a_rerank_call_is_a_reranker_span_inside_the_callers_span(spans):
    provider, exporter = spans
    reranker = Reranker(student(), trace=OpenInferenceSink(tracer_provider=provider, run="v1"), explain_top=3,
                        compare_top=3)
    agent = provider.get_tracer("agent")
    with agent.start_as_current_span("agent step") as parent:
        ranking = reranker.rerank(FLEAS, PASSAGES, top_n=3)
    finished = {s.name: s for s in exporter.get_finished_spans()}
    assert set(finished) == {"agent step", "r2r.rerank"}
    span = finished["r2r.rerank"]
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert span.context.trace_id == parent.get_span_context().trace_id
    assert parent.start_time <= span.start_time <= span.end_time <= parent.end_time
    a = span.attributes
    assert a["openinference.span.kind"] == "RERANKER"
    assert a["reranker.query"] == FLEAS == a["input.value"]
    assert a["reranker.model_name"] == ranking.model and a["reranker.top_k"] == 3
    assert a["r2r.answerable"] is ranking.answerable is True
    assert a["r2r.comparison"] == ranking.comparison and a["r2r.run"] == "v1"
    assert a["r2r.num_candidates"] == 5 and a["r2r.thresholds.relevant"] == 0.6
    assert [a[f"r2r.stages.{i}.name"] for i in range(len(ranking.stages))] == [s.stage for s in ranking.stages]
    outputs = _docs(a, "output")
    assert [d["id"] for d in outputs] == [j.id for j in ranking]
    for doc, judged in zip(outputs, ranking, strict=True):
        meta = json.loads(doc["metadata"])
        assert doc["score"] == judged.score and doc["content"] == judged.text
        assert meta["verdict"] == judged.verdict and meta["relevance"] == judged.relevance
        assert meta["input_rank"] == judged.input_rank and meta["rank"] == judged.rank
        assert meta["evidence"] == judged.evidence and tuple(meta["evidence_span"]) == judged.evidence_span
        assert meta["explanation"] == judged.explanation
        start, end = judged.evidence_span
        assert doc["content"][start:end] == judged.evidence
    inputs = _docs(a, "input")
    assert [d["id"] for d in inputs] == [p.id for p in PASSAGES]
    assert [d["score"] for d in inputs] == [p.first_stage_score for p in PASSAGES]
    assert json.loads(inputs[2]["metadata"])["input_rank"] == 3
    summary = json.loads(a["output.value"])
    assert summary["answerable"] is True and [r["id"] for r in summary["ranked"]] == [j.id for j in ranking]


def test_without_a_current_span_the_call_is_a_root_span(spans):
    provider, exporter = spans
    Reranker(student(), trace=OpenInferenceSink(tracer_provider=provider)).rerank(FLEAS, PASSAGES, top_n=2)
    (span,) = exporter.get_finished_spans()
    assert span.parent is None and span.attributes["reranker.top_k"] == 2


def test_text_off_sends_the_evidence_and_inputs_are_capped(spans):
    provider, exporter = spans
    sink = OpenInferenceSink(tracer_provider=provider, text=False, max_input_documents=2)
    ranking = Reranker(student(), trace=sink).rerank(FLEAS, PASSAGES, top_n=2)
    (span,) = exporter.get_finished_spans()
    assert [d["content"] for d in _docs(span.attributes, "output")] == [j.evidence for j in ranking]
    assert len(_docs(span.attributes, "input")) == 2
    assert span.attributes["r2r.num_candidates"] == 5


def test_with_the_sdks_default_limit_the_spans_own_attributes_survive(spans):
    provider, exporter = spans  # 128 attributes per span by default; 60 candidates x 4 is far more
    many = [PASSAGES[i % 5].__class__(f"{PASSAGES[i % 5].text} ({i})", id=f"p{i}") for i in range(60)]
    Reranker(student(), trace=OpenInferenceSink(tracer_provider=provider, max_input_documents=None)).rerank(
        FLEAS, many, top_n=10)
    (span,) = exporter.get_finished_spans()
    a = span.attributes
    assert span.dropped_attributes > 0  # the first input documents went, nothing else
    assert a["openinference.span.kind"] == "RERANKER" and a["reranker.query"] == FLEAS
    assert len(_docs(a, "output")) == 10


def test_r2r_otel_turns_spans_on_beside_the_trace_file(spans, monkeypatch, tmp_path):
    from opentelemetry import trace as trace_api

    provider, exporter = spans
    monkeypatch.setattr(trace_api, "get_tracer", lambda *a, **k: provider.get_tracer("r2r_agent"))
    monkeypatch.setenv(OTEL_ENV, "1")
    monkeypatch.setenv(TRACE_PATH_ENV, str(tmp_path / "t.jsonl"))
    tracer = Tracer.from_option(None)
    assert isinstance(tracer.sink, TeeTraceSink)
    Reranker(student()).rerank(FLEAS, PASSAGES, top_n=2)
    assert len(exporter.get_finished_spans()) == 1
    assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 1
    memory = MemoryTraceSink()
    assert isinstance(Tracer.from_option(memory).sink, TeeTraceSink)
    assert Tracer.from_option(False) is None
    monkeypatch.setenv(OTEL_ENV, "0")
    assert Tracer.from_option(memory).sink is memory


def test_a_failing_sink_does_not_stop_the_others():
    class Broken:
        def write(self, record):
            raise OSError("disk full")

    memory = MemoryTraceSink()
    reranker = Reranker(student(), trace=TeeTraceSink(Broken(), memory))
    reranker.rerank(FLEAS, PASSAGES, top_n=2)  # the trace never fails the call
    assert len(memory) == 1
    with pytest.raises(Exception, match="write"):
        TeeTraceSink(memory, object())


def test_bad_settings_are_refused():
    from r2r_agent.errors import R2RError

    with pytest.raises(R2RError, match="max_input_documents"):
        OpenInferenceSink(max_input_documents=-1)


def test_rerank_many_and_arerank_spans_nest_under_the_callers_span(spans):
    import asyncio

    provider, exporter = spans
    reranker = Reranker(student(), trace=OpenInferenceSink(tracer_provider=provider))
    agent = provider.get_tracer("agent")
    with agent.start_as_current_span("batch") as batch:
        reranker.rerank_many([FLEAS, "flea life cycle stages", "why do cats purr"], [PASSAGES] * 3, top_n=2,
                             concurrency=3)  # worker threads: the caller's context travels with each call

    async def agent_step():
        with agent.start_as_current_span("async step") as step:
            await asyncio.gather(reranker.arerank(FLEAS, PASSAGES, top_n=2),
                                 reranker.arerank("why do cats purr", PASSAGES, top_n=2))
            return step

    step = asyncio.run(agent_step())
    reranks = [s for s in exporter.get_finished_spans() if s.name == "r2r.rerank"]
    parents = sorted(s.parent.span_id for s in reranks if s.parent is not None)
    assert len(reranks) == 5
    assert parents == sorted([batch.get_span_context().span_id] * 3 + [step.get_span_context().span_id] * 2)
