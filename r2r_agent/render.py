"""Plain-text rendering of rankings for terminals (used by the CLI).

Retrieved text, ids, queries and explanations are untrusted: before they reach a terminal, control characters (an ESC
that would start a terminal command sequence, a bell, a carriage return that overwrites a line) and the bidirectional
overrides that reorder what is shown are replaced by visible escapes (:func:`terminal_text`). JSON output keeps the
text exact.
"""

from __future__ import annotations

import re
import textwrap

from .types import Ranking

# C0 and C1 controls and DEL, and the bidi embedding/override/isolate characters ("Trojan Source").
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_text(text: str) -> str:
    """``text`` safe to print on a terminal: control and bidi-override characters shown as ``\\x1b``-style escapes.

    Example:
        >>> terminal_text("red \\x1b[31mtext\\x07")
        'red \\\\x1b[31mtext\\\\x07'
    """
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}",
                       text)


def one_line(text: str, width: int) -> str:
    """``text`` on one line (whitespace collapsed), made terminal-safe, cut to ``width`` with an ellipsis."""
    text = terminal_text(" ".join(text.split()))
    return text if len(text) <= width else text[: width - 1] + "…"


def format_ranking(ranking: Ranking, *, width: int = 100, snippet: int = 90) -> str:
    """A readable table: rank, input rank, score, id, passage snippet, and the explanation under each row.

    Example:
        >>> from r2r_agent.types import Judgment, Ranking
        >>> print(format_ranking(Ranking("q", (Judgment("d1", "text", 0.5, 1, 2),))).splitlines()[2])
           1      2    0.5000  d1  text
    """
    lines = [f"Query: {one_line(ranking.query, width)}", f"{'rank':>4} {'input':>6} {'score':>9}  id / passage"]
    for j in ranking:
        ident = one_line(j.id, 40) if j.id is not None else "-"
        flag = " [truncated]" if j.truncated else ""
        lines.append(f"{j.rank:>4} {j.input_rank:>6} {j.score:>9.4f}  {ident}  {one_line(j.text, snippet)}{flag}")
        if j.explanation is not None:
            why = terminal_text(j.explanation) or "(the explainer wrote nothing)"
            lines.extend(textwrap.wrap(why, width=width, initial_indent=" " * 22 + "why: ", subsequent_indent=" " * 27))
    if ranking.comparison:
        lines.append("")
        lines.extend(textwrap.wrap(terminal_text(ranking.comparison), width=width, initial_indent="Order: ",
                                   subsequent_indent=" " * 7))
    if ranking.stages:
        costs = ", ".join(f"{s.stage} {s.items} in {s.seconds:.2f}s" for s in ranking.stages)
        lines.append(f"({ranking.num_candidates} candidates; {costs}; model: {terminal_text(ranking.model)})")
    return "\n".join(lines)
