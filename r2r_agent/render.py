"""Plain-text rendering of rankings for terminals (used by the CLI)."""

from __future__ import annotations

import textwrap

from .types import Ranking


def _one_line(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_ranking(ranking: Ranking, *, width: int = 100, snippet: int = 90) -> str:
    """A readable table: rank, input rank, score, id, passage snippet, and the explanation under each row.

    Example:
        >>> from r2r_agent.types import Judgment, Ranking
        >>> print(format_ranking(Ranking("q", (Judgment("d1", "text", 0.5, 1, 2),))).splitlines()[2])
           1      2    0.5000  d1  text
    """
    lines = [f"Query: {ranking.query}", f"{'rank':>4} {'input':>6} {'score':>9}  id / passage"]
    for j in ranking:
        ident = j.id if j.id is not None else "-"
        flag = " [truncated]" if j.truncated else ""
        lines.append(f"{j.rank:>4} {j.input_rank:>6} {j.score:>9.4f}  {ident}  {_one_line(j.text, snippet)}{flag}")
        if j.explanation is not None:
            why = j.explanation or "(the explainer wrote nothing)"
            lines.extend(textwrap.wrap(why, width=width, initial_indent=" " * 22 + "why: ", subsequent_indent=" " * 27))
    if ranking.comparison:
        lines.append("")
        lines.extend(textwrap.wrap(ranking.comparison, width=width, initial_indent="Order: ",
                                   subsequent_indent=" " * 7))
    if ranking.stages:
        costs = ", ".join(f"{s.stage} {s.items} in {s.seconds:.2f}s" for s in ranking.stages)
        lines.append(f"({ranking.num_candidates} candidates; {costs}; model: {ranking.model})")
    return "\n".join(lines)
