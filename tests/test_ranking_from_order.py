"""``Ranking.from_order``: a ranking made outside the reranker has the reranker's judgment fields."""

from __future__ import annotations

import pytest

from r2r_agent import InvalidInputError, Passage, Ranking, StageCost


def test_from_order_keeps_each_passage_with_its_input_rank():
    passages = [Passage("a", id="d1", metadata={"k": [1]}, first_stage_score=3.0), Passage("b", id="d2"),
                Passage("c", id="d3", first_stage_score=1.0)]
    cost = StageCost("teacher", "t", 3, 0.5)
    ranking = Ranking.from_order("q", passages, [1, 2, 0], stage="teacher", stages=[cost], model="t")
    assert [(j.id, j.rank, j.input_rank, j.score, j.stage) for j in ranking] == [
        ("d2", 1, 2, 3.0, "teacher"), ("d3", 2, 3, 2.0, "teacher"), ("d1", 3, 1, 1.0, "teacher")]
    assert ranking[2].first_stage_score == 3.0 and ranking[2].metadata == {"k": [1]}
    assert ranking[2].metadata["k"] is not passages[0].metadata["k"]  # never shared with the caller
    assert ranking.stages == (cost,) and ranking.num_candidates == 3 and ranking.model == "t"
    assert Ranking.from_dict(ranking.to_dict()) == ranking


def test_from_order_defaults_and_given_scores():
    plain = Ranking.from_order("q", ["x", "y"])
    assert [(j.text, j.score, j.stage) for j in plain] == [("x", 2.0, "given"), ("y", 1.0, "given")]
    scored = Ranking.from_order("q", ["x", "y"], [1, 0], scores=[0.5, 7])
    assert [(j.text, j.score) for j in scored] == [("y", 7.0), ("x", 0.5)]
    assert len(Ranking.from_order("q", [])) == 0


@pytest.mark.parametrize("order, scores, message", [
    ([0, 0], None, "each index 0..1 exactly once"),
    ([0], None, "each index 0..1 exactly once"),
    ([0, True], None, "each index"),
    (None, [1.0], "one number per passage"),
    (None, [1.0, "x"], "must be a number"),
])
def test_from_order_names_what_is_wrong(order, scores, message):
    with pytest.raises((InvalidInputError, TypeError), match=message):
        Ranking.from_order("q", ["x", "y"], order, scores)
