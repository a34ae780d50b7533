"""The ``teacher`` eval system (listwise, on the first N queries) and teacher agreement on held-out training data."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from test_evals_runner_report import write_trec_dl  # same folder (pytest puts it on sys.path)

from r2r_agent.cli import main
from r2r_agent.errors import InvalidInputError
from r2r_agent.evals.explanation_quality import unigram_f1
from r2r_agent.evals.records import candidate
from r2r_agent.evals.registry import Dataset
from r2r_agent.evals.report import render_markdown, write_report
from r2r_agent.evals.runner import AGREEMENT_DATASET, ResultCache, agreement_key, run_eval
from r2r_agent.evals.systems import (
    FirstStageSystem,
    RerankerSystem,
    SystemOptions,
    TeacherSystem,
    build_system,
    can_explain_passages,
    query_limit,
)
from r2r_agent.evals.teacher_agreement import (
    AgreementQuality,
    adapter_split_note,
    agreement_quality,
    load_validation_split,
    score_pair,
)
from r2r_agent.explainer import Generation
from r2r_agent.reranker import Reranker
from r2r_agent.student import Student
from r2r_agent.training import ScriptedTeacher, split_query_ids

_PASSAGE = re.compile(r"^\[(\d+)\] (.*)$", re.MULTILINE)


def score_reply(messages: list[dict[str, str]]) -> str:
    """A well-formed teacher answer ranking the window's passages by the number after "score", highest first."""
    texts = [m.group(2) for m in _PASSAGE.finditer(messages[-1]["content"])]
    ranking = sorted(range(1, len(texts) + 1), key=lambda i: -int(texts[i - 1].rsplit(" ", 1)[1]))
    return json.dumps({"ranking": ranking, "reasons": [{"passage": i, "direct": "it gives a score"} for i in ranking]})


def score_dataset() -> Dataset:
    """Three queries; candidate i of each says "score i", so a teacher reverses the first-stage order."""
    queries = {"q1": "fleas", "q2": "phototaxis", "q3": "hamlet"}
    candidates = {q: tuple(candidate(f"{q}-d{i}", 10.0 - i, f"{q} passage score {i}") for i in range(4))
                  for q in queries}
    qrels = {"q1": {"q1-d2": 2}, "q2": {"q2-d1": 1}, "q3": {"q3-d0": 1}}
    return Dataset(name="scores", queries=queries, candidates=candidates, qrels=qrels, description="scored passages")


# --- the teacher system -------------------------------------------------------------------------------------------


def test_teacher_system_reranks_the_head_with_sliding_windows() -> None:
    teacher = ScriptedTeacher(default=score_reply, name="by-score")
    system = TeacherSystem(teacher, top=3, window_size=2, stride=1, query_limit=2)
    ds = score_dataset()
    result = system.rank(ds.queries["q1"], ds.candidates["q1"])
    # windows [1, 3) then [0, 2), back to front: the best rises to the top; the tail keeps its place
    assert result.doc_ids == ("q1-d2", "q1-d0", "q1-d1", "q1-d3")
    assert list(result.scores) == sorted(result.scores, reverse=True) and result.failures == 0
    assert len(teacher.calls) == 2 and result.passages == 4
    assert result.stages[0].component == "by-score" and query_limit(system) == 2
    assert system.config["teacher"] == "by-score" and "query_limit" not in system.config
    assert TeacherSystem(teacher, window_size=5).stride == 2  # half the window by default

    broken = TeacherSystem(ScriptedTeacher(default=lambda m: "no JSON here", name="broken"), top=3, window_size=3,
                           max_attempts=1)
    kept = broken.rank(ds.queries["q1"], ds.candidates["q1"])
    assert kept.doc_ids == tuple(c.id for c in ds.candidates["q1"]) and kept.failures == 1


def test_teacher_system_errors_are_clear() -> None:
    with pytest.raises(InvalidInputError, match="--teacher openai:MODEL --teacher-url URL or --teacher transformers"):
        build_system("teacher", SystemOptions())
    with pytest.raises(InvalidInputError, match="stride .* must not exceed window_size"):
        TeacherSystem(ScriptedTeacher(), window_size=2, stride=3)
    with pytest.raises(InvalidInputError, match="query_limit must be an int >= 1"):
        TeacherSystem(ScriptedTeacher(), query_limit=0)
    with pytest.raises(InvalidInputError, match="SystemOptions.teacher_queries must be an int >= 1"):
        SystemOptions(teacher_queries=0)
    built = build_system("teacher", SystemOptions(teacher=ScriptedTeacher(name="t"), teacher_queries=3, teacher_top=5))
    assert isinstance(built, TeacherSystem) and (built.query_limit, built.top) == (3, 5)


