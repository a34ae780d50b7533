from __future__ import annotations

import json
import threading

import pytest

from r2r_agent import InvalidPassageError, Judgment, Passage, Ranking, StageCost
from r2r_agent.types import to_passage, to_passages


def test_passage_accepts_forms_and_copies_metadata():
    meta = {"source": "web"}
    p = Passage("text", id=7, metadata=meta, first_stage_score=1.5)
    assert p.id == "7" and p.first_stage_score == 1.5
    assert p.metadata == meta and p.metadata is not meta
    assert to_passage({"text": "t", "score": "1.5"}).first_stage_score == 1.5  # a JSON number written as a string
    assert to_passage("plain").text == "plain"
    assert to_passage({"docid": "d1", "contents": "x", "score": 2}).id == "d1"
    assert to_passage({"page_content": "y", "metadata": {"a": 1}}).metadata == {"a": 1}


@pytest.mark.parametrize("bad", [b"bytes", 3.5, None, {"text": 12}, {"title": "no text"}, ["nested"]])
def test_non_string_passage_is_a_clear_type_error(bad):
    with pytest.raises(TypeError, match="passage 0"):
        to_passages([bad])


def test_the_old_score_spelling_still_works_for_one_release_with_a_warning():
    with pytest.warns(DeprecationWarning, match="first_stage_score"):
        p = Passage("text", score=2.0)
    assert p.first_stage_score == 2.0
    with pytest.warns(DeprecationWarning):
        assert p.score == 2.0
    judgment = Judgment.from_dict({"id": "a", "text": "t", "score": 1.0, "rank": 1, "original_rank": 3,
                                   "original_score": 7.0})
    assert (judgment.input_rank, judgment.first_stage_score) == (3, 7.0)
    with pytest.warns(DeprecationWarning):
        assert judgment.original_rank == 3


@pytest.mark.parametrize("item, message", [
    ({"text": "t", "score": "abc"}, "passage 0: Passage.first_stage_score must be a number"),
    ({"text": "t", "metadata": [1, 2]}, "passage 0: Passage.metadata must be a mapping"),
])
def test_bad_fields_name_the_passage_position(item, message):
    with pytest.raises(InvalidPassageError, match=message):
        to_passages([item])


def test_passages_none_is_a_clear_error():
    with pytest.raises(InvalidPassageError, match="passages must be a list"):
        to_passages(None)  # type: ignore[arg-type]


def test_metadata_is_deep_copied_in_and_out():
    nested = {"source": {"url": "u"}}
    passage = Passage("t", metadata=nested)
    passage.metadata["source"]["url"] = "changed"
    assert nested == {"source": {"url": "u"}}
    judgment = Judgment("a", "t", 1.0, 1, 1, metadata=passage.metadata)
    judgment.metadata["source"]["url"] = "again"
    assert passage.metadata["source"]["url"] == "changed"


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


class _RefusesCopy:
    def __deepcopy__(self, memo):
        raise RuntimeError("no copies of me")


def _numbers():
    yield 1


@pytest.mark.parametrize("uncopyable", [threading.Lock(), _numbers(), _RefusesCopy()],
                         ids=["lock", "generator", "deepcopy raises"])
def test_one_uncopyable_value_no_longer_shares_the_rest_of_the_metadata(uncopyable, caplog):
    """Issue 19 item 9: the fallback copied only the top level, so nested dicts were the caller's again."""
    from r2r_agent import Reranker, Student
    from r2r_agent.scorers import Scores

    class Lexical:
        name = "lexical"

        def score(self, query, passages):
            return Scores([float(len(set(query.split()) & set(p.split()))) for p in passages])

    from r2r_agent import types

    types._uncopyable_said.clear()
    meta = {"tags": {"a": 1}, "list": [{"b": 2}], "set": {1, 2}, "tuple": ({"c": 3},), "h": uncopyable}
    with caplog.at_level("WARNING", logger="r2r_agent.types"):
        ranking = Reranker(Student(scorer=Lexical()), explain_top=0, compare_top=0, judge=False).rerank(
            "fleas live", [Passage("fleas live two months", metadata=meta)])
    got = ranking[0].metadata
    got["tags"]["a"] = 99
    got["list"][0]["b"] = 99
    got["set"].add(3)
    got["tuple"][0]["c"] = 99
    assert meta["tags"] == {"a": 1} and meta["list"] == [{"b": 2}] and meta["set"] == {1, 2}
    assert meta["tuple"] == ({"c": 3},)
    assert got["h"] is uncopyable  # shared, since it cannot be copied
    assert "['h']" in caplog.text and "cannot be copied" in caplog.text
    assert caplog.text.count("cannot be copied") == 1  # said once per type, not per copy


def test_metadata_copy_keeps_cycles_and_shared_children():
    inner = {"x": 1}
    meta: dict = {"a": inner, "b": inner}
    meta["self"] = meta
    copied = Passage("t", metadata=meta).metadata
    assert copied["a"] is copied["b"] and copied["a"] is not inner
    assert copied["self"] is not meta
    deep: list = []
    node = deep
    for _ in range(500):
        node.append([])
        node = node[0]
    assert Passage("t", metadata={"deep": deep}).metadata["deep"] is not deep
