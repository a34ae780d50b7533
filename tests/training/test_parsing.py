from __future__ import annotations

import json

import pytest

from r2r_agent.training import ParseError, TeacherAnswer, parse_teacher_answer
from r2r_agent.training.parsing import extract_json_object, strip_trailing_commas

CLEAN = {
    "ranking": [2, 3, 1],
    "reasons": [
        {"passage": 2, "direct": "gives the lifespan", "comparison": "most specific"},
        {"passage": 3, "direct": "mentions fleas", "comparison": "vaguer than 2"},
        {"passage": 1, "direct": "about dogs", "comparison": "off topic"},
    ],
    "comparison": "2 answers directly, 3 only mentions fleas.",
}


def test_clean_answer_is_0_based_and_in_window_order():
    answer = parse_teacher_answer(json.dumps(CLEAN), 3)
    assert answer.ranking == (1, 2, 0)
    assert answer.direct_reasons == ("about dogs", "gives the lifespan", "mentions fleas")
    assert answer.comparison_reasons == ("off topic", "most specific", "vaguer than 2")
    assert answer.ranked_direct_reasons()[0] == "gives the lifespan"
    assert answer.comparison == "2 answers directly, 3 only mentions fleas."
    assert answer.repairs == ()


def test_round_trip():
    answer = parse_teacher_answer(json.dumps(CLEAN), 3)
    assert TeacherAnswer.from_dict(json.loads(json.dumps(answer.to_dict()))) == answer


def test_json_inside_prose_and_code_fence():
    text = "Sure! Here is my {careful} ranking:\n```json\n" + json.dumps(CLEAN, indent=2) + "\n```\nHope it helps."
    assert parse_teacher_answer(text, 3).ranking == (1, 2, 0)
    prose = "I think {this} matters. " + json.dumps(CLEAN) + " That's all."
    assert parse_teacher_answer(prose, 3).ranking == (1, 2, 0)


def test_trailing_commas_are_removed_and_recorded():
    text = '{"ranking": [2, 1,], "reasons": [{"passage": 1, "direct": "a, b]",},], "comparison": "c",}'
    answer = parse_teacher_answer(text, 2)
    assert answer.ranking == (1, 0)
    assert answer.direct_reasons == ("a, b]", None)
    assert "removed trailing commas" in answer.repairs


def test_strip_trailing_commas_keeps_strings():
    assert strip_trailing_commas('{"a": ",}", "b": [1,\n ],}') == '{"a": ",}", "b": [1\n ]}'


def test_missing_indices_are_appended_in_original_order():
    data = dict(CLEAN, ranking=[3, 1])
    answer = parse_teacher_answer(json.dumps(data), 4)
    assert answer.ranking == (2, 0, 1, 3)
    assert any("appended" in r and "[2, 4]" in r for r in answer.repairs)


def test_duplicates_and_out_of_range_are_dropped():
    data = dict(CLEAN, ranking=[2, 2, 7, 0, 3, "Passage 1"])
    answer = parse_teacher_answer(json.dumps(data), 3)
    assert answer.ranking == (1, 2, 0)
    assert any("repeated" in r for r in answer.repairs)
    assert any("outside 1..3" in r and "7" in r and "0" in r for r in answer.repairs)


def test_string_numbers_are_read():
    data = dict(CLEAN, ranking=["[2]", "3", "passage 1"])
    assert parse_teacher_answer(json.dumps(data), 3).ranking == (1, 2, 0)


def test_zero_based_complete_ranking_is_shifted():
    data = {"ranking": [1, 2, 0], "reasons": [{"passage": 1, "direct": "best"}]}
    answer = parse_teacher_answer(json.dumps(data), 3)
    assert answer.ranking == (1, 2, 0)
    assert answer.direct_reasons == (None, "best", None)
    assert any("0-based" in r for r in answer.repairs)


def test_too_few_valid_indices_is_an_error():
    data = dict(CLEAN, ranking=[9, 8, 1])
    with pytest.raises(ParseError, match="only 1 valid passages of 4"):
        parse_teacher_answer(json.dumps(data), 4)


def test_missing_ranking_taken_from_reasons_order():
    data = {"reasons": CLEAN["reasons"], "comparison": "x"}
    answer = parse_teacher_answer(json.dumps(data), 3)
    assert answer.ranking == (1, 2, 0)
    assert any("order of the reasons" in r for r in answer.repairs)


def test_original_r2r_shape_is_accepted():
    data = {"ranked_passages": [{"identifier": 2, "direct_reason": "d2", "listwise_reason": "l2"},
                                {"identifier": 1, "direct_reason": "d1", "listwise_reason": "l1"}]}
    answer = parse_teacher_answer(json.dumps(data), 2)
    assert answer.ranking == (1, 0)
    assert answer.direct_reasons == ("d1", "d2")
    assert answer.comparison_reasons == ("l1", "l2")


def test_reasons_with_bad_or_repeated_passage_numbers_are_dropped():
    data = dict(CLEAN, reasons=CLEAN["reasons"] + [{"passage": 9, "direct": "ghost"}, {"passage": 2, "direct": "again"},
                                                    {"direct": "no number"}, "not an object"])
    answer = parse_teacher_answer(json.dumps(data), 3)
    assert answer.direct_reasons[1] == "gives the lifespan"
    assert any("invalid passage number" in r for r in answer.repairs)
    assert any("repeated reasons" in r for r in answer.repairs)
    assert any("not objects" in r for r in answer.repairs)


def test_missing_reasons_are_none_and_recorded():
    data = dict(CLEAN, reasons=CLEAN["reasons"][:1])
    answer = parse_teacher_answer(json.dumps(data), 3)
    assert answer.direct_reasons == (None, "gives the lifespan", None)
    assert any("no direct reason for passages [1, 3]" in r for r in answer.repairs)


def test_no_reasons_at_all_is_an_error_unless_allowed():
    data = {"ranking": [2, 1]}
    with pytest.raises(ParseError, match="no direct reason"):
        parse_teacher_answer(json.dumps(data), 2)
    assert parse_teacher_answer(json.dumps(data), 2, require_reasons=False).ranking == (1, 0)


@pytest.mark.parametrize("text, match", [
    ("I cannot rank these passages.", "no JSON object"),
    ('{"ranking": [1, 2], "reasons": [{"passage": 1, "direct": "cut o', "never closes"),
    ("[2, 1]", "no JSON object"),
    ('{"ranking": "2 > 1", "reasons": []}', "no 'ranking' list"),
    ('{"ranking": [2, 1] "reasons": []}', "JSON error"),
])
def test_unusable_answers_raise_parse_error(text, match):
    with pytest.raises(ParseError, match=match):
        parse_teacher_answer(text, 2)


def test_non_string_answer_is_a_parse_error():
    with pytest.raises(ParseError, match="must be a str"):
        parse_teacher_answer(None, 2)  # type: ignore[arg-type]


def test_empty_window_needs_no_json():
    assert parse_teacher_answer("", 0) == TeacherAnswer.empty()


def test_extract_prefers_fenced_json():
    data, repairs = extract_json_object('{"x": 1} ```json\n{"ranking": [1]}\n```')
    assert data == {"ranking": [1]} and repairs == ()


def test_teacher_answer_validates():
    with pytest.raises(ValueError, match="permutation"):
        TeacherAnswer(ranking=(1, 1), direct_reasons=(None, None), comparison_reasons=(None, None))
    with pytest.raises(ValueError, match="one entry per passage"):
        TeacherAnswer(ranking=(0, 1), direct_reasons=(None,), comparison_reasons=(None, None))
