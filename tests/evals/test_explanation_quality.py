"""Explanation-quality measures on small inline rankings (no models)."""

from __future__ import annotations

import copy
import doctest
import json

import pytest

from r2r_agent.errors import InvalidInputError
from r2r_agent.evals import explanation_quality as eq
from r2r_agent.evals import text_measures, verdicts
from r2r_agent.evals.explanation_quality import (
    ExplanationQuality,
    content_words,
    explanation_quality,
    extract_verdict,
    groundedness,
    jaccard,
    rouge_l_f1,
    specificity,
    tokenize,
    verdict_agreement,
)
from r2r_agent.types import Judgment, Ranking


def _ranking(query: str, items: list[tuple[str | None, str, str | None]]) -> Ranking:
    """A ranking of ``(id, passage text, explanation)`` items, best first."""
    judgments = [
        Judgment(id=pid, text=text, score=float(-i), rank=i + 1, input_rank=i + 1, explanation=explanation)
        for i, (pid, text, explanation) in enumerate(items)
    ]
    return Ranking(query=query, judgments=tuple(judgments))


FLEA = "Adult fleas live two to three months on a host animal."
CAT = "Cats sleep sixteen hours a day."


def test_module_doctests_pass() -> None:
    # The measures moved to verdicts and text_measures; explanation_quality re-exports them.
    results = [doctest.testmod(module) for module in (eq, verdicts, text_measures)]
    assert sum(r.attempted for r in results) > 5 and sum(r.failed for r in results) == 0


# ----------------------------------------------------------------------------- tokenising


def test_tokenize_and_content_words() -> None:
    assert tokenize("It DOESN’T say; 2-3 months.") == ["it", "doesn't", "say", "2", "3", "months"]
    assert content_words("The fleas are in the glass") == ["flea", "glass"]  # plural folded, "ss" kept
    assert content_words("") == []


# ----------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("The passage is relevant to the query because it gives the flea lifespan.", "relevant"),
        ("This passage is highly relevant.", "relevant"),
        ("The passage is partially relevant: it mentions fleas.", "relevant"),
        ("Relevant: it states the lifespan.", "relevant"),
        ("Yes, it gives the number of months.", "relevant"),
        ("It directly answers the question with a number.", "relevant"),
        ("The passage addresses the cost of flooring.", "relevant"),
        ("The passage is not relevant to the query.", "not_relevant"),
        ("The passage is not directly relevant.", "not_relevant"),
        ("This passage isn't relevant at all.", "not_relevant"),
        ("The passage is irrelevant.", "not_relevant"),
        ("It is unrelated to fleas.", "not_relevant"),
        ("The passage does not answer the query.", "not_relevant"),
        ("It doesn't mention the lifespan of fleas.", "not_relevant"),
        ("The passage does not directly answer the query.", "not_relevant"),
        ("It fails to address the cost.", "not_relevant"),
        ("The passage gives no information about fleas.", "not_relevant"),
        ("No, it is about cats.", "not_relevant"),
        ("Not relevant.", "not_relevant"),
        # The earliest verdict phrase decides.
        ("The passage is relevant, though it does not mention the exact cost.", "relevant"),
        ("It does not mention prices, so it is not relevant.", "not_relevant"),
        ("The passage provides a description, but it does not provide the cost.", "not_relevant"),
        # No verdict phrase.
        ("The passage talks about cats.", "unknown"),
        ("It lists the relevant facts.", "unknown"),
        ("", "unknown"),
        ("   ", "unknown"),
        (None, "unknown"),
    ],
)
def test_extract_verdict(text: str | None, verdict: str) -> None:
    assert extract_verdict(text) == verdict


