"""The orderings (r2r_agent.orderings): one class each in a registry, verdict tiers, fusion ties (issue 20.5)."""

from __future__ import annotations

import itertools

import pytest

from r2r_agent import InvalidInputError, RerankConfig, Reranker, Student
from r2r_agent.calibration import Calibrator
from r2r_agent.config import ORDERINGS
from r2r_agent.orderings import REGISTRY, Ordering, get, names, register
from r2r_agent.scorers import Scores

QUERY = "adult fleas live"
SUN, BITE, CATS = "The sun is hot. It is far.", "Fleas bite. They itch.", "Cats sleep. They purr."
ANSWER = "Adult fleas live two to three months. They bite."
#: What the scorer gives each whole passage: it likes the sun passage best, which answers nothing.
PASSAGE_SCORES = {SUN: 0.9, BITE: 0.1, ANSWER: 0.5, CATS: 0.0}


class TableScorer:
    """Whole passages from a table; any other text (a sentence) by how many query words it holds."""

    name = "table"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def score(self, query, passages):
        self.calls.append(len(passages))
        wanted = set(query.lower().split())
        return Scores([PASSAGE_SCORES.get(p, float(len(wanted & set(p.lower().replace(".", "").split()))))
                       for p in passages])


def calibrator() -> Calibrator:
    # relevance from the best sentence's words: 0 -> 0.12 (not relevant), 1 -> 0.27 (partial), 3 -> 0.73 (relevant)
    return Calibrator(scorer="table", features=("evidence_score",), weights=(1.0,), bias=-2.0, relevant_at=0.5,
                      partial_at=0.25)


def rerank(ordering, passages=(SUN, BITE, ANSWER, CATS), **settings):
    scorer = TableScorer()
    student = Student(scorer=scorer, calibrator=calibrator())
    ranking = Reranker(student, ordering=ordering, explain="evidence", compare_top=0, trace=False).rerank(
        QUERY, list(passages), **settings)
    return ranking, scorer


def test_the_orderings_are_the_registry_and_the_setting_accepts_exactly_them():
    assert names() == ORDERINGS == ("scorer", "rrf", "first_stage", "tiers", "tiers_rrf")
    with pytest.raises(InvalidInputError, match="ordering must be one of 'scorer', 'rrf', 'first_stage', 'tiers'"):
        RerankConfig(ordering="tier")


def test_tiers_put_every_relevant_before_partial_before_not_relevant_in_the_retriever_order():
    ranking, scorer = rerank("tiers", top_n=2)
    assert [(j.text, j.verdict) for j in ranking] == [(ANSWER, "relevant"), (BITE, "partial")]
    assert {j.stage for j in ranking} == {"verdict+first_stage_order"}
    # every candidate was judged (4 passages, two sentences each), not only the 2 returned
    judge = next(s for s in ranking.stages if s.stage == "judge")
    assert judge.items == 8 and [s.stage for s in ranking.stages].count("judge") == 1
    full, _ = rerank("tiers")
    assert [j.text for j in full] == [ANSWER, BITE, SUN, CATS]  # the not_relevant tier keeps the input order
    assert [j.score for j in full] == [0.5, 0.1, 0.9, 0.0]  # the scores still say what the scorer thinks


def test_tiers_rrf_fuses_within_each_tier():
    ranking, _ = rerank("tiers_rrf")
    assert [j.text for j in ranking] == [ANSWER, BITE, SUN, CATS] and {j.stage for j in ranking} == {"verdict+rrf"}
    # within the not_relevant tier, the scorer ranks CATS last and so does the retriever
    swapped, _ = rerank("tiers_rrf", passages=(CATS, SUN, BITE, ANSWER))
    assert [j.text for j in swapped][:2] == [ANSWER, BITE] and [j.verdict for j in swapped][2:] == ["not_relevant"] * 2


def test_tiers_judge_even_when_judge_is_off():
    ranking, _ = rerank("tiers", judge=False)
    assert [j.verdict for j in ranking] == ["relevant", "partial", "not_relevant", "not_relevant"]


def test_scorer_ordering_can_put_a_not_relevant_passage_first():
    ranking, _ = rerank("scorer")
    assert ranking[0].text == SUN and ranking[0].verdict == "not_relevant"  # why the tiers exist


def test_fusion_ties_go_to_the_passage_the_scorer_ranks_higher():
    # BITE: input rank 2, scorer rank 3; ANSWER: input rank 3, scorer rank 2: 1/62 + 1/63 both, an exact tie. By the
    # input order alone BITE came first; now the scorer's preference breaks it.
    ranking, _ = rerank("rrf")
    assert [j.text for j in ranking] == [SUN, ANSWER, BITE, CATS]
    assert ranking[1].score == ranking[2].score


@pytest.mark.parametrize("ordering", ["scorer", "rrf", "first_stage", "tiers", "tiers_rrf"])
def test_every_ordering_is_deterministic_and_returns_each_passage_once(ordering):
    first, _ = rerank(ordering)
    again, _ = rerank(ordering)
    assert [j.text for j in first] == [j.text for j in again]
    assert sorted(j.text for j in first) == sorted([SUN, BITE, ANSWER, CATS])


@pytest.mark.parametrize("ordering", ["tiers", "tiers_rrf"])
def test_tiers_hold_on_every_short_list_and_every_input_order(ordering):
    strength = {"relevant": 2, "partial": 1, "not_relevant": 0}
    for size in (2, 3, 4):
        for passages in itertools.permutations([SUN, BITE, ANSWER, CATS], size):
            ranking, _ = rerank(ordering, passages=passages)
            levels = [strength[j.verdict] for j in ranking]
            assert levels == sorted(levels, reverse=True), (passages, [j.text for j in ranking])


def test_a_new_ordering_is_one_class():
    class Reversed(Ordering):
        name = "reversed_input"
        description = "the input order, reversed"

        def order(self, candidates):
            return sorted(candidates, key=lambda c: -c.index)

    register(Reversed())
    try:
        assert get("reversed_input").description == "the input order, reversed"
        ranking, _ = rerank("reversed_input")
        assert [j.text for j in ranking] == [CATS, ANSWER, BITE, SUN]
        with pytest.raises(InvalidInputError, match="already registered"):
            register(Reversed())
    finally:
        REGISTRY._entries.pop("reversed_input")
