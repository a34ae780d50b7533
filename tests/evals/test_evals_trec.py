"""TREC run/qrels readers and writers, and the shared candidate-list format."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from r2r_agent.errors import InvalidInputError
from r2r_agent.evals import Candidate, CandidateList, Qrel, ScoredDoc, candidate, read_candidates, write_candidates
from r2r_agent.evals.trec import (
    decode_doc_id,
    encode_doc_id,
    format_trec_run,
    read_trec_qrels,
    read_trec_run,
    write_trec_qrels,
    write_trec_run,
)

RUN = """\
q1 Q0 d1 1 3.5 bm25
q1 Q0 pytorch/Memory%20Management_1_0.txt 2 2.0 bm25

q2 Q0 Newton%27s_laws_of_motion5.txt 1 1e-3 bm25
"""


def test_run_decodes_exactly_percent20():
    run = read_trec_run(RUN.splitlines())
    assert run == [
        ScoredDoc("q1", "d1", 3.5),
        ScoredDoc("q1", "pytorch/Memory Management_1_0.txt", 2.0),
        ScoredDoc("q2", "Newton%27s_laws_of_motion5.txt", 0.001),  # other %xx sequences are real ids
    ]


def test_doc_id_codec():
    assert encode_doc_id("a b c") == "a%20b%20c"
    assert decode_doc_id("a%20b%2Fc%27") == "a b%2Fc%27"
    with pytest.raises(InvalidInputError, match="literal '%20'"):
        encode_doc_id("already%20encoded")
    with pytest.raises(InvalidInputError, match="tab or newline"):
        encode_doc_id("a\tb")
    with pytest.raises(InvalidInputError):
        encode_doc_id("")


@pytest.mark.parametrize(
    ("line", "match"),
    [("q1 Q0 Memory Management.txt 1 2.0 tag", "6 whitespace-separated fields"), ("q1 Q0 d1 1 high tag", "number")],
)
def test_run_bad_lines_name_the_line(line, match):
    with pytest.raises(InvalidInputError, match=match) as info:
        read_trec_run(["q1 Q0 d0 1 9 tag", line])
    assert "<lines>:2" in str(info.value)


def test_run_write_read_roundtrip_in_trec_eval_order(tmp_path: Path):
    run = {"q1": {"b": 1.0, "a": 1.0, "has space": 2.0}, "q2": {"x": 0.5}}
    path = write_trec_run(tmp_path / "run.trec", run, tag="sys")
    lines = path.read_text().splitlines()
    # score descending, ties by doc id descending; ranks rewritten 1..n; spaces encoded.
    assert lines[:3] == ["q1 Q0 has%20space 1 2.0 sys", "q1 Q0 b 2 1.0 sys", "q1 Q0 a 3 1.0 sys"]
    back = read_trec_run(path)
    assert {(s.query_id, s.doc_id): s.score for s in back} == {
        (q, d): s for q, docs in run.items() for d, s in docs.items()
    }
    assert format_trec_run([ScoredDoc("q", "d", 1.0)]) == "q Q0 d 1 1.0 r2r\n"
    with pytest.raises(InvalidInputError, match="tag"):
        format_trec_run(run, tag="two words")


def test_qrels_whitespace_and_tabs(tmp_path: Path):
    text = "q1 0 d1 2\nq1\t0\tid with space.txt\t1\n\nq2 0 a%20b 0\n"
    qrels = read_trec_qrels(text.splitlines())
    assert qrels == [
        Qrel("q1", "d1", 2, "0"),
        Qrel("q1", "id with space.txt", 1, "0"),
        Qrel("q2", "a b", 0, "0"),
    ]
    path = write_trec_qrels(tmp_path / "qrels.txt", qrels)
    assert "q1 0 id%20with%20space.txt 1" in path.read_text()
    assert read_trec_qrels(path) == qrels
    write_trec_qrels(tmp_path / "q2.txt", {"q": {"d": 3}})
    assert read_trec_qrels(tmp_path / "q2.txt") == [Qrel("q", "d", 3)]


def test_qrels_bad_lines():
    with pytest.raises(InvalidInputError, match="4 fields"):
        read_trec_qrels(["q1 0 d1"])
    with pytest.raises(InvalidInputError, match="integer"):
        read_trec_qrels(["q1 0 d1 yes"])


def test_missing_file_is_clear(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_trec_run(tmp_path / "nope.trec")


@pytest.mark.parametrize("name", ["c.jsonl", "c.top100.jsonl.gz"])
def test_candidates_roundtrip(tmp_path: Path, name: str):
    rows = [
        CandidateList("q1", "fleas", (candidate("d1", 2.0, "Fleas live long."), candidate("d2", 1, "Ünïcode"))),
        CandidateList("q2", "empty", ()),
    ]
    path = write_candidates(tmp_path / name, rows)
    if name.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            assert f.readline().startswith('{"qid": "q1"')
    back = read_candidates(path)
    assert back == rows
    assert back[0].scored_docs() == [ScoredDoc("q1", "d1", 2.0), ScoredDoc("q1", "d2", 1.0)]
    assert CandidateList.from_dict(rows[0].to_dict()) == rows[0]


def test_candidates_bad_line(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"qid": "q1", "query": "x", "candidates": []}\n{"qid": "q2"}\n')
    with pytest.raises(InvalidInputError, match=r"bad.jsonl:2: expected a JSON object with 'qid'"):
        read_candidates(path)
    with pytest.raises(InvalidInputError, match="docid"):
        candidate("", 1.0)
    with pytest.raises(InvalidInputError, match="first-stage score must be a number"):
        candidate("d1", None)  # type: ignore[arg-type]


def test_candidates_are_passages_and_the_old_name_warns(tmp_path: Path):
    with pytest.warns(DeprecationWarning, match="candidate\\(docid, first_stage_score, text\\)"):
        old = Candidate("d1", 2.0, None)
    assert old == candidate("d1", 2.0, "") and old.first_stage_score == 2.0
    rows = [CandidateList("q1", "fleas", (candidate("d1", 2.0), candidate("d2", 1.0, "Fleas.")), frozenset({"d1"}))]
    back = read_candidates(write_candidates(tmp_path / "c.jsonl", rows))
    assert back == rows and back[0].to_dict()["candidates"][0] == {"docid": "d1", "score": 2.0, "text": None}
    renamed = {"qid": "q", "query": "x", "candidates": [{"docid": "d", "first_stage_score": 3, "text": "t"}]}
    assert CandidateList.from_dict(renamed).candidates[0].first_stage_score == 3.0
