"""Issue 22 "done when": the trace page works on traces written by Reranker, the LangChain and LlamaIndex adapters and
the CLI (``R2R_TRACE_PATH``), and on old trace files: all of them in one page, the data checked, and (where a browser
is installed) every call opened in headless Chromium with its evidence highlighted and no script error."""

from __future__ import annotations

import json

import pytest

from r2r_agent.cli import main
from r2r_agent.traces import TRACE_PATH_ENV, TRACE_RUN_ENV, TRACE_TEXT_ENV, load_traces
from r2r_agent.traces.report import page_data, render_html

from .browser import browser_missing, chromium, open_page
from .test_records import OLD_LINE
from .tiny_traces import FLEAS, PASSAGES, records, student, write


@pytest.fixture(autouse=True)
def _no_trace_env(monkeypatch):
    for name in (TRACE_PATH_ENV, TRACE_RUN_ENV, TRACE_TEXT_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def trace_files(tmp_path, tiny_lm_dir, monkeypatch, capsys):
    """One trace file per writer: Reranker, LangChain, LlamaIndex, the CLI, and an old (pre-text) file."""
    langchain_core = pytest.importorskip("langchain_core.documents")
    llama_schema = pytest.importorskip("llama_index.core.schema")
    from r2r_agent.integrations.langchain import R2RCompressor
    from r2r_agent.integrations.llama_index import R2R

    files = {"reranker": write(tmp_path / "reranker.jsonl", records())}
    docs = [langchain_core.Document(page_content=p.text, id=p.id) for p in PASSAGES]
    R2RCompressor(student=student(), trace=str(tmp_path / "langchain.jsonl"), top_n=2).compress_documents(docs, FLEAS)
    files["langchain"] = str(tmp_path / "langchain.jsonl")
    nodes = [llama_schema.NodeWithScore(node=llama_schema.TextNode(id_=p.id, text=p.text), score=p.first_stage_score)
             for p in PASSAGES]
    R2R(student=student(), trace=str(tmp_path / "llama.jsonl"), top_n=2).postprocess_nodes(nodes, query_str=FLEAS)
    files["llama_index"] = str(tmp_path / "llama.jsonl")
    passages = tmp_path / "passages.jsonl"
    passages.write_text("".join(json.dumps({"text": p.text, "id": p.id}) + "\n" for p in PASSAGES), encoding="utf-8")
    monkeypatch.setenv(TRACE_PATH_ENV, str(tmp_path / "cli.jsonl"))
    assert main(["rerank", "-q", FLEAS, "-p", str(passages), "-n", "2", "--model", str(tiny_lm_dir)]) == 0
    monkeypatch.delenv(TRACE_PATH_ENV)
    capsys.readouterr()
    files["cli"] = str(tmp_path / "cli.jsonl")
    (tmp_path / "old.jsonl").write_text(OLD_LINE + "\n", encoding="utf-8")
    files["old"] = str(tmp_path / "old.jsonl")
    return files


def test_every_writer_s_traces_make_one_page(trace_files, tmp_path):
    loaded = [(path, load_traces(path)) for path in trace_files.values()]
    assert [len(f.records) for _, f in loaded] == [3, 1, 1, 1, 1] and not any(f.skipped for _, f in loaded)
    data = page_data(loaded)
    by_file = {data["files"][c["file"]]: c for c in data["calls"]}
    for name in ("langchain", "llama_index", "cli"):
        call = by_file[trace_files[name]]
        assert call["q"] == FLEAS and len(call["res"]) == 2, name
        assert [r["id"] for r in call["res"]] and all(isinstance(r["text"], str) for r in call["res"]), name
        assert len(call["res"]) + len(call["out"]) == 5, name  # every candidate: returned or not
    for name in ("langchain", "llama_index"):  # the tiny student's calibrator gives verdicts and evidence
        for r in by_file[trace_files[name]]["res"]:
            start, end = r["span"]
            assert r["text"][start:end] == r["ev"], name
    old = by_file[trace_files["old"]]
    assert old["res"][0].get("text") is None and old["res"][0]["preview"] == "p3" and old["res"][0]["ev"] == "e"
    (tmp_path / "all.html").write_text(render_html(loaded), encoding="utf-8")


@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
def test_every_writer_s_traces_open_in_a_browser(trace_files, tmp_path):
    from selenium.webdriver.common.by import By

    loaded = [(path, load_traces(path)) for path in trace_files.values()]
    page = tmp_path / "all.html"
    page.write_text(render_html(loaded), encoding="utf-8")
    total = sum(len(f.records) for _, f in loaded)
    with chromium() as driver:
        open_page(driver, page)
        assert len(driver.find_elements(By.CSS_SELECTOR, "#calls .call")) == total
        for index in range(total):
            driver.execute_script(f"location.hash = '#call-{index}'")
            assert driver.find_element(By.ID, "detail").get_attribute("data-call") == str(index)
            assert driver.find_elements(By.CSS_SELECTOR, "#passages .passage")
        # The old record: no text, so the preview and the evidence sentence on its own.
        assert "The full text is not in this trace" in driver.find_element(By.ID, "passages").text
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