def test_run_eval_runs_the_teacher_on_the_first_queries_and_pairs_only_those(tmp_path: Path) -> None:
    cache = tmp_path / "cache.jsonl"
    teacher = ScriptedTeacher(default=score_reply, name="by-score")
    system = TeacherSystem(teacher, top=3, window_size=3, query_limit=2)
    results = run_eval([score_dataset()], [FirstStageSystem(), system], cache_path=cache)
    run = results.run_for("scores", "teacher")
    assert set(run.results) == {"q1", "q2"} and run.cost.queries == 2 and run.evaluation.n_queries == 2
    assert len(teacher.calls) == 2 and results.settings["query_limits"] == {"teacher": 2}
    (test,) = [c for c in results.comparisons if c.system == "teacher"]
    assert (test.randomization.n, test.randomization.n_unpaired) == (2, 0)
    assert results.run_for("scores", "first-stage").evaluation.n_queries == 3
    md = render_markdown(results)
    assert "`teacher` ranked only the first 2 of 3 queries; its means and Δ tests are over those queries only" in md
    assert "nDCG@10 on the same queries: `first-stage` " in md

    again = ScriptedTeacher(default=score_reply, name="by-score")  # cached per (system, query), keyed by the name
    run_eval([score_dataset()], [TeacherSystem(again, top=3, window_size=3, query_limit=2)], cache_path=cache)
    assert again.calls == []
    other = ScriptedTeacher(default=score_reply, name="another-teacher")
    run_eval([score_dataset()], [TeacherSystem(other, top=3, window_size=3, query_limit=3)], cache_path=cache)
    assert len(other.calls) == 3


