"""Issue 22 item 3: traces carry what the trace page needs, and old trace files still open."""

from __future__ import annotations

import json

import pytest

from r2r_agent import Passage, Reranker, Scores, Student
from r2r_agent.calibration import Calibrator
from r2r_agent.cli import main
from r2r_agent.traces import (
    TRACE_PATH_ENV,
    TRACE_RUN_ENV,
    TRACE_TEXT_ENV,
    JsonlTraceSink,
    MemoryTraceSink,
    TraceRecord,
    diff_traces,
    read_traces,
)

QUERY = "how long do fleas live"
PASSAGES = [
    Passage("Flea collars release an insecticide.", id="d1", first_stage_score=9.0),
    Passage("Seasons happen because Earth's axis is tilted.", id="d2", first_stage_score=8.0),
    Passage("An adult flea usually lives two to three months.", id="d3", first_stage_score=7.0),
    Passage("The flea life cycle has four stages.", id="d4", first_stage_score=6.0),
]
SCORES = {"d1": 0.2, "d2": -0.5, "d3": 0.9, "d4": 0.6}


class TableScorer:
    name = "table"

    def __init__(self, table):
        self.table = table

    def score(self, query, passages):
        by_text = {p.text: self.table[p.id] for p in PASSAGES}
        return Scores(values=[by_text.get(p, 0.0) for p in passages], truncated=[False] * len(passages))


CALIBRATOR = Calibrator(scorer="table", features=("score",), weights=(10.0,), bias=-5.0, relevant_at=0.6,
                        partial_at=0.3)


def student(table=None) -> Student:
    return Student(scorer=TableScorer(table or SCORES), calibrator=CALIBRATOR, name="table-student")


@pytest.fixture(autouse=True)
def _no_trace_env(monkeypatch):
    for name in (TRACE_PATH_ENV, TRACE_RUN_ENV, TRACE_TEXT_ENV):
        monkeypatch.delenv(name, raising=False)


def test_every_candidate_has_its_score_and_judged_ones_their_verdict():
    sink = MemoryTraceSink()
    Reranker(student(), trace=sink).rerank(QUERY, PASSAGES, top_n=3, min_relevance=0.3)
    (record,) = sink.records
    by_id = {c.id: c for c in record.candidates}
    assert {k: c.score for k, c in by_id.items()} == SCORES
    assert {c.stage for c in record.candidates} == {"score"}
    # d2 was never judged (not in the top 3); d1 was judged and then dropped by min_relevance: its verdict says why.
    assert by_id["d2"].verdict is None and by_id["d2"].relevance is None
    assert by_id["d1"].verdict == "not_relevant" and by_id["d1"].relevance == pytest.approx(CALIBRATOR.relevance([0.2]))
    assert [r.id for r in record.results] == ["d3", "d4"]
    assert record.thresholds == {"partial": 0.3, "relevant": 0.6}
    assert record.config["top_n"] == 3 and record.config["min_relevance"] == 0.3
    again = TraceRecord.from_json(record.to_json())
    assert again == record


def test_returned_passages_keep_their_text_unless_turned_off(tmp_path, monkeypatch):
    long_text = "Fleas. " * 100 + "An adult flea usually lives two to three months."
    passages = [Passage(long_text, id="d3"), PASSAGES[0]]
    sink = MemoryTraceSink()
    Reranker(student({"d1": 0.1, "d2": 0.0, "d3": 0.0, "d4": 0.0}), trace=sink).rerank(QUERY, passages)
    record = sink.records[0]
    assert [r.text for r in record.results] == [passages[1].text, long_text]
    assert len(record.candidates[0].preview) == 200  # the preview is still cut
    for sink in (JsonlTraceSink(tmp_path / "a.jsonl", text=False), MemoryTraceSink(text=False)):
        Reranker(student(), trace=sink).rerank(QUERY, PASSAGES)
    assert all(r.text is None for r in read_traces(tmp_path / "a.jsonl")[0].results)
    monkeypatch.setenv(TRACE_TEXT_ENV, "0")
    Reranker(student(), trace=str(tmp_path / "b.jsonl")).rerank(QUERY, PASSAGES)
    (record,) = read_traces(tmp_path / "b.jsonl")
    assert all(r.text is None for r in record.results)
    assert record.results[0].evidence == PASSAGES[2].text  # the evidence sentence stays


def test_the_one_time_model_loading_is_recorded_once():
    sink = MemoryTraceSink()
    reranker = Reranker(student_factory=student, trace=sink)
    reranker.rerank(QUERY, PASSAGES)
    reranker.rerank(QUERY, PASSAGES)
    first, second = sink.records
    assert first.load_seconds is not None and 0 <= first.load_seconds <= first.seconds
    assert second.load_seconds is None


# A record as written before this change (format 1, no candidate scores, no text, no thresholds).
OLD_LINE = json.dumps({
    "format": 1, "query": QUERY, "run": "v0", "timestamp": "2026-12-01T10:00:00.000+00:00", "model": "old",
    "adapter": None, "prompt_version": "3", "top_n": 2, "seconds": 0.5,
    "stages": [{"stage": "score", "component": "m", "items": 4, "seconds": 0.1, "generated_tokens": 0}],
    "candidates": [{"input_rank": i, "id": f"d{i}", "first_stage_score": None, "preview": f"p{i}", "truncated": None}
                   for i in range(1, 5)],
    "results": [{"rank": 1, "input_rank": 3, "id": "d3", "score": 0.9, "stage": "score", "explanation": "why",
                 "truncated": False, "relevance": 0.9, "verdict": "relevant", "evidence": "e",
                 "evidence_span": [0, 1], "unsupported": []},
                {"rank": 2, "input_rank": 1, "id": "d1", "score": 0.1, "stage": "score", "explanation": None,
                 "truncated": False, "relevance": None, "verdict": None, "evidence": None, "evidence_span": None,
                 "unsupported": []}],
    "comparison": None, "answerable": True, "query_truncated": False, "config": {}})


def test_old_trace_files_still_open(tmp_path, capsys):
    path = tmp_path / "old.jsonl"
    path.write_text(OLD_LINE + "\n", encoding="utf-8")
    (record,) = read_traces(path)
    assert record.results[0].text is None and record.candidates[0].score is None and record.thresholds == {}
    assert main(["traces", "show", str(path)]) == 0
    assert "d3  p3" in capsys.readouterr().out


def test_diff_explains_a_document_that_left_the_top():
    a, b = MemoryTraceSink(), MemoryTraceSink()
    Reranker(student(), trace=a).rerank(QUERY, PASSAGES, top_n=2)
    Reranker(student({"d1": 0.2, "d2": -0.5, "d3": 0.1, "d4": 0.6}), trace=b).rerank(QUERY, PASSAGES, top_n=2)
    (query,) = diff_traces(a.records, b.records).queries
    d3 = next(s for s in query.shifts if s.key == "d3")
    assert (d3.rank_a, d3.rank_b, d3.score_b, d3.verdict_b) == (1, None, 0.1, None)  # B did not judge it
    assert d3.verdict_a == "relevant" and d3.score_a == 0.9
