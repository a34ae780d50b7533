"""First adapter call after import, in evidence mode (the adapters' default): wall time and resident memory.

Issue 20 item 6: ``explain="evidence"`` never runs SmolLM2, so the first call should pay for MiniLM only (target
<= 3 s and <= 600 MB RSS on the 2-core reference machine). Each measurement runs in a fresh interpreter (the point is
what a new process pays), through the LangChain adapter ``R2RCompressor`` on the first DL19 BM25 query's candidates.
The same child also reports whether SmolLM2 was loaded (it must not be).

    pytest tests/benchmarks/test_bench_first_call.py -m benchmark -s
    python tests/benchmarks/test_bench_first_call.py 20 lazy     # the same child, printed (or: 100 eager)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.benchmark, pytest.mark.slow]

#: Runs in a fresh interpreter: argv = [candidates file, number of passages, mode]. "lazy": the adapter's default
#: student; "eager" stands for the old behaviour (SmolLM2 loaded with the student), in the same timed region, for the
#: ratio; "onnx": ``Student.default(scorer_runtime="onnx")`` (int8 MiniLM in ONNX Runtime, prepared beforehand).
CHILD = r"""
import gzip, json, resource, sys, time
import psutil
process = psutil.Process()
def cpu():
    times = process.cpu_times()
    return times.user + times.system
start_import = time.perf_counter()
from langchain_core.documents import Document
from r2r_agent.integrations.langchain import R2RCompressor
imported = time.perf_counter()
with gzip.open(sys.argv[1], "rt", encoding="utf-8") as handle:
    row = json.loads(handle.readline())
docs = [Document(page_content=c["text"]) for c in row["candidates"][: int(sys.argv[2])]]
rss_before = process.memory_info().rss
start, start_cpu = time.perf_counter(), cpu()
student = None
if sys.argv[3] != "lazy":
    from r2r_agent import Student
    student = Student.default(lazy=False) if sys.argv[3] == "eager" else Student.default(scorer_runtime="onnx")
kept = R2RCompressor(top_n=5, student=student).compress_documents(docs, row["query"])
seconds, cpu_seconds = time.perf_counter() - start, cpu() - start_cpu
torch_imported = "torch" in sys.modules
from r2r_agent.student import shared_default_student
explainer = (student or shared_default_student()).explainer
lm_loaded = bool(getattr(getattr(explainer, "shared", None), "loaded", True))
print(json.dumps({"mode": sys.argv[3], "passages": len(docs), "kept": len(kept), "torch_imported": torch_imported,
                  "import_seconds": round(imported - start_import, 2), "first_call_seconds": round(seconds, 2),
                  "first_call_cpu_seconds": round(cpu_seconds, 2), "rss_before_mb": round(rss_before / 2**20),
                  "rss_after_mb": round(process.memory_info().rss / 2**20),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "smollm2_loaded": lm_loaded, "evidence": kept[0].metadata.get("r2r_explanation", "")[:120]}))
"""


def first_call(candidates: str | Path, passages: int, mode: str = "lazy") -> dict:
    """Run :data:`CHILD` in a fresh interpreter and return what it measured."""
    if mode == "onnx":  # the one-time preparation is not the first call (as SmolLM2's is not)
        from r2r_agent.onnx_scorer import prepare_onnx_minilm

        prepare_onnx_minilm("int8")
    out = subprocess.run([sys.executable, "-c", CHILD, str(candidates), str(passages), mode], capture_output=True,
                         text=True, check=True, timeout=600)
    result: dict = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("mode", ["lazy", "eager", "onnx"])
@pytest.mark.parametrize("passages", [20, 100])
def test_first_adapter_call_in_evidence_mode(benchmark, dl19_candidates, passages, mode):
    pytest.importorskip("langchain_core")
    if mode == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnx")
    result = benchmark.pedantic(lambda: first_call(dl19_candidates, passages, mode), rounds=1, iterations=1)
    benchmark.extra_info.update(result)  # in the benchmark JSON / table, like the other benchmarks
    assert result["smollm2_loaded"] == (mode == "eager")  # what the call uses, nothing more (a fact, not a timing)


if __name__ == "__main__":  # pragma: no cover
    data = Path(__file__).resolve().parents[3] / "shared" / "data" / "trec-dl" / "dl19.bm25.top100.jsonl.gz"
    passages, mode = (int(sys.argv[1]) if len(sys.argv) > 1 else 20), (sys.argv[2] if len(sys.argv) > 2 else "lazy")
    result = first_call(data, passages, mode)
    sys.stdout.write(json.dumps(result) + "\n")
