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

    def explain(self, query, passages, *, verdicts=None, evidence=None):
        self.calls.append(("explain", list(passages)))
        return Generation(texts=[f"about {p[:10]}" for p in passages], truncated=[False] * len(passages))

    def compare_grounded(self, query, evidences, verdicts):
        self.calls.append(("compare", list(evidences)))
        return Generation(texts=[f"{len(evidences)} ordered"], truncated=[False] * len(evidences))


def fake_reranker(table=None, **kwargs):
    explainer = EchoExplainer()
    student = Student(scorer=TableScorer(table or {}), explainer=explainer, name="fake")
    return Reranker(student, **kwargs), explainer


def test_orders_by_score_and_reports_original_positions():
    reranker, explainer = fake_reranker({PASSAGES[2]: 3.0, PASSAGES[0]: 2.0, PASSAGES[3]: -1.0})
    ranking = reranker.rerank("how long do fleas live", PASSAGES, top_n=3, explain_top=2, compare_top=2)
    assert [j.input_rank for j in ranking] == [3, 1, 2]
    assert [j.rank for j in ranking] == [1, 2, 3]
    assert [j.explanation for j in ranking] == ["about The flea l", "about An adult f", None]
    # the comparison is built from the judgments (no LM): it cites the top two by rank with their best sentences
    assert ranking.comparison.startswith('[1] scores 3.000: "The flea life cycle has four stages')
    assert "[2] scores 2.000" in ranking.comparison and all(c[0] != "compare" for c in explainer.calls)
    assert [s.stage for s in ranking.stages] == ["score", "judge", "explain", "compare"]
    assert ranking.num_candidates == 4 and ranking.model == "fake"


def test_ties_keep_input_order():
    reranker, _ = fake_reranker({})
    ranking = reranker.rerank("q", PASSAGES, explain_top=0, compare_top=0)
    assert [j.input_rank for j in ranking] == [1, 2, 3, 4]


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
    assert [(j.id, j.text, j.input_rank) for j in ranking] == [("x", "b", 2), ("x", "a", 1), ("x", "c", 3)]


def test_inputs_are_not_mutated():
    reranker, _ = fake_reranker({"b": 1.0})
    items = [{"id": "1", "text": "a", "metadata": {"k": [1]}}, Passage("b", id="2", metadata={"m": {"n": 1}})]
    before = copy.deepcopy(items)
    ranking = reranker.rerank("q", items)
    assert items == before
    ranking[0].metadata["m"]["n"] = 99  # judgments hold copies of the top-level metadata mapping
    assert ranking[0].metadata is not items[1].metadata


def test_first_stage_scores_are_carried():
    reranker, _ = fake_reranker()
    ranking = reranker.rerank("q", [Passage("a", first_stage_score=12.5), "b"])
    assert [j.first_stage_score for j in ranking] == [12.5, None]


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
    assert [s.stage for s in ranking.stages][:2] == ["score", "rescore"]


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


def test_student_without_explainer_explains_with_its_evidence_only():
    ranking = Reranker(Student(scorer=TableScorer({"b": 1.0}))).rerank("q", ["a", "b"])
    assert [j.text for j in ranking] == ["b", "a"]
    assert [j.explanation for j in ranking] == ['The passage says "b"', 'The passage says "a"']
    assert ranking.comparison.startswith("[1] scores 1.000")
    plain = Reranker(Student(scorer=TableScorer({"b": 1.0})), judge=False).rerank("q", ["a", "b"])
    assert all(j.evidence is None and j.verdict is None for j in plain)


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
    assert set(stages) == {"score", "rescore", "judge", "explain", "compare"}
    assert stages["score"].items == 5 and stages["rescore"].items == 3 and stages["explain"].items == 5


# -- first-stage score fusion (Reranker(first_stage_weight=w)) -----------------------------------------------------

#: The scorer is sure a > b > c > d; the retriever prefers d, then b.
FUSION_SCORER = {"a": 0.9, "b": 0.5, "c": 0.1, "d": 0.0}
FUSION_PASSAGES = [Passage(t, id=t, first_stage_score=s) for t, s in (("a", 0.0), ("b", 2.0), ("c", 1.0), ("d", 3.0))]


def fusion_reranker(**kwargs):
    return Reranker(Student(scorer=TableScorer(FUSION_SCORER), explainer=EchoExplainer(), name="fake"), **kwargs)


def test_first_stage_weight_0_is_todays_ranking_exactly():
    today = fusion_reranker().rerank("q", FUSION_PASSAGES)
    assert [j.to_dict() for j in fusion_reranker(first_stage_weight=0.0).rerank("q", FUSION_PASSAGES)] == \
        [j.to_dict() for j in today]
    assert [j.to_dict() for j in fusion_reranker(first_stage_weight=0.7).rerank(
        "q", FUSION_PASSAGES, first_stage_weight=0)] == [j.to_dict() for j in today]
    assert [j.text for j in today] == ["a", "b", "c", "d"] and {j.stage for j in today} == {"score"}
    assert [j.score for j in today] == [0.9, 0.5, 0.1, 0.0]  # the scorer's own values, untouched


