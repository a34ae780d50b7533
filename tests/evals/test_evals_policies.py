"""Ordering policies in ``r2r eval`` (``--ordering``): parsing, names and cache keys, the worst-case table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from test_evals_runner import FakeSystem, tiny_dataset  # same folder (pytest puts it on sys.path)
from test_evals_runner_report import write_trec_dl

from r2r_agent import RerankConfig
from r2r_agent.cli import main
from r2r_agent.errors import InvalidInputError
from r2r_agent.evals.policies import SETTINGS_KEY, Policy, build_policy_systems, parse_policies, worst_cases
from r2r_agent.evals.report import render_markdown, write_report
from r2r_agent.evals.runner import run_eval
from r2r_agent.evals.systems import (
    FirstStageSystem,
    ModelPool,
    RerankerSystem,
    SystemOptions,
    build_system,
    system_key,
    variant,
)
from r2r_agent.reranker import Reranker
from r2r_agent.student import Student


def test_parse_policies() -> None:
    policies = parse_policies("scorer,rrf, first_stage,scorer@0.5")
    assert [p.label for p in policies] == ["scorer", "rrf", "first_stage", "scorer@0.5"]
    assert policies[3] == Policy("scorer", 0.5) and policies[1].first_stage_weight == 0.0
    assert [p.label for p in parse_policies("rrf,scorer@0", 0.3)] == ["rrf@0.3", "scorer"]  # the flag's weight
    assert Policy("rrf", 0.5).apply(RerankConfig(top_n=3)) == RerankConfig(top_n=3, ordering="rrf",
                                                                           first_stage_weight=0.5)
    with pytest.raises(InvalidInputError, match="unknown ordering 'fusion' .* expected one of scorer, rrf"):
        parse_policies("scorer,fusion@0.5")
    with pytest.raises(InvalidInputError, match="weight after @ must be a number"):
        parse_policies("scorer@half")
    with pytest.raises(InvalidInputError, match="first_stage_weight must be a number in"):
        parse_policies("scorer@2")
    with pytest.raises(InvalidInputError, match="distinct policies"):
        parse_policies("rrf,rrf")
    with pytest.raises(InvalidInputError, match="distinct policies"):
        parse_policies(" , ")


def test_names_and_cache_keys_per_policy() -> None:
    def built(policy: Policy, name: str = "minilm") -> tuple[str, str]:
        system = build_system(name, SystemOptions(rerank=policy.apply(RerankConfig())))
        return system.name, system_key(system)

    plain = build_system("minilm", SystemOptions())
    assert built(Policy("scorer")) == ("minilm", system_key(plain)) == ("minilm",
                                                                        'minilm {"model": "all-MiniLM-L6-v2"}')
    assert built(Policy("rrf")) == ("minilm+rrf", 'minilm+rrf {"model": "all-MiniLM-L6-v2", "ordering": "rrf"}')
    assert built(Policy("first_stage"))[0] == "minilm+first-stage-order"
    fused = build_system("minilm", SystemOptions(rerank=RerankConfig(first_stage_weight=0.5)))
    assert built(Policy("scorer", 0.5)) == (fused.name, system_key(fused)) == (
        "minilm+first-stage@0.5", 'minilm+first-stage@0.5 {"first_stage_weight": 0.5, "model": "all-MiniLM-L6-v2"}')
    assert built(Policy("rrf"), "student")[0] == "student+rrf"
    assert variant("x", {}, RerankConfig(ordering="rrf", first_stage_weight=0.25))[0] == "x+rrf+first-stage@0.25"


def test_build_policy_systems_builds_rerankers_once_per_policy() -> None:
    systems, origin = build_policy_systems(["first-stage", " minilm", "student"], SystemOptions(), ModelPool(),
                                           parse_policies("scorer,rrf,scorer@0.5"))
    assert [s.name for s in systems] == ["first-stage", "minilm", "student", "minilm+rrf", "student+rrf",
                                         "minilm+first-stage@0.5", "student+first-stage@0.5"]
    assert origin["student+rrf"] == {"system": "student", "policy": "rrf"} and "first-stage" not in origin
    assert origin["minilm"] == {"system": "minilm", "policy": "scorer"}
    assert all(getattr(s, "_reranker", None) is None for s in systems[1:])  # nothing loaded


def policy_results():
    settings = {SETTINGS_KEY: {"policies": ["scorer", "rrf"], "systems": {
        "minilm": {"system": "minilm", "policy": "scorer"}, "minilm+rrf": {"system": "minilm", "policy": "rrf"}}}}
    return run_eval([tiny_dataset("a"), tiny_dataset("b")],
                    [FirstStageSystem(), FakeSystem("minilm", prefer=(3, 2, 1, 0)),
                     FakeSystem("minilm+rrf", prefer=(1, 0, 2, 3))], settings=settings)


def test_worst_cases_against_the_better_baseline() -> None:
    results = policy_results()
    rows = {row["run"]: row for row in worst_cases(results)}
    assert list(rows) == ["first-stage", "minilm", "minilm+rrf"]

    def ndcg(system: str) -> float:
        return results.run_for("a", system).evaluation["nDCG@10"]

    better = max(ndcg("first-stage"), ndcg("minilm"))
    assert rows["minilm+rrf"]["delta"]["a"] == pytest.approx(ndcg("minilm+rrf") - better)
    assert rows["minilm+rrf"]["worst"] == pytest.approx(ndcg("minilm+rrf") - better)
    assert rows["minilm+rrf"]["worst_dataset"] == "a"  # both datasets are the same: the first is kept
    assert max(rows["first-stage"]["delta"]["a"], rows["minilm"]["delta"]["a"]) == 0.0
    assert rows["first-stage"]["policy"] == "retriever order" and rows["minilm+rrf"]["policy"] == "rrf"


def test_report_has_the_policy_section(tmp_path: Path) -> None:
    results = policy_results()
    files = write_report(results, tmp_path, plots=False)
    md = files.markdown.read_text(encoding="utf-8")
    section = md.split("## Ordering policies: worst case")[1].split("\n## ")[0]
    assert "Policies `scorer`, `rrf`" in section and "| system | policy | a | b | worst |" in section
    row = next(r for r in worst_cases(results) if r["run"] == "minilm+rrf")
    assert f"| `minilm` | rrf | {row['ndcg']['a']:.4f} ({row['delta']['a']:+.4f}) |" in section
    assert f"| {row['worst']:+.4f} (a) |" in section
    data = json.loads(files.json.read_text(encoding="utf-8"))
    assert [r["run"] for r in data["ordering_worst_cases"]] == ["first-stage", "minilm", "minilm+rrf"]
    plain = run_eval([tiny_dataset()], [FirstStageSystem()])
    assert "Ordering policies" not in render_markdown(plain)
    written = write_report(plain, tmp_path / "plain", plots=False).json.read_text(encoding="utf-8")
    assert "ordering_worst_cases" not in json.loads(written)
    no_baseline = run_eval([tiny_dataset()], [FakeSystem("minilm+rrf")], settings={SETTINGS_KEY: {
        "policies": ["rrf"], "systems": {"minilm+rrf": {"system": "minilm", "policy": "rrf"}}}})
    assert "Run `first-stage` and `minilm` too" in render_markdown(no_baseline)


class SuffixScorer:
    """Scores ``text i of qN`` by ``i``."""

    name = "suffix-scorer"

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        return [float(p.split()[1]) for p in passages]


def fake_reranker(arg: str | None, options: SystemOptions, pool: ModelPool) -> RerankerSystem:
    """A system built like the built-in ones: its Reranker follows ``options.rerank``, its name :func:`variant`."""
    config = options.rerank.replace(top_n=None, explain_top=0, compare_top=0)
    name, key = variant("fake", {"scorer": "suffix"}, config)
    return RerankerSystem(name, lambda: Reranker(Student(scorer=SuffixScorer()), config=config, trace=False), key)


def test_cli_ordering(tmp_path: Path, add_system, capsys: pytest.CaptureFixture[str]) -> None:
    add_system("fake", fake_reranker)
    data = write_trec_dl(tmp_path / "data")
    report = tmp_path / "report"
    argv = ["eval", "--dataset", "dl19", "--systems", "first-stage,fake", "--ordering", "scorer,rrf,first_stage",
            "--report", str(report), "--data-dir", str(data), "--no-progress", "--no-plots"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "fake+rrf" in out and "fake+first-stage-order" in out
    data_json = json.loads((report / "report.json").read_text(encoding="utf-8"))
    assert data_json["systems"] == ["first-stage", "fake", "fake+rrf", "fake+first-stage-order"]
    assert data_json["settings"][SETTINGS_KEY]["systems"]["fake+first-stage-order"] == {"system": "fake",
                                                                                        "policy": "first_stage"}
    ndcg = {r["system"]: r["evaluation"]["aggregates"]["nDCG@10"] for r in data_json["runs"]}
    assert ndcg["fake+first-stage-order"] == pytest.approx(ndcg["first-stage"])  # the retriever's order, kept
    md = (report / "report.md").read_text(encoding="utf-8")
    assert "## Ordering policies: worst case" in md and "--ordering scorer,rrf,first_stage" in md
    assert "Run `first-stage` and `minilm` too" in md  # no minilm in this run
    assert main([*argv[:5], "--ordering", "best", *argv[7:]]) == 2
    assert "unknown ordering 'best'" in capsys.readouterr().err


def _pool_dataset():
    """Two queries, five candidates each in the retriever's order, with each passage's score and verdict."""
    from r2r_agent import Passage
    from r2r_agent.evals.dataset import Dataset

    candidates = {q: tuple(Passage(f"{q} text {i}", id=f"{q}-d{i}") for i in range(5)) for q in ("q1", "q2")}
    qrels = {"q1": {"q1-d3": 3, "q1-d4": 1}, "q2": {"q2-d0": 2}}
    return Dataset(name="toy", queries={"q1": "a", "q2": "b"}, candidates=candidates, qrels=qrels)


def _pool():
    from r2r_agent.evals.policies import Found

    # q1: the scorer likes d0 (not relevant) best; d3 is the answer (relevant), d4 on topic (partial)
    # q2: the retriever's first (d0) answers; the scorer prefers d1 (not relevant)
    table = {("q1", "q1-d0"): (0.9, 0.05, "not_relevant"), ("q1", "q1-d1"): (0.2, 0.05, "not_relevant"),
             ("q1", "q1-d2"): (0.3, 0.05, "not_relevant"), ("q1", "q1-d3"): (0.8, 0.6, "relevant"),
             ("q1", "q1-d4"): (0.1, 0.2, "partial"), ("q2", "q2-d0"): (0.5, 0.5, "relevant"),
             ("q2", "q2-d1"): (0.7, 0.05, "not_relevant"), ("q2", "q2-d2"): (0.1, 0.05, "not_relevant"),
             ("q2", "q2-d3"): (0.0, 0.05, "not_relevant"), ("q2", "q2-d4"): (0.2, 0.15, "partial")}
    return {key: Found(*value) for key, value in table.items()}


def test_policy_order_uses_each_orderings_own_class_and_never_puts_not_relevant_above_a_tier() -> None:
    from r2r_agent.evals.policies import policy_order

    dataset, pool = _pool_dataset(), _pool()
    found = {d: f for (q, d), f in pool.items() if q == "q1"}
    passages = dataset.candidates["q1"]
    assert policy_order("first_stage", passages, found) == ["q1-d0", "q1-d1", "q1-d2", "q1-d3", "q1-d4"]
    assert policy_order("scorer", passages, found)[0] == "q1-d0"  # the scorer's favourite answers nothing
    assert policy_order("tiers", passages, found) == ["q1-d3", "q1-d4", "q1-d0", "q1-d1", "q1-d2"]
    assert policy_order("tiers_rrf", passages, found)[:2] == ["q1-d3", "q1-d4"]
    assert policy_order("tiers", passages, found, cut=3) == ["q1-d0", "q1-d1", "q1-d2"]  # only the first 3 shown


def test_cut_table_measures_each_cut_against_the_better_baseline_and_picks_a_tiered_default() -> None:
    from r2r_agent.evals.policies import cut_section, cut_table, pick_default

    dataset, pool = _pool_dataset(), _pool()
    rows = cut_table([dataset], pool, cuts=(2, None))
    by = {(r["cut"], r["policy"]): r for r in rows}
    assert set(by) == {(c, p) for c in (2, None) for p in ("first_stage", "scorer", "rrf", "tiers", "tiers_rrf")}
    for cut in (2, None):
        # a baseline is at most 0 from the better of the two, and one of them is exactly 0
        assert max(by[(cut, "first_stage")]["worst"], by[(cut, "scorer")]["worst"]) == 0.0
    # on the whole lists the tiers put q1's answer first and keep q2's first: the best of all
    assert by[(None, "tiers")]["worst"] > 0 and by[(None, "tiers")]["ndcg"]["toy"] == 1.0
    assert by[(None, "tiers")]["queries"] == {"toy": 2}
    assert pick_default(rows) == "tiers"
    # a passage missing from the pool leaves that query out of the cuts that show it, and says so
    partial = {k: v for k, v in pool.items() if k != ("q2", "q2-d4")}
    rows = cut_table([dataset], partial, cuts=(2, None))
    assert {r["cut"]: r["queries"]["toy"] for r in rows} == {2: 2, None: 1}
    text = "\n".join(cut_section(rows, ["toy"]))
    assert "| all | **`tiers`**" in text and "worst" in text
