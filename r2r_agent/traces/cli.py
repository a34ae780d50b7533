"""``r2r traces``: show a trace file, or compare two runs of the same queries.

    r2r traces show traces.jsonl                  # per call: what moved, by how much, and why
    r2r traces show traces.jsonl -q fleas --last 2
    r2r traces diff v1.jsonl v2.jsonl             # per query: order changes, Kendall tau, RBO, explanations
    r2r traces html traces.jsonl -o report.html   # the trace page, one self-contained HTML file
    r2r traces view traces.jsonl                  # the same page served on 127.0.0.1

Trace files are written by ``Reranker(trace="traces.jsonl")`` or with ``R2R_TRACE_PATH=traces.jsonl`` set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..render import terminal_text

if TYPE_CHECKING:
    from . import QueryDiff, TraceDiff, TraceFile, TraceRecord

EPILOG = """\
examples:
  R2R_TRACE_PATH=traces.jsonl python my_rag_app.py     any Reranker() then appends one record per call
  r2r traces show traces.jsonl --last 3
  R2R_TRACE_RUN=v1 R2R_TRACE_PATH=v1.jsonl python eval_queries.py
  R2R_TRACE_RUN=v2 R2R_TRACE_PATH=v2.jsonl python eval_queries.py
  r2r traces diff v1.jsonl v2.jsonl --movers 3
  r2r traces html v1.jsonl --diff v2.jsonl -o report.html
  r2r traces view traces.jsonl --no-browser
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``show`` and ``diff`` subcommands to the ``r2r traces`` parser."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    commands = parser.add_subparsers(dest="traces_command", metavar="{show,diff,html,view}", required=True)
    show = commands.add_parser("show", help="render a trace file: what moved, by how much, and why",
                               description="Render each traced rerank call: the returned passages with their input "
                               "rank, how far they moved, the score and the explanation; the passages pushed out "
                               "of the top; and the comparison.")
    show.add_argument("file", metavar="FILE", help="a JSON Lines trace file")
    show.add_argument("-q", "--query", default=None, metavar="TEXT", help="only calls whose query contains TEXT")
    show.add_argument("--last", type=int, default=None, metavar="N", help="only the last N calls")
    show.add_argument("--width", type=int, default=100, metavar="W", help="line width (default 100)")
    show.add_argument("--json", action="store_true", help="print the (filtered) records as JSON lines instead")

    diff = commands.add_parser("diff", help="compare two trace files of the same queries (e.g. two students)",
                               description="Match the calls of two trace files by query and compare the output "
                               "orders: Kendall tau over the shared documents, rank-biased overlap (p=0.9), and the "
                               "explanations of the documents that moved most, side by side.")
    diff.add_argument("file_a", metavar="A", help="the first trace file (the baseline)")
    diff.add_argument("file_b", metavar="B", help="the second trace file")
    diff.add_argument("--movers", type=int, default=3, metavar="K",
                      help="documents shown per query with their explanations (default 3)")
    diff.add_argument("--changed-only", action="store_true", help="list only queries whose order changed")
    diff.add_argument("--width", type=int, default=100, metavar="W", help="line width (default 100)")
    diff.add_argument("--json", action="store_true", help="print the comparison as JSON instead")

    page_help = ("The page: an index of the calls (filter by verdict, not answerable, run label; search; j/k to move), "
                 "and per call the ranked passages with their input -> output rank, verdict, relevance against the "
                 "calibrator's thresholds, explanation and the evidence highlighted in the text; the stage costs, "
                 "the settings and a chart of input vs output rank. With --diff, what changed per query.")
    html_cmd = commands.add_parser("html", help="write the trace page: one self-contained HTML file",
                                   description="Write one HTML file (no external resource; opens from file://). "
                                   + page_help)
    view = commands.add_parser("view", help="serve the trace page on 127.0.0.1 and open it in a browser",
                               description="Serve the same page as `r2r traces html` on 127.0.0.1 (Ctrl-C stops). "
                               + page_help)
    for command in (html_cmd, view):
        command.add_argument("files", nargs="+", metavar="TRACE", help="JSON Lines trace files")
        command.add_argument("--diff", nargs="+", default=[], metavar="B",
                             help="trace files of a second run of the same queries, to compare with")
        command.add_argument("--title", default=None, help="the page title")
    html_cmd.add_argument("-o", "--output", required=True, metavar="FILE", help="the HTML file to write")
    view.add_argument("--port", type=int, default=0, help="the port (default: any free one)")
    view.add_argument("--no-browser", action="store_true", help="only print the URL")


