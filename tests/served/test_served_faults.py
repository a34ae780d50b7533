"""Faults between a served student and its server: retried when they pass, a clear error when they do not, never a
hang (every call runs under ``bounded``, every request under the client's timeout)."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time

import pytest
from openai_server import Fault

from r2r_agent import Reranker
from r2r_agent.openai_client import OpenAIClient, ServerError

from .served_helpers import MODEL, PASSAGES, QUERY, bounded, served


def free_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


@pytest.mark.parametrize("fault", [
    Fault("status", 500),
    Fault("status", 503, headers={"Retry-After": "0"}),
    Fault("malformed"),
    Fault("drop"),
    Fault("hang", seconds=3.0),
], ids=["500", "503", "malformed", "dropped", "timeout"])
def test_a_passing_fault_is_retried_and_the_answer_is_the_same(server, lm, fault):
    _, tokenizer = lm
    clean = bounded(lambda: served(server, tokenizer).scorer.score(QUERY, PASSAGES[:1])).values
    server.fail_next(fault)
    student = served(server, tokenizer, timeout=1.0)
    assert bounded(lambda: student.scorer.score(QUERY, PASSAGES[:1])).values == clean
    assert len(server.requests) == 3  # the clean call, the failed attempt, the retry


def test_retry_after_is_honoured(server, lm, caplog):
    _, tokenizer = lm
    server.fail_next(Fault("status", 429, headers={"Retry-After": "0.6"}))
    student = served(server, tokenizer)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="r2r_agent.openai_client"):
        bounded(lambda: student.scorer.score(QUERY, PASSAGES[:1]))
    assert time.monotonic() - start >= 0.6
    assert any("HTTP 429" in r.getMessage() and "retry 1/2 in 0.60s" in r.getMessage() for r in caplog.records)


def test_a_long_retry_after_is_capped(server, lm):
    _, tokenizer = lm
    server.fail_next(Fault("status", 429, headers={"Retry-After": "3600"}))
    student = served(server, tokenizer, max_retry_after=0.2)
    start = time.monotonic()
    bounded(lambda: student.scorer.score(QUERY, PASSAGES[:1]), 30)
    assert time.monotonic() - start < 20


def test_every_attempt_failing_names_the_url_the_attempts_and_the_last_failure(server, lm):
    _, tokenizer = lm
    server.fail_next(*[Fault("status", 502)] * 3)
    student = served(server, tokenizer)
    with pytest.raises(ServerError) as info:
        bounded(lambda: student.scorer.score(QUERY, PASSAGES[:1]))
    message = str(info.value)
    assert f"{server.url}/chat/completions failed after 3 attempts" in message
    assert "HTTP 502" in message and "server is up" in message


def test_a_refusal_is_not_retried_and_says_what_to_check(server, lm):
    _, tokenizer = lm
    student = served(server, tokenizer)
    wrong = type(student.scorer)(student.scorer.client, "no-such-model")
    with pytest.raises(ServerError, match="HTTP 404.*no-such-model.*check the base URL .* and the model name"):
        bounded(lambda: wrong.score(QUERY, PASSAGES[:1]))
    assert len(server.requests) == 1


def test_no_logprobs_is_a_clear_error_not_retried(server, lm):
    _, tokenizer = lm
    server.fail_next(Fault("no_logprobs"))
    with pytest.raises(ServerError) as info:
        bounded(lambda: served(server, tokenizer).scorer.score(QUERY, PASSAGES[:1]))
    assert "has no logprobs" in str(info.value) and server.url in str(info.value)
    assert "serve the model with a server that returns logprobs" in str(info.value)
    assert len(server.requests) == 1


def test_a_server_that_is_down_fails_quickly_with_a_clear_error():
    student_url = free_port_url()
    from r2r_agent import Student

    student = Student.from_openai(student_url, MODEL, max_retries=1, backoff=0.01, timeout=2.0)
    with pytest.raises(ServerError, match="failed after 2 attempts; last failure: connection error"):
        bounded(lambda: student.scorer.score(QUERY, PASSAGES[:2]), 30)


def test_a_server_gone_mid_run_ends_the_run_with_an_error(server, lm):
    _, tokenizer = lm
    student = served(server, tokenizer, max_retries=1)
    reranker = Reranker(student, trace=False, explain_top=0, judge=False)
    gone = threading.Event()

    def stop_soon() -> None:
        while len(server.requests) < 3:
            time.sleep(0.01)
        server.close()
        gone.set()

    threading.Thread(target=stop_soon, daemon=True).start()
    with pytest.raises(ServerError, match="failed after 2 attempts"):
        bounded(lambda: reranker.rerank_many([QUERY] * 20, [PASSAGES] * 20, concurrency=4), 60)
    assert gone.is_set()


async def test_the_async_path_retries_and_fails_the_same_way(server, lm):
    _, tokenizer = lm
    student = served(server, tokenizer, timeout=1.0, max_retries=3)
    server.fail_next(Fault("status", 429, headers={"Retry-After": "0.1"}), Fault("malformed"), Fault("drop"))
    scores = await asyncio.wait_for(student.scorer.ascore(QUERY, PASSAGES[:1]), 30)
    assert len(scores.values) == 1 and len(server.requests) == 4
    server.fail_next(*[Fault("status", 500)] * 4)
    with pytest.raises(ServerError, match="failed after 4 attempts"):
        await asyncio.wait_for(student.explainer.aexplain(QUERY, PASSAGES[:1]), 30)


def test_client_settings_are_checked():
    with pytest.raises(ValueError, match="base_url must be an http"):
        OpenAIClient("localhost:8000")
    with pytest.raises(ValueError, match="max_concurrency must be an int >= 1, got 0"):
        OpenAIClient("http://x/v1", max_concurrency=0)
    with pytest.raises(ValueError, match="timeout must be a finite number > 0"):
        OpenAIClient("http://x/v1", timeout=-1)


@pytest.mark.parametrize("setting, value", [
    ("max_retry_after", math.nan), ("max_retry_after", math.inf), ("backoff", math.nan), ("backoff", -math.inf),
    ("max_backoff", math.inf), ("timeout", math.nan), ("timeout", math.inf), ("timeout", 0), ("jitter", math.inf),
    ("jitter", math.nan), ("max_response_bytes", 0), ("max_response_bytes", 1.5), ("max_response_bytes", True),
])
def test_nan_and_infinite_settings_are_refused_at_construction(setting, value):
    # Issue 19 item 15: max_retry_after=nan with Retry-After: 1e9 slept 1e9 s; backoff=nan, timeout=nan/inf and
    # jitter=inf were accepted.
    with pytest.raises(ValueError, match=f"OpenAIClient: {setting} must be a"):
        OpenAIClient("http://x/v1", **{setting: value})
