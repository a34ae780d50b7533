"""`r2r teach` under faults: Ctrl-C with several workers, a teacher that fails every window, malformed replies.

A fake chat server on 127.0.0.1 answers, holds or fails requests; every wait is bounded in time.
"""

from __future__ import annotations

import _thread
import signal
import subprocess
import sys
import threading
import time

import pytest
from chat_server import FakeChatServer, closed_port_url
from conftest import keyword_reply
from test_distill_cli import write_candidates

from r2r_agent.cli import main
from r2r_agent.training import (
    AnnotationCache,
    AnnotationConfig,
    AnnotationInterrupted,
    AnnotationRequest,
    ScriptedTeacher,
    annotate,
    cli_teach,
)

pytest.importorskip("httpx")

from r2r_agent.training.http_teacher import OpenAIChatTeacher  # noqa: E402

WINDOWS = ["--window-size", "3", "--stride", "2"]  # 4 candidates: 2 windows per query


@pytest.fixture
def server():
    """Answers the first 4 requests, then holds every request open until the test ends."""
    fake = FakeChatServer(answer_first=4, hold_seconds=30)
    yield fake
    fake.close()


def _requests(queries: int = 8) -> list[AnnotationRequest]:
    return [AnnotationRequest(f"q{q}", f"how long do fleas live {q}",
                              [f"fleas live score {(3 * q + 5 * i) % 10} days" for i in range(4)])
            for q in range(queries)]


# ---- Ctrl-C ----------------------------------------------------------------------------------------------------
def test_ctrl_c_stops_a_threaded_run_promptly_and_the_cache_resumes_it(server, tmp_path):
    teacher = OpenAIChatTeacher("m", base_url=server.url, max_retries=0, timeout=30)
    config = AnnotationConfig(window_size=3, stride=2, workers=4, interrupt_wait=0.5)
    pressed: list[float] = []

    def press_ctrl_c() -> None:
        server.wait_for_held(4, timeout=15)  # every worker waits on a request
        pressed.append(time.monotonic())
        _thread.interrupt_main()

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    with AnnotationCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(AnnotationInterrupted) as stopped:
            annotate(teacher, _requests(), config=config, cache=cache)
        took = time.monotonic() - pressed[0]
        time.sleep(0.3)
        assert server.requests_since(pressed[0]) == 0  # no request started after Ctrl-C
        assert took < 0.5 + 1.0  # the bounded wait for the four requests in flight, then out
        assert stopped.value.abandoned == 4 and stopped.value.queries == 8
        assert stopped.value.run.windows == 4 and len(cache) == 4  # what was done is saved

    again = FakeChatServer()
    try:
        teacher = OpenAIChatTeacher("m", base_url=again.url, max_retries=0)
        with AnnotationCache(tmp_path / "c.sqlite") as cache:
            run = annotate(teacher, _requests(), config=config, cache=cache)
        assert run.cached == 4 and len(again.started) == 16 - 4 and run.failed == 0
    finally:
        again.close()


def _teach_process(server_url: str, tmp_path, *extra: str) -> subprocess.Popen[str]:
    candidates = write_candidates(tmp_path / "cands.jsonl.gz")
    command = [sys.executable, "-m", "r2r_agent.cli", "teach", "--candidates", str(candidates), "--teacher",
               "openai:m", "--teacher-url", server_url, "--teacher-max-retries", "0", "--workers", "4",
               "--cache", str(tmp_path / "c.sqlite"), "--no-progress", *WINDOWS, *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("presses", [1, 2])
def test_r2r_teach_ctrl_c_exits_130_saying_how_to_resume(server, tmp_path, presses):
    # One press waits up to --interrupt-wait (1 s) for the requests in flight; a second press ends that wait at once
    # (--interrupt-wait 30 would otherwise hold it), and neither prints a traceback about closed files.
    wait = "1" if presses == 1 else "30"
    process = _teach_process(server.url, tmp_path, "--interrupt-wait", wait)
    try:
        server.wait_for_held(4, timeout=60)
        pressed = time.monotonic()
        for _ in range(presses):
            process.send_signal(signal.SIGINT)
            time.sleep(0.2)
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
    took = time.monotonic() - pressed
    assert process.returncode == 130, err
    assert took < 6, took
    assert "Traceback" not in err and "Bad file descriptor" not in err, err
    assert "of 8 queries finished (4 windows" in err and "run the same command again" in err.lower()
    assert server.requests_since(pressed) == 0
    assert not (tmp_path / "c.annotations.jsonl.gz").exists()
    with AnnotationCache(tmp_path / "c.sqlite") as cache:
        assert cache.counts() == {"ok": 4, "failed": 0}


# ---- every window failed -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["http-400", "server-down"])
def test_r2r_teach_fails_when_no_window_succeeded(fault, tmp_path, capsys):
    fake = FakeChatServer(status=400) if fault == "http-400" else None
    url = fake.url if fake is not None else closed_port_url()
    candidates = write_candidates(tmp_path / "cands.jsonl.gz")
    try:
        status = main(["teach", "--candidates", str(candidates), "--teacher", "openai:m", "--teacher-url", url,
                       "--teacher-max-retries", "0", "--cache", str(tmp_path / "c.sqlite"), "--no-progress",
                       *WINDOWS])
    finally:
        if fake is not None:
            fake.close()
    err = capsys.readouterr().err
    assert status == 1, err
    assert "16 of 16 windows failed (8 of 8 queries have a failed window)" in err
    assert ("HTTP 400" if fault == "http-400" else "connection error") in err and "TeacherError" in err
    assert "no annotations file was written" in err
    assert not (tmp_path / "c.annotations.jsonl.gz").exists()


def test_r2r_teach_fails_below_the_success_share_and_passes_above(tmp_path, monkeypatch, capsys):
    def teacher(args):  # the first 10 of 16 windows get an unparseable reply
        return ScriptedTeacher(["garbage"] * 10, default=keyword_reply, name="keyword")

    monkeypatch.setattr(cli_teach, "build_teacher", teacher)
    candidates = write_candidates(tmp_path / "cands.jsonl.gz")
    common = ["teach", "--candidates", str(candidates), "--base-url", "http://unused/v1", "--model", "m",
              "--max-attempts", "1", "--no-progress", *WINDOWS]
    assert main([*common, "--cache", str(tmp_path / "a.sqlite")]) == 1
    err = capsys.readouterr().err
    assert "10 of 16 windows failed" in err and "ParseError" in err and "fewer than 50% succeeding" in err
    assert not (tmp_path / "a.annotations.jsonl.gz").exists()
    assert main([*common, "--cache", str(tmp_path / "b.sqlite"), "--min-success-share", "0.3"]) == 0
    assert "10 windows failed" in capsys.readouterr().out and (tmp_path / "b.annotations.jsonl.gz").is_file()


def test_truncated_replies_are_retried_by_the_http_client(tmp_path, capsys):
    fake = FakeChatServer(truncate_first=1)  # one retry: about a second of backoff
    try:
        candidates = write_candidates(tmp_path / "cands.jsonl.gz", queries=2)
        status = main(["teach", "--candidates", str(candidates), "--teacher", "openai:m", "--teacher-url", fake.url,
                       "--teacher-max-retries", "3", "--max-attempts", "1", "--cache", str(tmp_path / "c.sqlite"),
                       "--no-progress", *WINDOWS])
    finally:
        fake.close()
    out = capsys.readouterr().out
    assert status == 0 and "4 windows (0 from the cache, 0 failed)" in out
    assert len(fake.started) == 4 + 1