def _emit(text: str, *, raw: bool = False) -> None:
    """Print ``text``; unless ``raw`` (JSON), each line made terminal-safe (retrieved text is untrusted)."""
    if not raw:
        text = "\n".join(terminal_text(line) for line in text.split("\n"))
    try:
        print(text)  # noqa: T201 - this module is a CLI command
    except BrokenPipeError:
        # `r2r traces show FILE | head`: the reader has gone; stop quietly (and spare Python's complaint at exit).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


#: At most this many characters of one text (a query, an explanation, the evidence) are printed; ``--json`` prints
#: everything. A 50 MB query was printed in full before.
SHOWN_CHARS = 2000
#: At most this many characters of a label (an id, a model name, a run label).
LABEL_CHARS = 120


def _cap(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was (never copies more than ``limit``)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text):,} characters; --json prints all]"


def _label(value: object) -> str:
    return _cap(str(value), LABEL_CHARS)


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    return textwrap.wrap(" ".join(_cap(text).split()), width=max(width, len(first) + 20), initial_indent=first,
                         subsequent_indent=rest) or [first.rstrip()]


def _move(value: int | None) -> str:
    if value is None:
        return "-"
    return f"+{value}" if value > 0 else str(value)


def _header(record: TraceRecord) -> str:
    parts = [f"model: {_label(record.model or '?')}"]
    if record.adapter:
        parts.append(f"adapter: {_label(record.adapter)}")
    if record.prompt_version:
        parts.append(f"prompts {_label(record.prompt_version)}")
    returned = f"top {record.top_n}" if record.top_n is not None else "all"
    parts.append(f"{record.num_candidates} candidates -> {returned} ({len(record.results)} returned)")
    if record.seconds is not None:
        costs = "; ".join(f"{_label(s.stage)} {s.items} in {s.seconds:.2f}s" for s in record.stages)
        parts.append(f"{record.seconds:.2f}s" + (f" ({costs})" if costs else ""))
    if record.load_seconds is not None:
        parts.append(f"first call: {record.load_seconds:.2f}s loading the models")
    return " | ".join(parts)


def format_record(record: TraceRecord, *, index: int | None = None, total: int | None = None,
                  width: int = 100) -> str:
    """Render one trace record for a terminal: the returned passages (input rank -> output rank, the move, the score,
    the explanation), the passages pushed out of the top, the biggest moves and the comparison."""
    title = "trace" + (f" {index}/{total}" if index is not None and total is not None else "")
    if record.run:
        title += f" | run {_label(record.run)}"
    if record.timestamp:
        title += f" | {_label(record.timestamp)}"
    lines = [f"== {title} ==", f"Query: {_cap(record.query)}", *_wrap(_header(record), width, "", "  ")]
    if not record.results:
        lines.append("(no candidates came in: nothing was ranked)" if not record.candidates else "(nothing returned)")
        return "\n".join(lines)
    lines.append("")
    lines.append(f"{'out':>4} {'in':>4} {'move':>5} {'score':>9}  {'verdict':<12} {'rel':>4}  id / passage")
    snippet = max(width - 46, 30)
    for r in record.results:
        candidate = record.candidate(r.input_rank)
        ident = _label(r.id) if r.id is not None else "-"
        preview = _cap(candidate.preview) if candidate else ""
        text = f"{ident}  {preview}"
        text = text if len(text) <= snippet else text[: snippet - 1] + "…"
        flag = " [truncated]" if r.truncated else ""
        verdict = (r.verdict or "-").replace("_", " ")
        relevance = f"{r.relevance:.2f}" if r.relevance is not None else "-"
        lines.append(f"{r.rank:>4} {r.input_rank:>4} {_move(r.move):>5} {r.score:>9.4f}  {verdict:<12} "
                     f"{relevance:>4}  {text}{flag}")
        if r.evidence:
            lines.extend(_wrap(r.evidence, width, " " * 27 + "evidence: ", " " * 37))
        if r.explanation is not None:
            lines.extend(_wrap(r.explanation or "(the explainer wrote nothing)", width, " " * 27 + "why: ",
                               " " * 32))
        if r.unsupported:
            lines.extend(_wrap(", ".join(r.unsupported), width, " " * 27 + "removed unsupported: ", " " * 32))
    dropped = record.dropped()
    if dropped:
        names = ", ".join(f"{_label(c.id) if c.id is not None else '-'} (in {c.input_rank})" for c in dropped[:50])
        names += f", and {len(dropped) - 50:,} more" if len(dropped) > 50 else ""
        lines.extend(_wrap(names, width, f"Pushed out of the top {len(record.results)}: ", " " * 4))
    movers = [r for r in record.moves() if r.move != 0][:3]
    if movers:
        moved = "; ".join(f"{_label(r.id) if r.id is not None else '-'} {'up' if r.move > 0 else 'down'} {abs(r.move)} "
                          f"({r.input_rank} -> {r.rank})" for r in movers)
        lines.extend(_wrap(moved, width, "Moved most: ", " " * 4))
    else:
        lines.append("Order unchanged from the input.")
    if record.answerable is not None:
        lines.append("Answerable: " + ("yes" if record.answerable else "no: no returned passage answers the query"))
    if record.comparison:
        lines.extend(_wrap(record.comparison, width, "Why this order: ", " " * 4))
    return "\n".join(lines)