def test_first_stage_weight_1_reproduces_the_first_stage_order():
    ranking = fusion_reranker(first_stage_weight=1.0).rerank("q", FUSION_PASSAGES, explain_top=0, compare_top=0)
    assert [j.text for j in ranking] == ["d", "b", "c", "a"]
    assert [j.score for j in ranking] == [j.first_stage_score for j in ranking] == [3.0, 2.0, 1.0, 0.0]
    assert {j.stage for j in ranking} == {"score+first_stage"}
    # ties keep the input order, as for the scorer
    tied = [Passage(t, first_stage_score=s) for t, s in (("a", 1.0), ("b", 2.0), ("c", 1.0))]
    assert [j.text for j in fusion_reranker(first_stage_weight=1.0).rerank("q", tied)] == ["b", "a", "c"]


def test_first_stage_weight_mixes_standardised_scores():
    from r2r_agent.reranker import mix_scores

    ranking = fusion_reranker(first_stage_weight=0.5).rerank("q", FUSION_PASSAGES, explain_top=0, compare_top=0)
    # z(scorer) = (1.47, 0.35, -0.77, -1.05), z(first stage) = (-1.34, 0.45, -0.45, 1.34): the mean decides
    expected = mix_scores([0.9, 0.5, 0.1, 0.0], [0.0, 2.0, 1.0, 3.0], 0.5)
    assert [j.text for j in ranking] == ["b", "d", "a", "c"]
    assert [j.score for j in ranking] == [expected[i] for i in (1, 3, 0, 2)]
    assert [j.input_rank for j in ranking] == [2, 4, 1, 3]
    assert {j.stage for j in ranking} == {"score+first_stage"}
    assert [s.stage for s in ranking.stages] == ["score", "judge"]  # fusion runs no model, so it costs no entry
    # a small weight keeps the scorer's order, a large one the retriever's
    assert [j.text for j in fusion_reranker(first_stage_weight=0.1).rerank("q", FUSION_PASSAGES)] == \
        ["a", "b", "c", "d"]
    assert [j.text for j in fusion_reranker(first_stage_weight=0.9).rerank("q", FUSION_PASSAGES)] == \
        ["d", "b", "c", "a"]


@pytest.mark.parametrize("missing", [None, math.nan, math.inf])
def test_first_stage_fusion_without_every_score_falls_back_to_the_scorer(missing, caplog):
    passages = [*FUSION_PASSAGES[:3], Passage("d", id="d", first_stage_score=missing)]
    reranker = fusion_reranker(first_stage_weight=0.5)
    with caplog.at_level("DEBUG", logger="r2r_agent.reranker"):
        ranking = reranker.rerank("q", passages)
        again = reranker.rerank("q", passages)
    assert [j.text for j in ranking] == ["a", "b", "c", "d"]
    assert [j.score for j in ranking] == [0.9, 0.5, 0.1, 0.0] and {j.stage for j in ranking} == {"score"}
    assert [j.to_dict() for j in again] == [j.to_dict() for j in ranking]
    records = [r for r in caplog.records if "first_stage_weight=0.5 not applied" in r.getMessage()]
    assert [r.levelname for r in records] == ["WARNING", "DEBUG"]  # warned once per reranker
    assert "1 of 4 passages have no finite first-stage score" in records[0].getMessage()


def test_first_stage_fusion_of_plain_strings_falls_back_to_the_scorer():
    ranking = fusion_reranker(first_stage_weight=1.0).rerank("q", ["d", "c", "b", "a"])
    assert [j.text for j in ranking] == ["a", "b", "c", "d"] and {j.stage for j in ranking} == {"score"}


@pytest.mark.parametrize("weight", [-0.1, 1.5, math.nan, True, "0.5", None])
def test_first_stage_weight_outside_0_1_is_a_clear_error(weight):
    with pytest.raises(InvalidInputError, match=r"first_stage_weight must be a number in \[0, 1\]"):
        fusion_reranker(first_stage_weight=weight)
    if weight is not None:  # None per call means "the reranker's"
        with pytest.raises(InvalidInputError, match=r"first_stage_weight must be a number in \[0, 1\]"):
            fusion_reranker().rerank("q", FUSION_PASSAGES, first_stage_weight=weight)


def test_rescore_works_on_the_fused_order():
    student = Student(scorer=TableScorer(FUSION_SCORER), rescorer=TableScorer({"a": 5.0, "b": 1.0}, name="lm"),
                      name="cascade")
    ranking = Reranker(student, rescore_top=2, first_stage_weight=0.5).rerank("q", FUSION_PASSAGES)
    # fused order b, d, a, c; the re-scorer sees the fused top 2 (b, d) and prefers b
    assert [j.text for j in ranking] == ["b", "d", "a", "c"]
    assert [j.stage for j in ranking] == ["rescore", "rescore", "score+first_stage", "score+first_stage"]
    assert [s.stage for s in ranking.stages][:2] == ["score", "rescore"]


