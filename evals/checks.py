"""The one check of the counts evals takes (queries, candidates, windows, tokens): the core's
:func:`r2r_agent.validation.check_count`, re-exported where evals import it.

Example:
    >>> check_count("TeacherSystem: top", 0)
    Traceback (most recent call last):
    ...
    r2r_agent.errors.InvalidInputError: TeacherSystem: top must be an int >= 1, got 0.
"""

from __future__ import annotations

from r2r_agent.validation import check_count

__all__ = ["check_count"]
