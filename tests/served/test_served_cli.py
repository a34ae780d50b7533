"""``r2r rerank --server URL --server-model NAME``: the served student from the command line, against the test
server; the flag errors say what to pass."""

from __future__ import annotations

import copy
import json

import pytest
from openai_server import OpenAITestServer

from r2r_agent import cli

from .served_helpers import MODEL, PASSAGES, QUERY, bounded


@pytest.fixture
def passages_file(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps({"id": f"d{i}", "text": p}) for i, p in enumerate(PASSAGES)) + "\n")
    return str(path)


def test_rerank_on_a_server_with_the_key_from_the_environment(answer_lm, passages_file, capsys, monkeypatch):
    monkeypatch.setenv("R2R_TEST_KEY", "sk-cli-SECRET")
    model, tokenizer = answer_lm
    with OpenAITestServer(copy.deepcopy(model), copy.deepcopy(tokenizer), model_name=MODEL,
                          api_key="sk-cli-SECRET") as server:
        code = bounded(lambda: cli.main(["rerank", "-q", QUERY, "-p", passages_file, "--json", "--server",
                                         server.url, "--server-model", MODEL, "--server-api-key-env",
                                         "R2R_TEST_KEY", "--explain-top", "1", "-n", "3"]), 120)
        assert code == 0
        assert {h["Authorization"] for _, h, _ in server.requests} == {"Bearer sk-cli-SECRET"}
    out = capsys.readouterr().out
    ranking = json.loads(out)
    assert ranking["model"] == f"{MODEL} @ {server.url}" and len(ranking["judgments"]) == 3
    assert "sk-cli-SECRET" not in out


@pytest.mark.parametrize("flags, message", [
    (["--server", "http://127.0.0.1:9/v1"], "--server URL and --server-model NAME go together"),
    (["--server-model", MODEL], "--server URL and --server-model NAME go together"),
    (["--server", "http://127.0.0.1:9/v1", "--server-model", MODEL, "--model", "x"], "drop --model/--adapter"),
    (["--server", "http://127.0.0.1:9/v1", "--server-model", MODEL, "--server-api-key-env", "R2R_UNSET_VAR"],
     "R2R_UNSET_VAR: that environment variable is not set"),
    (["--server", "127.0.0.1:9", "--server-model", MODEL], "base_url must be an http"),
])
def test_server_flag_errors_say_what_to_pass(passages_file, capsys, monkeypatch, flags, message):
    monkeypatch.delenv("R2R_UNSET_VAR", raising=False)
    assert cli.main(["rerank", "-q", QUERY, "-p", passages_file, *flags]) == 2
    assert message in capsys.readouterr().err
