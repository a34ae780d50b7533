"""The one check of the counts evals takes (queries, candidates, windows, tokens), with one kind of error message.

Example:
    >>> check_count("TeacherSystem: top", 0)
    Traceback (most recent call last):
    ...
    r2r_agent.errors.InvalidInputError: TeacherSystem: top must be an int >= 1, got 0.
"""

from __future__ import annotations

from typing import Any

from r2r_agent.errors import InvalidInputError


def check_count(what: str, value: Any, least: int = 1, *, optional: bool = False, hint: str = "") -> None:
    """Raise :class:`InvalidInputError` unless ``value`` is an int ``>= least`` (or ``None`` when ``optional``).

    Args:
        what: What the value is, as the message starts (``"run_eval: explain_top"``, ``"SystemOptions.lm_top"``).
        value: The value to check (a bool is not a count).
        least: The smallest allowed value.
        optional: Whether ``None`` is allowed.
        hint: Appended to the expectation, e.g. ``" (candidates per query)"``.
    """
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        allowed = f"an int >= {least}" + (" or None" if optional else "")
        raise InvalidInputError(f"{what} must be {allowed}{hint}, got {value!r}.")


__all__ = ["check_count"]
