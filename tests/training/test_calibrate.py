"""Fitting a calibrator from labelled pairs (``r2r calibrate``): reading them, measuring them and the fit."""

from __future__ import annotations

import json

import pytest

from r2r_agent import Passage, Reranker, Student
from r2r_agent.errors import InvalidInputError
from r2r_agent.scorers import Scores
from r2r_agent.training.calibrate import fit_calibrator, jsonl_pairs, measure


class OverlapScorer:
    """The share of the query's words a text holds (deterministic, no model)."""

    name = "overlap"

    def score(self, query, passages):
        wanted = set(query.lower().split())
        return Scores([len(wanted & set(p.lower().replace(".", "").split())) / len(wanted) for p in passages])

    def visible_chars(self, text):
        return len(text)


def write_pairs(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def labelled_rows(queries=40):
    rows = []
    for q in range(queries):
        query = f"how long do fleas of kind{q} live"
        rows += [{"qid": f"q{q}", "query": query, "text": f"Fleas of kind{q} live how long: a year.", "label": 3},
                 {"qid": f"q{q}", "query": query, "text": f"Fleas of kind{q} jump far.", "label": 1},
                 {"qid": f"q{q}", "query": query, "text": "The sun is hot. Cats sleep all day.", "label": 0}]
    return rows


def test_graded_and_named_labels_read_as_verdicts(tmp_path):
    path = write_pairs(tmp_path / "pairs.jsonl", [
        {"query": "q", "text": "a", "label": 2}, {"query": "q", "text": "b", "label": 1},
        {"query": "r", "text": "c", "label": "not_relevant"}])
    pairs = jsonl_pairs(path)
    assert [p.verdict for p in pairs] == ["relevant", "partial", "not_relevant"]
    assert pairs[0].query_id == pairs[1].query_id != pairs[2].query_id  # grouped by query text without a qid


@pytest.mark.parametrize("second_line, message", [
    ("{not json", ":2: not JSON"),
    ('["a list"]', ":2: expected an object with string 'query' and 'text'"),
    ('{"query": "q", "text": "t", "label": 7}', ":2: 'label' must be 0-3"),
])
def test_a_bad_line_is_named(tmp_path, second_line, message):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"query": "q", "text": "t", "label": 0}\n' + second_line + "\n")
    with pytest.raises(InvalidInputError, match=message):
        jsonl_pairs(path)


def test_a_fitted_calibrator_separates_the_labels_and_the_reranker_uses_it(tmp_path):
    pairs = jsonl_pairs(write_pairs(tmp_path / "pairs.jsonl", labelled_rows()))
    measured = measure(Student(scorer=OverlapScorer()), pairs)
    calibrator, report = fit_calibrator(measured, scorer="overlap", validation_fraction=0.25)
    assert report["pairs"] == {"train": 90, "validation": 30}
    assert report["validation"]["auc_relevant"] == 1.0 and report["validation"]["balanced_accuracy_relevant"] == 1.0
    assert 0.0 <= calibrator.partial_at <= calibrator.relevant_at <= 1.0
    calibrator.save(tmp_path / "overlap.json")

    student = Student(scorer=OverlapScorer(), calibrator=tmp_path / "overlap.json")
    ranking = Reranker(student).rerank("how long do fleas of kind99 live", [
        Passage("The sun is hot. Cats sleep all day.", id="sun"), Passage("Fleas of kind99 live how long: a year.",
                                                                          id="answer")])
    assert [j.id for j in ranking] == ["answer", "sun"]
    assert ranking[0].verdict == "relevant" and ranking[1].verdict == "not_relevant"
    assert ranking[0].relevance > 0.5 > ranking[1].relevance


def test_one_kind_of_label_cannot_be_fitted(tmp_path):
    rows = [row for row in labelled_rows() if row["label"] == 0]
    measured = measure(Student(scorer=OverlapScorer()), jsonl_pairs(write_pairs(tmp_path / "p.jsonl", rows)))
    with pytest.raises(InvalidInputError, match="both relevant and other pairs"):
        fit_calibrator(measured, scorer="overlap")


def test_a_student_refuses_a_calibrator_of_another_type():
    from r2r_agent.errors import InvalidTypeError

    with pytest.raises(InvalidTypeError, match="calibrator must be an r2r_agent.Calibrator or a path"):
        Student(scorer=OverlapScorer(), calibrator={"weights": [1.0]})
