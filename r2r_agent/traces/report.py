"""The trace page: one self-contained HTML file for reading trace files in a browser (``r2r traces html`` / ``view``).

The page (CSS and JS inline, in ``page/``) shows an index of the traced calls and, per call, the ranked passages with
their moves, verdicts, relevance against the calibrator's thresholds, explanations and the evidence highlighted in the
passage text; the stage costs, the settings, a slope chart of input vs output rank; and, given a second trace of the
same queries, what changed. The data is embedded as JSON in a ``<script type="application/json">`` (escaped so no
text can close it) and rendered by the page's script as text nodes only; a Content-Security-Policy allows the one
inline script (by hash) and no request of any kind, so the file works from ``file://`` and fetches nothing.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .diff import QueryDiff, diff_records, occurrences
from .records import TraceRecord
from .sinks import TraceFile

#: Not-returned candidates keep their text preview on the page only for this many (the first by input rank); the
#: rest keep their id, score and verdict. Keeps the page small for 100-candidate calls.
PAGE_PREVIEWS = 30
#: ... and at most this many characters of each (the table's "start of the text").
OUT_PREVIEW_CHARS = 120

# In a <script> element only "</script" (and "<!--") can end the data early; escaping every "<", ">" and "&" rules
# them out. U+2028/2029 are escaped for old parsers; lone surrogates (kept by the trace files) cannot be UTF-8.
_SCRIPT_UNSAFE = re.compile("[<>&\u2028\u2029\ud800-\udfff]")


def _json_for_script(data: Any) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _SCRIPT_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _finite(value: Any) -> Any:
    """NaN and infinities are not JSON: the page shows them as missing."""
    return value if not isinstance(value, float) or math.isfinite(value) else None


def _short(value: float | None) -> float | None:
    """A finite number to 6 significant digits, else ``None``."""
    value = _finite(value)
    return None if value is None else float(f"{value:.6g}")


def _jsonable(value: Any) -> Any:
    """``value`` (read from JSON, so dicts, lists and scalars) with non-finite numbers as ``None``."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    return _finite(value) if isinstance(value, float) else str(value)


def _call(record: TraceRecord, file: int) -> dict[str, Any]:
    """One record as the page reads it (short keys: a page of 1,000 calls stays small)."""
    previews = {c.input_rank: c.preview for c in record.candidates}
    returned = {r.input_rank for r in record.results}
    out: list[dict[str, Any]] = []
    for c in record.candidates:
        if c.input_rank in returned:
            continue
        # Only what is known, numbers to 6 digits (the page shows 4): most of a call's bytes are these rows.
        item: dict[str, Any] = {k: v for k, v in (("in", c.input_rank), ("id", c.id), ("score", _short(c.score)),
                                                  ("stage", c.stage), ("v", c.verdict), ("rel", _short(c.relevance)))
                                if v is not None}
        if len(out) < PAGE_PREVIEWS:
            # The start is enough to recognise a passage in the table; the whole 200 characters of 90 candidates
            # were 70% of a 1,000-call page (25.8 MB, 17.1 MB with this cut and the next).
            item["preview"] = c.preview[:OUT_PREVIEW_CHARS]
        out.append(item)
    return {
        "q": record.query, "t": record.timestamp, "run": record.run, "model": record.model, "adapter": record.adapter,
        "pv": record.prompt_version, "top_n": record.top_n, "sec": _finite(record.seconds),
        "load": _finite(record.load_seconds), "ans": record.answerable, "qcut": record.query_truncated,
        "cfg": _jsonable(dict(record.config)),
        "thr": {k: _finite(v) for k, v in record.thresholds.items()}, "cmp": record.comparison,
        "n": record.num_candidates, "file": file,
        "stages": [{"stage": s.stage, "component": s.component, "items": s.items, "seconds": _finite(s.seconds)}
                   for s in record.stages],
        "res": [{"rank": r.rank, "in": r.input_rank, "id": r.id, "score": _finite(r.score), "stage": r.stage,
                 "expl": r.explanation, "trunc": r.truncated, "rel": _finite(r.relevance), "v": r.verdict,
                 "ev": r.evidence, "span": list(r.evidence_span) if r.evidence_span else None,
                 "unsup": list(r.unsupported), "text": r.text,
                 # the page shows the preview only when the text is absent (old traces, R2R_TRACE_TEXT=0)
                 "preview": previews.get(r.input_rank, "") if r.text is None else None}
                for r in record.results],
        "out": out,
    }


def _diff(query: QueryDiff, b: int) -> dict[str, Any]:
    return {
        "b": b, "tau": query.kendall_tau, "rbo": _finite(query.rbo), "changed": query.changed,
        "reordered": query.reordered, "shared": len(query.shared), "entered": list(query.entered),
        "left": list(query.left), "keys": {"A": list(query.order_a), "B": list(query.order_b)},
        "shifts": [{"key": s.key, "in": s.input_rank, "ra": s.rank_a, "rb": s.rank_b, "va": s.verdict_a,
                    "vb": s.verdict_b, "sa": _finite(s.score_a), "sb": _finite(s.score_b)} for s in query.shifts],
    }


