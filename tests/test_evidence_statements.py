"""Evidence that answers rather than echoes (issue 20 item 7): a question, a title or a near-copy of the query is
evidence only when the passage states nothing else."""

from __future__ import annotations

import pytest

from r2r_agent import Reranker, Student
from r2r_agent.evidence import choose_evidence, sentence_spans, statement_problem


@pytest.mark.parametrize(("sentence", "query", "problem"), [
    ("What does a high TSH mean?", None, "question"),
    ("How was tsar nicholas II of russia killed? ", None, "question"),
    ('He asked: "Is it safe?"', None, "question"),
    ("Tsar Nicholas II", None, "title"),
    ("What Does a High TSH Mean", None, "title"),
    ("Other Causes for Hot Flashes.", "other hot flashes causes", "near-copy of the query"),
    ("", None, "title"),
    ("A high TSH means the thyroid is underactive.", "what does a high TSH mean", None),
    ("Fleas live 2-3 months", None, "title"),  # short and unpunctuated: a label, whatever it says
    ("Adult fleas live two to three months on a host and lay eggs in carpets", None, None),
    ("Other causes for hot flashes include thyroid problems and some medicines.", "other hot flashes causes", None),
])
def test_what_states_nothing(sentence, query, problem):
    assert statement_problem(sentence, query) == problem


def test_the_best_statement_wins_over_a_better_scoring_echo():
    text = "What is a flail chest? Flail Chest. A flail chest is a part of the rib cage broken loose from the wall."
    spans = sentence_spans(text)
    assert len(spans) == 3
    chosen = choose_evidence([text], [spans], [0.9, 0.8, 0.5])[0]
    assert chosen.text == "A flail chest is a part of the rib cage broken loose from the wall."
    assert text[chosen.span[0]:chosen.span[1]] == chosen.text and chosen.score == 0.5


def test_a_passage_of_echoes_only_still_gives_its_best_span():
    text = "What is a flea? Fleas"
    chosen = choose_evidence([text], [sentence_spans(text)], [0.2, 0.7])[0]
    assert chosen.text == "Fleas"


def test_a_near_copy_is_recognised_only_with_the_query():
    text = "Other causes for hot flashes, explained. Thyroid problems can cause hot flashes."
    spans = sentence_spans(text)
    assert choose_evidence([text], [spans], [0.9, 0.4])[0].text == "Other causes for hot flashes, explained."
    assert choose_evidence([text], [spans], [0.9, 0.4], query="other hot flashes causes")[0].text == \
        "Thyroid problems can cause hot flashes."


def test_the_reranker_gives_a_statement_as_evidence(tiny_student):
    passage = "How long do fleas live? Adult fleas live two to three months on a host animal."
    ranking = Reranker(tiny_student, explain="evidence", compare_top=0).rerank("how long do fleas live", [passage])
    assert ranking[0].evidence == "Adult fleas live two to three months on a host animal."
    start, end = ranking[0].evidence_span
    assert passage[start:end] == ranking[0].evidence


@pytest.mark.slow
def test_the_default_student_answers_the_tsh_question():
    # The example: the heading that repeats the query was the evidence.
    passage = ("What does a high TSH mean? A high TSH level usually means that the thyroid gland is not making "
               "enough thyroid hormone, a condition called hypothyroidism.")
    ranking = Reranker(Student.default(), explain="evidence").rerank("what does a high TSH mean", [passage])
    assert ranking[0].evidence.startswith("A high TSH level usually means")


@pytest.mark.parametrize(("sentence", "problem"), [
    ("Flail Chest.", "title"), ("Other Causes For Hot Flashes.", "title"), ("Fleas bite.", None),
    ("Nicholas II Died In 1918 At Yekaterinburg, Shot By Bolsheviks With His Family And Servants.", None),
    ("Nicholas II died in 1918.", None), ("NASA was founded in 1958.", None),
])
def test_title_case_is_a_title_when_short(sentence, problem):
    assert statement_problem(sentence) == problem
