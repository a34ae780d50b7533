from __future__ import annotations

import json

import pytest

from r2r_agent import InvalidPassageError, Judgment, Passage, Ranking, StageCost
from r2r_agent.types import to_passage, to_passages


def test_passage_accepts_forms_and_copies_metadata():
    meta = {"source": "web"}
    p = Passage("text", id=7, metadata=meta, score="1.5")
    assert p.id == "7" and p.score == 1.5
    assert p.metadata == meta and p.metadata is not meta
    assert to_passage("plain").text == "plain"
    assert to_passage({"docid": "d1", "contents": "x", "score": 2}).id == "d1"
    assert to_passage({"page_content": "y", "metadata": {"a": 1}}).metadata == {"a": 1}


@pytest.mark.parametrize("bad", [b"bytes", 3.5, None, {"text": 12}, {"title": "no text"}, ["nested"]])
def test_non_string_passage_is_a_clear_type_error(bad):
    with pytest.raises(TypeError, match="passage 0"):
        to_passages([bad])


def test_single_string_instead_of_list_is_rejected():
    with pytest.raises(InvalidPassageError, match="wrap it in a list"):
        to_passages("one passage")


def test_passage_text_must_be_str():
    with pytest.raises(TypeError, match="Passage.text must be a str"):
        Passage(text=None)  # type: ignore[arg-type]


def test_ranking_round_trips_through_json():
    ranking = Ranking(
        query="q",
        judgments=(Judgment("a", "text a", 0.9, 1, 2, 3.0, "because", True, "rescore", {"k": [1, 2]}),
                   Judgment(None, "text b", 0.1, 2, 1)),
        comparison="a beats b",
        model="m",
        adapter="ad",
        num_candidates=2,
        stages=(StageCost("score", "enc", 2, 0.5), StageCost("explain", "lm", 1, 1.0, 12)),
        prompt_version="v",
    )
    text = ranking.to_json()
    json.loads(text)
    again = Ranking.from_json(text)
    assert again == ranking
    assert [j.rank for j in again] == [1, 2] and len(again) == 2 and again[0].id == "a"
    assert again.seconds == pytest.approx(1.5)


def test_empty_ranking_is_iterable():
    ranking = Ranking(query="q")
    assert list(ranking) == [] and len(ranking) == 0 and ranking.comparison is None
