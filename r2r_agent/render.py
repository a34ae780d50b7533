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


#: ANSI styles used when the output is a terminal (``color=True``): the evidence in bold, verdicts in colour.
_STYLES = {"evidence": "\x1b[1m", "relevant": "\x1b[32m", "partial": "\x1b[33m", "not_relevant": "\x1b[31m"}
_RESET = "\x1b[0m"
_VERDICT_TEXT = {"relevant": "relevant", "partial": "partial", "not_relevant": "not relevant"}


def _styled(text: str, style: str, color: bool) -> str:
    return f"{_STYLES[style]}{text}{_RESET}" if color and style in _STYLES else text


def answerable_line(ranking: Ranking) -> str | None:
    """One line on whether any passage answers the query (``None`` when the student gives no verdicts)."""
    if ranking.answerable is None:
        return None
    judged = [j for j in ranking if j.relevance is not None]
    if ranking.answerable:
        relevant = sum(j.verdict == "relevant" for j in judged)
        return f"Answerable: yes ({relevant} of {len(judged)} returned passages judged relevant)"
    best = max((j.relevance for j in judged if j.relevance is not None), default=None)
    shown = f" (best relevance {best:.2f})" if best is not None else ""
    return f"Answerable: no passage here answers the query{shown}"


def format_ranking(ranking: Ranking, *, width: int = 100, snippet: int = 70, color: bool = False) -> str:
    """A readable table: rank, input rank, score, verdict, relevance, id and passage snippet; under each row the
    evidence (in bold on a terminal) and the explanation; then whether the query is answerable and the comparison.

    Example:
        >>> from r2r_agent.types import Judgment, Ranking
        >>> print(format_ranking(Ranking("q", (Judgment("d1", "text", 0.5, 1, 2),))).splitlines()[2])
           1     2    0.5000  -               -  d1  text
    """
    lines = [f"Query: {one_line(ranking.query, width)}",
             f"{'rank':>4} {'input':>5} {'score':>9}  {'verdict':<12} {'rel':>4}  id / passage"]
    indent = " " * 22
    for j in ranking:
        ident = one_line(j.id, 40) if j.id is not None else "-"
        flag = " [truncated]" if j.truncated else ""
        verdict = _VERDICT_TEXT.get(j.verdict or "", "-")
        relevance = f"{j.relevance:.2f}" if j.relevance is not None else "-"
        shown = _styled(f"{verdict:<12}", j.verdict or "", color)
        lines.append(f"{j.rank:>4} {j.input_rank:>5} {j.score:>9.4f}  {shown} {relevance:>4}  {ident}  "
                     f"{one_line(j.text, snippet)}{flag}")
        if j.evidence:
            wrapped = textwrap.wrap(one_line(j.evidence, 10_000), width=width, initial_indent=indent + "evidence: ",
                                    subsequent_indent=indent + " " * 10)
            lines.extend(_styled(line, "evidence", color) for line in wrapped)
        if j.explanation is not None:
            why = terminal_text(j.explanation) or "(the explainer wrote nothing)"
            lines.extend(textwrap.wrap(why, width=width, initial_indent=indent + "why: ",
                                       subsequent_indent=indent + " " * 5))
    answerable = answerable_line(ranking)
    if answerable:
        lines.append("")
        lines.append(answerable)
    if ranking.comparison:
        lines.append("")
        lines.extend(textwrap.wrap(terminal_text(ranking.comparison), width=width, initial_indent="Order: ",
                                   subsequent_indent=" " * 7))
    if ranking.stages:
        costs = ", ".join(f"{s.stage} {s.items} in {s.seconds:.2f}s" for s in ranking.stages)
        lines.append(f"({ranking.num_candidates} candidates; {costs}; model: {terminal_text(ranking.model)})")
    return "\n".join(lines)
