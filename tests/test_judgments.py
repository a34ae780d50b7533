"""Evidence, calibrated relevance, verdicts, grounded explanations and comparisons (issue: trustworthy explanations)."""

from __future__ import annotations

import pytest

from r2r_agent import Judgment, Passage, Reranker, Student
from r2r_agent.calibration import Calibrator, content_words, query_coverage
from r2r_agent.evidence import candidate_spans, sentence_spans
from r2r_agent.explainer import Generation
from r2r_agent.explanations import VERDICT_WORDS, contradicts, grounded_comparison
from r2r_agent.grounding import guard, unsupported_claims
from r2r_agent.scorers import Scores

FLEAS = ("The flea life cycle lasts from 20 days to an entire year. Females lay 20 to 25 eggs in one day. "
         "Adult fleas live two to three months.")


# -- sentences and evidence -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("", []),
    ("   \n ", []),
    ("one", ["one"]),
    ("no boundary at all here", ["no boundary at all here"]),
    ("First one. Second one! Third? yes", ["First one.", "Second one!", "Third?", "yes"]),
    ("Dr. Smith saw approx. 3 cats in the U.S. Army. Then he left.",
     ["Dr. Smith saw approx. 3 cats in the U.S. Army.", "Then he left."]),
    ("Zeile eins\nZeile zwei", ["Zeile eins", "Zeile zwei"]),
    ("第一句。第二句！", ["第一句。", "第二句！"]),
])
def test_sentences_are_exact_spans_of_the_text(text, expected):
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == expected
    assert all(0 <= s < e <= len(text) for s, e in spans)


def test_long_run_on_text_is_cut_into_readable_windows():
    text = " ".join(f"w{i}" for i in range(100))
    spans = sentence_spans(text, max_words=40)
    assert [len(text[s:e].split()) for s, e in spans] == [40, 40, 20]


def test_evidence_comes_only_from_what_the_scorer_read():
    visible = FLEAS.index("Females") + len("Females lay")
    spans = candidate_spans(FLEAS, visible)
    assert [FLEAS[s:e] for s, e in spans] == ["The flea life cycle lasts from 20 days to an entire year.",
                                              "Females lay"]


class WordScorer:
    """Scores a text by how many of the query's words it holds (deterministic, no model)."""

    name = "words"

    def __init__(self, visible: int | None = None) -> None:
        self.visible = visible

    def score(self, query, passages):
        wanted = set(query.lower().split())
        return Scores([float(len(wanted & set(p.lower().replace(".", "").split()))) for p in passages])

    def visible_chars(self, text):
        return len(text) if self.visible is None else min(self.visible, len(text))


def calibrator(scorer="words") -> Calibrator:
    # relevance rises with the best sentence's score: 1 word -> 0.27, 2 -> 0.5, 3 -> 0.73
    return Calibrator(scorer=scorer, features=("evidence_score",), weights=(1.0,), bias=-2.0, relevant_at=0.5,
                      partial_at=0.25)


def test_judgments_carry_evidence_relevance_and_verdict():
    student = Student(scorer=WordScorer(), calibrator=calibrator())
    passages = [Passage(FLEAS, id="fleas"), Passage("The sun is hot. Cats sleep.", id="sun"),
                Passage("Fleas bite.", id="bite")]
    ranking = Reranker(student, explain="evidence", compare_top=0).rerank("how long do adult fleas live", passages)
    best = ranking[0]
    assert best.id == "fleas" and best.evidence == "Adult fleas live two to three months."
    assert best.text[best.evidence_span[0]:best.evidence_span[1]] == best.evidence
    assert best.verdict == "relevant" and best.relevance == pytest.approx(calibrator().relevance([3.0]))
    assert best.explanation == 'Relevant: the passage says "Adult fleas live two to three months."'
    assert {j.id: j.verdict for j in ranking} == {"fleas": "relevant", "sun": "not_relevant", "bite": "partial"}
    assert [j.explanation.split(":")[0] for j in ranking] == ["Relevant", "Partly relevant", "Not relevant"]
    assert ranking.answerable is True


