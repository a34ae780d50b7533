"""Explanation quality in ``r2r eval``: runner, cache/resume, report sections and the command, with a fake explainer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from test_evals_runner import FakeSystem, tiny_dataset  # same folder (pytest puts it on sys.path)
from test_evals_runner_report import write_trec_dl

from r2r_agent.cli import main
from r2r_agent.errors import InvalidInputError
from r2r_agent.evals import systems as systems_module
from r2r_agent.evals.explanation_quality import explanation_quality
from r2r_agent.evals.report import render_markdown, write_report
from r2r_agent.evals.runner import ResultCache, explanation_key, run_eval
from r2r_agent.evals.systems import (
    FirstStageSystem,
    RerankerSystem,
    SystemOptions,
    can_explain,
    system_key,
)
from r2r_agent.explainer import Generation
from r2r_agent.reranker import Reranker
from r2r_agent.student import Student


class SuffixScorer:
    """Scores a passage ``text i of qN`` by ``i`` (so the last first-stage candidate comes first)."""

    name = "suffix-scorer"

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        return [float(p.split()[1]) for p in passages]


class FakeExplainer:
    """Says the passage with index 3 is relevant and the others are not; counts passages explained."""

    name = "fake-explainer"

    def __init__(self) -> None:
        self.explained: list[str] = []

    def explain(self, query: str, passages: Sequence[str], *, verdicts: Sequence[str | None] | None = None,
                evidence: Sequence[str | None] | None = None) -> Generation:
        # It judges by itself (no calibrator here, so no verdicts are given).
        self.explained += list(passages)
        texts = [f"The passage is relevant: {p} covers {query}." if p.startswith("text 3")
                 else f"The passage is not relevant; {p} says nothing about it." for p in passages]
        return Generation(texts, [False] * len(passages), generated_tokens=7 * len(passages), seconds=0.02)

    def compare_grounded(self, query: str, evidences: Sequence[str | None],
                         verdicts: Sequence[str | None]) -> Generation:  # pragma: no cover - compare_top=0
        raise AssertionError("the evaluation asks for no comparison")


def explaining_system(name: str = "fake-student", explainer: FakeExplainer | None = None) -> RerankerSystem:
    explainer = explainer or FakeExplainer()

    def factory() -> Reranker:
        return Reranker(Student(scorer=SuffixScorer(), explainer=explainer, name="fake"), explain_top=0,
                        compare_top=0, trace=False)

    return RerankerSystem(name, factory, {"fake": 1}, explains=True)


def test_can_explain_is_declared_not_loaded() -> None:
    built = []
    lazy = RerankerSystem("lazy", lambda: built.append(1), explains=True)
    assert can_explain(lazy) and not built  # nothing loaded to answer
    assert not can_explain(FirstStageSystem()) and not can_explain(FakeSystem("x"))
    assert not can_explain(RerankerSystem("plain", lambda: None))
    assert [can_explain(systems_module.build_system(n, SystemOptions())) for n in ("minilm", "zero-shot-lm")] == [
        False, False]
    assert can_explain(systems_module.build_system("student", SystemOptions()))


def test_reranker_system_explain_top_k_without_comparison() -> None:
    explainer = FakeExplainer()
    system = explaining_system(explainer=explainer)
    ds = tiny_dataset()
    ranking = system.explain(ds.queries["q1"], ds.candidates["q1"], 2)
    assert [j.id for j in ranking] == ["q1-d3", "q1-d2"]
    assert all(j.explanation for j in ranking) and ranking.comparison is None
    assert explainer.explained == ["text 3 of q1", "text 2 of q1"]
    with pytest.raises(InvalidInputError, match="without explanations"):
        RerankerSystem("plain", lambda: None).explain("q", ds.candidates["q1"], 2)


def test_run_eval_measures_explanations_and_skips_others(tmp_path: Path) -> None:
    ds = tiny_dataset()
    system = explaining_system()
    results = run_eval([ds], [FirstStageSystem(), system], cache_path=tmp_path / "cache.jsonl",
                       explain_queries=2, explain_top=2)
    assert results.explanation_skipped == ("first-stage",)
    (run,) = results.explanations
    assert (run.system, run.dataset, run.queries, run.computed, run.explain_top) == ("fake-student", "tiny", 2, 2, 2)
    assert set(run.rankings) == {"q1", "q2"}  # the first two queries
    expected = explanation_quality(run.rankings, ds.qrels)
    assert run.quality == expected
    # q1: d3 (grade 2, "relevant") right, d2 (ungraded) no grade; q2: d3 (ungraded), d2 (grade 1, "not") wrong.
    assert (run.quality.verdict.n_judged, run.quality.verdict.n_correct) == (2, 1)
    assert run.quality.verdict.accuracy == 0.5 and run.quality.verdict.coverage == 1.0
    assert run.generated_tokens == 2 * 2 * 7
    assert results.settings["explain_queries"] == 2 and results.settings["explain_top"] == 2
    # the ordinary ranking of the same system is untouched by the explanation runs
    assert results.run_for("tiny", "fake-student").results["q1"].doc_ids[0] == "q1-d3"


def test_explanations_resume_from_the_cache(tmp_path: Path) -> None:
    cache_path = tmp_path / "cache.jsonl"
    first = explaining_system()
    run_eval([tiny_dataset()], [first], cache_path=cache_path, explain_queries=2, explain_top=2)
    key = explanation_key(first, 2)
    assert key == f"{system_key(first)} explain_top=2"
    rows = [json.loads(line) for line in cache_path.read_text(encoding="utf-8").splitlines()]
    assert sum(r["kind"] == "ranking" and r["system"] == key for r in rows) == 2

    again = FakeExplainer()
    second = run_eval([tiny_dataset()], [explaining_system(explainer=again)], cache_path=cache_path,
                      explain_queries=2, explain_top=2)
    assert again.explained == [] and second.explanations[0].computed == 0
    assert ResultCache(cache_path).lookup("ranking", key, "tiny", "q1", "other-input") is None

    more = FakeExplainer()  # one more query: only it is computed
    third = run_eval([tiny_dataset()], [explaining_system(explainer=more)], cache_path=cache_path,
                     explain_queries=3, explain_top=2)
    assert third.explanations[0].computed == 1 and more.explained == ["text 3 of q3", "text 2 of q3"]

    other = FakeExplainer()  # another explain_top is another key
    run_eval([tiny_dataset()], [explaining_system(explainer=other)], cache_path=cache_path,
             explain_queries=1, explain_top=3)
    assert len(other.explained) == 3


def test_report_has_the_explanation_section(tmp_path: Path) -> None:
    results = run_eval([tiny_dataset()], [FirstStageSystem(), explaining_system()], explain_queries=2,
                       explain_top=2)
    files = write_report(results, tmp_path, plots=False)
    md = files.markdown.read_text(encoding="utf-8")
    section = md.split("## Explanation quality")[1].split("\n## ")[0]
    assert "Skipped (no explainer): `first-stage`." in section
    assert "| tiny | `fake-student` | 2 | 4 | 0.500 (1/2) | 1.000 |" in section
    assert "### Worst cases: `fake-student` on tiny" in section
    assert "wrong verdict (verdict not_relevant, grade 1), q2 / q2-d2" in section
    data = json.loads(files.json.read_text(encoding="utf-8"))
    quality = data["explanation_quality"]
    assert quality["skipped"] == ["first-stage"]
    (run,) = quality["runs"]
    assert run["system"] == "fake-student" and run["quality"]["verdict"]["accuracy"] == 0.5
    assert run["quality"]["wrong_verdicts"][0]["passage_id"] == "q2-d2"


def test_no_section_when_off_and_note_when_nothing_explains() -> None:
    off = run_eval([tiny_dataset()], [FirstStageSystem()])
    assert "Explanation quality" not in render_markdown(off) and off.explanations == ()
    assert off.to_dict()["explanation_quality"] == {"runs": [], "skipped": []}
    none = run_eval([tiny_dataset()], [FirstStageSystem()], explain_queries=1)
    md = render_markdown(none)
    assert "Skipped (no explainer): `first-stage`." in md and "No system that can explain was run." in md
    with pytest.raises(InvalidInputError, match="explain_top must be an int >= 1"):
        run_eval([tiny_dataset()], [FirstStageSystem()], explain_queries=1, explain_top=0)


def test_cli_explain_queries(tmp_path: Path, add_system, capsys: pytest.CaptureFixture[str]) -> None:
    add_system("fake-student", lambda arg, options, pool: explaining_system())
    data = write_trec_dl(tmp_path / "data")
    report = tmp_path / "report"
    argv = ["eval", "--dataset", "dl19", "--systems", "first-stage,fake-student", "--report", str(report),
            "--data-dir", str(data), "--no-progress", "--no-plots", "--explain-queries", "2", "--explain-top", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "dl19 fake-student: verdict accuracy 0.500" in out and "skipped (no explainer): first-stage" in out
    md = (report / "report.md").read_text(encoding="utf-8")
    assert "## Explanation quality" in md and "--explain-queries 2 --explain-top 2" in md
    cache = (report / "cache.jsonl").read_text(encoding="utf-8")
    assert main(argv) == 0  # resumed: nothing new in the cache
    assert (report / "cache.jsonl").read_text(encoding="utf-8") == cache
    data_json = json.loads((report / "report.json").read_text(encoding="utf-8"))
    assert data_json["explanation_quality"]["runs"][0]["computed"] == 0
    assert main([*argv[:-4], "--explain-queries", "-1"]) == 2
    assert "--explain-queries must be >= 0" in capsys.readouterr().err
