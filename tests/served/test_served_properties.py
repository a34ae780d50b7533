"""Property-based tests (hypothesis) of the served-response parsers (issue 19): arbitrary JSON, and arbitrary values in
every slot of a chat or completions answer, either give a valid result or raise the client's own error
(:class:`~r2r_agent.openai_client.ServerError`, :class:`~r2r_agent.openai_client.MalformedResponse` when retried).
Nothing else escapes: no TypeError, KeyError, OverflowError, RecursionError, and no NaN or infinite score."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r2r_agent import prompts
from r2r_agent.logprobs import LOG_ODDS_LIMIT, answer_log_odds, first_token_logprobs
from r2r_agent.openai_client import OpenAIClient, ServerError, _Done, _Retry
from r2r_agent.openai_student import _reply

BOUNDED = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

TEXT = st.text(max_size=12)
ANSWER_TOKENS = st.sampled_from(["Yes", "yes", " Yes", "ĠNo", "no", "▁no", "YES", "The", ""]) | TEXT
NUMBERS = (st.floats(allow_nan=True, allow_infinity=True) | st.integers(min_value=-10**400, max_value=10**400)
           | st.floats(min_value=-50, max_value=0))
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                    max_leaves=16)
ENTRY = st.fixed_dictionaries({"token": ANSWER_TOKENS | SCALARS, "logprob": NUMBERS | SCALARS})
TOP = st.lists(ENTRY, max_size=6) | st.dictionaries(ANSWER_TOKENS, NUMBERS, max_size=6) | JSON


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return strategy | JSON


CHAT = st.builds(
    lambda token, logprob, top, content, usage, extra: {
        "choices": [{"message": {"content": content}, "logprobs": {"content": [
            {"token": token, "logprob": logprob, "top_logprobs": top}, *extra]}}], "usage": usage},
    maybe(ANSWER_TOKENS), maybe(NUMBERS), TOP,
    maybe(TEXT | st.lists(st.fixed_dictionaries({"text": maybe(TEXT)}), max_size=3)),
    maybe(st.fixed_dictionaries({"completion_tokens": maybe(st.integers())})), st.lists(JSON, max_size=2))
COMPLETIONS = st.builds(
    lambda tokens, values, tops: {"choices": [{"text": "x", "logprobs": {"tokens": tokens, "token_logprobs": values,
                                                                         "top_logprobs": tops}}]},
    maybe(st.lists(ANSWER_TOKENS, max_size=2)), maybe(st.lists(NUMBERS, max_size=2)), maybe(st.lists(TOP, max_size=2)))
BODIES = CHAT | COMPLETIONS | st.dictionaries(TEXT, JSON, max_size=4) | st.builds(lambda c: {"choices": c}, JSON)


def score(body: dict[str, Any]) -> tuple[float, str]:
    return answer_log_odds(first_token_logprobs(body), prompts.RELEVANCE_ANSWERS)


@BOUNDED
@given(BODIES)
def test_the_logprobs_reader_scores_or_raises_the_clients_error(body):
    try:
        value, seen = score(body)
    except ServerError:
        return
    assert math.isfinite(value) and abs(value) <= LOG_ODDS_LIMIT
    assert seen in {"both", "yes", "no", "neither"}


@BOUNDED
@given(BODIES)
def test_the_reply_reader_gives_text_and_a_count_or_raises_the_clients_error(body):
    try:
        text, tokens = _reply(body)
    except ServerError:
        return
    assert isinstance(text, str) and isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0


@BOUNDED
@given(BODIES)
def test_the_teachers_reader_gives_text_or_raises_the_clients_error(body):
    http_teacher = pytest.importorskip("r2r_agent.training.http_teacher")
    try:
        content = http_teacher._message_content(body)
    except ServerError:
        return
    assert isinstance(content, str)


CLIENT = OpenAIClient("http://127.0.0.1:9/v1", api_key="sk-prop-SECRET-77")
RAW = (st.binary(max_size=64) | BODIES.map(lambda b: json.dumps(b).encode())
       | JSON.map(lambda v: json.dumps(v).encode())
       | st.integers(1, 3000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n))


@BOUNDED
@given(RAW, st.sampled_from([score, _reply]))
def test_a_body_off_the_wire_is_a_result_a_retry_or_a_server_error(raw, parse):
    # The client's whole reading of a 200: JSON decoding (any depth), scrubbing, then the parser.
    try:
        outcome = CLIENT._outcome("chat/completions", 200, {}, raw, parse)
    except ServerError:
        return
    assert isinstance(outcome, _Done | _Retry)
