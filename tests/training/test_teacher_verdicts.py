"""The teacher's verdict read from its reasons, and verdicts/evidence carried through parsing and the R2R import."""

from __future__ import annotations

import pytest

from r2r_agent.training.parsing import parse_teacher_answer
from r2r_agent.training.r2r_import import r2r_row_to_annotation
from r2r_agent.training.teacher_verdicts import teacher_verdict


@pytest.mark.parametrize("reason, verdict", [
    ("The passage directly answers the query by stating that the town is in Jackson County.", "relevant"),
    ("This passage provides a clear definition of the term, listing its three parts.", "relevant"),
    ("The passage is highly relevant: it gives the opening hours.", "relevant"),
    ("The passage does not directly answer the query, but it provides context about the town.", "partial"),
    ("This passage indirectly relates to the query by discussing a similar drug.", "partial"),
    ("The passage directly mentions the drug but does not give its dose.", "partial"),
    ("The passage mentions the weather in May.", "partial"),
    ("This passage discusses tax rules, which is not directly related to the query.", "not_relevant"),
    ("The passage does not mention the singer or his death at all.", "not_relevant"),
    ("This passage is irrelevant: it is about a different city.", "not_relevant"),
])
def test_teacher_verdict(reason, verdict):
    assert teacher_verdict(reason) == verdict


def test_parsed_answers_keep_verdicts_and_evidence():
    answer = parse_teacher_answer('{"ranking": [2, 1], "reasons": [{"passage": 2, "verdict": "Relevant", '
                                  '"evidence": "Fleas live 3 months.", "direct": "d"}, {"passage": 1, '
                                  '"verdict": "not relevant", "direct": "e"}]}', 2)
    assert answer.verdicts == ("not_relevant", "relevant") and answer.evidence == (None, "Fleas live 3 months.")
    older = parse_teacher_answer('{"ranking": [1], "reasons": [{"passage": 1, "direct": "d"}]}', 1)
    assert older.verdicts == () and older.evidence == ()


def test_the_r2r_import_reads_the_verdict_from_the_reason_and_keeps_the_answer_sentence():
    row = {"query": "q", "qid": "7", "unsorted_docs": ["a b. c d.", "e f."], "re_rank_id": [2, 1],
           "reason": {"ranked_passages": [
               {"identifier": 2, "direct_reason": "The passage directly answers the query.",
                "listwise_reason": "best", "direct_answer_sentence": "e f."},
               {"identifier": 1, "direct_reason": "The passage does not mention q at all.",
                "listwise_reason": "worse", "direct_answer_sentence": "c d."}]}}
    annotation = r2r_row_to_annotation(row)
    assert annotation.verdicts() == {0: "not_relevant", 1: "relevant"}
    assert annotation.evidence() == {0: "c d.", 1: "e f."}
