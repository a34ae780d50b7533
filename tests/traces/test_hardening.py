"""Issue 19 item 10: traces under hostile input (lone surrogates, wrong types in a record, huge records and texts)."""

from __future__ import annotations

import json
import logging

import pytest

from r2r_agent import Passage, Reranker, Scores, Student
from r2r_agent.cli import main
from r2r_agent.traces import (
    TRACE_PATH_ENV,
    TRACE_RUN_ENV,
    MemoryTraceSink,
    TraceCandidate,
    Tracer,
    TraceRecord,
    TraceResult,
    diff_traces,
    kendall_tau,
    load_traces,
    read_traces,
)


class LengthScorer:
    name = "length"

    def score(self, query, passages):
        return Scores(values=[float(len(p)) for p in passages], truncated=[False] * len(passages))


@pytest.fixture(autouse=True)
def _no_trace_env(monkeypatch):
    monkeypatch.delenv(TRACE_PATH_ENV, raising=False)
    monkeypatch.delenv(TRACE_RUN_ENV, raising=False)


def _reranker(trace) -> Reranker:
    return Reranker(Student(scorer=LengthScorer(), name="length-student"), trace=trace)


def test_a_lone_surrogate_in_the_query_or_a_passage_keeps_every_record(tmp_path, caplog):
    path = tmp_path / "t.jsonl"
    reranker = _reranker(str(path))
    poisoned_query = "fleas \ud800 live"
    poisoned_passage = "a flea lives \udfff three months"
    with caplog.at_level(logging.WARNING, logger="r2r_agent.traces"):
        reranker.rerank(poisoned_query, ["x", "yy"])
        reranker.rerank("clean", [poisoned_passage, "z"])
        reranker.rerank("third", ["a"])
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    raw = path.read_bytes()
    raw.decode("utf-8")  # valid UTF-8: the surrogates are JSON escapes
    assert b"\\ud800" in raw and b"\\udfff" in raw
    records = read_traces(path)
    assert [r.query for r in records] == [poisoned_query, "clean", "third"]
    assert records[1].candidates[0].preview == poisoned_passage


def test_every_new_kind_of_sink_failure_warns_and_losses_are_counted(caplog):
    class Flaky:
        def __init__(self):
            self.calls = 0

        def write(self, record):
            self.calls += 1
            raise (OSError("disk full") if self.calls < 3 else UnicodeEncodeError("utf-8", "x", 0, 1, "poisoned"))

    tracer = Tracer(Flaky())
    reranker = _reranker(MemoryTraceSink())
    ranking = reranker.rerank("q", ["a", "bb"])
    with caplog.at_level(logging.WARNING, logger="r2r_agent.traces"):
        for _ in range(4):
            tracer.record(ranking, [Passage("a"), Passage("bb")], top_n=None, seconds=0.1)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # one per kind: the poisoned document's failure is not hidden by the first
    assert "disk full" in warnings[0] and "poisoned" in warnings[1]
    assert tracer.dropped == 4


def _record(**result) -> dict:
    ranking = _reranker(MemoryTraceSink()).rerank("q", ["a", "bb"])
    data = TraceRecord.from_ranking(ranking, [Passage("a"), Passage("bb")]).to_dict()
    data["results"][0].update(result)
    return data


@pytest.mark.parametrize("bad", [{"unsupported": [1, 2]}, {"evidence_span": [1]}, {"evidence_span": ["a", 2]},
                                 {"unsupported": "claim"}, {"rank": "1"}])
def test_a_record_with_wrong_types_is_a_skipped_and_counted_line(tmp_path, capsys, bad):
    path = tmp_path / "t.jsonl"
    good = json.dumps(_record())
    path.write_text(good + "\n" + json.dumps(_record(**bad)) + "\n" + good + "\n", encoding="utf-8")
    loaded = load_traces(path)
    assert len(loaded.records) == 2 and len(loaded.skipped) == 1 and "line 2" in loaded.skipped[0]
    assert main(["traces", "show", str(path)]) == 0
    captured = capsys.readouterr()
    assert "== trace 2/2" in captured.out
    assert "skipped 1 damaged line(s)" in captured.err and "line 2: not a trace record" in captured.err
    assert main(["traces", "diff", str(path), str(path)]) == 0
    assert "skipped 1 damaged line(s)" in capsys.readouterr().err


def _big_record(n: int, query: str = "q", reverse: bool = False) -> TraceRecord:
    order = list(range(1, n + 1))
    if reverse:
        order.reverse()
    return TraceRecord(
        query=query,
        candidates=tuple(TraceCandidate(input_rank=i, id=f"d{i}", preview=f"passage {i}") for i in range(1, n + 1)),
        results=tuple(TraceResult(rank=rank, input_rank=i, id=f"d{i}", score=float(-rank), explanation="why")
                      for rank, i in enumerate(order, start=1)))


def test_show_and_diff_of_a_50k_candidate_record_are_linear(tmp_path, capsys):
    # Before: 34.5 s to show, diff did not finish in 120 s (pairwise Kendall tau and a scan per candidate lookup).
    # Now about a second each on this machine; no timing is asserted here, a quadratic version would not finish.
    a, b = _big_record(50_000), _big_record(50_000, reverse=True)
    (query,) = diff_traces([a], [b]).queries
    assert query.kendall_tau == -1.0 and query.reordered and not query.entered
    assert kendall_tau(list(range(50_000)), list(range(50_000))) == 1.0
    file_a, file_b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    file_a.write_text(a.to_json() + "\n", encoding="utf-8")
    file_b.write_text(b.to_json() + "\n", encoding="utf-8")
    assert main(["traces", "show", str(file_a)]) == 0
    assert "50000 candidates" in capsys.readouterr().out
    assert main(["traces", "diff", str(file_a), str(file_b), "--movers", "2"]) == 0
    assert "mean Kendall tau over shared documents -1.000" in capsys.readouterr().out


def test_a_50mb_query_is_capped_when_printed(tmp_path, capsys):
    query = "where " + "x" * 50_000_000
    record = TraceRecord(query=query, candidates=(TraceCandidate(1, "d1", preview="p"),),
                         results=(TraceResult(rank=1, input_rank=1, id="d1", score=1.0,
                                              explanation="y" * 3_000_000),))
    path = tmp_path / "t.jsonl"
    path.write_text(record.to_json() + "\n", encoding="utf-8")
    assert main(["traces", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert len(out) < 10_000
    assert "[50,000,006 characters; --json prints all]" in out and "[3,000,000 characters" in out
    assert main(["traces", "diff", str(path), str(path)]) == 0
    assert len(capsys.readouterr().out) < 10_000


def test_diff_separates_reordering_from_documents_entering_or_leaving():
    # Regression: "3 changed order; mean Kendall tau 1.000" when only the members changed.
    def record(ids):
        return TraceRecord(query="q", results=tuple(TraceResult(rank=r, input_rank=int(i[1:]), id=i, score=0.0)
                                                    for r, i in enumerate(ids, start=1)))

    (query,) = diff_traces([record(["d1", "d2", "d3"])], [record(["d1", "d3", "d4"])]).queries
    assert query.changed and not query.reordered and query.kendall_tau == 1.0
    assert query.entered == ("d4",) and query.left == ("d2",)