def _describe(records: Sequence[TraceRecord]) -> str:
    runs = sorted({_label(r.run) for r in records if r.run})[:10]
    models = sorted({_label(r.model) for r in records if r.model})[:10]
    adapters = sorted({_label(r.adapter) for r in records if r.adapter})[:10]
    parts = [f"{len(records)} calls"]
    if runs:
        parts.append("run " + ", ".join(runs))
    if models:
        parts.append("model " + ", ".join(models))
    if adapters:
        parts.append("adapter " + ", ".join(adapters))
    return "; ".join(parts)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _why_out(score: float | None, verdict: str | None) -> str:
    """What a run thought of a document it did not return (nothing when the trace predates candidate scores)."""
    said = [f"score {score:.4f}"] if score is not None else []
    said += [verdict.replace("_", " ")] if verdict else []
    return f" ({', '.join(said)})" if said else ""


def format_query_diff(diff: QueryDiff, *, movers: int = 3, width: int = 100) -> str:
    """Render one query's comparison: both orders, Kendall tau and RBO, and the biggest movers' explanations."""
    lines = [f"Query: {_cap(diff.query)}"]
    lines.extend(_wrap(" ".join(map(_label, diff.order_a[:200])) or "(nothing)", width, "  A: ", " " * 5))
    lines.extend(_wrap(" ".join(map(_label, diff.order_b[:200])) or "(nothing)", width, "  B: ", " " * 5))
    summary = f"  Kendall tau {_fmt(diff.kendall_tau)} over {len(diff.shared)} shared | RBO {diff.rbo:.3f}"
    if not diff.changed:
        summary += " | same order"
    elif diff.entered or diff.left:
        summary += f" | {len(diff.entered)} entered B's top, {len(diff.left)} left it"
        summary += "" if diff.reordered else " (the shared ones keep their order)"
    if not diff.same_candidates:
        summary += " | the candidates differ between the runs"
    lines.append(summary)
    shown = [s for s in diff.shifts if s.shift != 0][:movers]
    for s in shown:
        where_a = f"A {s.rank_a}" if s.rank_a is not None else "not in A" + _why_out(s.score_a, s.verdict_a)
        where_b = f"B {s.rank_b}" if s.rank_b is not None else "not in B" + _why_out(s.score_b, s.verdict_b)
        change = f" ({_move(s.shift)})" if s.shift is not None else ""
        lines.append(f"  {_label(s.key)} (input {s.input_rank}): {where_a} -> {where_b}{change}")
        for side, text in (("A", s.explanation_a), ("B", s.explanation_b)):
            if text:
                lines.extend(_wrap(text, width, f"      {side} why: ", " " * 13))
    if diff.changed and (diff.comparison_a or diff.comparison_b) and diff.comparison_a != diff.comparison_b:
        for side, text in (("A", diff.comparison_a), ("B", diff.comparison_b)):
            if text:
                lines.extend(_wrap(text, width, f"  {side} order: ", " " * 11))
    return "\n".join(lines)


