"""What an evaluated system is: the :class:`System` protocol, what a system may declare, and the simplest system.

A system ranks one query's first-stage candidates (:class:`r2r_agent.Passage` objects) and returns a
:class:`~r2r_agent.evals.results.SystemResult`, its :class:`r2r_agent.Ranking` plus the seconds it took. Besides
``name`` and ``config`` it may declare:

- ``query_limit: int | None``: it ranks only the first N queries of each dataset (:func:`query_limit`);
- ``needs_texts: bool`` (default ``True``): it reads passage texts, so it refuses queries whose candidates have none
  (:func:`needs_texts`); the first-stage order does not;
- ``explains: bool`` with ``explain`` (and ``explain_passages``): it can also explain (:class:`ExplainingSystem`);
- ``judges: bool`` with ``judge``: it can give every candidate a relevance and a verdict (:class:`JudgingSystem`),
  and ``judge_config``, what identifies its judging beyond ``config`` (e.g. its calibrator's digest).

:class:`FirstStageSystem`, the first-stage order itself, is the baseline every reranker is compared with.

Example:
    >>> from r2r_agent.evals.records import candidate
    >>> FirstStageSystem().rank("q", [candidate("d1", 2.0, "a"), candidate("d2", 1.0, "b")]).doc_ids
    ('d1', 'd2')
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from r2r_agent import Passage, Ranking
from r2r_agent.errors import InvalidInputError

from .checks import check_count
from .results import SystemResult


@runtime_checkable
class System(Protocol):
    """Ranks one query's candidates.

    Attributes:
        name: The name shown in reports (e.g. ``"minilm"``, ``"adapter:runs/a1"``).
        config: The settings that change its output (e.g. ``{"rescore_top": 20}``); part of the cache key, so a
            changed setting is never served stale cached results.
    """

    name: str
    config: Mapping[str, Any]

    def rank(self, query: str, candidates: Sequence[Passage]) -> SystemResult:
        """Rank ``candidates`` (first-stage order) for ``query``; every candidate comes back once."""
        ...


@runtime_checkable
class ExplainingSystem(System, Protocol):
    """A :class:`System` that can also rerank with explanations on (for the explanation-quality measures).

    Attributes:
        explains: Whether :meth:`explain` works (declared when the system is built, so checking loads nothing).
    """

    explains: bool

    def explain(self, query: str, candidates: Sequence[Passage], explain_top: int) -> Ranking:
        """Rerank with direct explanations of the top ``explain_top`` (no comparison); the
        :class:`r2r_agent.Ranking` of the top ``explain_top`` judgments."""
        ...


@runtime_checkable
class JudgingSystem(System, Protocol):
    """A :class:`System` that can judge every candidate (relevance and verdict) for ``r2r eval --judgments``.

    Attributes:
        judges: Whether :meth:`judge` works (declared when the system is built, so checking loads nothing).
        judge_config: What changes its judgments but not its ranking (e.g. its calibrator's digest); part of the
            judgments' cache key (:func:`r2r_agent.evals.runner.judgment_key`).
    """

    judges: bool
    judge_config: Mapping[str, Any]

    def judge(self, query: str, candidates: Sequence[Passage]) -> Ranking:
        """Every candidate judged (relevance, verdict, evidence), no explanations; an :class:`r2r_agent.Ranking`."""
        ...


def query_limit(system: System) -> int | None:
    """The number of queries per dataset ``system`` declares it ranks (``None``: all of them).

    Example:
        >>> query_limit(FirstStageSystem()) is None
        True
    """
    limit = getattr(system, "query_limit", None)
    check_count(f"System {system.name!r}: query_limit", limit, optional=True)
    return limit


def needs_texts(system: System) -> bool:
    """Whether ``system`` reads passage texts (what it declares; ``True`` when it declares nothing)."""
    return bool(getattr(system, "needs_texts", True))


def system_key(system: System) -> str:
    """The cache key of a system: its name and its config, e.g. ``'zero-shot-lm {"rescore_top": 10}'``."""
    return f"{system.name} {json.dumps(dict(system.config), sort_keys=True)}"


def can_explain(system: System) -> bool:
    """Whether ``system`` declares it can explain (see :class:`ExplainingSystem`)."""
    return bool(getattr(system, "explains", False)) and callable(getattr(system, "explain", None))


def can_judge(system: System) -> bool:
    """Whether ``system`` declares it can judge every candidate (see :class:`JudgingSystem`)."""
    return bool(getattr(system, "judges", False)) and callable(getattr(system, "judge", None))


def can_explain_passages(system: System) -> bool:
    """Whether ``system`` can explain given passages directly (``explain_passages``, for teacher agreement)."""
    return can_explain(system) and callable(getattr(system, "explain_passages", None))


class FirstStageSystem:
    """The first-stage order itself: the baseline every reranker is compared with.

    Its scores are the first-stage scores, which define its order (``by_score``): it is evaluated with trec_eval's
    tie-breaking, so the published first-stage figures are reproduced exactly. It reads no texts.
    """

    needs_texts = False

    def __init__(self, name: str = "first-stage") -> None:
        self.name = name
        self.config: Mapping[str, Any] = {}

    def rank(self, query: str, candidates: Sequence[Passage]) -> SystemResult:
        """Return the candidates in the order given, scored by their first-stage scores."""
        start = time.perf_counter()
        scores = [c.first_stage_score for c in candidates]
        if None in scores:
            raise InvalidInputError(f"System {self.name!r} orders by the first-stage score, but {scores.count(None)} "
                                    "candidates have none; make candidates with r2r_agent.evals.candidate(docid, "
                                    "first_stage_score, text).")
        ranking = Ranking.from_order(query, candidates, scores=[float(s or 0.0) for s in scores], stage="first_stage",
                                     model=self.name)
        return SystemResult(ranking, time.perf_counter() - start, by_score=True)


__all__ = ["ExplainingSystem", "FirstStageSystem", "JudgingSystem", "System", "can_explain", "can_explain_passages",
           "can_judge", "needs_texts", "query_limit", "system_key"]
