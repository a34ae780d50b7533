"""Opt-in: a served student against llama.cpp's OpenAI-compatible server (``llama-cpp-python[server]``) serving the
embedded SmolLM2 GGUF, read against the same model in process (zero-shot: llama.cpp serves the base, not the adapter).

Marked ``slow`` and skipped unless ``llama_cpp.server`` imports. To run it (compiling llama.cpp takes 10-30 min)::

    pip install "r2r-agent[llama-cpp]"        # = llama-cpp-python[server]
    pytest tests/served/test_served_llama_cpp.py -m slow

Run on the project's 2-core machine on 2026-11-26 with llama-cpp-python 0.3.36 built from source (see
docs/scale-out.md); not part of CI (the extra is not installed there).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("llama_cpp.server")

from r2r_agent import Reranker, Student  # noqa: E402

from .served_helpers import QUERY, bounded  # noqa: E402

pytestmark = pytest.mark.slow

ALIAS = "smollm2"
PASSAGES = [
    "Adult fleas live for two to three months on a host; without a host they die within a few days.",
    "The Earth's axial tilt of 23.4 degrees causes the seasons.",
    "A flea's life cycle runs from egg to larva to pupa to adult in two weeks to several months.",
    "Concrete floors cost between four and eight dollars per square foot installed.",
    "Fleas can survive up to 100 days without a blood meal under ideal conditions.",
    "The stock market closed higher on Monday after strong earnings.",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    import httpx

    from r2r_agent.default_models import smollm2_gguf

    port = _free_port()
    # The server's log goes to a file: llama.cpp writes far more than a pipe holds while loading, and a pipe nobody
    # reads would stop it before it serves.
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = log_path.open("w")
    process = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()),
                                "--model_alias", ALIAS, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"],
                               stdout=subprocess.DEVNULL, stderr=log, text=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "llama_cpp.server did not start within 180 s"
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def in_process():
    from r2r_agent.default_models import prepare_smollm2

    return Student.from_pretrained(prepare_smollm2(), max_new_tokens=24)


def _ranks(values):
    order = sorted(range(len(values)), key=lambda i: -values[i])
    return [order.index(i) for i in range(len(values))]


def test_llama_cpp_scores_agree_with_the_in_process_model(llama_server, in_process, caplog):
    served = Student.from_openai(llama_server, ALIAS, top_logprobs=20, timeout=120, max_concurrency=4)
    got = bounded(lambda: served.scorer.score(QUERY, PASSAGES), 600).values
    expected = in_process.scorer.score(QUERY, PASSAGES).values
    assert not [r for r in caplog.records if "top_logprobs" in r.getMessage()]  # yes and no were both seen
    # llama.cpp runs the Q4_1 weights natively; in process they are dequantised to float32: close, not equal.
    n = len(PASSAGES)
    spearman = 1 - 6 * sum((a - b) ** 2 for a, b in zip(_ranks(got), _ranks(expected))) / (n * (n * n - 1))
    assert spearman >= 0.8, (got, expected)
    assert max(abs(a - b) for a, b in zip(got, expected)) < 1.5, (got, expected)


def test_llama_cpp_explains_and_reranks(llama_server):
    served = Student.from_openai(llama_server, ALIAS, top_logprobs=20, max_new_tokens=24, timeout=120)
    ranking = bounded(lambda: Reranker(served, trace=False, explain_top=2, top_n=3).rerank(QUERY, PASSAGES), 600)
    assert len(ranking) == 3 and all(j.explanation for j in ranking.judgments[:2])
    assert ranking.stages[-1].generated_tokens > 0 or any(s.generated_tokens for s in ranking.stages)
