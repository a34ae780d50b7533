"""Attacks by a hostile server on the served client (issue 19 items 1, 2, 3 and 5), each reproduced on 127.0.0.1:
an echoed key in every encoding, a slow drip, a body that never ends, a gzip bomb, a body the client cannot read.

Every call runs under ``bounded`` and the server's loops are bounded, so a regression fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
import math
import time
import tracemalloc
import urllib.parse
from collections.abc import Iterator

import pytest

from r2r_agent import Student
from r2r_agent.openai_client import MAX_RESPONSE_BYTES, OpenAIClient, ServerError

from .hostile_server import HostileServer, Piece, Request, drip, gzip_bomb, response
from .served_helpers import MODEL, PASSAGES, QUERY, bounded

KEY = "sk-proj/Q7vXw9SECRETz3Kp+Lm2"
PASSWORD = "pw-Hx8/SECRET+42"
QUICK = {"backoff": 0.01, "max_backoff": 0.02, "jitter": 0.0}
CHAT = {"choices": [{"message": {"content": "Relevant: fleas live two months."}, "logprobs": {"content": [
    {"token": "Yes", "logprob": -0.1, "top_logprobs": [{"token": "Yes", "logprob": -0.1},
                                                       {"token": "No", "logprob": -2.4}]}]}}]}


def fragments(secret: str, size: int = 6) -> set[str]:
    """Every run of ``size`` characters of ``secret``, as is and in the encodings a server may echo."""
    forms = {secret, json.dumps(secret)[1:-1].replace("/", "\\/"), urllib.parse.quote(secret, safe=""),
             urllib.parse.quote_plus(secret)}
    return {form[i: i + size] for form in forms for i in range(len(form) - size + 1)
            if not form[i: i + size].startswith(("sk-pro", "pw-"))}


def assert_no_part_of(text: str, *secrets: str) -> None:
    for secret in secrets:
        found = sorted(f for f in fragments(secret) if f in text)
        assert not found, f"part of a secret shown: {found} in {text[:400]!r}"
    for token in (KEY, f"user:{PASSWORD}"):
        for shift in range(3):
            encoded = base64.b64encode(b"\0" * shift + token.encode()).decode()[4:-4]
            assert encoded not in text, f"base64 of a secret shown in {text[:400]!r}"


def chain(error: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def everything_logged(caplog) -> str:
    return "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)


def serve(*answers: bytes | list[Piece]) -> HostileServer:
    """A server that gives the i-th request the i-th answer (the last one to the rest)."""
    def answer(request: Request) -> list[Piece]:
        index = min(len(server.requests) - 1, len(answers) - 1)
        chosen = answers[index]
        return [chosen] if isinstance(chosen, bytes) else chosen

    server = HostileServer(answer)
    return server


# ---- item 1: the key shown nowhere, in no encoding --------------------------------------------------------------

def cut_echo(auth: str) -> str:
    """280 characters, then the echoed header: the key straddles the 300-character cut of an error message."""
    return "x" * 280 + " " + auth


def encoded_echo(auth: str) -> str:
    """The echoed header JSON-escaped as PHP writes it (``\\/``), with ``\\u`` escapes, and URL-encoded."""
    key = auth.split()[-1]
    escaped = key.replace("/", "\\/")
    return ('{"error": {"json": "' + escaped + '", "unicode": "' + escaped.replace("s", "\\u0073") + '", "url": "'
            + urllib.parse.quote(key, safe="") + '", "plus": "' + urllib.parse.quote_plus(key) + '"}}')


@pytest.mark.parametrize("status", [401, 500])
@pytest.mark.parametrize("echo", [cut_echo, encoded_echo])
def test_an_echoed_key_is_redacted_in_every_encoding_before_the_message_is_cut(status, echo, caplog):
    def answer(request: Request) -> list[Piece]:
        return [response(status, echo(request.headers.get("authorization", "")))]

    with HostileServer(answer) as server, caplog.at_level(logging.DEBUG):
        client = OpenAIClient(server.url, api_key=KEY, timeout=5, max_retries=1, **QUICK)
        with pytest.raises(ServerError) as info:
            bounded(lambda: client.post("chat/completions", {"model": "m"}), 30)
    assert f"Bearer {KEY}" in server.requests[0].headers["authorization"]  # it was sent, and echoed
    message = str(info.value)
    assert f"HTTP {status}" in message and "***" in message
    assert_no_part_of(message + everything_logged(caplog), KEY)
    assert all("httpx" not in type(e).__module__ for e in chain(info.value))


def test_basic_credentials_are_redacted_raw_and_inside_the_echoed_basic_header(caplog):
    def answer(request: Request) -> list[Piece]:
        auth = request.headers.get("authorization", "")
        user, _, password = base64.b64decode(auth.split()[-1]).decode().partition(":")
        return [response(403, f"denied {auth} for {user} with {password} / {urllib.parse.quote(password)}")]

    with HostileServer(answer) as server, caplog.at_level(logging.DEBUG):
        client = OpenAIClient(server.credentials_url("user", urllib.parse.quote(PASSWORD, safe="")), timeout=5,
                              max_retries=0)
        with pytest.raises(ServerError, match="HTTP 403") as info:
            bounded(lambda: client.post("chat/completions", {"model": "m"}), 30)
    assert server.requests[0].headers["authorization"].startswith("Basic ")
    assert "Basic ***" in str(info.value)
    assert_no_part_of(str(info.value) + everything_logged(caplog) + repr(client), PASSWORD)


@pytest.mark.parametrize("coding", ["br", "gzip"])
def test_no_httpx_exception_carries_the_bearer_header_out_of_the_client(coding):
    # A bad Content-Encoding used to raise httpx.DecodingError, whose .request.headers hold "Bearer <key>".
    bad = response(200, b"not compressed at all", {"Content-Encoding": coding})
    with serve(bad) as server:
        client = OpenAIClient(server.url, api_key=KEY, timeout=5, max_retries=1, **QUICK)
        with pytest.raises(ServerError, match="failed after 2 attempts; last failure: a body that cannot be read"
                           ) as info:
            bounded(lambda: client.post("chat/completions", {"model": "m"}), 30)
    assert len(server.requests) == 2  # retried like any malformed body
    for error in chain(info.value):
        assert "httpx" not in type(error).__module__ and not hasattr(error, "request")
        assert KEY not in repr(vars(error)) + str(error)


def test_a_dropped_connection_chains_no_httpx_exception():
    with serve(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"cut") as server:
        client = OpenAIClient(server.url, api_key=KEY, timeout=5, max_retries=0)
        with pytest.raises(ServerError, match="connection error") as info:
            bounded(lambda: client.post("chat/completions", {"model": "m"}), 30)
    assert [type(e).__name__ for e in chain(info.value)] == ["ServerError"]


def test_a_reply_that_echoes_the_key_reaches_no_result(caplog):
    # The parser sees the answer with every string scrubbed: a served explanation cannot carry the key out either.
    def answer(request: Request) -> list[Piece]:
        auth = request.headers.get("authorization", "")
        body = {"choices": [{"message": {"content": f"Relevant: {auth}"}}],
                "usage": {"completion_tokens": 3}}
        escaped = json.dumps(body).replace(KEY.replace("/", "\\/"), KEY.replace("/", "\\/").replace("s", "\\u0073"))
        return [response(200, escaped)]

    with HostileServer(answer) as server:
        client = OpenAIClient(server.url, api_key=KEY, timeout=5, max_retries=0)
        body = bounded(lambda: client.post("chat/completions", {"model": "m"}), 30)
    text = body["choices"][0]["message"]["content"]
    assert "Bearer ***" in text
    assert_no_part_of(json.dumps(body), KEY)


def test_the_teach_cache_and_logs_hold_no_part_of_the_key(tmp_path, caplog):
    pytest.importorskip("torch")
    from r2r_agent.training import AnnotationCache, AnnotationConfig, AnnotationRequest, annotate
    from r2r_agent.training.http_teacher import OpenAIChatTeacher

    def answer(request: Request) -> list[Piece]:
        auth = request.headers.get("authorization", "")
        if len(server.requests) % 2:  # an error that echoes the key, then a reply that does
            return [response(500, "y" * 250 + f" {auth} {auth.replace('/', chr(92) + '/')}")]
        reply = {"choices": [{"message": {"content": f"[1] > [2]\n[1] relevant: {auth}"}}]}
        return [response(200, reply)]

    with HostileServer(answer) as server, caplog.at_level(logging.DEBUG):
        teacher = OpenAIChatTeacher("m", base_url=server.url, api_key=KEY, timeout=5, max_retries=0, **QUICK)
        requests = [AnnotationRequest("q1", "how long do fleas live", ["fleas live 90 days", "the sun is hot"])]
        path = tmp_path / "cache.sqlite"
        with AnnotationCache(path) as cache:
            run = bounded(lambda: annotate(teacher, requests, config=AnnotationConfig(window_size=2, stride=1,
                                                                                       max_attempts=2), cache=cache),
                          60)
    assert len(server.requests) == 2 and run is not None
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file()).decode("latin-1")
    assert_no_part_of(stored + everything_logged(caplog), KEY)


# ---- item 2: an attempt ends at its timeout, however slowly the server sends --------------------------------

@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_slow_drip_ends_near_the_timeout(where):
    # One byte every 0.4 s kept a timeout=2, max_retries=0 call for 77.8 s: every read was within the timeout.
    whole = response(200, CHAT)
    head, _, body = whole.partition(b"\r\n\r\n")
    script = [head + b"\r\n\r\n", *drip(body, 0.4)] if where == "body" else list(drip(whole, 0.4))
    with serve(script) as server:
        client = OpenAIClient(server.url, timeout=2, max_retries=0)
        start = time.monotonic()
        with pytest.raises(ServerError, match="failed after 1 attempts; last failure: no answer within 2s"):
            bounded(lambda: client.post("chat/completions", {"model": "m"}), 60)
        elapsed = time.monotonic() - start
    assert elapsed < 3.5, elapsed  # the deadline plus scheduling slack; 77.8 s before


async def test_a_slow_drip_ends_near_the_timeout_on_the_async_path():
    whole = response(200, CHAT)
    with serve(list(drip(whole, 0.4))) as server:
        client = OpenAIClient(server.url, timeout=2, max_retries=0)
        start = time.monotonic()
        with pytest.raises(ServerError, match="no answer within 2s"):
            await asyncio.wait_for(client.apost("chat/completions", {"model": "m"}), 60)
        elapsed = time.monotonic() - start
        await client.aclose()
    assert elapsed < 3.5, elapsed


# ---- item 3: a documented cap on a response's size -------------------------------------------------------------

def endless(request: Request) -> Iterator[Piece]:
    """A chunked 200 that would never end (bounded here at 256 MiB)."""
    yield b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"[" * 65536
    for _ in range(4096):
        yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"


def test_an_endless_body_stops_at_the_cap_with_a_clear_error_not_retried():
    with HostileServer(endless) as server:
        client = OpenAIClient(server.url, timeout=30, max_retries=3, **QUICK)
        with pytest.raises(ServerError) as info:
            bounded(lambda: client.post("chat/completions", {"model": "m"}), 60)
        sent = server.sent
    message = str(info.value)
    assert f"answered with more than {MAX_RESPONSE_BYTES} bytes (max_response_bytes=" in message
    assert "not retried" in message and len(server.requests) == 1
    assert sent < 64 * 2**20  # the client hung up long before 256 MiB


@pytest.mark.parametrize("path", ["sync", "async"])
def test_a_gzip_bomb_is_stopped_at_the_cap_after_decompression(path):
    bomb = gzip_bomb(300 * 2**20)  # ~300 kB on the wire, 300 MiB inflated (949 MB resident before)
    assert len(bomb) < 400_000
    with serve(response(200, bomb, {"Content-Encoding": "gzip"})) as server:
        client = OpenAIClient(server.url, timeout=30, max_retries=0, max_response_bytes=2**20)
        call = (lambda: client.post("chat/completions", {"model": "m"})) if path == "sync" else \
            (lambda: asyncio.run(client.apost("chat/completions", {"model": "m"})))
        tracemalloc.start()
        try:
            with pytest.raises(ServerError, match="more than 1048576 bytes"):
                bounded(call, 60)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 16 * 2**20, peak


def test_a_declared_length_over_the_cap_is_refused_before_reading():
    with serve(response(200, b"{}", {"Content-Length": str(10**12)})) as server:
        client = OpenAIClient(server.url, timeout=5, max_retries=2, max_response_bytes=1000)
        with pytest.raises(ServerError, match="more than 1000 bytes"):
            bounded(lambda: client.post("chat/completions", {"model": "m"}), 30)
    assert len(server.requests) == 1


def test_a_gzip_answer_under_the_cap_is_read():
    with serve(response(200, gzip.compress(json.dumps(CHAT).encode()), {"Content-Encoding": "gzip"})) as server:
        client = OpenAIClient(server.url, timeout=5, max_retries=0)
        assert bounded(lambda: client.post("chat/completions", {"model": "m"}), 30) == CHAT
    assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"  # only codings the client reads


# ---- item 5: malformed bodies are the client's own error, retried ------------------------------------------------

@pytest.mark.parametrize("body, reason", [
    ("[" * 200_000 + "]" * 200_000, "not JSON (RecursionError)"),
    ('{"choices": [{"message": {"content": [{"text": 5}]}}]}', "content has a part whose text is not text"),
    ('{"choices": [{"logprobs": {"tokens": 5, "token_logprobs": [-0.1], "top_logprobs": [{}]}}]}',
     "logprobs.tokens is a int"),
    ('{"choices": [{"logprobs": {"content": [{"token": "Yes", "logprob": 800, "top_logprobs": []}]}}]}',
     "logprob 800.0 is not"),
    ('{"choices": [{"logprobs": {"content": [{"token": "Yes", "logprob": -1e999, "top_logprobs": []}]}}]}',
     "logprob -inf is not a log-probability of the generated token"),
], ids=["nested-200k", "content-part-text-5", "completions-tokens-5", "logprob-800", "sampled-minus-inf"])
def test_malformed_bodies_are_retried_then_a_server_error(body, reason):
    with serve(response(200, body)) as server:
        student = Student.from_openai(server.url, MODEL, timeout=5, max_retries=1, **QUICK)
        call = (lambda: student.explainer.explain(QUERY, PASSAGES[:1])) if "content" in reason else \
            (lambda: student.scorer.score(QUERY, PASSAGES[:1]))
        with pytest.raises(ServerError, match="failed after 2 attempts") as info:
            bounded(call, 60)
    assert reason in str(info.value)
    assert len(server.requests) == 2


# ---- the teacher's HTTP path is the same client --------------------------------------------------------------------

def test_the_teachers_attempt_ends_near_its_timeout_and_its_size_is_capped():
    http_teacher = pytest.importorskip("r2r_agent.training.http_teacher")
    from r2r_agent.training import TeacherError

    messages = [{"role": "user", "content": "rank"}]
    with serve(list(drip(response(200, CHAT), 0.4))) as server:
        teacher = http_teacher.OpenAIChatTeacher("m", base_url=server.url, timeout=2, max_retries=0)
        start = time.monotonic()
        with pytest.raises(TeacherError, match="no answer within 2s"):
            bounded(lambda: teacher.complete(messages), 60)
        assert time.monotonic() - start < 3.5
    with serve(response(200, gzip_bomb(50 * 2**20), {"Content-Encoding": "gzip"})) as server:
        teacher = http_teacher.OpenAIChatTeacher("m", base_url=server.url, timeout=10, max_retries=2,
                                                 max_response_bytes=2**16)
        with pytest.raises(TeacherError, match="more than 65536 bytes"):
            bounded(lambda: teacher.complete(messages), 60)
        assert len(server.requests) == 1


@pytest.mark.parametrize("setting", ["timeout", "backoff", "max_retry_after", "jitter"])
def test_the_teacher_refuses_nan_and_infinite_settings(setting):
    http_teacher = pytest.importorskip("r2r_agent.training.http_teacher")
    for value in (math.nan, math.inf):
        with pytest.raises(ValueError, match=f"OpenAIChatTeacher: OpenAIClient: {setting} must be a finite"):
            http_teacher.OpenAIChatTeacher("m", **{setting: value})
