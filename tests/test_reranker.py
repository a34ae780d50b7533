from __future__ import annotations

import asyncio
import copy
import math
from dataclasses import dataclass

import pytest

from r2r_agent import InvalidInputError, Passage, Reranker, Scores, Student
from r2r_agent.explainer import Generation

PASSAGES = [
    "An adult flea usually lives two to three months.",
    "Flea collars release an insecticide.",
    "The flea life cycle has four stages: egg, larva, pupa and adult.",
    "Seasons happen because Earth's axis is tilted.",
]


@dataclass
class TableScorer:
    """Scores from a lookup table keyed by passage text (default 0): a fake with exact, known outputs."""

    table: dict
    name: str = "table"

    def score(self, query, passages):
        return Scores(values=[self.table.get(p, 0.0) for p in passages])


class EchoExplainer:
    name = "echo"

    def __init__(self):
        self.calls = []

    def explain(self, query, passages):
        self.calls.append(("explain", list(passages)))
        return Generation(texts=[f"about {p[:10]}" for p in passages], truncated=[False] * len(passages))

    def compare(self, query, passages):
        self.calls.append(("compare", list(passages)))
        return Generation(texts=[f"{len(passages)} ordered"], truncated=[False] * len(passages))


def fake_reranker(table=None, **kwargs):
    explainer = EchoExplainer()
    student = Student(scorer=TableScorer(table or {}), explainer=explainer, name="fake")
    return Reranker(student, **kwargs), explainer


def test_orders_by_score_and_reports_original_positions():
    reranker, explainer = fake_reranker({PASSAGES[2]: 3.0, PASSAGES[0]: 2.0, PASSAGES[3]: -1.0})
    ranking = reranker.rerank("how long do fleas live", PASSAGES, top_n=3, explain_top=2, compare_top=2)
    assert [j.original_rank for j in ranking] == [3, 1, 2]
    assert [j.rank for j in ranking] == [1, 2, 3]
    assert [j.explanation for j in ranking] == ["about The flea l", "about An adult f", None]
    assert ranking.comparison == "2 ordered"
    assert [s.stage for s in ranking.stages] == ["score", "explain", "compare"]
    assert ranking.num_candidates == 4 and ranking.model == "fake"


def test_ties_keep_input_order():
    reranker, _ = fake_reranker({})
    ranking = reranker.rerank("q", PASSAGES, explain_top=0, compare_top=0)
    assert [j.original_rank for j in ranking] == [1, 2, 3, 4]


def test_empty_passage_list_gives_empty_ranking():
    reranker, explainer = fake_reranker()
    ranking = reranker.rerank("q", [])
    assert len(ranking) == 0 and ranking.query == "q" and explainer.calls == []


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query_is_a_clear_value_error(query):
    reranker, _ = fake_reranker()
    with pytest.raises(ValueError, match="query is empty"):
        reranker.rerank(query, PASSAGES)


def test_non_string_passage_is_a_type_error():
    reranker, _ = fake_reranker()
    with pytest.raises(TypeError, match="passage 1"):
        reranker.rerank("q", ["ok", 42])


@pytest.mark.parametrize("bad", [0, -1])
def test_top_n_must_be_positive(bad):
    reranker, _ = fake_reranker()
    with pytest.raises(InvalidInputError, match="top_n"):
        reranker.rerank("q", PASSAGES, top_n=bad)


def test_top_n_larger_than_list_returns_all():
    reranker, _ = fake_reranker()
    assert len(reranker.rerank("q", PASSAGES, top_n=50)) == len(PASSAGES)


def test_duplicate_ids_are_kept_apart():
    reranker, _ = fake_reranker({"b": 1.0})
    ranking = reranker.rerank("q", [Passage("a", id="x"), Passage("b", id="x"), Passage("c", id="x")])
    assert [(j.id, j.text, j.original_rank) for j in ranking] == [("x", "b", 2), ("x", "a", 1), ("x", "c", 3)]


def test_inputs_are_not_mutated():
    reranker, _ = fake_reranker({"b": 1.0})
    items = [{"id": "1", "text": "a", "metadata": {"k": [1]}}, Passage("b", id="2", metadata={"m": {"n": 1}})]
    before = copy.deepcopy(items)
    ranking = reranker.rerank("q", items)
    assert items == before
    ranking[0].metadata["m"]["n"] = 99  # judgments hold copies of the top-level metadata mapping
    assert ranking[0].metadata is not items[1].metadata


def test_original_scores_are_carried():
    reranker, _ = fake_reranker()
    ranking = reranker.rerank("q", [Passage("a", score=12.5), "b"])
    assert [j.original_score for j in ranking] == [12.5, None]


def test_scorer_returning_wrong_count_is_reported():
    class Broken:
        name = "broken"

        def score(self, query, passages):
            return [1.0]

    with pytest.raises(InvalidInputError, match="returned 1 scores for 2 passages"):
        Reranker(Student(scorer=Broken())).rerank("q", ["a", "b"])


