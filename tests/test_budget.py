"""RerankConfig.budget_ms (issue 20 item 3): scoring and judging always run; the LM reasons and the LM comparison
start only while the budget lasts, else the evidence explanation and the grounded comparison; never an error or a
half-written reason, and each judgment says what it got. Time is a fake clock that the slow fakes advance."""

from __future__ import annotations

import types

import pytest

import r2r_agent.reranker as reranker_module
from r2r_agent import InvalidInputError, RerankConfig, Reranker, Scores, Student
from r2r_agent.explainer import Generation
from r2r_agent.explanations import evidence_explanation

QUERY = "how long do adult fleas live"
PASSAGES = ["Adult fleas live two to three months. They bite.", "Fleas bite. They itch.", "The sun is hot."]
REASON = "It states how long adult fleas live."


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now


class SlowScorer:
    """Scores by shared words; each call takes ``seconds`` of the fake clock."""

    name = "slow-scorer"

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock, self.seconds = clock, seconds

    def score(self, query, passages):
        self.clock.now += self.seconds
        wanted = set(query.lower().split())
        return Scores([float(len(wanted & set(p.lower().replace(".", "").split()))) for p in passages])


class SlowExplainer:
    """Writes whole reasons; each call takes ``seconds`` of the fake clock."""

    name = "slow-lm"

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock, self.seconds = clock, seconds
        self.calls: list[str] = []

    def explain(self, query, passages, *, verdicts=None, evidence=None):
        self.calls.append("explain")
        self.clock.now += self.seconds
        return Generation(texts=[REASON] * len(passages), seconds=self.seconds)

    def compare_grounded(self, query, evidences, verdicts):
        self.calls.append("compare")
        self.clock.now += self.seconds
        return Generation(texts=["[1] says how long fleas live; [2] only that they bite."], seconds=self.seconds)


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(reranker_module, "time", types.SimpleNamespace(perf_counter=fake.perf_counter))
    return fake


def rerank(clock, *, score_seconds=0.01, explain_seconds=0.5, **settings):
    explainer = SlowExplainer(clock, explain_seconds)
    student = Student(scorer=SlowScorer(clock, score_seconds), explainer=explainer, name="slow")
    ranking = Reranker(student, explain="full", comparison="lm", explain_top=2, trace=False).rerank(
        QUERY, PASSAGES, **settings)
    return ranking, explainer


def test_without_a_budget_every_lm_stage_runs(clock):
    ranking, explainer = rerank(clock)
    assert explainer.calls == ["explain", "compare"]
    assert [j.explained_by for j in ranking] == ["lm", "lm", None]
    assert ranking[0].explanation.endswith(REASON) and ranking.comparison.startswith("[1] says")


def test_a_budget_that_lasts_changes_nothing(clock):
    unbounded, _ = rerank(clock)
    ranking, explainer = rerank(clock, budget_ms=60_000)
    assert explainer.calls == ["explain", "compare"]
    assert [j.to_dict() for j in ranking] == [j.to_dict() for j in unbounded]
    assert ranking.comparison == unbounded.comparison


def test_a_budget_spent_by_scoring_and_judging_skips_both_lm_stages(clock):
    # scoring + judging take 2 x 0.2 s of a 100 ms budget: they still run in full; the LM never does
    unbounded, _ = rerank(clock, score_seconds=0.2)
    ranking, explainer = rerank(clock, score_seconds=0.2, budget_ms=100)
    assert explainer.calls == []
    assert [j.explained_by for j in ranking] == ["evidence", "evidence", None]
    for j in ranking[:2]:
        assert j.explanation == evidence_explanation(j.verdict, j.evidence)
    # the order, scores and evidence are those of the call without a budget
    assert [(j.text, j.score, j.evidence, j.evidence_span) for j in ranking] == \
        [(j.text, j.score, j.evidence, j.evidence_span) for j in unbounded]
    assert ranking.comparison is not None and ranking.comparison != unbounded.comparison  # the grounded one
    components = {s.stage: s.component for s in ranking.stages}
    assert components == {"score": "slow-scorer", "judge": "slow-scorer", "explain": "evidence",
                          "compare": "grounded"}


def test_a_budget_spent_during_the_reasons_finishes_them_and_skips_the_lm_comparison(clock):
    # the explain stage starts inside the 100 ms budget and takes 0.5 s: its reasons are kept whole
    ranking, explainer = rerank(clock, budget_ms=100, explain_seconds=0.5)
    assert explainer.calls == ["explain"]
    assert [j.explained_by for j in ranking] == ["lm", "lm", None]
    assert all(j.explanation.endswith(REASON) for j in ranking[:2])
    assert ranking.comparison is not None and not ranking.comparison.startswith("[1] says how long")
    assert [s.component for s in ranking.stages if s.stage == "compare"] == ["grounded"]


def test_budget_zero_never_runs_the_lm(clock):
    ranking, explainer = rerank(clock, score_seconds=0.0, budget_ms=0)
    assert explainer.calls == [] and [j.explained_by for j in ranking][:2] == ["evidence", "evidence"]


def test_explain_keeps_the_budget_too(clock):
    explainer = SlowExplainer(clock, 0.5)
    student = Student(scorer=SlowScorer(clock, 0.2), explainer=explainer, name="slow")
    ranking = Reranker(student, trace=False).explain(QUERY, PASSAGES, budget_ms=100)
    assert explainer.calls == [] and [j.explained_by for j in ranking] == ["evidence"] * 3


def test_budget_ms_is_checked():
    assert RerankConfig(budget_ms=250).budget_ms == 250 and RerankConfig().budget_ms is None
    for bad in (-1, 1.5, "250", True):
        with pytest.raises(InvalidInputError, match="budget_ms must be an int >= 0 or None"):
            RerankConfig(budget_ms=bad)
    assert "latency budget in ms" in RerankConfig.help("budget_ms")
