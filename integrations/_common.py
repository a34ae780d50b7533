"""Helpers shared by the framework adapters: argument checks and the keys they write.

Nothing here imports a framework; each adapter maps its own objects to :class:`~r2r_agent.Passage` and back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError

if TYPE_CHECKING:
    from ..reranker import Reranker
    from ..student import Student

#: Metadata keys the adapters write on their output copies.
SCORE_KEY = "r2r_score"
RANK_KEY = "r2r_rank"
EXPLANATION_KEY = "r2r_explanation"
COMPARISON_KEY = "r2r_comparison"
NOTE_KEY = "r2r_note"
RETRIEVAL_SCORE_KEY = "retrieval_score"
#: LangChain's convention for a reranker's score.
RELEVANCE_SCORE_KEY = "relevance_score"

#: Keys written by a previous rerank that must not leak into a new result (a node reranked twice).
STALE_KEYS = (SCORE_KEY, RANK_KEY, EXPLANATION_KEY, COMPARISON_KEY, NOTE_KEY)

NO_TEXT_NOTE = "not reranked: this item has no text content, so it was passed through after the ranked ones"


def check_top_n(owner: str, top_n: int | None) -> int | None:
    """Validate a ``top_n`` setting (``None`` keeps every item).

    Raises:
        InvalidInputError: for a bool, a non-int or a value <= 0, naming ``owner`` and the fix.
    """
    if top_n is None:
        return None
    if isinstance(top_n, bool) or not isinstance(top_n, int):
        raise InvalidInputError(f"{owner}: top_n must be a positive int or None (keep all), got "
                                f"{type(top_n).__name__} {top_n!r}")
    if top_n <= 0:
        raise InvalidInputError(f"{owner}: top_n must be >= 1 (how many items to return), got {top_n}; "
                                "use top_n=None to keep every item")
    return top_n


def check_count(owner: str, name: str, value: int | None) -> int | None:
    """Validate an optional non-negative count (``explain_top``, ``compare_top``, ``fetch_k``...)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"{owner}: {name} must be an int >= 0 or None, got {type(value).__name__} {value!r}")
    return value


def check_weight(owner: str, name: str, value: float | None) -> float | None:
    """Validate an optional weight in [0, 1] (``first_stage_weight``; ``None``: the reranker's own setting)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise InvalidInputError(f"{owner}: {name} must be a number in [0, 1] or None (the reranker's setting), got "
                                f"{type(value).__name__} {value!r}")
    return float(value)


def resolve_reranker(owner: str, reranker: Reranker | None, student: Student | None) -> Reranker | None:
    """The reranker to use: the one given, one built around ``student``, or ``None`` (build the default lazily)."""
    if reranker is not None and student is not None:
        raise InvalidInputError(f"{owner}: pass either reranker= or student=, not both "
                                "(a Reranker already holds its student)")
    if reranker is not None:
        if not (hasattr(reranker, "rerank") and hasattr(reranker, "arerank")):
            raise InvalidInputError(f"{owner}: reranker must be an r2r_agent.Reranker (with rerank/arerank), got "
                                    f"{type(reranker).__name__}")
        return reranker
    if student is not None:
        from ..reranker import Reranker

        return Reranker(student=student)
    return None


def has_text(content: object) -> bool:
    """Whether ``content`` is text worth ranking (a non-blank string)."""
    return isinstance(content, str) and bool(content.strip())


def format_ranked(entries: list[tuple[Any, str | None, float | None, str, dict[str, Any]]], *,
                  max_chars: int = 600) -> str:
    """Render reranked items for an agent's context: ``[rank] id= score=``, the text, ``Why:``, and the comparison.

    Args:
        entries: ``(fallback_rank, id, score, text, metadata)`` per item, best first; ``metadata`` holds the keys
            the adapters write (``r2r_rank``, ``r2r_explanation``, ``r2r_comparison``, ``r2r_note``).
        max_chars: Longest text shown per item (longer texts end with ``...``).

    Example:
        >>> print(format_ranked([(1, "d3", 0.91, "Adult fleas live 2-3 months.", {"r2r_explanation": "Lifespan."})]))
        [1] id=d3 score=0.910
        Adult fleas live 2-3 months.
        Why: Lifespan.
    """
    if not entries:
        return "No documents found."
    blocks: list[str] = []
    comparison = None
    for fallback_rank, item_id, score, text, metadata in entries:
        head = f"[{metadata.get(RANK_KEY, fallback_rank)}]" + (f" id={item_id}" if item_id is not None else "")
        if isinstance(score, (int, float)):
            head += f" score={score:.3f}"
        if len(text) > max_chars:
            text = text[: max_chars - 3] + "..."
        lines = [head, text]
        if metadata.get(EXPLANATION_KEY):
            lines.append(f"Why: {metadata[EXPLANATION_KEY]}")
        if metadata.get(NOTE_KEY):
            lines.append(f"Note: {metadata[NOTE_KEY]}")
        comparison = comparison or metadata.get(COMPARISON_KEY)
        blocks.append("\n".join(lines))
    if comparison:
        blocks.append(f"Why this order: {comparison}")
    return "\n\n".join(blocks)
