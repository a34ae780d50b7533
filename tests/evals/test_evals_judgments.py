"""Relevance and verdicts over all candidates (``r2r eval --judgments``): measures, systems, cache, report, command."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pytest
from test_evals_runner import tiny_dataset  # same folder (pytest puts it on sys.path)
from test_evals_runner_report import write_trec_dl

from r2r_agent.calibration import Calibrator
from r2r_agent.cli import main
from r2r_agent.errors import InvalidInputError
from r2r_agent.evals.judgments import JudgedQuery, abstention, judgment_quality
from r2r_agent.evals.records import candidate
from r2r_agent.evals.report import render_markdown, write_report
from r2r_agent.evals.runner import ResultCache, judgment_key, run_eval
from r2r_agent.evals.systems import FirstStageSystem, RerankerSystem, SystemOptions, build_system, can_judge
from r2r_agent.metrics import auc, balanced_accuracy, brier, expected_calibration_error
from r2r_agent.reranker import Reranker
from r2r_agent.student import Student


class CountingScorer:
    """Scores ``text i of qN`` (and each of its sentences) by ``i``; counts the texts it scored."""

    name = "suffix-scorer"

    def __init__(self) -> None:
        self.scored = 0

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        self.scored += len(passages)
        return [float(p.split()[1]) for p in passages]


#: relevance = sigmoid(2 i - 4): 0.018, 0.119, 0.5, 0.881 -> not_relevant, not_relevant, relevant, relevant.
CALIBRATOR = Calibrator(scorer="suffix-scorer", features=("score",), weights=(2.0,), bias=-4.0, relevant_at=0.5,
                        partial_at=0.2)


def judging_system(scorer: CountingScorer | None = None, *, calibrator: Calibrator | None = CALIBRATOR,
                   name: str = "judge") -> RerankerSystem:
    scorer = scorer or CountingScorer()

    def factory() -> Reranker:
        return Reranker(Student(scorer=scorer, calibrator=calibrator, name="fake"), trace=False)

    return RerankerSystem(name, factory, {"fake": 1}, judges=True, judge_config={"calibrator": "c1"})


# --- the measures -------------------------------------------------------------------------------------------------


def test_balanced_accuracy() -> None:
    # One implementation (r2r_agent.metrics), labels first, for evals and the calibrator's thresholds alike.
    assert balanced_accuracy([True, False], [True, False]) == 1.0
    assert balanced_accuracy([True, False, False], [True, True, True]) == 0.5  # a constant scores 0.5
    assert balanced_accuracy([True, False, False, False], [True, True, False, False]) == pytest.approx(5 / 6)
    assert math.isnan(balanced_accuracy([True], [True]))  # one class only (a report shows it as None)
    with pytest.raises(ValueError, match="2 labels but 1 predictions"):
        balanced_accuracy([True, False], [True])


def test_abstention_counts_each_side() -> None:
    lists = [[(2, 0.9, "relevant"), (0, 0.1, "not_relevant")],  # both lists
             [(1, 0.8, "partial"), (3, 0.7, "relevant")],  # every candidate relevant: no second list
             [(0, 0.3, "partial")]]  # nothing relevant: one negative list
    a = abstention(lists)
    assert (a.n_full, a.n_removed, a.n_all_relevant, a.n_no_relevant) == (2, 2, 1, 1)
    assert a.auc == auc([0.9, 0.8, 0.1, 0.3], [True, True, False, False]) == 1.0
    assert (a.answerable_full, a.answerable_removed) == (1.0, 0.0)
    assert abstention([]).auc is None


def test_judgment_quality_by_hand() -> None:
    ds = tiny_dataset()
    judged = {}
    for qid, cands in ds.candidates.items():
        rel = [1 / (1 + pow(2.718281828459045, -(2 * i - 4))) for i in range(4)]
        verdicts = [CALIBRATOR.verdict(r) for r in rel]
        judged[qid] = JudgedQuery(tuple(c.id or "" for c in cands), tuple(range(4)), tuple(rel), tuple(verdicts))
    q = judgment_quality(judged, ds.qrels)
    # answers (label >= 2): q1-d3 and q3-d0; the calibrated verdict says relevant for d2 and d3 of every query
    assert (q.n_queries, q.n_judgments, q.n_with_verdict, q.n_answers, q.n_on_topic) == (3, 12, 12, 2, 4)
    assert q.verdict_coverage == 1.0
    assert q.balanced_accuracy_relevant == (1 / 2 + 5 / 10) / 2 and q.balanced_accuracy_on_topic == 0.5
    labels = [ds.qrels[qid].get(d, 0) >= 2 for qid, j in judged.items() for d in j.doc_ids]
    rel = [r for j in judged.values() for r in j.relevance]
    assert q.ece == pytest.approx(expected_calibration_error(rel, labels)) and q.brier == pytest.approx(
        brier(rel, labels))
    assert q.auc_relevance == pytest.approx(auc(rel, labels)) and q.auc_score == q.auc_relevance
    # full lists all peak at d3 (0.881); without their label >= 1 passages: 0.5 (q1), 0.881 (q2, q3)
    assert q.abstention.auc == pytest.approx((3 + 6 * 0.5) / 9) and q.abstention.n_removed == 3
    assert q.by_label["0"]["n"] == 8 and q.by_label["2"] == {"n": 1, "relevant": 1, "partial": 0, "not_relevant": 0,
                                                              "none": 0, "mean_relevance": pytest.approx(rel[3])}
    assert q.by_label["all"]["relevant"] == 6 and json.loads(json.dumps(q.to_dict()))["targets"]["ece"] == "<= 0.10"
    without = judgment_quality({"q1": JudgedQuery(("q1-d0",), (1.0,), (None,), (None,))}, ds.qrels)
    assert without.verdict_coverage == 0.0 and without.ece is None and without.balanced_accuracy_relevant is None
    assert judgment_quality(judged, {}).n_queries == 0  # queries without qrels are left out


def test_judged_query_round_trip_and_checks() -> None:
    cands = [candidate("a", 2.0, "text 1 of q"), candidate("b", 1.0, "text 3 of q")]
    ranking = judging_system().judge("q", cands)
    judged = JudgedQuery.from_ranking(ranking, cands)
    assert judged.doc_ids == ("b", "a") and judged.verdicts == ("relevant", "not_relevant")
    stored = json.loads(json.dumps(judged.to_dict()))
    assert set(stored) == {"doc_ids", "scores", "relevance", "verdicts", "seconds"}  # no texts
    assert JudgedQuery.from_dict(stored, cands) == judged
    with pytest.raises(InvalidInputError, match="not the 1 candidates"):
        JudgedQuery.from_dict(stored, cands[:1])
    with pytest.raises(InvalidInputError, match="one of each per judgment"):
        JudgedQuery(("a",), (), (), ())


# --- systems ------------------------------------------------------------------------------------------------------


def test_judging_is_declared_when_built_and_checked_when_run() -> None:
    built = [build_system(n, SystemOptions()) for n in ("student", "minilm", "zero-shot-lm", "first-stage")]
    assert [can_judge(s) for s in built] == [True, True, False, False]
    assert all(getattr(s, "_reranker", None) is None for s in built[:3])  # nothing loaded to answer
    assert built[0].judge_config == built[1].judge_config and built[1].judge_config["calibrator"]
    assert "calibrator" not in built[1].config and built[1].name == "minilm"  # the ranking's key is unchanged
    cands = tiny_dataset().candidates["q1"]
    with pytest.raises(InvalidInputError, match="built without judgments"):
        RerankerSystem("plain", lambda: None).judge("q", cands)
    with pytest.raises(InvalidInputError, match="no calibrator for its scorer 'suffix-scorer'"):
        judging_system(calibrator=None).judge("q", cands)


def test_run_eval_judges_and_resumes_from_the_cache(tmp_path: Path) -> None:
    cache_path = tmp_path / "cache.jsonl"
    scorer = CountingScorer()
    system = judging_system(scorer)
    results = run_eval([tiny_dataset()], [FirstStageSystem(), system], cache_path=cache_path, judgments=True)
    assert results.judgment_skipped == ("first-stage",) and results.settings["judgments"] is True
    (run,) = results.judgments
    assert (run.system, run.dataset, run.queries, run.computed) == ("judge", "tiny", 3, 3)
    assert run.quality.n_judgments == 12 and run.quality.balanced_accuracy_relevant == 0.5
    key = judgment_key(system)
    assert key == 'judge {"fake": 1} judgments {"calibrator": "c1"}'
    rows = [json.loads(line) for line in cache_path.read_text(encoding="utf-8").splitlines()]
    judged_rows = [r for r in rows if r["kind"] == "judged"]
    assert len(judged_rows) == 3 and all(r["system"] == key for r in judged_rows)
    assert "text" not in json.dumps(judged_rows[0]["judged"])
    assert ResultCache(cache_path).lookup("judged", key, "tiny", "q1", "other-input") is None

    again = CountingScorer()
    second = run_eval([tiny_dataset()], [judging_system(again)], cache_path=cache_path, judgments=True)
    assert second.judgments[0].computed == 0 and second.judgments[0].quality == run.quality
    assert again.scored == 0  # the ranking and the judgments both came from the cache
    off = run_eval([tiny_dataset()], [judging_system()])
    assert off.judgments == () and off.to_dict()["judgments"] == {"runs": [], "skipped": []}


def test_report_has_the_judgment_section(tmp_path: Path) -> None:
    results = run_eval([tiny_dataset()], [FirstStageSystem(), judging_system()], judgments=True)
    files = write_report(results, tmp_path, plots=False)
    md = files.markdown.read_text(encoding="utf-8")
    section = md.split("## Relevance and verdicts (all candidates)")[1].split("\n## ")[0]
    assert "*answers* the query when its TREC label is >= 2" in section
    assert "Skipped (no calibrator): `first-stage`." in section
    assert "verdict coverage [100%] | bal. acc. relevant [>= 0.78] | bal. acc. on topic [>= 0.78] | ECE [<= 0.10]" \
        in section and "abstention AUC [>= 0.90]" in section
    assert "| tiny | `judge` | 3 | 12 | 100.0% (12/12) | 0.500 | 0.500 |" in section
    assert "| 3 / 3 | 1.000 / 1.000 |" in section
    assert "| tiny | `judge` | 2 | 1 | 1 | 0 | 0 | 0 | 0.881 |" in section
    assert "| tiny | `judge` | all | 12 | 6 | 0 | 6 | 0 |" in section
    data = json.loads(files.json.read_text(encoding="utf-8"))
    (run,) = data["judgments"]["runs"]
    assert run["quality"]["abstention"]["n_full"] == 3 and run["quality"]["verdict_coverage"] == 1.0
    none = run_eval([tiny_dataset()], [FirstStageSystem()], judgments=True)
    assert "No system that can judge was run." in render_markdown(none)
    assert "Relevance and verdicts" not in render_markdown(run_eval([tiny_dataset()], [FirstStageSystem()]))


def test_cli_judgments(tmp_path: Path, add_system, capsys: pytest.CaptureFixture[str]) -> None:
    add_system("fake-judge", lambda arg, options, pool: judging_system(name="fake-judge"))
    data = write_trec_dl(tmp_path / "data")
    report = tmp_path / "report"
    argv = ["eval", "--dataset", "dl19", "--systems", "first-stage,fake-judge", "--report", str(report),
            "--data-dir", str(data), "--no-progress", "--no-plots", "--judgments"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "dl19 fake-judge: coverage 1.000, bal. acc. relevant 0.500" in out
    assert "skipped (no calibrator): first-stage" in out
    md = (report / "report.md").read_text(encoding="utf-8")
    assert "## Relevance and verdicts (all candidates)" in md and "--no-plots" not in md.split("```")[1]
    assert "--judgments --report" in md
    cache = (report / "cache.jsonl").read_text(encoding="utf-8")
    assert main(argv) == 0 and (report / "cache.jsonl").read_text(encoding="utf-8") == cache  # all from the cache
