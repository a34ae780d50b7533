from __future__ import annotations

import json
import threading
import time

import pytest

from r2r_agent.errors import InvalidInputError
from r2r_agent.training import TeacherError, annotate_window

httpx = pytest.importorskip("httpx")

from r2r_agent.training.http_teacher import OpenAIChatTeacher, parse_retry_after  # noqa: E402

MESSAGES = [{"role": "user", "content": "rank"}]


def ok(content: str = "hello") -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": content}}]})


def make(handler, **kwargs) -> tuple[OpenAIChatTeacher, list[float]]:
    slept: list[float] = []
    kwargs.setdefault("jitter", 0.0)
    teacher = OpenAIChatTeacher("m", base_url="http://teacher.test/v1", transport=httpx.MockTransport(handler),
                                sleep=slept.append, **kwargs)
    return teacher, slept


def test_request_shape_and_reply():
    seen = []

    def handler(request):
        seen.append(request)
        return ok("the answer")

    teacher, slept = make(handler, api_key="k", temperature=0.0, extra_body={"seed": 1})
    assert teacher.complete(MESSAGES) == "the answer"
    request = seen[0]
    assert request.url == "http://teacher.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer k"
    body = json.loads(request.content)
    assert body["model"] == "m" and body["messages"] == MESSAGES and body["seed"] == 1
    assert slept == [] and teacher.name == "m"


def test_429_then_success_honours_retry_after():
    replies = iter([httpx.Response(429, headers={"Retry-After": "7"}, text="slow down"), ok("done")])
    teacher, slept = make(lambda request: next(replies))
    assert teacher.complete(MESSAGES) == "done"
    assert slept == [7.0]


def test_5xx_backoff_is_exponential_and_exhaustion_raises():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(503, text="overloaded")

    teacher, slept = make(handler, max_retries=3, backoff=0.5, max_backoff=1.5)
    with pytest.raises(TeacherError, match=r"failed after 4 attempts; last failure: HTTP 503"):
        teacher.complete(MESSAGES)
    assert len(calls) == 4
    assert slept == [0.5, 1.0, 1.5]


def test_5xx_exhausted_is_a_recorded_window_failure():
    teacher, _ = make(lambda request: httpx.Response(500, text="boom"), max_retries=1)
    window = annotate_window(teacher, "q", ["a", "b"], max_attempts=1)
    assert not window.ok and "TeacherError" in window.error and "HTTP 500" in window.error


def test_timeout_is_retried_then_reported():
    attempts = []

    def handler(request):
        attempts.append(1)
        if len(attempts) < 3:
            raise httpx.ReadTimeout("read timed out", request=request)
        return ok("late")

    teacher, slept = make(handler, max_retries=2, backoff=1.0)
    assert teacher.complete(MESSAGES) == "late"
    assert slept == [1.0, 2.0]

    def always(request):
        raise httpx.ConnectTimeout("no", request=request)

    teacher, _ = make(always, max_retries=1, timeout=3)
    with pytest.raises(TeacherError, match="no answer within 3s"):
        teacher.complete(MESSAGES)


def test_client_errors_are_not_retried():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(401, text="bad key")

    teacher, slept = make(handler)
    with pytest.raises(TeacherError, match="HTTP 401.*not retried"):
        teacher.complete(MESSAGES)
    assert len(calls) == 1 and slept == []


def test_malformed_response_is_a_teacher_error():
    teacher, _ = make(lambda request: httpx.Response(200, json={"error": "?"}))
    with pytest.raises(TeacherError, match="choices"):
        teacher.complete(MESSAGES)


def test_concurrency_limit():
    active, peak = [0], [0]
    lock = threading.Lock()

    def handler(request):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1
        return ok()

    teacher, _ = make(handler, max_concurrency=2)
    threads = [threading.Thread(target=teacher.complete, args=(MESSAGES,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2


def test_retry_after_http_date():
    from datetime import datetime, timezone

    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:05 GMT", now=now) == 5.0
    assert parse_retry_after("-3") == 0.0 and parse_retry_after(None) is None


def test_long_retry_after_is_capped():
    replies = iter([httpx.Response(429, headers={"Retry-After": "9999"}), ok()])
    teacher, slept = make(lambda request: next(replies), max_retry_after=30)
    teacher.complete(MESSAGES)
    assert slept == [30]


@pytest.mark.parametrize("field, value", [("max_concurrency", 0), ("max_retries", -1), ("timeout", -1)])
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(InvalidInputError, match=field):
        OpenAIChatTeacher("m", **{field: value})


def test_a_truncated_or_garbled_body_is_retried():
    replies = iter([httpx.Response(200, text='{"choices": [{"message": {"content": "tru'),
                    httpx.Response(200, text="<html>bad gateway</html>"), ok("whole")])
    teacher, slept = make(lambda request: next(replies), max_retries=2, backoff=0.5)
    assert teacher.complete(MESSAGES) == "whole"
    assert slept == [0.5, 1.0]
    window = annotate_window(make(lambda request: httpx.Response(200, text="{"), max_retries=1)[0], "q", ["a"],
                             max_attempts=1)
    assert not window.ok and "a body that is not JSON" in window.error and "2 attempts" in window.error


def test_close_stops_a_call_in_flight_without_further_requests():
    calls, closing = [], threading.Event()

    def handler(request):
        calls.append(1)
        if len(calls) > 1:
            return ok("again")
        closing.wait(5)
        raise httpx.ReadError("connection closed", request=request)

    teacher, slept = make(handler, max_retries=3)
    errors = []
    caller = threading.Thread(target=lambda: errors.append(pytest.raises(TeacherError, teacher.complete, MESSAGES)))
    caller.start()
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    teacher.close()
    closing.set()
    caller.join(5)
    assert not caller.is_alive() and len(calls) == 1 and slept == []  # no retry after close
    assert "closed while a request" in str(errors[0].value)
    assert teacher.complete(MESSAGES) == "again"  # a later call opens a new pool
