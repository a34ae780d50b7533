"""Explanation traces: records, sinks, the Reranker hook, the diff metrics and ``r2r traces show|diff``."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
from dataclasses import dataclass

import pytest

from r2r_agent import InvalidInputError, Passage, R2RError, Reranker, Scores, Student
from r2r_agent.cli import main
from r2r_agent.explainer import Generation
from r2r_agent.traces import (
    TRACE_PATH_ENV,
    TRACE_RUN_ENV,
    JsonlTraceSink,
    MemoryTraceSink,
    TraceRecord,
    diff_traces,
    kendall_tau,
    rank_biased_overlap,
    read_traces,
)

QUERY = "how long do fleas live"
PASSAGES = [
    Passage("Flea collars release an insecticide.", id="d1", first_stage_score=9.0),
    Passage("Seasons happen because Earth's axis is tilted.", id="d2", first_stage_score=8.0),
    Passage("An adult flea usually lives two to three months.", id="d3", first_stage_score=7.0),
    Passage("The flea life cycle has four stages.", id="d4", first_stage_score=6.0),
]


@dataclass
class TableScorer:
    """Scores from a lookup table keyed by passage id-less text (default 0); flags long passages as truncated."""

    table: dict
    name: str = "table"

    def score(self, query, passages):
        return Scores(values=[self.table.get(p, 0.0) for p in passages], truncated=[len(p) > 45 for p in passages])


class EchoExplainer:
    name = "echo"

    def explain(self, query, passages, *, verdicts=None, evidence=None):
        return Generation(texts=[f"mentions {p.split()[1]}" for p in passages], truncated=[False] * len(passages))

    def compare_grounded(self, query, evidences, verdicts):
        return Generation(texts=[f"{len(evidences)} passages, most specific first"], truncated=[False])


TABLE = {PASSAGES[2].text: 3.0, PASSAGES[3].text: 2.0, PASSAGES[0].text: 1.0, PASSAGES[1].text: -1.0}
# A second "student" that prefers the life-cycle passage: a different order for diff tests.
TABLE_V2 = {PASSAGES[3].text: 3.0, PASSAGES[0].text: 2.0, PASSAGES[2].text: 1.0, PASSAGES[1].text: -1.0}


def make_reranker(table=None, **kwargs) -> Reranker:
    student = Student(scorer=TableScorer(table or TABLE), explainer=EchoExplainer(), name="fake-student")
    return Reranker(student, **kwargs)


@pytest.fixture(autouse=True)
def _no_trace_env(monkeypatch):
    monkeypatch.delenv(TRACE_PATH_ENV, raising=False)
    monkeypatch.delenv(TRACE_RUN_ENV, raising=False)


# -- records -----------------------------------------------------------------------------------------------------


def test_record_from_ranking_has_candidates_order_and_reasons():
    sink = MemoryTraceSink()
    ranking = make_reranker(trace=sink).rerank(QUERY, PASSAGES, top_n=2, explain_top=2, compare_top=2)
    (record,) = sink.records
    assert record.query == QUERY
    assert [c.id for c in record.candidates] == ["d1", "d2", "d3", "d4"]
    assert [c.first_stage_score for c in record.candidates] == [9.0, 8.0, 7.0, 6.0]
    assert record.candidates[2].preview == PASSAGES[2].text
    # Truncation is known for the returned passages only.
    assert [c.truncated for c in record.candidates] == [None, None, True, False]
    assert [(r.id, r.input_rank, r.rank, r.move) for r in record.results] == [("d3", 3, 1, 2), ("d4", 4, 2, 2)]
    assert [r.score for r in record.results] == [j.score for j in ranking]
    assert record.results[0].explanation == "mentions adult"
    assert record.comparison == ranking.comparison and record.comparison.startswith("[1] scores 3.000")
    assert record.top_n == 2 and record.model == "fake-student" and record.prompt_version == ranking.prompt_version
    assert [s.stage for s in record.stages] == ["score", "judge", "explain", "compare"]
    assert record.seconds is not None and record.seconds >= 0
    assert record.timestamp.endswith("+00:00")
    assert [c.id for c in record.dropped()] == ["d1", "d2"]
    assert [r.id for r in record.moves()] == ["d3", "d4"]


def test_record_round_trips_through_json():
    sink = MemoryTraceSink(run="v1")
    make_reranker(trace=sink).rerank(QUERY, PASSAGES, top_n=3)
    record = sink.records[0]
    assert record.run == "v1"
    again = TraceRecord.from_json(record.to_json())
    assert again == record
    assert TraceRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_record_without_passages_uses_the_returned_ones():
    ranking = make_reranker().rerank(QUERY, PASSAGES, top_n=2)
    record = TraceRecord.from_ranking(ranking)
    assert [c.input_rank for c in record.candidates] == [3, 4]
    assert [c.first_stage_score for c in record.candidates] == [7.0, 6.0]


def test_record_rejects_passages_that_do_not_match():
    ranking = make_reranker().rerank(QUERY, PASSAGES, top_n=2)
    with pytest.raises(InvalidInputError, match="made from 4 passages but 2 were given"):
        TraceRecord.from_ranking(ranking, PASSAGES[:2])


def test_from_dict_errors_name_what_arrived():
    with pytest.raises(InvalidInputError, match="string 'query'"):
        TraceRecord.from_dict({"judgments": []})
    with pytest.raises(InvalidInputError, match="format 99 is not supported"):
        TraceRecord.from_dict({"query": "q", "format": 99})


# -- the Reranker hook -------------------------------------------------------------------------------------------


def test_every_call_is_traced_including_empty_input_and_inputs_stay_untouched():
    sink = MemoryTraceSink()
    reranker = make_reranker(trace=sink)
    before = [p.to_dict() for p in PASSAGES]
    reranker.rerank(QUERY, PASSAGES)
    reranker.rerank(QUERY, [])
    assert len(sink) == 2
    assert sink.records[1].candidates == () and sink.records[1].results == ()
    assert [p.to_dict() for p in PASSAGES] == before


class LoadsOnFirstUse(EchoExplainer):
    """An explainer whose model loads during the first call that needs it (as the default student's SmolLM2)."""

    def __init__(self):
        self.unreported = 0.0

    def explain(self, query, passages, *, verdicts=None, evidence=None):
        self.unreported += 2.5  # as if loading took 2.5 s the first time
        self.explain = super().explain  # type: ignore[method-assign]
        return super().explain(query, passages, verdicts=verdicts, evidence=evidence)

    def take_load_seconds(self):
        seconds, self.unreported = self.unreported, 0.0
        return seconds


def test_a_model_loaded_during_a_call_is_recorded_as_loading_once():
    sink = MemoryTraceSink()
    student = Student(scorer=TableScorer(TABLE), explainer=LoadsOnFirstUse(), name="fake-student")
    reranker = Reranker(student, trace=sink)
    reranker.rerank(QUERY, PASSAGES, explain="evidence")  # needs no LM: nothing loads
    reranker.rerank(QUERY, PASSAGES, explain="full")
    reranker.rerank(QUERY, PASSAGES, explain="full")
    assert [r.load_seconds for r in sink.records] == [None, 2.5, None]


def test_the_shared_lm_reports_its_load_time_once():
    import time

    from r2r_agent.lazy import SharedCausalLM, take_load_seconds

    shared = SharedCausalLM(lambda: (time.sleep(0.05), "model")[::-1], name="slow")
    assert take_load_seconds(shared) == 0.0 and not shared.loaded  # asking does not load it
    assert shared.model == "model"
    assert take_load_seconds(shared) >= 0.05 and take_load_seconds(shared) == 0.0


def test_no_trace_by_default_and_invalid_option():
    assert make_reranker()._tracer is None
    with pytest.raises(InvalidInputError, match="trace must be a trace sink"):
        make_reranker(trace=42)
    with pytest.raises(InvalidInputError, match="trace must be a trace sink"):
        make_reranker(trace=True)


def test_path_writes_one_json_line_per_call(tmp_path):
    path = tmp_path / "sub" / "traces.jsonl"
    reranker = make_reranker(trace=str(path))
    reranker.rerank(QUERY, PASSAGES, top_n=2)
    reranker.rerank("flea life cycle", PASSAGES, top_n=1)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert [json.loads(line)["query"] for line in lines] == [QUERY, "flea life cycle"]
    assert [r.query for r in read_traces(path)] == [QUERY, "flea life cycle"]


def test_environment_variable_is_the_default_and_false_turns_it_off(tmp_path, monkeypatch):
    path = tmp_path / "env.jsonl"
    monkeypatch.setenv(TRACE_PATH_ENV, str(path))
    monkeypatch.setenv(TRACE_RUN_ENV, "student-v2")
    make_reranker().rerank(QUERY, PASSAGES, top_n=1)
    make_reranker(trace=False).rerank(QUERY, PASSAGES, top_n=1)
    (record,) = read_traces(path)
    assert record.run == "student-v2"


@pytest.mark.parametrize("where", ["a directory", "under a regular file"])
def test_unwritable_trace_file_warns_once_and_never_fails_the_query(tmp_path, caplog, where):
    if where == "a directory":
        path = tmp_path
    else:
        (tmp_path / "file").write_text("x")
        path = tmp_path / "file" / "traces.jsonl"
    sink = JsonlTraceSink(path)
    reranker = make_reranker(trace=sink)
    with caplog.at_level(logging.WARNING, logger="r2r_agent.traces"):
        first = reranker.rerank(QUERY, PASSAGES, top_n=2)
        second = reranker.rerank(QUERY, PASSAGES, top_n=2)
    assert [j.id for j in first] == [j.id for j in second] == ["d3", "d4"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "cannot write the trace file" in warnings[0].getMessage() and str(path) in warnings[0].getMessage()
    assert sink.failed_writes == 2


def test_a_failing_custom_sink_warns_once(caplog):
    class Broken:
        def write(self, record):
            raise RuntimeError("database is down")

    reranker = make_reranker(trace=Broken())
    with caplog.at_level(logging.WARNING, logger="r2r_agent.traces"):
        for _ in range(3):
            assert len(reranker.rerank(QUERY, PASSAGES, top_n=2)) == 2
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 1 and "database is down" in messages[0]


def test_jsonl_sink_is_thread_safe_across_sinks_on_one_file(tmp_path):
    path = tmp_path / "t.jsonl"
    sinks = [JsonlTraceSink(path, run="a"), JsonlTraceSink(path, run="b")]
    record = TraceRecord.from_ranking(make_reranker().rerank(QUERY, PASSAGES), PASSAGES)

    def work(i: int) -> None:
        for _ in range(25):
            sinks[i % 2].write(record)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = read_traces(path)
    assert len(records) == 200
    assert {r.run for r in records} == {"a", "b"}
    assert all(r.results == record.results for r in records)


async def test_concurrent_async_calls_each_leave_one_record():
    sink = MemoryTraceSink()
    reranker = make_reranker(trace=sink)
    queries = [f"{QUERY} {i}" for i in range(20)]
    await asyncio.gather(*(reranker.arerank(q, PASSAGES, top_n=2) for q in queries))
    assert sorted(r.query for r in sink.records) == sorted(queries)


def test_read_traces_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(R2RError, match="not found"):
        read_traces(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"query": "q"}) + "\n\n{oops\n")
    with pytest.raises(R2RError, match="line 3: not JSON"):
        read_traces(bad)
    bad.write_text('{"no_query": 1}\n')
    with pytest.raises(R2RError, match="line 1: not a trace record"):
        read_traces(bad)