def format_diff(diff: TraceDiff, a: Sequence[TraceRecord], b: Sequence[TraceRecord], *, names: tuple[str, str],
                movers: int = 3, changed_only: bool = False, width: int = 100) -> str:
    """Render a whole comparison: a summary line per run, the means, then each query."""
    lines = [f"A: {names[0]} ({_describe(a)})", f"B: {names[1]} ({_describe(b)})"]
    taus = [q.kendall_tau for q in diff.queries if q.kendall_tau is not None]
    changed = sum(q.changed for q in diff.queries)
    # "Changed" has two kinds: the shared documents reordered, or documents entering or leaving the top. Saying only
    # "3 changed order; mean Kendall tau 1.000" (tau is over the shared documents) read as a contradiction.
    reordered = sum(q.reordered for q in diff.queries)
    membership = sum(bool(q.entered or q.left) for q in diff.queries)
    summary = (f"{len(diff.queries)} queries in both; {changed} returned a different list ({reordered} with the "
               f"shared documents reordered, {membership} with documents entering or leaving the top)")
    if diff.queries:
        summary += f"; mean RBO {sum(q.rbo for q in diff.queries) / len(diff.queries):.3f}"
    if taus:
        summary += f"; mean Kendall tau over shared documents {sum(taus) / len(taus):.3f}"
    lines.append(summary)
    if diff.only_a or diff.only_b:
        lines.append(f"Not compared: {len(diff.only_a)} queries only in A, {len(diff.only_b)} only in B")
    for query in diff.queries:
        if changed_only and not query.changed:
            continue
        lines.append("")
        lines.append(format_query_diff(query, movers=movers, width=width))
    return "\n".join(lines)


def _report_skipped(loaded: TraceFile) -> None:
    """Say on stderr how many damaged lines a trace file had (each is also logged)."""
    if loaded.skipped:
        count, first = len(loaded.skipped), _cap(loaded.skipped[0], 300)
        message = f"r2r traces: skipped {count} damaged line(s), the first: {first}"
        print(terminal_text(message), file=sys.stderr)  # noqa: T201 - this module is a CLI command


def _show(args: argparse.Namespace) -> int:
    from ..errors import InvalidInputError
    from . import load_traces

    if args.last is not None and args.last < 1:
        raise InvalidInputError(f"--last must be >= 1, got {args.last}")
    loaded = load_traces(args.file)
    _report_skipped(loaded)
    records = list(loaded.records)
    if args.query:
        records = [r for r in records if args.query.lower() in r.query.lower()]
    if args.last is not None:
        records = records[-args.last:]
    if args.json:
        for record in records:
            _emit(record.to_json(), raw=True)
        return 0
    if not records:
        _emit(f"No traces in {args.file}" + (f" with a query containing {args.query!r}" if args.query else ""))
        return 0
    _emit("\n\n".join(format_record(r, index=i, total=len(records), width=args.width)
                      for i, r in enumerate(records, start=1)))
    return 0


def _diff(args: argparse.Namespace) -> int:
    from ..errors import InvalidInputError
    from . import diff_traces, load_traces

    if args.movers < 0:
        raise InvalidInputError(f"--movers must be >= 0, got {args.movers}")
    file_a, file_b = load_traces(args.file_a), load_traces(args.file_b)
    _report_skipped(file_a)
    _report_skipped(file_b)
    a, b = list(file_a.records), list(file_b.records)
    diff = diff_traces(a, b)
    if args.json:
        _emit(json.dumps(diff.to_dict(), ensure_ascii=False, indent=2), raw=True)
        return 0
    _emit(format_diff(diff, a, b, names=(args.file_a, args.file_b), movers=args.movers,
                      changed_only=args.changed_only, width=args.width))
    return 0


def _page(args: argparse.Namespace) -> str:
    from . import load_traces
    from .report import render_html

    def load(names: Sequence[str]) -> list[tuple[str, TraceFile]]:
        loaded = [(name, load_traces(name)) for name in names]
        for _, file in loaded:
            _report_skipped(file)
        return loaded

    return render_html(load(args.files), load(args.diff), title=args.title)


def _html(args: argparse.Namespace) -> int:
    from ..files import atomic_write_text

    page = _page(args)
    atomic_write_text(args.output, page)
    _emit(f"wrote {args.output} ({len(page.encode('utf-8')):,} bytes); open it in a browser")
    return 0


def _view(args: argparse.Namespace) -> int:
    import webbrowser

    from ..errors import InvalidInputError
    from .report import serve_page

    if not 0 <= args.port <= 65535:
        raise InvalidInputError(f"--port must be in 0..65535, got {args.port}")
    try:
        server = serve_page(_page(args), port=args.port)
    except OSError as exc:
        raise InvalidInputError(f"cannot serve on 127.0.0.1:{args.port} ({exc}); pick another --port") from None
    _emit(f"serving the trace page at {server.url} (Ctrl-C stops)")
    sys.stdout.flush()
    if not args.no_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``r2r traces show|diff|html|view``; returns the exit status."""
    return {"show": _show, "diff": _diff, "html": _html, "view": _view}[args.traces_command](args)
