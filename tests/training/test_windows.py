from __future__ import annotations

import pytest

from r2r_agent.errors import InvalidInputError
from r2r_agent.training import ScriptedTeacher, annotate_query, annotate_window, sliding_windows
from r2r_agent.training.annotate import AnnotationConfig
from r2r_agent.training.windows import window_hash


@pytest.mark.parametrize("n, size, stride", [(1, 3, 1), (5, 5, 5), (10, 4, 3), (100, 20, 10), (7, 3, 3), (9, 4, 1)])
def test_windows_cover_every_position_back_to_front(n, size, stride):
    windows = sliding_windows(n, size, stride)
    assert windows[0].stop == n and windows[-1].start == 0
    assert all(len(w) <= size for w in windows)
    assert set().union(*map(set, windows)) == set(range(n))
    assert [w.start for w in windows] == sorted((w.start for w in windows), reverse=True)


def test_empty_candidates_give_no_windows():
    assert sliding_windows(0, 20, 10) == []


@pytest.mark.parametrize("size, stride", [(0, 1), (4, 0), (4, 5)])
def test_bad_window_settings(size, stride):
    with pytest.raises(InvalidInputError, match="window"):
        sliding_windows(10, size, stride)


def test_empty_window_does_not_call_the_teacher():
    teacher = ScriptedTeacher()
    window = annotate_window(teacher, "q", [])
    assert window.ok and window.answer.ranking == () and teacher.calls == []


def test_window_uses_the_core_prompt(keyword_teacher):
    from r2r_agent import prompts

    annotate_window(keyword_teacher, "fleas", ["a score 1", "b score 2"])
    assert keyword_teacher.calls == [prompts.teacher_listwise_messages("fleas", ["a score 1", "b score 2"])]


def test_unparseable_reply_is_retried_then_recorded():
    good = '{"ranking": [2, 1], "reasons": [{"passage": 2, "direct": "yes"}]}'
    window = annotate_window(ScriptedTeacher(["no json here", good]), "q", ["a", "b"], max_attempts=2)
    assert window.ok and window.attempts == 2 and window.answer.ranking == (1, 0)

    window = annotate_window(ScriptedTeacher(["nope", "still nope"]), "q", ["a", "b"], max_attempts=2)
    assert not window.ok and window.attempts == 2 and window.error.startswith("ParseError")
    assert window.response == "still nope"


def test_teacher_exception_is_recorded_not_raised():
    window = annotate_window(ScriptedTeacher([TimeoutError("slow"), RuntimeError("boom")]), "q", ["a"], max_attempts=2)
    assert not window.ok and window.error == "RuntimeError: boom"


def test_sliding_windows_carry_the_best_to_the_top(keyword_teacher):
    candidates = [f"passage {i} score {s}" for i, s in enumerate([3, 1, 4, 1, 5, 9, 2, 6, 5, 0])]
    result = annotate_query(keyword_teacher, "q", candidates, query_id="q1",
                            config=AnnotationConfig(window_size=4, stride=2))
    scores = [int(candidates[i].rsplit(" ", 1)[1]) for i in result.order]
    assert scores[:2] == [9, 6]  # the top window_size - stride are exact with back-to-front sliding
    assert len(result.windows) == len(sliding_windows(10, 4, 2)) == len(keyword_teacher.calls)
    assert sorted(result.order) == list(range(10))
    # each window's hash is of what the teacher saw
    first = result.windows[0]
    assert first.window_hash == window_hash("q", [candidates[i] for i in first.positions])
    assert result.direct_reasons()[5] == "it says passage 5 score 9"


def test_failed_window_keeps_the_order_and_the_run_goes_on(keyword_teacher):
    from conftest import keyword_reply

    teacher = ScriptedTeacher(["garbage", "garbage"], default=keyword_reply)
    candidates = [f"p{i} score {i}" for i in range(6)]
    result = annotate_query(teacher, "q", candidates, query_id="q1",
                            config=AnnotationConfig(window_size=3, stride=3, max_attempts=2))
    assert len(result.failures) == 1 and result.windows[0].positions == (3, 4, 5)
    assert result.order == (2, 1, 0, 3, 4, 5)


def test_annotate_query_with_no_candidates(keyword_teacher):
    result = annotate_query(keyword_teacher, "q", [], query_id="q0")
    assert result.order == () and result.windows == () and keyword_teacher.calls == []