def test_traces_module_imports_nothing_heavy():
    code = ("import sys, r2r_agent.traces, r2r_agent.traces.cli; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- comparing runs ----------------------------------------------------------------------------------------------


def test_kendall_tau_values():
    assert kendall_tau(list("abcd"), list("abcd")) == 1.0
    assert kendall_tau(list("abcd"), list("dcba")) == -1.0
    assert kendall_tau(list("abcd"), list("bacd")) == pytest.approx(4 / 6)
    assert kendall_tau(list("abx"), list("bay")) == -1.0  # over the shared a, b only
    assert kendall_tau(["a"], ["a"]) is None


def test_rank_biased_overlap_values():
    assert rank_biased_overlap(list("xyz"), list("xyz")) == pytest.approx(1.0)
    assert rank_biased_overlap(list("xyz"), list("uvw")) == 0.0
    # Swapping the top two of three: X_1=0, X_2=2, X_3=3 -> (1-p)/p * (p^2 + p^3) + p^3 = 0.9 at p=0.9.
    assert rank_biased_overlap(list("xyz"), list("yxz")) == pytest.approx(0.9)
    # A prefix of the other list agrees as far as it goes (RBO_ext).
    assert rank_biased_overlap(list("xyz"), list("xyzuv")) == pytest.approx(1.0)
    assert rank_biased_overlap(list("xyz"), list("zyx")) == pytest.approx(rank_biased_overlap(list("zyx"), list("xyz")))
    assert rank_biased_overlap(list("xyz"), list("xzy")) > rank_biased_overlap(list("xyz"), list("yxz"))
    assert rank_biased_overlap([], []) == 1.0
    with pytest.raises(InvalidInputError, match="p must be in"):
        rank_biased_overlap(["a"], ["a"], p=1.0)


def _two_runs():
    a, b = MemoryTraceSink(run="v1"), MemoryTraceSink(run="v2")
    for sink, table in ((a, TABLE), (b, TABLE_V2)):
        reranker = make_reranker(table, trace=sink)
        reranker.rerank(QUERY, PASSAGES, top_n=3)
        reranker.rerank("seasons", PASSAGES[:2], top_n=2)
    make_reranker(trace=a).rerank("only in a", PASSAGES, top_n=1)
    return a.records, b.records


def test_diff_traces_matches_queries_and_measures_the_change():
    a, b = _two_runs()
    diff = diff_traces(a, b)
    assert [q.query for q in diff.queries] == [QUERY, "seasons"]
    assert diff.only_a == ("only in a",) and diff.only_b == ()
    fleas, seasons = diff.queries
    assert fleas.order_a == ("d3", "d4", "d1") and fleas.order_b == ("d4", "d1", "d3")
    assert fleas.changed and not seasons.changed
    assert fleas.kendall_tau == pytest.approx(kendall_tau(["d3", "d4", "d1"], ["d4", "d1", "d3"]))
    assert fleas.rbo == pytest.approx(rank_biased_overlap(fleas.order_a, fleas.order_b))
    assert seasons.kendall_tau == 1.0 and seasons.rbo == pytest.approx(1.0)
    top = fleas.shifts[0]
    assert (top.key, top.rank_a, top.rank_b, top.shift) == ("d3", 1, 3, -2)
    assert top.explanation_a == top.explanation_b == "mentions adult"


def test_diff_falls_back_to_input_ranks_when_ids_repeat():
    passages = [Passage(p.text, id="same", first_stage_score=p.first_stage_score) for p in PASSAGES]
    a, b = MemoryTraceSink(), MemoryTraceSink()
    make_reranker(TABLE, trace=a).rerank(QUERY, passages, top_n=2)
    make_reranker(TABLE_V2, trace=b).rerank(QUERY, passages, top_n=2)
    (query,) = diff_traces(a.records, b.records).queries
    assert query.order_a == ("#3", "#4") and query.order_b == ("#4", "#1")


# -- the CLI -----------------------------------------------------------------------------------------------------


def _write(path, records):
    path.write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")
    return str(path)


def test_cli_show_renders_moves_and_reasons(tmp_path, capsys):
    a, _ = _two_runs()
    file = _write(tmp_path / "a.jsonl", a)
    assert main(["traces", "show", file]) == 0
    out = capsys.readouterr().out
    assert "== trace 1/3 | run v1" in out and f"Query: {QUERY}" in out
    assert "4 candidates -> top 3 (3 returned)" in out
    # d3 came in 3rd and went out 1st: moved up 2; its explanation is shown under it.
    row = next(line for line in out.splitlines() if "d3  An adult flea" in line)
    assert row.split()[:3] == ["1", "3", "+2"]
    assert "why: mentions adult" in out
    assert "Pushed out of the top 3: d2 (in 2)" in out
    assert "Moved most: d3 up 2 (3 -> 1)" in out
    assert "Why this order: [1] scores" in out


def test_cli_show_filters_and_json(tmp_path, capsys):
    a, _ = _two_runs()
    file = _write(tmp_path / "a.jsonl", a)
    assert main(["traces", "show", file, "-q", "SEASONS"]) == 0
    out = capsys.readouterr().out
    assert "Query: seasons" in out and QUERY not in out
    assert main(["traces", "show", file, "--last", "1", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [TraceRecord.from_json(line).query for line in lines] == ["only in a"]
    assert main(["traces", "show", file, "-q", "nothing like this"]) == 0
    assert "No traces" in capsys.readouterr().out


def test_cli_diff_renders_changes_side_by_side(tmp_path, capsys):
    a, b = _two_runs()
    file_a, file_b = _write(tmp_path / "a.jsonl", a), _write(tmp_path / "b.jsonl", b)
    assert main(["traces", "diff", file_a, file_b, "--movers", "1"]) == 0
    out = capsys.readouterr().out
    assert "2 queries in both; 1 returned a different list (1 with the shared documents reordered, 0 with" in out
    assert "Not compared: 1 queries only in A, 0 only in B" in out
    assert "A: d3 d4 d1" in out and "B: d4 d1 d3" in out
    assert "d3 (input 3): A 1 -> B 3 (-2)" in out
    assert "A why: mentions adult" in out and "B why: mentions adult" in out
    assert "same order" in out  # the seasons query
    assert main(["traces", "diff", file_a, file_b, "--changed-only"]) == 0
    assert "Query: seasons" not in capsys.readouterr().out
    assert main(["traces", "diff", file_a, file_b, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["queries"][0]["order_b"] == ["d4", "d1", "d3"] and data["only_a"] == ["only in a"]


def test_cli_errors_exit_2_with_a_message(tmp_path, capsys):
    assert main(["traces", "show", str(tmp_path / "missing.jsonl")]) == 2
    assert "trace file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["traces"])  # a subcommand is required
