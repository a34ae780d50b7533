from __future__ import annotations

import io
import json

import pytest

from r2r_agent import Reranker, cli
from r2r_agent.errors import R2RError


@pytest.fixture
def tiny_cli(monkeypatch, tiny_student):
    monkeypatch.setattr(cli, "_build_reranker", lambda args: Reranker(tiny_student, config=cli.rerank_config(args)))


def test_help_mentions_the_commands(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "rerank" in out and "demo" in out and "passages file" in out


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_read_passages_file_and_stdin(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('"plain text"\n\n{"id": "d2", "text": "object", "score": 3}\n')
    passages = cli.read_passages(str(path))
    assert [(p.id, p.text, p.first_stage_score) for p in passages] == [(None, "plain text", None),
                                                                       ("d2", "object", 3.0)]
    assert [p.text for p in cli.read_passages("-", io.StringIO('"a"\n"b"\n'))] == ["a", "b"]


def test_read_passages_bad_line_names_the_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('"ok"\nnot json\n')
    with pytest.raises(R2RError, match="line 2: not JSON"):
        cli.read_passages(str(path))
    with pytest.raises(R2RError, match="not found"):
        cli.read_passages(str(tmp_path / "missing.jsonl"))


def test_rerank_prints_table_and_json(tmp_path, capsys, tiny_cli):
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps({"id": f"d{i}", "text": t}) for i, t in
                              enumerate(["fleas live two months", "the sun", "concrete floor cost"])))
    assert cli.main(["rerank", "-q", "how long do fleas live", "-p", str(path), "--explain-top", "2"]) == 0
    table = capsys.readouterr().out
    assert "Query: how long do fleas live" in table and "why:" in table
    assert cli.main(["rerank", "-q", "fleas", "-p", str(path), "--json", "-n", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["judgments"]) == 2 and data["query"] == "fleas"


def test_rerank_reports_bad_input_without_traceback(tmp_path, capsys, tiny_cli):
    path = tmp_path / "p.jsonl"
    path.write_text('{"text": 5}\n')
    assert cli.main(["rerank", "-q", "q", "-p", str(path)]) == 2
    assert "line 1: passage 0" in capsys.readouterr().err
    path.write_text('"a"\n')
    assert cli.main(["rerank", "-q", "  ", "-p", str(path)]) == 2
    assert "query is empty" in capsys.readouterr().err


def test_demo_on_bundled_example(monkeypatch, capsys, tiny_cli, tmp_path):
    monkeypatch.setattr("r2r_agent.demo.find_shared_data", lambda: None)
    assert cli.main(["demo", "--queries", "1", "--explain-top", "1", "--compare-top", "0"]) == 0
    out = capsys.readouterr().out
    assert "bundled example" in out and "nDCG@10" in out and "how long do fleas live" in out


def test_demo_judges_only_the_top_10_it_scores_ndcg_at_10_on(monkeypatch, capsys, tiny_cli):
    from r2r_agent import Reranker

    asked = []
    rerank = Reranker.rerank

    def spy(self, query, passages, **settings):
        ranking = rerank(self, query, passages, **settings)
        asked.append((settings.get("top_n"), len(ranking)))
        return ranking

    monkeypatch.setattr(Reranker, "rerank", spy)
    monkeypatch.setattr("r2r_agent.demo.find_shared_data", lambda: None)
    assert cli.main(["demo", "--queries", "1", "--explain-top", "1", "--compare-top", "0"]) == 0
    assert asked and all(top_n == 10 and returned <= 10 for top_n, returned in asked)
    assert cli.main(["demo", "--queries", "1", "--top-n", "12", "--explain-top", "1", "--compare-top", "0"]) == 0
    assert asked[-1][0] == 12  # more shown than 10: all of them are ranked
    capsys.readouterr()


def test_demo_on_shared_dl19(capsys, tiny_cli, dl19_candidates):
    data = dl19_candidates.parents[1]
    assert cli.main(["demo", "--queries", "1", "--explain-top", "1", "--compare-top", "0",
                     "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "TREC DL19" in out and "264014" in out


def test_model_default_means_the_embedded_smollm2(monkeypatch, tmp_path):
    import argparse

    from r2r_agent import default_models
    from r2r_agent.student import Student

    seen = {}
    monkeypatch.setattr(default_models, "prepare_smollm2", lambda **kwargs: tmp_path)

    def fake_from_pretrained(model, **kwargs):
        seen["model"], seen["adapter"] = model, kwargs["adapter"]
        raise RuntimeError("stop here")

    monkeypatch.setattr(Student, "from_pretrained", fake_from_pretrained)
    args = argparse.Namespace(model="default", adapter="ad", quantize=None, dtype=None, device=None, rescore_top=0,
                              explain_top=5, compare_top=3, rescore_weight=1.0,
                              first_stage_weight=0.0)
    with pytest.raises(RuntimeError, match="stop here"):
        cli._build_reranker(args)
    assert seen == {"model": tmp_path, "adapter": "ad"}


@pytest.mark.parametrize(("flag", "expected"), [(None, "shipped"), ("none", None), ("NONE", None), ("my/ad", "my/ad")])
def test_adapter_flag_picks_the_default_students_adapter(monkeypatch, flag, expected):
    import argparse

    from r2r_agent.student import Student

    seen = {}

    def fake_default(**kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(Student, "default", fake_default)
    args = argparse.Namespace(model=None, adapter=flag, quantize=None, dtype=None, device=None, rescore_top=0,
                              explain_top=5, compare_top=3, rescore_weight=1.0,
                              first_stage_weight=0.0)
    with pytest.raises(RuntimeError, match="stop here"):
        cli._build_reranker(args)
    assert seen["adapter"] == expected


def test_first_stage_weight_flag_reaches_the_reranker(monkeypatch, tmp_path, capsys, tiny_student):
    from r2r_agent.student import Student

    monkeypatch.setattr(Student, "default", lambda **kwargs: tiny_student)
    args = cli.build_parser().parse_args(["rerank", "-q", "q", "-p", "x", "--first-stage-weight", "0.5"])
    assert cli._build_reranker(args).config.first_stage_weight == 0.5
    assert cli._build_reranker(cli.build_parser().parse_args(["demo"])).config.first_stage_weight == 0.0
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps({"id": f"d{i}", "text": t, "score": s}) for i, (t, s) in
                              enumerate([("the sun", 1.0), ("fleas live two months", 3.0), ("concrete", 2.0)])))
    assert cli.main(["rerank", "-q", "fleas", "-p", str(path), "--json", "--explain-top", "0", "--compare-top", "0",
                     "--first-stage-weight", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [j["id"] for j in data["judgments"]] == ["d1", "d2", "d0"]
    assert {j["stage"] for j in data["judgments"]} == {"score+first_stage"}
    assert cli.main(["rerank", "-q", "fleas", "-p", str(path), "--first-stage-weight", "2"]) == 2
    assert "first_stage_weight must be a number in [0, 1], got 2.0" in capsys.readouterr().err


# Issue 19 item 14: CLI rough edges give one line and a defined exit status.
def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize(("kind", "expected"), [
    ("missing", "no such file"), ("directory", "is a folder"), ("bad utf-8", "not UTF-8"),
    ("deep json", "nested too deeply"),
])
def test_calibrate_labelled_bad_files_are_one_line_errors(tmp_path, capsys, kind, expected):
    path = tmp_path / "labelled.jsonl"
    if kind == "directory":
        path.mkdir()
    elif kind == "bad utf-8":
        path.write_bytes(b'{"query": "q", "text": "t", "label": 1}\n{"query": "\xff\xfe"}\n')
    elif kind == "deep json":
        path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    assert cli.main(["calibrate", "--labelled", str(path), "-o", str(tmp_path / "out.json")]) == 2
    assert expected in _one_line_error(capsys)
    assert not (tmp_path / "out.json").exists()


def test_rerank_on_an_unreadable_or_folder_passages_file_is_a_clear_error(tmp_path, capsys):
    from pathlib import Path

    unreadable = Path("/proc/self/mem")  # a regular file whose read fails (EIO), even for root
    if unreadable.is_file():
        assert cli.main(["rerank", "-q", "fleas", "-p", str(unreadable)]) == 2
        assert "cannot be read" in _one_line_error(capsys)
    assert cli.main(["rerank", "-q", "fleas", "-p", str(tmp_path)]) == 2
    assert "is a folder" in _one_line_error(capsys)


def test_ctrl_c_exits_130_with_one_line(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_rerank", interrupted)
    assert cli.main(["rerank", "-q", "fleas", "-p", "-"]) == cli.EXIT_INTERRUPTED == 130
    assert _one_line_error(capsys).strip() == "r2r rerank: interrupted"


def test_ctrl_c_in_a_real_r2r_process_exits_130_without_a_traceback():
    """SIGINT while `r2r rerank -p -` waits for its passages (it printed a 115-line traceback)."""
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen([sys.executable, "-c", "import sys; from r2r_agent.cli import main; "
                                "print('ready', flush=True); sys.exit(main(sys.argv[1:]))",
                                "rerank", "-q", "fleas", "-p", "-"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # into main(), blocked reading standard input
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert err.strip() == "r2r rerank: interrupted"


def test_rerank_many_checks_every_list_before_the_first_query():
    """A bad 6th list failed after 13 requests and 8 s: now before any scoring."""
    from r2r_agent import Student
    from r2r_agent.errors import InvalidInputError, InvalidPassageError
    from r2r_agent.scorers import Scores

    calls = []

    class Counting:
        name = "counting"

        def score(self, query, passages):
            calls.append(query)
            return Scores([1.0] * len(passages))

    reranker = Reranker(Student(scorer=Counting()), explain_top=0, compare_top=0, judge=False)
    lists = [["fleas live"]] * 5 + [["ok", 5]]
    with pytest.raises(InvalidPassageError, match=r"passage list 6 \(query 'q6'\)"):
        reranker.rerank_many([f"q{i}" for i in range(1, 7)], lists)
    with pytest.raises(InvalidInputError, match="query 2 must be a non-empty str"):
        reranker.rerank_many(["q1", "  "], [["a"], ["b"]])
    assert calls == []
    assert len(reranker.rerank_many(["q1", "q2"], [["a"], iter(["b"])])) == 2  # an iterator is not used up
