"""The API key (and URL credentials) reach the server and nothing else: no repr, error, log line, trace or ranking."""

from __future__ import annotations

import copy
import logging
import pickle

import pytest
from openai_server import Fault, OpenAITestServer

from r2r_agent import Reranker, Student
from r2r_agent.openai_client import Secret, ServerError
from r2r_agent.traces import MemoryTraceSink

from .served_helpers import FAST, MODEL, PASSAGES, QUERY, bounded

KEY = "sk-test-SECRET-4242"
WRONG = "sk-test-WRONG-1717"


@pytest.fixture
def guarded(answer_lm):
    model, tokenizer = answer_lm
    with OpenAITestServer(copy.deepcopy(model), copy.deepcopy(tokenizer), model_name=MODEL, api_key=KEY) as running:
        yield running


def everything_logged(caplog) -> str:
    return "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)


def test_the_key_is_sent_and_shown_nowhere(guarded, caplog):
    student = Student.from_openai(guarded.url, MODEL, api_key=KEY, max_new_tokens=4, **FAST)
    sink = MemoryTraceSink()
    guarded.fail_next(Fault("status", 500))  # a retry, so the client logs
    with caplog.at_level(logging.DEBUG):
        ranking = bounded(lambda: Reranker(student, trace=sink, explain_top=2).rerank(QUERY, PASSAGES))
    assert {h.get("Authorization") for _, h, _ in guarded.requests} == {f"Bearer {KEY}"}
    shown = [repr(student), str(student), repr(student.scorer), repr(student.explainer), repr(student.scorer.client),
             ranking.to_json(), *(r.to_json() for r in sink.records), everything_logged(caplog)]
    assert "retry 1/2" in shown[-1]
    for text in shown:
        assert KEY not in text
    assert "api_key=***" in repr(student.scorer.client)


def test_a_server_echoing_the_key_in_an_error_is_redacted(guarded, caplog):
    student = Student.from_openai(guarded.url, MODEL, api_key=WRONG, **FAST)
    with caplog.at_level(logging.DEBUG), pytest.raises(ServerError) as info:
        bounded(lambda: student.scorer.score(QUERY, PASSAGES[:1]))
    message = str(info.value)
    assert "HTTP 401" in message and "Bearer ***" in message and "check the API key" in message
    assert WRONG not in message and WRONG not in everything_logged(caplog)
    assert info.value.__cause__ is None or WRONG not in str(info.value.__cause__)


def test_credentials_in_the_url_are_used_but_not_shown(server, lm, caplog):
    port = server.url.split(":")[2].split("/")[0]
    url = f"http://user:pw-SECRET-99@127.0.0.1:{port}/v1"
    student = Student.from_openai(url, MODEL, top_logprobs=len(lm[1]), max_new_tokens=4, **FAST)
    server.fail_next(Fault("status", 502))
    with caplog.at_level(logging.DEBUG):
        ranking = bounded(lambda: Reranker(student, trace=False).rerank(QUERY, PASSAGES[:2]))
    assert server.requests[-1][1].get("Authorization", "").startswith("Basic ")
    for text in (student.name, repr(student), ranking.to_json(), everything_logged(caplog)):
        assert "pw-SECRET-99" not in text
    assert student.name == f"{MODEL} @ {server.url}"


def test_a_secret_never_shows_itself():
    secret = Secret(KEY)
    assert secret.reveal() == KEY
    assert KEY not in repr(secret) + str(secret) + f"{secret}" + repr([secret])
    assert copy.deepcopy(secret) is secret and copy.copy(secret).reveal() == KEY
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(secret)
