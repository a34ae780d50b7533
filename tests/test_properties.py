"""Property-based tests (hypothesis) of everything that reads outside input: passage converters, the CLI's passage
reader, the trace reader, the settings type and terminal output. Each either returns a defined result or raises
the library's own error; nothing else escapes, and no input is modified."""

from __future__ import annotations

import copy
import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r2r_agent import RerankConfig
from r2r_agent.cli import read_passages
from r2r_agent.errors import R2RError
from r2r_agent.render import terminal_text
from r2r_agent.traces import TraceRecord, read_traces
from r2r_agent.types import Passage, to_passages

BOUNDED = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any text, lone surrogates and control characters included.
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | TEXT
JSON_LIKE = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)
PASSAGE_LIKE = st.fixed_dictionaries(
    {"text": TEXT | SCALARS},
    optional={"id": SCALARS, "docid": SCALARS, "score": SCALARS | TEXT, "first_stage_score": SCALARS,
              "metadata": JSON_LIKE})


@BOUNDED
@given(st.lists(JSON_LIKE | PASSAGE_LIKE | TEXT, max_size=5))
def test_passage_conversion_returns_passages_or_the_librarys_error_and_copies(items):
    before = copy.deepcopy(items)
    try:
        passages = to_passages(items)
    except R2RError:
        return
    finally:
        assert repr(items) == repr(before)  # never modified (repr: NaN != NaN)
    assert all(isinstance(p, Passage) and isinstance(p.text, str) for p in passages)
    for p, item in zip(passages, items):
        if isinstance(item, dict) and isinstance(item.get("metadata"), dict) and item["metadata"]:
            assert p.metadata is not item["metadata"]


@BOUNDED
@given(st.lists(st.binary(max_size=40) | PASSAGE_LIKE.map(lambda d: json.dumps(d).encode("utf-8", "surrogatepass")),
                max_size=6))
def test_the_cli_reader_returns_passages_or_a_clear_error(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("p") / "p.jsonl"
    path.write_bytes(b"\n".join(lines))
    try:
        passages = read_passages(str(path))
    except R2RError as exc:
        assert re.search(r"line \d+: ", str(exc))
        return
    assert all(isinstance(p, Passage) for p in passages)


def _record_line(query: str, ranks: list[int]) -> bytes:
    record = TraceRecord(query=query).to_dict()
    record["results"] = [{"rank": r, "input_rank": r, "id": None, "score": 0.5} for r in ranks]
    return json.dumps(record).encode("utf-8", "surrogatepass")


@BOUNDED
@given(st.lists(st.binary(max_size=40) | st.builds(_record_line, TEXT, st.lists(st.integers(1, 9), max_size=3))
                | JSON_LIKE.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass")), max_size=6))
def test_the_trace_reader_skips_bad_lines_or_names_them(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("t") / "t.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    records = read_traces(path, skip_bad_lines=True)
    assert all(isinstance(r, TraceRecord) for r in records)
    try:
        strict = read_traces(path)
    except R2RError as exc:
        assert re.search(r"line \d+: ", str(exc))
    else:
        assert strict == records


@BOUNDED
@given(st.dictionaries(st.sampled_from([*RerankConfig.names(), "topn", "explain"]), SCALARS, max_size=4))
def test_settings_are_a_config_or_a_clear_error(values):
    try:
        config = RerankConfig().replace(**values)
    except R2RError:
        return
    assert config == RerankConfig.from_dict(config.to_dict())


@BOUNDED
@given(TEXT)
def test_terminal_text_has_no_control_characters(text):
    assert not re.search("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", terminal_text(text))
