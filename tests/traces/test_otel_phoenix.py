"""Issue 22 item 7, against a backend nobody here wrote: Arize Phoenix, started by the test on 127.0.0.1, receives
the spans over OTLP/HTTP; they are read back through its REST API (``/v1/projects/{project}/spans``).

Phoenix is found as ``$R2R_PHOENIX`` (its ``phoenix`` command), a ``phoenix`` command on PATH, or the ``phoenix``
package in this interpreter. It is not a dependency of r2r: installed into the project's environment it downgrades
python-dateutil and tenacity, so a separate environment is the way (``python -m venv /tmp/phoenix &&
/tmp/phoenix/bin/pip install arize-phoenix``, then ``R2R_PHOENIX=/tmp/phoenix/bin/phoenix``). Slow: Phoenix takes
~40 s to start on the 2-core machine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from r2r_agent import Reranker
from r2r_agent.otel import OTEL_ENV, OpenInferenceSink
from r2r_agent.traces import TRACE_PATH_ENV, TRACE_RUN_ENV, TRACE_TEXT_ENV

from .tiny_traces import FLEAS, PASSAGES, student

pytestmark = pytest.mark.slow


def _phoenix_command() -> list[str] | None:
    command = os.environ.get("R2R_PHOENIX") or shutil.which("phoenix")
    if command:
        return [command, "serve"]
    if importlib.util.find_spec("phoenix") is not None:
        return [sys.executable, "-m", "phoenix.server.main", "serve"]
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        result: dict = json.loads(response.read())
        return result


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory):
    command = _phoenix_command()
    if command is None:
        pytest.skip("Arize Phoenix not found: set R2R_PHOENIX to its 'phoenix' command (pip install arize-phoenix in "
                    "a separate venv; it would downgrade packages of this one)")
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="needs opentelemetry-exporter-otlp-proto-http "
                        "(the 'otel' extra)")
    work = tmp_path_factory.mktemp("phoenix")
    port, grpc_port = _free_port(), _free_port()
    env = {**os.environ, "PHOENIX_HOST": "127.0.0.1", "PHOENIX_PORT": str(port), "PHOENIX_GRPC_PORT": str(grpc_port),
           "PHOENIX_WORKING_DIR": str(work), "PHOENIX_TELEMETRY_ENABLED": "false"}
    log = (work / "phoenix.log").open("wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                pytest.fail(f"Phoenix exited ({server.returncode}): {Path(log.name).read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"Phoenix did not start in 180 s: {Path(log.name).read_text()[-2000:]}")
            time.sleep(1)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_a_rerank_call_shows_up_in_phoenix_as_a_reranker_span(phoenix, monkeypatch):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    for name in (TRACE_PATH_ENV, TRACE_RUN_ENV, TRACE_TEXT_ENV, OTEL_ENV):
        monkeypatch.delenv(name, raising=False)
    project = "r2r-test"
    provider = TracerProvider(resource=Resource.create({"openinference.project.name": project}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=phoenix + "/v1/traces")))
    reranker = Reranker(student(), trace=OpenInferenceSink(tracer_provider=provider, run="phoenix"), explain_top=3,
                        compare_top=3)
    with provider.get_tracer("agent").start_as_current_span("agent step"):
        ranking = reranker.rerank(FLEAS, PASSAGES, top_n=3)
    provider.force_flush()
    provider.shutdown()
    spans: list[dict] = []
    for _ in range(30):  # Phoenix writes spans to its database in the background (the project 404s until then)
        try:
            spans = _get(f"{phoenix}/v1/projects/{project}/spans")["data"]
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
        if len(spans) == 2:
            break
        time.sleep(1)
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"agent step", "r2r.rerank"}, spans
    span, parent = by_name["r2r.rerank"], by_name["agent step"]
    assert span["span_kind"] == "RERANKER"
    assert span["parent_id"] == parent["context"]["span_id"]
    assert span["context"]["trace_id"] == parent["context"]["trace_id"]
    a = span["attributes"]
    assert a["reranker.query"] == FLEAS and a["reranker.top_k"] == 3 and a["reranker.model_name"] == ranking.model
    assert a["r2r.answerable"] is True and a["r2r.comparison"] == ranking.comparison and a["r2r.run"] == "phoenix"
    for i, judged in enumerate(ranking):
        prefix = f"reranker.output_documents.{i}.document."
        assert a[prefix + "id"] == judged.id and a[prefix + "content"] == judged.text
        assert a[prefix + "score"] == pytest.approx(judged.score)
        # Phoenix unfolds the metadata JSON into attributes of their own.
        assert a[prefix + "metadata.verdict"] == judged.verdict
        assert a[prefix + "metadata.relevance"] == pytest.approx(judged.relevance)
        assert a[prefix + "metadata.evidence"] == judged.evidence
        assert a[prefix + "metadata.explanation"] == judged.explanation
        assert list(a[prefix + "metadata.evidence_span"]) == list(judged.evidence_span)
    assert [a[f"reranker.input_documents.{i}.document.id"] for i in range(5)] == [p.id for p in PASSAGES]
