from __future__ import annotations

import sqlite3

import pytest
from conftest import keyword_reply

from r2r_agent import prompts
from r2r_agent.training import (
    AnnotationCache,
    AnnotationConfig,
    AnnotationRequest,
    CacheError,
    QueryAnnotation,
    ScriptedTeacher,
    annotate,
)

CONFIG = AnnotationConfig(window_size=3, stride=2)


def requests(n_queries: int = 4, n_candidates: int = 7) -> list[AnnotationRequest]:
    return [AnnotationRequest(f"q{q}", f"query {q}", [f"q{q} doc {d} score {(d * 7 + q) % 10}"
                                                      for d in range(n_candidates)])
            for q in range(n_queries)]


def windows_per_query(n_candidates: int = 7) -> int:
    from r2r_agent.training import sliding_windows

    return len(sliding_windows(n_candidates, CONFIG.window_size, CONFIG.stride))


class Interrupt:
    """Answers like keyword_reply, but raises KeyboardInterrupt (Ctrl-C) at call ``at``."""

    def __init__(self, at: int) -> None:
        self.at, self.calls, self.name = at, 0, "keyword"

    def complete(self, messages):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return keyword_reply(messages)


def test_run_without_cache_matches_per_query(keyword_teacher):
    run = annotate(keyword_teacher, requests(), config=CONFIG)
    assert [a.query_id for a in run.annotations] == ["q0", "q1", "q2", "q3"]
    assert run.windows == 4 * windows_per_query() and run.failed == 0 and run.cached == 0
    assert all(isinstance(a, QueryAnnotation) for a in run.annotations)


def test_interrupted_run_resumes_from_the_cache(tmp_path):
    path = tmp_path / "cache.sqlite"
    reference = annotate(ScriptedTeacher(default=keyword_reply, name="keyword"), requests(), config=CONFIG)
    total = reference.windows

    with AnnotationCache(path) as cache, pytest.raises(KeyboardInterrupt):
        annotate(Interrupt(at=6), requests(), config=CONFIG, cache=cache)
    with AnnotationCache(path) as cache:
        assert len(cache) == 5  # every window finished before Ctrl-C is on disk
        teacher = ScriptedTeacher(default=keyword_reply, name="keyword")
        resumed = annotate(teacher, requests(), config=CONFIG, cache=cache)
    assert len(teacher.calls) == total - 5 and resumed.cached == 5
    assert [a.order for a in resumed.annotations] == [a.order for a in reference.annotations]
    assert [a.to_dict()["windows"][0]["answer"] for a in resumed.annotations] == \
        [a.to_dict()["windows"][0]["answer"] for a in reference.annotations]

    with AnnotationCache(path) as cache:  # a third run asks nothing
        teacher = ScriptedTeacher(name="keyword")
        again = annotate(teacher, requests(), config=CONFIG, cache=cache)
    assert teacher.calls == [] and again.cached == total


def test_cache_is_keyed_by_teacher_and_prompt_version(tmp_path):
    with AnnotationCache(tmp_path / "c.sqlite") as cache:
        annotate(ScriptedTeacher(default=keyword_reply, name="a"), requests(1), config=CONFIG, cache=cache)
        other = ScriptedTeacher(default=keyword_reply, name="b")
        annotate(other, requests(1), config=CONFIG, cache=cache)
        assert len(other.calls) == windows_per_query()
        window = annotate(other, requests(1), config=CONFIG, cache=cache).annotations[0].windows[0]
        assert cache.get("b", prompts.PROMPT_VERSION, "q0", window.window_hash) is not None
        assert cache.get("b", "another-version", "q0", window.window_hash) is None


def test_failures_are_recorded_and_retried_on_the_next_run(tmp_path):
    bad = ScriptedTeacher(default=lambda messages: "I refuse", name="keyword")
    with AnnotationCache(tmp_path / "c.sqlite") as cache:
        run = annotate(bad, requests(2), config=CONFIG, cache=cache)
        assert run.failed == run.windows == 2 * windows_per_query()
        assert cache.counts() == {"ok": 0, "failed": 2 * windows_per_query()}
        assert all(a.order == tuple(range(7)) for a in run.annotations)

        keep = annotate(ScriptedTeacher(name="keyword"), requests(2), cache=cache,
                        config=AnnotationConfig(window_size=3, stride=2, retry_failed=False))
        assert keep.cached == keep.failed == keep.windows

        good = ScriptedTeacher(default=keyword_reply, name="keyword")
        run = annotate(good, requests(2), config=CONFIG, cache=cache)
        assert run.failed == 0 and len(good.calls) == run.windows
        # retried windows replace their failures; windows whose content changed leave stale failures behind
        assert cache.counts()["ok"] == run.windows and cache.counts()["failed"] < 2 * windows_per_query()


def test_threads_share_the_cache(tmp_path):
    with AnnotationCache(tmp_path / "c.sqlite") as cache:
        config = AnnotationConfig(window_size=3, stride=2, workers=3)
        run = annotate(ScriptedTeacher(default=keyword_reply, name="keyword"), requests(6), config=config,
                       cache=cache)
        assert len(cache) == run.windows == 6 * windows_per_query()
    sequential = annotate(ScriptedTeacher(default=keyword_reply, name="keyword"), requests(6), config=CONFIG)
    assert [a.order for a in run.annotations] == [a.order for a in sequential.annotations]


def test_progress_bar_shows_throughput_and_failures(capsys):
    teacher = ScriptedTeacher(["garbage", "garbage"], default=keyword_reply, name="keyword")
    annotate(teacher, requests(1), config=AnnotationConfig(window_size=3, stride=2, max_attempts=1), progress=True)
    err = capsys.readouterr().err
    assert "window/s" in err and "failed=" in err and "cached=0" in err


def test_no_progress_output_unless_asked(capsys, keyword_teacher):
    annotate(keyword_teacher, requests(1), config=CONFIG)
    assert capsys.readouterr().err == ""


def test_corrupt_cache_file_is_named(tmp_path):
    path = tmp_path / "garbage.sqlite"
    path.write_bytes(b"this is not a database at all, just text\n" * 100)
    with pytest.raises(CacheError, match="garbage.sqlite.*not an SQLite database"):
        AnnotationCache(path)


def test_damaged_sqlite_file_is_named(tmp_path):
    path = tmp_path / "damaged.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 40)
    with pytest.raises(CacheError, match="damaged.sqlite.*corrupt"):
        AnnotationCache(path)


def test_foreign_sqlite_database_is_named(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(CacheError, match="other.db.*not an r2r-agent annotation cache"):
        AnnotationCache(path)
    meta = tmp_path / "meta.db"
    with sqlite3.connect(meta) as db:
        db.execute("CREATE TABLE meta (key TEXT, value TEXT)")
        db.execute("INSERT INTO meta VALUES ('format', 'something-else')")
    with pytest.raises(CacheError, match="meta.db.*something-else"):
        AnnotationCache(meta)


def test_newer_schema_version_is_rejected(tmp_path):
    path = tmp_path / "c.sqlite"
    AnnotationCache(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(CacheError, match="schema version '99'"):
        AnnotationCache(path)


def test_directory_as_cache_path(tmp_path):
    with pytest.raises(CacheError, match="directory"):
        AnnotationCache(tmp_path)


def test_annotation_round_trip(keyword_teacher):
    annotation = annotate(keyword_teacher, requests(1), config=CONFIG).annotations[0]
    assert QueryAnnotation.from_dict(annotation.to_dict()) == annotation
