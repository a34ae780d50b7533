"""``GET /ui``: the trace page (:func:`r2r_agent.traces.report.render_html`, the page ``r2r traces html`` writes) of
the server's most recent requests, read from its ``--trace-dir``.

Bounded work per view: only the newest :data:`MAX_FILES` trace files of the folder are read, each only in its last
:data:`TAIL_BYTES` bytes (a cut first line is dropped), and at most ``n`` records (default :data:`DEFAULT_RECORDS`,
at most :data:`MAX_RECORDS`) go on the page, newest last. Damaged lines are skipped and counted on the page, as
``r2r traces html`` does. The page keeps its Content-Security-Policy (one inline script by hash, no request of any
kind); the server also sends it as a header, with ``frame-ancestors 'none'`` (which a meta element cannot carry).
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

from ..traces import TraceFile, TraceRecord
from ..traces.report import render_html

DEFAULT_RECORDS = 50
MAX_RECORDS = 500
MAX_FILES = 16
TAIL_BYTES = 16 * 1024 * 1024
_CSP = re.compile(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">')


def _tail_lines(path: Path, limit: int) -> tuple[list[bytes], bool]:
    """The complete lines among the last ``limit`` bytes of ``path``, and whether the file was longer."""
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        start = max(0, size - limit)
        handle.seek(start)
        data = handle.read(limit)
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # begins mid-line
    return [line for line in lines if line.strip()], start > 0


def _record(raw: bytes) -> TraceRecord:
    """One line as a record; :class:`ValueError` saying what is wrong with it."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not a JSON line ({type(exc).__name__})") from None
    try:
        return TraceRecord.from_dict(data)
    except Exception as exc:  # noqa: BLE001 - any wrong shape is a damaged line, as load_traces counts it
        raise ValueError(f"not a trace record: {str(exc)[:200]}") from None


def recent_records(folder: str | os.PathLike[str], limit: int = DEFAULT_RECORDS) -> TraceFile:
    """The newest ``limit`` records of the ``*.jsonl`` files in ``folder`` (by timestamp, oldest first), with one
    problem per skipped line."""
    root = Path(folder).expanduser()
    files = sorted((p for p in root.glob("*.jsonl") if p.is_file()), key=lambda p: p.stat().st_mtime)[-MAX_FILES:]
    records: list[TraceRecord] = []
    skipped: list[str] = []
    for path in files:
        try:
            lines, cut = _tail_lines(path, TAIL_BYTES)
        except OSError as exc:
            skipped.append(f"{path.name}: not readable ({type(exc).__name__})")
            continue
        for number, raw in enumerate(lines, start=1):
            try:
                records.append(_record(raw))
            except ValueError as exc:
                where = f"line {number} of its last {TAIL_BYTES // (1024 * 1024)} MiB" if cut else f"line {number}"
                skipped.append(f"{path.name}, {where}: {exc}")
    records.sort(key=lambda record: record.timestamp)
    return TraceFile(tuple(records[-limit:]), tuple(skipped))


def ui_page(folder: str | os.PathLike[str], limit: int = DEFAULT_RECORDS) -> tuple[str, str]:
    """The trace page of the newest ``limit`` records in ``folder``, and its Content-Security-Policy."""
    recent = recent_records(folder, limit)
    page = render_html([("recent requests", recent)],
                       title=f"r2r serve: the last {len(recent.records)} requests")
    match = _CSP.search(page)
    if match is None:  # the page template changed: refuse to serve it without its policy
        raise RuntimeError("the trace page has no Content-Security-Policy meta element")
    return page, html.unescape(match.group(1)) + "; frame-ancestors 'none'"


__all__ = ["DEFAULT_RECORDS", "MAX_RECORDS", "recent_records", "ui_page"]