def test_a_near_copy_of_the_query_is_not_the_evidence_of_a_rerank():
    # The heading repeats every query word (it scores highest) but answers nothing; the reranker passes the query to
    # the evidence choice, so the sentence that states the answer is chosen.
    text = "How long do adult fleas live. Adult fleas live two to three months."
    ranking = Reranker(Student(scorer=WordScorer(), calibrator=calibrator()), explain="evidence",
                       compare_top=0).rerank("how long do adult fleas live", [text])
    assert ranking[0].evidence == "Adult fleas live two to three months."


def test_min_relevance_drops_and_answerable_says_when_nothing_answers():
    student = Student(scorer=WordScorer(), calibrator=calibrator())
    passages = ["The sun is hot.", "Cats sleep a lot.", "Fleas bite."]
    ranking = Reranker(student).rerank("how long do adult fleas live", passages)
    assert ranking.answerable is False and len(ranking) == 3
    kept = Reranker(student, min_relevance=0.25).rerank("how long do adult fleas live", passages)
    assert [j.text for j in kept] == ["Fleas bite."] and kept.answerable is False
    assert Reranker(Student(scorer=WordScorer())).rerank("q", passages).answerable is None  # no calibrator


def test_a_calibrator_for_another_scorer_is_not_used(caplog):
    student = Student(scorer=WordScorer(), calibrator=calibrator(scorer="all-MiniLM-L6-v2"))
    with caplog.at_level("WARNING"):
        ranking = Reranker(student).rerank("fleas", ["fleas bite", "sun"])
    assert all(j.relevance is None and j.verdict is None for j in ranking)
    assert "fitted for the scorer 'all-MiniLM-L6-v2', not 'words'" in caplog.text


class ScriptedExplainer:
    """Returns fixed reasons and records what it was given."""

    name = "scripted"

    def __init__(self, reasons):
        self.reasons = reasons
        self.seen = []

    def explain(self, query, passages, *, verdicts=None, evidence=None):
        self.seen.append((list(verdicts), list(evidence)))
        return Generation(texts=self.reasons[: len(passages)], truncated=[False] * len(passages))


def test_full_explanations_are_conditioned_guarded_and_consistent_with_the_verdict():
    explainer = ScriptedExplainer([
        "It says adults live two to three months. The cycle lasts 20 to 25 days.",  # the second claim is invented
        "It directly answers the query.",                                          # contradicts "not relevant"
    ])
    student = Student(scorer=WordScorer(), explainer=explainer, calibrator=calibrator())
    ranking = Reranker(student, explain="full", explain_top=2, compare_top=0).rerank(
        "how long do adult fleas live", [FLEAS, "The sun is hot."])
    assert explainer.seen == [(["relevant", "not_relevant"], ["Adult fleas live two to three months.",
                                                             "The sun is hot."])]
    first, second = ranking
    assert first.explanation == "Relevant: It says adults live two to three months."
    assert first.unsupported == ("20 to 25 days",)
    assert second.explanation.startswith("Not relevant: nothing in it answers the query")  # fell back to evidence
    assert all(j.explanation.startswith(VERDICT_WORDS[j.verdict] + ":") for j in ranking)


def test_the_comparison_cites_ranks_verdicts_and_evidence():
    student = Student(scorer=WordScorer(), calibrator=calibrator())
    ranking = Reranker(student, compare_top=3).rerank(
        "how long do adult fleas live", [FLEAS, "Fleas bite.", "The sun is hot."])
    assert ranking.comparison.startswith('[1] answers the query: "Adult fleas live two to three months."')
    assert "[2] is on the topic but only comes close" in ranking.comparison
    assert "[3] does not answer it" in ranking.comparison
    assert not unsupported_claims(ranking.comparison, "\n".join(j.text for j in ranking), ranking.query)
    assert grounded_comparison(ranking.judgments[:1]) is None


# -- the grounding guard --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("explanation, unsupported", [
    ("The flea cycle can last anywhere from 20 to 25 days.", ("20 to 25 days",)),  # the report's example
    ("It lasts from 20 days to a year.", ()),
    ("Adults live 2 to 3 months.", ()),                                              # digits for number words
    ("Females lay 20 to 25 eggs.", ()),
    ("Females lay 30 eggs.", ("30 eggs",)),
    ('It calls it "an entire year".', ()),
    ('It calls it "a whole decade".', ("a whole decade",)),
    ("It was published on March 3.", ("March 3",)),
    ("[1] is better than [2].", ()),                                                # citations claim nothing
])
def test_unsupported_claims(explanation, unsupported):
    assert unsupported_claims(explanation, FLEAS, "how long do fleas live") == unsupported


