"""r2r_agent.files: bounded reads of regular files only, and atomic writes (issue 19 item 11)."""

from __future__ import annotations

import gzip
import os
import stat

import pytest

from r2r_agent import files


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.json"
    files.atomic_write_text(path, "old\n")
    with pytest.raises(RuntimeError, match="interrupted"), files.atomic_writer(path) as handle:
        handle.write("half of the new")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["out.json"]


def test_atomic_writes_keep_permissions_and_compress_gz(tmp_path):
    path = tmp_path / "rows.jsonl.gz"
    with files.atomic_text_writer(path) as handle:
        handle.write('{"a": 1}\n')
    assert gzip.open(path, "rt", encoding="utf-8").read() == '{"a": 1}\n'
    plain = tmp_path / "sub" / "x.txt"
    files.atomic_write_bytes(plain, b"x")  # the folder is created
    plain.chmod(0o640)
    files.atomic_write_text(plain, "y")
    assert plain.read_text() == "y" and stat.S_IMODE(plain.stat().st_mode) == 0o640


def test_bounded_reads_refuse_what_is_not_a_small_regular_file(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero", tmp_path):
        with pytest.raises(files.FileReadError, match="not a regular file"):
            files.read_bytes_bounded(path)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 11)
    with pytest.raises(files.FileReadError, match="holds 11 bytes, more than the 10"):
        files.read_bytes_bounded(big, 10)
    assert files.read_text_bounded(big, 11) == "x" * 11


def test_the_project_writers_are_atomic(tmp_path, monkeypatch):
    """write_json_lines, write_candidates, the TREC writers and the eval report all go through atomic_writer: a write
    that fails half-way keeps the previous file."""
    from evals.trec import write_trec_run
    from training.jsonl import write_json_lines

    rows = tmp_path / "rows.jsonl"
    write_json_lines(rows, [{"a": 1}])

    def broken():
        yield {"a": 2}
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        write_json_lines(rows, broken())
    assert rows.read_text() == '{"a": 1}\n' and sorted(os.listdir(tmp_path)) == ["rows.jsonl"]
    run = tmp_path / "run.trec"
    write_trec_run(run, {"q": {"d": 1.0}})
    monkeypatch.setattr(files.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(OSError, match="No space"):
        write_trec_run(run, {"q": {"d": 2.0, "e": 1.0}})
    assert "e" not in run.read_text().split()
