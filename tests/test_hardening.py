"""Bad input and faults found by a hostile pass over the core: each has a defined result (issue: hardening)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from r2r_agent import Passage, Reranker, Student, cli
from r2r_agent.reranker import mix_scores


def test_huge_first_stage_scores_mix_without_overflow(tiny_student):
    passages = [Passage("fleas live two months", first_stage_score=1e200), Passage("the sun", first_stage_score=-1e200)]
    ranking = Reranker(tiny_student, first_stage_weight=0.5, explain_top=0, compare_top=0).rerank("fleas", passages)
    assert len(ranking) == 2 and all(j.stage == "score+first_stage" for j in ranking)
    assert mix_scores([1e300, -1e300, 0.0], [0.0, 0.0, 1.0], 0.0) == pytest.approx([1.2247, -1.2247, 0.0], abs=1e-4)


def test_cli_with_huge_scores_exits_0_and_prints_valid_json(tmp_path, capsys, monkeypatch, tiny_student):
    monkeypatch.setattr(cli, "_build_reranker", lambda args: Reranker(tiny_student, config=cli.rerank_config(args)))
    path = tmp_path / "p.jsonl"
    path.write_text('{"text": "fleas", "score": 1e300}\n{"text": "sun", "score": -1e300}\n'
                    '{"text": "x", "score": NaN}\n')
    assert cli.main(["rerank", "-q", "fleas", "-p", str(path), "--json", "--first-stage-weight", "0.5",
                     "--explain-top", "0", "--compare-top", "0"]) == 0
    data = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert len(data["judgments"]) == 3
    assert [j["first_stage_score"] for j in data["judgments"] if j["text"] == "x"] == [None]  # NaN: no score


def test_lone_surrogates_reach_no_tokenizer_and_the_text_comes_back_as_given(tiny_student):
    passages = ["fleas \ud800 live two months", "bad \udc80 text", "the sun"]
    ranking = Reranker(tiny_student, explain_top=2, compare_top=2, rescore_top=2).rerank("fleas \udc80", passages)
    assert sorted(j.text for j in ranking) == sorted(passages)  # exactly as given
    assert all(isinstance(j.explanation, str) for j in ranking[:2])


def test_a_100_kb_query_is_cut_to_the_query_budget_and_flagged(tiny_student):
    query = "how long do fleas live " * 4500  # ~100 kB
    ranking = Reranker(tiny_student, explain_top=1, compare_top=2, rescore_top=2).rerank(query, ["fleas", "sun"])
    assert ranking.query_truncated and ranking.query == query
    assert not Reranker(tiny_student, explain_top=0, compare_top=0).rerank("fleas", ["a"]).query_truncated


def test_two_rerankers_sharing_one_student_never_run_it_at_once(tiny_student):
    first, second = Reranker(tiny_student, explain_top=1), Reranker(tiny_student, explain_top=1)
    passages = [f"fleas live {n} days in the summer season" for n in range(12)]
    errors: list[BaseException] = []
    active, most = [0], [0]
    scorer = tiny_student.scorer
    original = scorer.score

    def watched(query, texts):  # counts concurrent entries into the student's models
        active[0] += 1
        most[0] = max(most[0], active[0])
        try:
            return original(query, texts)
        finally:
            active[0] -= 1

    scorer.score = watched

    def work(reranker: Reranker) -> None:
        try:
            for _ in range(2):
                reranker.rerank("how long do fleas live", passages)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(first if i % 2 else second,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and most[0] == 1
    assert Student(scorer=scorer).lock is not Student(scorer=scorer).lock  # each student has its own


@pytest.mark.parametrize("content, message", [
    (b'{"text": "a"}\n\xff\xfe\n', "line 2: not UTF-8"),
    (b'{"text": "a", "score": "abc"}\n', "line 1: .*first_stage_score must be a number"),
    (b'{"text": "a", "metadata": [1, 2]}\n', "line 1: .*metadata must be a mapping"),
    (b"[" * 100_000 + b"]" * 100_000 + b"\n", "line 1: nested too deeply"),
    (b'{"id": "x"}\n', "line 1: .*must hold a string"),
])
def test_bad_passage_files_are_clear_errors_with_the_line(tmp_path, capsys, content, message):
    path = tmp_path / "p.jsonl"
    path.write_bytes(content)
    assert cli.main(["rerank", "-q", "q", "-p", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert __import__("re").search(message, err), err


def test_passages_none_is_a_clear_error(tiny_student):
    with pytest.raises(TypeError, match="passages must be a list"):
        Reranker(tiny_student).rerank("q", None)  # type: ignore[arg-type]


# -- traces and terminals -------------------------------------------------------------------------------------------


def _traced(tmp_path, tiny_student, query="fleas", passages=("fleas live two months", "the sun")):
    from r2r_agent.traces import JsonlTraceSink

    path = tmp_path / "t.jsonl"
    Reranker(tiny_student, trace=JsonlTraceSink(path), explain_top=1, compare_top=0).rerank(query, list(passages))
    return path


def test_traces_show_keeps_the_good_records_of_a_damaged_file(tmp_path, capsys, caplog, tiny_student):
    path = _traced(tmp_path, tiny_student)
    good = path.read_bytes()
    path.write_bytes(good + good + b"\xff\xfe not utf-8\n" + b'{"query": "q", "results": 5}\n'
                     + b'{"query": "q", "results": [{"rank": "one"}]}\n' + b"[" * 50_000 + b"\n" + good[:40])
    assert cli.main(["traces", "show", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("== trace") == 2
    for line, reason in [(3, "not UTF-8"), (4, "'results' must be a list"), (5, "rank must be int"),
                         (6, "nested too deeply"), (7, "cut short")]:
        assert __import__("re").search(f"line {line}: [^\n]*{reason}[^\n]*line skipped", caplog.text), reason
    assert "Traceback" not in captured.err
    with pytest.raises(Exception, match="line 3: not UTF-8"):
        __import__("r2r_agent.traces", fromlist=["read_traces"]).read_traces(path)  # strict by default


def test_escape_sequences_in_retrieved_text_never_reach_the_terminal(tmp_path, capsys, monkeypatch, tiny_student):
    evil = "fleas \x1b]0;pwned\x07 live \x1b[2J two months \u202e"
    path = _traced(tmp_path, tiny_student, query="fleas \x1b[31m", passages=(evil, "the sun"))
    assert cli.main(["traces", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out and "\\x1b]0;pwned" in out
    assert cli.main(["traces", "show", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["query"] == "fleas \x1b[31m"  # JSON stays exact
    monkeypatch.setattr(cli, "_build_reranker", lambda args: Reranker(tiny_student, config=cli.rerank_config(args)))
    passages = tmp_path / "p.jsonl"
    passages.write_text(json.dumps({"id": "d\x1b[1m", "text": evil}) + "\n")
    assert cli.main(["rerank", "-q", "fleas", "-p", str(passages), "--explain-top", "1"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and "d\\x1b[1m" in out


def test_default_rerankers_share_one_default_student(monkeypatch, tiny_student):
    import r2r_agent.student as student_module

    built = []

    def fake_default(**kwargs):
        built.append(kwargs)
        return tiny_student

    monkeypatch.setattr(student_module, "_shared_default", None)
    monkeypatch.setattr(Student, "default", classmethod(lambda cls, **kwargs: fake_default(**kwargs)))
    first, second = Reranker(), Reranker(explain_top=1)
    assert first.student is second.student is tiny_student and len(built) == 1
    assert Reranker(tiny_student).student is tiny_student and len(built) == 1


def test_a_word_longer_than_wordpiece_reads_is_one_unknown_token_and_counts_as_seen(tiny_encoder):
    # BERT's WordPiece turns any word over 100 characters into a single [UNK]: 5000 x's are one token, far fewer than
    # the 16-characters-per-token guess assumes; the whole text is what the model saw.
    from r2r_agent.modeling import visible_chars

    _, tokenizer = tiny_encoder
    assert visible_chars(tokenizer, "x" * 5000, 254) == 5000
    assert visible_chars(tokenizer, "x" * 5000 + " a" * 600, 254) == 5000 + 2 * 253
    assert visible_chars(tokenizer, "a b", 0) == 0


# Issue 19 item 11: calibrator files are checked at load, read bounded, written atomically.
_GOOD_CALIBRATOR = {"scorer": "s", "features": ["score"], "weights": [10.0], "bias": -5.0, "relevant_at": 0.5,
                    "partial_at": 0.2}


@pytest.mark.parametrize(("change", "expected"), [
    ({"weights": [float("nan")]}, r"weights\[0\] must be a finite number, got nan"),
    ({"bias": float("nan")}, "bias must be a finite number, got nan"),
    ({"weights": [float("inf")]}, r"weights\[0\] must be a finite number, got inf"),
    ({"bias": "0.5"}, "bias must be a finite number, got '0.5'"),
    ({"relevant_at": True}, "relevant_at must be a finite number"),
    ({"features": ["score"] * 10_000, "weights": [1.0] * 10_000}, "at most once, got 10000 names"),
    ({"features": ["score"] * 100_000, "weights": [1.0] * 100_000}, "more than the 1048576 this reads"),
    ({"features": "score"}, "features must be a list"),
    ({"metrics": [1]}, "metrics must be a JSON object"),
])
def test_a_calibrator_file_with_a_bad_field_is_refused_at_load_naming_it(tmp_path, change, expected):
    from r2r_agent.calibration import Calibrator
    from r2r_agent.errors import ModelPreparationError

    path = tmp_path / "c.json"
    path.write_text(json.dumps({**_GOOD_CALIBRATOR, **change}))  # json.dumps writes NaN/Infinity, as the bug did
    with pytest.raises(ModelPreparationError, match=expected):
        Calibrator.load(path)


@pytest.mark.parametrize(("text", "expected"), [
    ("[1, 2]", "must be a JSON object, got list"), ("null", "must be a JSON object, got NoneType"),
    ("[" * 200_000 + "]" * 200_000, "nested too deeply"), (b"\xff\xfe", "utf-8"),
])
def test_a_calibrator_file_that_is_no_object_is_a_clear_error(tmp_path, text, expected):
    from r2r_agent.calibration import Calibrator
    from r2r_agent.errors import ModelPreparationError

    path = tmp_path / "c.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ModelPreparationError, match=expected):
        Calibrator.load(path)


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "directory", "too large"])
def test_a_calibrator_is_read_only_from_a_bounded_regular_file(tmp_path, kind):
    """/dev/zero was read until memory ran out and a FIFO hung."""
    import os

    from r2r_agent.calibration import MAX_CALIBRATOR_BYTES, Calibrator
    from r2r_agent.errors import ModelPreparationError

    path = tmp_path / "c.json"
    if kind == "/dev/zero":
        path = Path("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path.write_text(" " * (MAX_CALIBRATOR_BYTES + 1))
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            Calibrator.load(path)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), f"loading {kind} hung"
    assert isinstance(outcome[0], ModelPreparationError)
    assert ("not a regular file" if kind != "too large" else "more than the") in str(outcome[0])


def test_calibrator_save_is_atomic_and_writes_valid_json(tmp_path, monkeypatch):
    import os

    from r2r_agent import files
    from r2r_agent.calibration import Calibrator
    from r2r_agent.errors import InvalidInputError

    path = tmp_path / "c.json"
    first = Calibrator(**_GOOD_CALIBRATOR, metrics={"auc": float("nan"), "nested": [float("inf"), 1.0]})
    first.save(path)
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))["metrics"] == \
        {"auc": None, "nested": [None, 1.0]}

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        Calibrator(**{**_GOOD_CALIBRATOR, "bias": 1.0}).save(path)
    monkeypatch.undo()
    assert Calibrator.load(path).bias == -5.0  # the old file, whole
    assert os.listdir(tmp_path) == ["c.json"]  # no temporary file left behind
    with pytest.raises(InvalidInputError, match="bias must be a finite number"):
        Calibrator(**{**_GOOD_CALIBRATOR, "bias": float("nan")})