def test_scorer_returning_nan_is_reported():
    class Nan:
        name = "nan"

        def score(self, query, passages):
            return [math.nan for _ in passages]

    with pytest.raises(InvalidInputError, match="non-finite"):
        Reranker(Student(scorer=Nan())).rerank("q", ["a"])


def test_rescorer_reorders_only_the_head():
    student = Student(scorer=TableScorer({"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}),
                      rescorer=TableScorer({"b": 10.0, "a": 1.0}, name="lm"), name="cascade")
    ranking = Reranker(student, rescore_top=2).rerank("q", ["a", "b", "c", "d"])
    assert [j.text for j in ranking] == ["b", "a", "c", "d"]
    assert [j.stage for j in ranking] == ["rescore", "rescore", "score", "score"]
    assert [s.stage for s in ranking.stages] == ["score", "rescore"]


def test_rescore_weight_mixes_standardised_scores_in_the_head():
    # the scorer is sure a > b > c; the re-scorer mildly prefers c, then b
    student = Student(scorer=TableScorer({"a": 0.9, "b": 0.5, "c": 0.1, "d": 0.0}),
                      rescorer=TableScorer({"a": 0.0, "b": 2.0, "c": 3.0}, name="lm"), name="cascade")
    texts = ["a", "b", "c", "d"]
    replaced = Reranker(student, rescore_top=3).rerank("q", texts)
    assert [j.text for j in replaced] == ["c", "b", "a", "d"]
    kept = Reranker(student, rescore_top=3, rescore_weight=0.0).rerank("q", texts)
    assert [j.text for j in kept] == ["a", "b", "c", "d"]
    mixed = Reranker(student, rescore_top=3, rescore_weight=0.5).rerank("q", texts)
    assert [j.text for j in mixed] == ["b", "a", "c", "d"]  # z: a (1.22, -1.34), b (0, 0.27), c (-1.22, 1.07)
    assert [j.stage for j in mixed] == ["rescore", "rescore", "rescore", "score"]


@pytest.mark.parametrize("weight", [-0.1, 1.5, math.nan, True, "0.5"])
def test_rescore_weight_outside_0_1_is_a_clear_error(weight):
    with pytest.raises(InvalidInputError, match=r"rescore_weight must be a number in \[0, 1\]"):
        Reranker(Student(scorer=TableScorer({})), rescore_weight=weight)


def test_mix_scores_of_constant_lists_are_zero():
    from r2r_agent.reranker import mix_scores

    assert mix_scores([1.0, 1.0], [2.0, 2.0], 0.3) == [0.0, 0.0]
    assert mix_scores([1.0, 2.0], [5.0, 7.0], 1.0) == [5.0, 7.0]


def test_student_without_explainer_scores_only():
    ranking = Reranker(Student(scorer=TableScorer({"b": 1.0}))).rerank("q", ["a", "b"])
    assert [j.text for j in ranking] == ["b", "a"] and ranking.comparison is None
    assert all(j.explanation is None for j in ranking)


def test_default_student_is_loaded_lazily():
    built = []

    def factory():
        built.append(1)
        return Student(scorer=TableScorer({}))

    reranker = Reranker(student_factory=factory)
    assert built == []
    reranker.rerank("q", ["a"])
    reranker.rerank("q", ["a"])
    assert built == [1]


async def test_arerank_matches_rerank_and_does_not_block_the_loop():
    reranker, _ = fake_reranker({PASSAGES[1]: 1.0})
    ticks = 0

    async def ticker():
        nonlocal ticks
        for _ in range(5):
            ticks += 1
            await asyncio.sleep(0)

    results = await asyncio.gather(*[reranker.arerank("q", PASSAGES, top_n=2) for _ in range(20)], ticker())
    expected = reranker.rerank("q", PASSAGES, top_n=2)
    assert all((r.judgments, r.comparison) == (expected.judgments, expected.comparison) for r in results[:-1])
    assert ticks == 5


def test_tiny_models_end_to_end(tiny_student, no_network):
    reranker = Reranker(tiny_student, rescore_top=3)
    long_passage = "fleas live long " * 8000  # ~130 kB
    passages = [Passage(p, id=str(i)) for i, p in enumerate(PASSAGES)] + [Passage(long_passage, id="long")]
    ranking = reranker.rerank("how long do fleas live", passages, top_n=5, explain_top=5, compare_top=3)
    assert len(ranking) == 5
    assert all(math.isfinite(j.score) for j in ranking)
    assert all(isinstance(j.explanation, str) for j in ranking)
    assert isinstance(ranking.comparison, str)
    assert next(j for j in ranking if j.id == "long").truncated
    assert not any(j.truncated for j in ranking if j.id != "long")
    again = reranker.rerank("how long do fleas live", passages, top_n=5, explain_top=5, compare_top=3)
    assert [(j.id, j.score, j.explanation) for j in again] == [(j.id, j.score, j.explanation) for j in ranking]
    stages = {s.stage: s for s in ranking.stages}
    assert set(stages) == {"score", "rescore", "explain", "compare"}
    assert stages["score"].items == 5 and stages["rescore"].items == 3 and stages["explain"].items == 5
