"""A system that runs an :class:`r2r_agent.Reranker`: every built-in system but the first stage and the teacher.

It calls the public reranker only (``rerank`` and ``explain``) and returns its :class:`r2r_agent.Ranking` as is,
wrapped in a :class:`~r2r_agent.evals.results.SystemResult` with the seconds the call took.

Example:
    >>> from r2r_agent import Reranker, Student                                         # doctest: +SKIP
    >>> system = RerankerSystem("mine", lambda: Reranker(Student(scorer=my_scorer)))  # doctest: +SKIP
    >>> system.rank("how long do fleas live", dataset.candidates["q1"]).doc_ids[:3]   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from r2r_agent import Passage, Ranking
from r2r_agent.errors import InvalidInputError

from .results import SystemResult

if TYPE_CHECKING:
    from r2r_agent import Reranker

logger = logging.getLogger(__name__)


class RerankerSystem:
    """A system that runs an :class:`r2r_agent.Reranker` (built on first use) with explanations off.

    Args:
        name: The report name.
        factory: Builds the reranker (called once, on the first query, so merely listing a system loads nothing).
        config: The settings that change its output (see :class:`~r2r_agent.evals.protocol.System`).
        explains: Whether the reranker's student has an explainer, so :meth:`explain` can be used.
        judges: Whether the reranker's student has a calibrator for its scorer
            (:func:`r2r_agent.stages.usable_calibrator`), so :meth:`judge` gives relevance and verdicts.
        judge_config: What identifies the judging beyond ``config`` (e.g. ``{"calibrator": digest}``), for the
            judgments' cache key.
    """

    def __init__(self, name: str, factory: Callable[[], Reranker], config: Mapping[str, Any] | None = None, *,
                 explains: bool = False, judges: bool = False, judge_config: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.config: Mapping[str, Any] = dict(config or {})
        self.explains = explains
        self.judges = judges
        self.judge_config: Mapping[str, Any] = dict(judge_config or {})
        self._factory = factory
        self._reranker: Reranker | None = None
        self.load_seconds: float | None = None

    @property
    def reranker(self) -> Reranker:
        """The reranker, built on first access (its build time is :attr:`load_seconds`)."""
        if self._reranker is None:
            start = time.perf_counter()
            self._reranker = self._factory()
            self.load_seconds = time.perf_counter() - start
            logger.info("%s: loaded in %.1f s", self.name, self.load_seconds)
        return self._reranker

    def rank(self, query: str, candidates: Sequence[Passage]) -> SystemResult:
        """Rerank all candidates; no explanations (``explain_top=0, compare_top=0``)."""
        reranker = self.reranker
        start = time.perf_counter()
        ranking = reranker.rerank(query, candidates, explain_top=0, compare_top=0, judge=False)
        return SystemResult(ranking, time.perf_counter() - start)

    def _check_explains(self) -> None:
        if not self.explains:
            raise InvalidInputError(
                f"System {self.name!r} was built without explanations; only systems whose student has an explainer "
                "(e.g. 'student', 'adapter:PATH') can be asked to explain."
            )

    def explain(self, query: str, candidates: Sequence[Passage], explain_top: int) -> Ranking:
        """Rerank with direct explanations of the top ``explain_top`` (``compare_top=0``).

        Returns:
            The :class:`r2r_agent.Ranking` of the top ``explain_top`` judgments (their passage texts included).

        Raises:
            InvalidInputError: when the system was not built to explain, or its reranker wrote no explanation (its
                student has no explainer).
        """
        self._check_explains()
        ranking = self.reranker.rerank(query, candidates, top_n=explain_top, explain_top=explain_top, compare_top=0)
        if ranking.judgments and not any(stage.stage == "explain" for stage in ranking.stages):
            raise InvalidInputError(
                f"System {self.name!r} declared it explains, but its reranker wrote no explanation (its student has "
                "no explainer); build it with one, or with explains=False."
            )
        return ranking

    def judge(self, query: str, candidates: Sequence[Passage]) -> Ranking:
        """Every candidate judged: ``top_n=None, judge=True, explain_top=0, compare_top=0`` (``min_relevance=None``).

        Raises:
            InvalidInputError: when the system was not built to judge, or its student has no calibrator for its scorer
                (its judgments would have no relevance or verdict).
        """
        from r2r_agent.stages import usable_calibrator

        if not self.judges:
            raise InvalidInputError(f"System {self.name!r} was built without judgments; only systems whose student has "
                                    "a calibrator for its scorer (e.g. 'student', 'minilm') can be asked to judge.")
        reranker = self.reranker
        if usable_calibrator(reranker.student) is None:
            raise InvalidInputError(
                f"System {self.name!r} declared it judges, but its student has no calibrator for its scorer "
                f"{reranker.student.scorer.name!r}; give it one (r2r_agent.calibration, `r2r calibrate`) or build it "
                "with judges=False."
            )
        return reranker.rerank(query, candidates, top_n=None, judge=True, explain_top=0, compare_top=0,
                               min_relevance=None)

    def explain_passages(self, query: str, passages: Sequence[Any]) -> Ranking:
        """Direct explanations of ``passages`` by the student's explainer alone, in the given order (no scoring):
        :meth:`r2r_agent.Reranker.explain` with ``compare_top=0``.

        Used to compare the student's explanations with a teacher's on the same passages
        (:mod:`r2r_agent.evals.teacher_agreement`).

        Returns:
            An :class:`r2r_agent.Ranking` with one judgment per passage in input order (``rank == input_rank``,
            score 0), each with its explanation, and the explanation stage's cost.

        Raises:
            InvalidInputError: when the system was not built to explain or its student has no explainer.
        """
        self._check_explains()
        return self.reranker.explain(query, passages, compare_top=0)


__all__ = ["RerankerSystem"]