def test_the_report_s_cost_example_is_supported_and_invented_costs_are_not():
    passage = "Concrete floors cost $2 to $6 per square foot, installed."
    assert unsupported_claims("It gives a cost of $2 to $6 per square foot.", passage) == ()
    assert guard("It gives costs. They start at $10.", passage).text == "It gives costs."


def test_contradiction_check():
    assert contradicts("The passage is not relevant to the query.", "relevant")
    assert contradicts("It directly answers the question.", "not_relevant")
    assert not contradicts("It mentions fleas but does not answer the question.", "not_relevant")
    # what the 0.2 adapter wrote for a label-3 DL20 passage judged relevant (it falls back to the evidence)
    assert contradicts("This passage discusses the income tax in Mississippi, which is not directly related to the "
                       "query.", "relevant")
    assert not contradicts("This passage discusses income tax, which is not directly related to the query.", "partial")
    assert not contradicts("It gives the adult lifespan.", "relevant")


# -- calibration ----------------------------------------------------------------------------------------------------


def test_calibrator_round_trips_and_checks_itself(tmp_path):
    c = calibrator()
    assert Calibrator.load(c.save(tmp_path / "c.json")) == c
    with pytest.raises(ValueError, match="unknown features"):
        Calibrator(scorer="s", features=("nope",), weights=(1.0,), bias=0.0)
    with pytest.raises(ValueError, match="partial_at <= relevant_at"):
        Calibrator(scorer="s", features=("score",), weights=(1.0,), bias=0.0, relevant_at=0.2, partial_at=0.5)
    assert [c.verdict(r) for r in (0.9, 0.5, 0.3, 0.25, 0.1)] == ["relevant", "relevant", "partial", "partial",
                                                                  "not_relevant"]


def test_query_coverage_counts_content_words():
    assert content_words("What is the life cycle of fleas?") == {"life", "cycle", "flea"}
    assert query_coverage("how long do fleas live", "Adult fleas live for months.") == pytest.approx(2 / 3)
    assert query_coverage("how long do fleas live", "Cats sleep.") == 0.0
    assert query_coverage("the of", "anything") == 0.0


def _judged(rank, verdict, relevance, stage="score"):
    return Judgment(id=str(rank), text="t", score=1.0 / rank, rank=rank, input_rank=rank, stage=stage,
                    relevance=relevance, verdict=verdict, evidence="Fleas live a year.")


@pytest.mark.parametrize("judgments, ends_with", [
    # the order agrees with the verdicts, then with the relevance
    ([("relevant", 0.6), ("partial", 0.3)], "Passages that answer come before those that only touch the topic, and "
                                            "those before the rest."),
    ([("relevant", 0.6), ("relevant", 0.5)], "the scorer's score orders them (relevance 0.60, 0.50)."),
    # it does not: the sentence says so instead of quoting numbers that contradict it (DL19 query 264014's top 3)
    ([("relevant", 0.31), ("relevant", 0.39)], "the scorer's score orders them, although their relevance (0.31, "
                                               "0.39), which also weighs the best sentence, would order them "
                                               "differently."),
    ([("partial", 0.2), ("relevant", 0.3)], "The order is the scorer's score: [1] stays above [2] although its "
                                            "verdict is weaker; the verdict also weighs how well the best sentence "
                                            "answers."),
])
def test_the_comparison_never_states_an_order_its_numbers_contradict(judgments, ends_with):
    ranked = [_judged(i + 1, verdict, relevance) for i, (verdict, relevance) in enumerate(judgments)]
    assert grounded_comparison(ranked).endswith(ends_with)


def test_the_comparison_names_what_ordered_the_passages():
    ranked = [_judged(1, "relevant", 0.3, "first_stage_order"), _judged(2, "relevant", 0.5, "first_stage_order")]
    assert "the retriever's order orders them, although" in grounded_comparison(ranked)