async def test_arerank_passes_the_first_stage_weight():
    reranker = fusion_reranker()
    ranking = await reranker.arerank("q", FUSION_PASSAGES, first_stage_weight=1.0)
    assert [j.text for j in ranking] == ["d", "b", "c", "a"]


def test_first_stage_fusion_does_not_mutate_inputs():
    items = [{"id": "a", "text": "a", "score": 0.0, "metadata": {"k": [1]}}, *FUSION_PASSAGES[1:]]
    before = copy.deepcopy(items)
    ranking = fusion_reranker(first_stage_weight=0.5).rerank("q", items)
    assert items == before and [p.first_stage_score for p in FUSION_PASSAGES] == [0.0, 2.0, 1.0, 3.0]
    assert [j.first_stage_score for j in sorted(ranking, key=lambda j: j.input_rank)] == [0.0, 2.0, 1.0, 3.0]


def test_first_stage_fusion_with_tiny_models(tiny_student, no_network):
    passages = [Passage(p, id=str(i), first_stage_score=float(len(PASSAGES) - i)) for i, p in enumerate(PASSAGES)]
    plain = Reranker(tiny_student).rerank("how long do fleas live", passages, explain_top=0, compare_top=0)
    same = Reranker(tiny_student, first_stage_weight=0.0).rerank("how long do fleas live", passages, explain_top=0,
                                                                 compare_top=0)
    assert [(j.id, j.score) for j in same] == [(j.id, j.score) for j in plain]
    first = Reranker(tiny_student, first_stage_weight=1.0).rerank("how long do fleas live", passages,
                                                                  explain_top=0, compare_top=0)
    assert [j.id for j in first] == ["0", "1", "2", "3"]


# -- ordering policies (RerankConfig.ordering) ----------------------------------------------------------------------


def test_ordering_policies_scorer_rrf_and_first_stage():
    from r2r_agent.reranker import reciprocal_rank_fusion

    scorer = TableScorer({"a": 0.1, "b": 0.9, "c": 0.5, "d": 0.0})
    passages = ["a", "b", "c", "d"]  # the retriever's order

    def order(policy):
        ranking = Reranker(Student(scorer=scorer), ordering=policy, explain_top=0, compare_top=0).rerank("q", passages)
        return [j.text for j in ranking], {j.stage for j in ranking}, [j.score for j in ranking]

    assert order("scorer")[:2] == (["b", "c", "a", "d"], {"score"})
    fused = reciprocal_rank_fusion([0.1, 0.9, 0.5, 0.0])
    assert order("rrf")[:2] == (["b", "a", "c", "d"], {"score+rrf"}) and order("rrf")[2] == sorted(fused, reverse=True)
    texts, stages, scores = order("first_stage")
    assert texts == passages and stages == {"first_stage_order"} and scores == [0.1, 0.9, 0.5, 0.0]


def test_first_stage_ordering_keeps_the_retriever_order_after_rescoring():
    # the re-scorer prefers "c" then "b": rescore_top=3 re-scores the head, but ordering="first_stage" promises the
    # retriever's order, so the head is not re-sorted (it was before: c, b, a, d)
    student = Student(scorer=TableScorer({"a": 0.1, "b": 0.9, "c": 0.5, "d": 0.0}),
                      rescorer=TableScorer({"a": 0.0, "b": 1.0, "c": 2.0}, name="lm"), name="cascade")
    ranking = Reranker(student, ordering="first_stage", rescore_top=3, explain_top=0).rerank("q", ["a", "b", "c", "d"])
    assert [j.text for j in ranking] == ["a", "b", "c", "d"]
    assert [j.stage for j in ranking] == ["rescore", "rescore", "rescore", "first_stage_order"]
    assert [j.score for j in ranking][:3] == [0.0, 1.0, 2.0]  # the scores still say what the re-scorer thinks


def test_explainer_written_for_0_1_is_wrapped_with_a_deprecation_warning():
    from r2r_agent.explainer import ExplainerLike, PreVerdictExplainer

    class Old:
        name = "old"

        def explain(self, query, passages):
            return Generation(texts=["Relevant: it says so."] * len(passages))

    with pytest.warns(DeprecationWarning, match="0.1 form"):
        student = Student(scorer=TableScorer({"a": 1.0}), explainer=Old())
    assert isinstance(student.explainer, PreVerdictExplainer) and isinstance(student.explainer, ExplainerLike)
    ranking = Reranker(student, explain_top=1).rerank("q", ["a"])
    assert ranking[0].explanation is not None and ranking.stages[-1].component == "old"


def test_explainer_protocol_is_what_the_student_declares():
    from r2r_agent.explainer import Explainer, ExplainerLike

    assert isinstance(EchoExplainer(), ExplainerLike)
    assert not hasattr(Explainer, "compare")  # the dead 0.1 comparison of whole passages is gone