def test_verdict_agreement_counts_coverage_and_accuracy() -> None:
    result = verdict_agreement(
        [
            ("It is relevant.", 2),  # correct
            ("It is not relevant.", 1),  # wrong at threshold 1
            ("It is relevant.", 0),  # wrong
            ("About cats.", 0),  # unknown verdict
            ("It is relevant.", None),  # known verdict, unjudged passage
            ("", 3),  # blank: skipped
            (None, 3),  # not explained: skipped
        ]
    )
    assert (result.n, result.n_known, result.n_judged, result.n_correct) == (5, 4, 3, 1)
    assert result.coverage == pytest.approx(4 / 5)
    assert result.accuracy == pytest.approx(1 / 3)
    strict = verdict_agreement([("It is not relevant.", 1), ("It is relevant.", 2)], threshold=2)
    assert strict.accuracy == 1.0 and strict.threshold == 2


def test_verdict_agreement_empty_gives_none() -> None:
    result = verdict_agreement([])
    assert result.coverage is None and result.accuracy is None
    only_unknown = verdict_agreement([("About cats.", 1)])
    assert only_unknown.coverage == 0.0 and only_unknown.accuracy is None


# ----------------------------------------------------------------------------- groundedness


def test_groundedness_fractions() -> None:
    g = groundedness("Fleas live three months on a host.", FLEA, "how long do fleas live")
    assert g is not None and g.n_words == 5 and g.in_passage == 1.0 and g.query_only == 0.0
    restated = groundedness("The passage says how long fleas live and their lifespan.", CAT, "how long do fleas live")
    assert restated is not None
    # long, flea, live in the query only; say, lifespan in neither ("passage" is a meta word).
    assert restated.n_words == 5
    assert restated.query_only == pytest.approx(3 / 5) and restated.in_passage == 0.0
    assert restated.unsupported == pytest.approx(2 / 5)
    assert restated.in_passage + restated.query_only + restated.unsupported == pytest.approx(1.0)


def test_groundedness_none_without_claim_words() -> None:
    assert groundedness("", FLEA) is None
    assert groundedness("The passage is relevant to the query.", FLEA) is None


# ----------------------------------------------------------------------------- specificity


def test_specificity() -> None:
    same = "The passage is relevant because it gives the flea lifespan."
    assert specificity([same, same, same]) == 0.0
    assert specificity(["fleas live months", "cats sleep hours"]) == 1.0
    assert specificity([same]) is None
    assert specificity([]) is None
    # Two explanations without content words are duplicates.
    assert jaccard("it is", "the") == 1.0 and jaccard("", "fleas") == 0.0
    assert specificity(["fleas live three months", "fleas live two months"]) == pytest.approx(1 - 3 / 5)


# ----------------------------------------------------------------------------- teacher agreement


def test_rouge_l_f1() -> None:
    assert rouge_l_f1("a b c d", "a b c d") == 1.0
    assert rouge_l_f1("cats sleep", "fleas live") == 0.0
    assert rouge_l_f1("", "fleas live") == 0.0 and rouge_l_f1("fleas", "") == 0.0
    # LCS of (a c e) vs (a b c d e) is 3: P = 1, R = 3/5, F1 = 0.75; symmetric.
    assert rouge_l_f1("a c e", "a b c d e") == pytest.approx(0.75)
    assert rouge_l_f1("a b c d e", "a c e") == pytest.approx(0.75)
    # Order matters (subsequence, not bag of words).
    assert rouge_l_f1("c b a", "a b c") == pytest.approx(1 / 3)


# ----------------------------------------------------------------------------- aggregate


def _run() -> tuple[dict[str, Ranking], dict[str, dict[str, int]]]:
    rankings = {
        "q1": _ranking(
            "how long do fleas live",
            [
                ("d1", FLEA, "The passage is relevant: adult fleas live two to three months on a host."),
                ("d2", CAT, "The passage is relevant because it says how long fleas live."),  # wrong, query-only
                ("d3", CAT, "The passage is not relevant: it is about cats sleeping."),
                ("d4", FLEA, None),  # not explained
            ],
        ),
        "q2": _ranking(
            "cost of concrete floors",
            [
                ("c1", "Concrete floors cost $2 to $6 per square foot.", "It gives the cost per square foot."),
                ("c2", "Polished concrete costs more.", ""),  # empty explanation
                (None, "Unjudged text.", "It is relevant."),  # no id: no grade
            ],
        ),
        "q3": _ranking("unexplained query", [("x1", "Some text.", None)]),
    }
    qrels = {"q1": {"d1": 2, "d2": 0, "d3": 0}, "q2": {"c1": 3, "c2": 1}}
    return rankings, qrels