def page_data(files: Sequence[tuple[str, TraceFile]], diff_files: Sequence[tuple[str, TraceFile]] = (),
              ) -> dict[str, Any]:
    """The JSON the page renders: every call of ``files`` and, with ``diff_files``, each matched call's comparison.

    Args:
        files: ``(name, loaded file)`` pairs: the traces to show (run A when comparing).
        diff_files: ``(name, loaded file)`` pairs of run B, matched to A by query text (the n-th occurrence with the
            n-th, as ``r2r traces diff`` does).
    """
    records = [(i, record) for i, (_, loaded) in enumerate(files) for record in loaded.records]
    b_records = [record for _, loaded in diff_files for record in loaded.records]
    skipped = [problem for _, loaded in (*files, *diff_files) for problem in loaded.skipped]
    data: dict[str, Any] = {
        "files": [name for name, _ in files], "diff_files": [name for name, _ in diff_files],
        "skipped_count": len(skipped), "skipped": skipped[:5],
        "calls": [_call(record, i) for i, record in records], "b_calls": [], "diffs": [],
    }
    if diff_files:
        data["b_calls"] = [_call(record, 0) for record in b_records]
        where_b = {key: index for index, key in enumerate(occurrences(b_records))}
        diffs: list[dict[str, Any] | None] = []
        compared: list[QueryDiff] = []
        for (_, record), key in zip(records, occurrences([r for _, r in records])):
            if key not in where_b:
                diffs.append(None)
                continue
            compared.append(diff_records(record, b_records[where_b[key]]))
            diffs.append(_diff(compared[-1], where_b[key]))
        data["diffs"] = diffs
        taus = [q.kendall_tau for q in compared if q.kendall_tau is not None]
        verdicts = sum(any(s.verdict_a and s.verdict_b and s.verdict_a != s.verdict_b for s in q.shifts)
                       for q in compared)
        data["diff_summary"] = {
            "compared": len(compared), "changed": sum(q.changed for q in compared),
            "reordered": sum(q.reordered for q in compared),
            "membership": sum(bool(q.entered or q.left) for q in compared), "verdicts": verdicts,
            "tau": sum(taus) / len(taus) if taus else None,
            "rbo": _finite(sum(q.rbo for q in compared) / len(compared)) if compared else None,
            "only_a": len(records) - len(compared), "only_b": len(b_records) - len(compared),
        }
    return data


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("page", name).read_text(encoding="utf-8")


def render_html(files: Sequence[tuple[str, TraceFile]], diff_files: Sequence[tuple[str, TraceFile]] = (), *,
                title: str | None = None) -> str:
    """The whole page as one HTML string (no external resource; see the module docs).

    Args:
        files: ``(name, loaded file)`` pairs to show.
        diff_files: ``(name, loaded file)`` pairs to compare them with.
        title: The page title (default: from the file names).
    """
    script = _asset("page.js")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    # No default source at all: the one inline script (by hash) and inline styles; no fetch, image, font, frame,
    # form target or base URL, so hostile text that somehow became markup still could not call out.
    csp = (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; img-src data:; "
           "base-uri 'none'; form-action 'none'")
    name = title or "r2r traces: " + ", ".join(n for n, _ in files)
    values = {"CSP": html.escape(csp, quote=False), "TITLE": html.escape(_printable(name)[:200]),
              "CSS": _asset("page.css"), "JS": script, "DATA": _json_for_script(page_data(files, diff_files))}
    # One pass over the template: text put in (a title, the data) is never searched for placeholders itself.
    return re.sub(r"\{\{(CSP|TITLE|CSS|JS|DATA)\}\}", lambda m: values[m.group(1)], _asset("page.html"))


def _printable(text: str) -> str:
    return re.sub("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]", "\ufffd", text)


@dataclass
class PageServer:
    """The page served on 127.0.0.1 (``r2r traces view``): :attr:`url`, :meth:`serve_forever`, :meth:`close`."""

    url: str
    _server: Any
    _thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        """Serve until interrupted (Ctrl-C) or :meth:`close`."""
        self._server.serve_forever()

    def start(self) -> PageServer:
        """Serve in a background thread (for tests and notebooks)."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and free the port."""
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()


def serve_page(page: str, *, host: str = "127.0.0.1", port: int = 0) -> PageServer:
    """Serve ``page`` at ``http://host:port/`` with the standard library's HTTP server (port 0: any free port).

    Only ``GET /`` (and ``/index.html``) answer; the page is the same bytes as ``r2r traces html`` writes.
    """
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = page.encode("utf-8")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            if self.path.split("?")[0] not in ("/", "/index.html"):
                self.send_error(404, "only / is served")
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the standard library's name
            return  # quiet: the command prints the URL once

    server = ThreadingHTTPServer((host, port), Handler)
    return PageServer(url=f"http://{host}:{server.server_address[1]}/", _server=server)
