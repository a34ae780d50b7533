"""The one check of a count (an int at least some value, never a bool), shared by the core, the adapters, training
and evals, with one kind of error message.

Example:
    >>> check_count("Reranker: top_k", 3)
    3
    >>> check_count("TeacherSystem: top", 0)
    Traceback (most recent call last):
    ...
    r2r_agent.errors.InvalidInputError: TeacherSystem: top must be an int >= 1, got 0.
    >>> count_problem(True, least=0, optional=True)
    'an int >= 0 or None'
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidInputError


def count_problem(value: Any, least: int = 1, *, optional: bool = False) -> str | None:
    """What ``value`` should have been when it is not an int ``>= least`` (``None`` allowed when ``optional``; a bool
    is not a count), or ``None`` when it is fine: the form a settings check returns (:mod:`r2r_agent.config`)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        return f"an int >= {least}" + (" or None" if optional else "")
    return None


def check_count(what: str, value: Any, least: int = 1, *, optional: bool = False, hint: str = "") -> Any:
    """``value`` unchanged when it is an int ``>= least`` (or ``None`` when ``optional``), else
    :class:`InvalidInputError`.

    Args:
        what: What the value is, as the message starts (``"run_eval: explain_top"``, ``"SystemOptions.lm_top"``).
        value: The value to check (a bool is not a count).
        least: The smallest allowed value.
        optional: Whether ``None`` is allowed.
        hint: Appended to the expectation, e.g. ``" (candidates per query)"``.

    Returns:
        ``value``.
    """
    allowed = count_problem(value, least, optional=optional)
    if allowed is not None:
        raise InvalidInputError(f"{what} must be {allowed}{hint}, got {value!r}.")
    return value


__all__ = ["check_count", "count_problem"]