def test_explanation_quality_aggregate() -> None:
    rankings, qrels = _run()
    before = copy.deepcopy((rankings, qrels))
    result = explanation_quality(rankings, qrels, worst_k=3)
    assert (rankings, qrels) == before  # nothing mutated
    assert (result.n_queries, result.n_judgments, result.n_explained, result.n_empty) == (3, 8, 5, 1)
    # Verdicts: d1 relevant (2, ok), d2 relevant (0, wrong), d3 not relevant (0, ok), c1 unknown, None-id relevant.
    assert (result.verdict.n_known, result.verdict.n_judged, result.verdict.n_correct) == (4, 3, 2)
    assert result.verdict.coverage == pytest.approx(4 / 5) and result.verdict.accuracy == pytest.approx(2 / 3)
    assert [(c.qid, c.passage_id, c.note) for c in result.wrong_verdicts] == [("q1", "d2", "verdict relevant, grade 0")]
    # Groundedness: the "It is relevant." explanation has no claim words and is left out.
    assert result.n_grounded == 4
    worst = result.lowest_groundedness[0]
    assert (worst.qid, worst.passage_id, worst.value) == ("q1", "d2", 0.0)
    assert result.query_only is not None and result.query_only > 0
    grounded_values = [c.value for c in result.lowest_groundedness]
    assert grounded_values == sorted(grounded_values)
    # Specificity: q1 has 3 explanations, q2 has 2 (c1 and the id-less one), q3 none.
    assert result.n_specificity_queries == 2
    assert 0.0 < result.specificity < 1.0
    assert result.most_duplicated[0].similarity >= result.most_duplicated[-1].similarity
    assert {d.qid for d in result.most_duplicated} == {"q1", "q2"}
    # JSON round trip.
    assert ExplanationQuality.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_explanation_quality_without_explanations() -> None:
    rankings = {"q": _ranking("q", [("d", "text", None), ("e", "text", None)])}
    result = explanation_quality(rankings, {})
    assert result.n_explained == 0 and result.n_judgments == 2
    assert result.verdict.coverage is None and result.verdict.accuracy is None
    assert result.groundedness is None and result.specificity is None
    assert result.lowest_groundedness == result.most_duplicated == result.wrong_verdicts == ()
    assert explanation_quality({}, {}).n_queries == 0


def test_explanation_quality_single_explanation_has_no_specificity() -> None:
    rankings = {"q": _ranking("fleas", [("d", FLEA, "It is relevant: fleas live three months."), ("e", CAT, None)])}
    result = explanation_quality(rankings, {"q": {"d": 1}})
    assert result.specificity is None and result.n_specificity_queries == 0
    assert result.verdict.accuracy == 1.0 and result.groundedness == 1.0


def test_explanation_quality_threshold() -> None:
    rankings = {"q": _ranking("fleas", [("d", FLEA, "It is relevant.")])}
    assert explanation_quality(rankings, {"q": {"d": 1}}).verdict.accuracy == 1.0
    assert explanation_quality(rankings, {"q": {"d": 1}}, threshold=2).verdict.accuracy == 0.0


def test_explanation_quality_rejects_unkeyed_rankings() -> None:
    ranking = _ranking("fleas", [("d", FLEA, "It is relevant.")])
    with pytest.raises(InvalidInputError, match="qid"):
        explanation_quality([ranking], {})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="non-Ranking"):
        explanation_quality({"q": ranking.to_dict()}, {})  # type: ignore[dict-item]