def test_cli_teacher_system_with_a_local_model(tmp_path: Path, tiny_lm_dir: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    data = write_trec_dl(tmp_path / "data")
    report = tmp_path / "report"
    argv = ["eval", "--dataset", "dl19", "--systems", "first-stage,teacher", "--report", str(report), "--data-dir",
            str(data), "--no-progress", "--no-plots", "--teacher", f"transformers:{tiny_lm_dir}",
            "--teacher-max-tokens", "3", "--teacher-queries", "2", "--teacher-top", "3", "--teacher-window", "3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "(first 2 queries only)" in out
    md = (report / "report.md").read_text(encoding="utf-8")
    assert "`teacher` ranked only the first 2 of 3 queries" in md
    assert "`teacher`: 2 failures over 2 queries" in md  # a random LM writes no ranking: first-stage order kept
    assert f"--teacher transformers:{tiny_lm_dir}" in md and "--teacher-queries 2" in md
    data_json = json.loads((report / "report.json").read_text(encoding="utf-8"))
    assert data_json["settings"]["system_config"]["teacher"]["teacher"].startswith(
        f"transformers:{Path(tiny_lm_dir).name}[greedy,max_new_tokens=3")
    assert main([*argv[:10], "--no-plots", "--systems", "teacher"]) == 2
    assert "System 'teacher' needs a teacher" in capsys.readouterr().err


# --- teacher agreement --------------------------------------------------------------------------------------------


def r2r_row(qid: str) -> dict:
    """An R2R row: passage 1 is about fleas (relevant per the teacher), passage 2 about cats (not relevant)."""
    return {"query": f"how long do fleas live {qid}", "qid": qid, "unsorted_docs": [
        f"fleas live three months {qid}", f"cats sleep all day {qid}"], "re_rank_id": [1, 2],
        "sorted_docids": [f"{qid}-a", f"{qid}-b"], "scores": ["1", "0"],
        "reason": {"ranked_passages": [
            {"identifier": 1, "direct_reason": "This passage is relevant: fleas live three months.",
             "listwise_reason": "first"},
            {"identifier": 2, "direct_reason": "This passage is not relevant; it is about cats.",
             "listwise_reason": "second"}]}}


def write_r2r(path: Path, n: int = 20) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for q in range(n):
            handle.write(json.dumps(r2r_row(str(100 + q))) + "\n")
    return path


class EchoExplainer:
    """Says fleas passages are relevant (or everything, with ``always_relevant``); records what it explained."""

    name = "echo-explainer"

    def __init__(self, always_relevant: bool = False) -> None:
        self.queries: list[str] = []
        self.always_relevant = always_relevant

    def explain(self, query: str, passages: Sequence[str], *, verdicts: Sequence[str | None] | None = None,
                evidence: Sequence[str | None] | None = None) -> Generation:
        # It judges by itself (the fake students here have no calibrator, so no verdicts are given).
        self.queries.append(query)
        texts = [f"The passage is relevant: {p}." if self.always_relevant or "fleas" in p
                 else f"The passage is not relevant: {p}." for p in passages]
        return Generation(texts, [False] * len(passages), generated_tokens=5 * len(passages), seconds=0.01)


class ZeroScorer:
    name = "zero"

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        return [0.0] * len(passages)


def echo_system(explainer: EchoExplainer, name: str = "echo-student") -> RerankerSystem:
    def factory() -> Reranker:
        return Reranker(Student(scorer=ZeroScorer(), explainer=explainer, name="echo"), explain_top=0,  # type: ignore
                        compare_top=0, trace=False)

    return RerankerSystem(name, factory, {"echo": 1}, explains=True)


def test_validation_split_is_distills_and_never_holds_a_training_query(tmp_path: Path) -> None:
    path = write_r2r(tmp_path / "r2r.jsonl.gz")
    qids = [str(100 + q) for q in range(20)]
    train, held = split_query_ids(qids, 0.2, seed=3)
    split = load_validation_split(path, validation_fraction=0.2, seed=3)
    assert [q.qid for q in split.queries] == held and not set(held) & set(train)
    assert (split.validation_queries, split.train_queries, split.n_passages) == (4, 16, 8)
    first = split.queries[0]
    assert first.passages == (f"fleas live three months {first.qid}", f"cats sleep all day {first.qid}")
    assert first.teacher[1] == "This passage is not relevant; it is about cats."
    assert first.passage_ids == (f"{first.qid}-a", f"{first.qid}-b")
    limited = load_validation_split([path], validation_fraction=0.2, seed=3, max_queries=2, top=1)
    assert [q.qid for q in limited.queries] == held[:2] and limited.n_passages == 2
    assert limited.describe()["qids"] == held[:2] and "passages" in limited.describe()
    with pytest.raises(InvalidInputError, match="not found"):
        load_validation_split(tmp_path / "missing.jsonl.gz")
    with pytest.raises(InvalidInputError, match="validation_fraction must be in"):
        load_validation_split(path, validation_fraction=0.0)


def test_agreement_measures() -> None:
    assert unigram_f1("fleas live three months", "a flea lives three months") == 1.0
    assert unigram_f1("", "fleas") == 0.0 and unigram_f1("cats", "fleas") == 0.0
    pairs = [score_pair("q", "fleas", "a", "It is relevant: fleas live three months.",
                        "This passage is relevant: fleas live three months."),
             score_pair("q", "fleas", "b", "It is relevant.", "This passage is not relevant; it is about cats."),
             score_pair("q", "fleas", "c", None, "This passage is relevant.")]
    quality = agreement_quality(pairs, worst_k=2)
    assert (quality.n, quality.n_empty, quality.n_both_known, quality.n_verdict_agree) == (3, 1, 2, 1)
    assert quality.verdict_agreement == 0.5 and quality.student_coverage == pytest.approx(2 / 3)
    assert quality.teacher_coverage == 1.0
    assert quality.confusion == {"relevant/not_relevant": 1, "relevant/relevant": 1, "unknown/relevant": 1}
    assert [p.passage_id for p in quality.lowest] == ["c", "b"] and pairs[2].rouge_l_f1 == 0.0
    assert [p.passage_id for p in quality.disagreements] == ["b"]
    assert AgreementQuality.from_dict(json.loads(json.dumps(quality.to_dict()))) == quality
    empty = agreement_quality([])
    assert empty.n == 0 and empty.verdict_agreement is None and empty.rouge_l_f1 is None


def test_run_eval_teacher_agreement_with_a_fake_explainer(tmp_path: Path) -> None:
    path = write_r2r(tmp_path / "r2r.jsonl.gz")
    split = load_validation_split(path, validation_fraction=0.2, seed=0, max_queries=3)
    train, _ = split_query_ids([str(100 + q) for q in range(20)], 0.2, seed=0)
    explainer, always = EchoExplainer(), EchoExplainer(always_relevant=True)
    cache = tmp_path / "cache.jsonl"
    good, eager = echo_system(explainer), echo_system(always, "always-relevant")
    assert can_explain_passages(good) and not can_explain_passages(FirstStageSystem())
    results = run_eval([], [FirstStageSystem(), good, eager], cache_path=cache, agreement=split)
    assert results.agreement_skipped == ("first-stage",) and results.runs == ()
    seen = {q.rsplit(" ", 1)[1] for q in explainer.queries}
    assert seen == {q.qid for q in split.queries} and not seen & set(train)  # validation queries only
    by_name = {a.system: a for a in results.agreements}
    assert by_name["echo-student"].quality.verdict_agreement == 1.0
    assert by_name["always-relevant"].quality.verdict_agreement == 0.5
    assert by_name["echo-student"].quality.n == 6 and by_name["echo-student"].generated_tokens == 30
    assert by_name["echo-student"].computed == 3
    rows = [json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines()]
    assert sum(r["system"] == agreement_key(good) and r["dataset"] == AGREEMENT_DATASET for r in rows) == 3

    again = EchoExplainer()  # resumed from the cache
    second = run_eval([], [echo_system(again)], cache_path=cache, agreement=split)
    assert again.queries == [] and second.agreements[0].computed == 0
    assert second.agreements[0].quality == by_name["echo-student"].quality
    cached = ResultCache(cache).lookup("ranking", agreement_key(good), AGREEMENT_DATASET, split.queries[0].qid, "x")
    assert cached is None

    files = write_report(results, tmp_path / "report", plots=True)
    md = files.markdown.read_text(encoding="utf-8")
    section = md.split("## Teacher agreement (held-out training queries)")[1]
    assert "3 of the 4 validation queries" in section and "the 16 training queries are never used" in section
    assert "| `always-relevant` | 3 | 6 | 0.500 (3/6) |" in section
    assert "Skipped (no explainer): `first-stage`" in section
    assert "verdicts differ (student relevant, teacher not_relevant)" in section
    assert "## Cost" not in md and files.plots == ()
    data = json.loads(files.json.read_text(encoding="utf-8"))
    assert data["teacher_agreement"]["split"]["qids"] == [q.qid for q in split.queries]
    assert data["teacher_agreement"]["runs"][0]["quality"]["verdict_agreement"] == 1.0
    with pytest.raises(InvalidInputError, match="at least one dataset"):
        run_eval([], [good])


def test_adapter_distilled_on_another_split_gets_a_caution(tmp_path: Path) -> None:
    split = load_validation_split(write_r2r(tmp_path / "r2r.jsonl.gz"), validation_fraction=0.2)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    assert adapter_split_note(adapter, split) == "" and adapter_split_note(None, split) == ""  # nothing recorded
    info = {"data": {"train_queries": 16, "validation_queries": 4}}
    (adapter / "r2r_training.json").write_text(json.dumps(info), encoding="utf-8")
    assert adapter_split_note(adapter, split) == ""
    info["data"]["train_queries"] = 450
    (adapter / "r2r_training.json").write_text(json.dumps(info), encoding="utf-8")
    assert "450 training / 4 validation queries, this one has 16 / 4" in adapter_split_note(adapter, split)


def test_cli_teacher_agreement(tmp_path: Path, add_system, capsys: pytest.CaptureFixture[str]) -> None:
    add_system("echo-student", lambda a, o, p: echo_system(EchoExplainer()))
    path = write_r2r(tmp_path / "r2r.jsonl.gz")
    report = tmp_path / "report"
    argv = ["eval", "--teacher-agreement", str(path), "--systems", "first-stage,echo-student",
            "--teacher-agreement-queries", "2", "--report", str(report), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "teacher agreement (2 of 2 validation queries, 4 passages)" in out
    assert "echo-student: verdict agreement 1.000 (4/4)" in out and "skipped (no explainer): first-stage" in out
    md = (report / "report.md").read_text(encoding="utf-8")
    assert "## Teacher agreement" in md and f"--teacher-agreement {path} --teacher-agreement-queries 2" in md
    assert main(["eval", "--systems", "first-stage", "--report", str(report)]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
