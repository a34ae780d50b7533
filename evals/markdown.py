"""Markdown pieces shared by every report section: numbers, table cells and tables.

Example:
    >>> fmt(0.12345), fmt(None), share(3, 4), share(0, 0)
    ('0.1235', '–', '75.0% (3/4)', '–')
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def fmt(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` decimals; ``–`` for ``None`` or NaN."""
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def share(count: int, total: int) -> str:
    """``count`` of ``total`` as a percentage with the counts, e.g. ``'75.0% (3/4)'``; ``–`` when ``total`` is 0."""
    return "–" if not total else f"{100.0 * count / total:.1f}% ({count}/{total})"


def cell(text: str) -> str:
    """``text`` on one line, safe inside a table cell (pipes escaped, white space collapsed)."""
    return " ".join(text.replace("|", "\\|").split())


def short(text: str, limit: int = 200) -> str:
    """:func:`cell` of ``text``, cut to ``limit`` characters with an ellipsis."""
    text = cell(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table(head: Sequence[str], rows: Iterable[Sequence[str]], *, left: int = 1) -> list[str]:
    """A markdown table: the header, its rule (the first ``left`` columns left-aligned, the rest right-aligned) and
    one line per row of cells.

    Example:
        >>> table(["system", "nDCG@10"], [["`minilm`", "0.6454"]])
        ['| system | nDCG@10 |', '|---|---:|', '| `minilm` | 0.6454 |']
    """
    rule = "|" + "|".join(["---"] * left + ["---:"] * (len(head) - left)) + "|"
    return ["| " + " | ".join(head) + " |", rule, *("| " + " | ".join(row) + " |" for row in rows)]


__all__ = ["cell", "fmt", "share", "short", "table"]
