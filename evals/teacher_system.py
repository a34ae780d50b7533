"""The ``teacher`` system: a teacher LLM reranks the first-stage top listwise, as ``r2r teach`` annotates.

The windows, prompt and answer parsing are the training layer's (:func:`r2r_agent.training.annotate_query`), imported
when the first query is ranked: ``r2r_agent.evals`` imports no training code otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from r2r_agent import Passage, Ranking, StageCost
from r2r_agent.errors import InvalidInputError

from .checks import check_count
from .results import SystemResult

logger = logging.getLogger(__name__)


class TeacherSystem:
    """A teacher LLM reranks the first-stage top ``top`` listwise; the rest keeps the first-stage order.

    The head is ranked with sliding windows back to front (:func:`r2r_agent.training.annotate_query`, the same
    windows and prompt as ``r2r teach``). A window whose answer cannot be parsed after ``max_attempts`` calls keeps
    its passages in their current order and is counted in :attr:`SystemResult.failures`. Only the first
    ``query_limit`` queries of each dataset are ranked (see :func:`query_limit`).

    Args:
        teacher: Any :class:`r2r_agent.training.Teacher` (``name`` + ``complete(messages)``); its name is part of
            the cache key.
        top: Candidates the teacher reranks per query.
        window_size: Passages per teacher call.
        stride: How far each window moves towards the top (default: half the window, as RankGPT).
        max_attempts: Teacher calls per window at most.
        query_limit: Queries per dataset ranked (the first ones).
        name: The report name.
    """

    def __init__(self, teacher: Any, *, top: int = 20, window_size: int = 20, stride: int | None = None,
                 max_attempts: int = 2, query_limit: int = 10, name: str = "teacher") -> None:
        if stride is None:
            stride = max(1, window_size // 2) if isinstance(window_size, int) else window_size
        for label, value in (("top", top), ("window_size", window_size), ("stride", stride),
                             ("max_attempts", max_attempts), ("query_limit", query_limit)):
            check_count(f"TeacherSystem: {label}", value)
        if stride > window_size:
            raise InvalidInputError(f"TeacherSystem: stride ({stride}) must not exceed window_size ({window_size}); "
                                    "a larger stride would skip passages.")
        if not isinstance(getattr(teacher, "name", None), str) or not callable(getattr(teacher, "complete", None)):
            raise InvalidInputError(f"TeacherSystem needs a teacher with a name and complete(messages), got "
                                    f"{type(teacher).__name__}.")
        from r2r_agent.prompts import PROMPT_VERSION

        self.name = name
        self.teacher = teacher
        self.top = top
        self.window_size = window_size
        self.stride = stride
        self.max_attempts = max_attempts
        self.query_limit = query_limit
        # Everything that changes the teacher's answers; query_limit only picks queries, so it is not here.
        self.config: Mapping[str, Any] = {"teacher": teacher.name, "top": top, "window_size": window_size,
                                          "stride": stride, "max_attempts": max_attempts,
                                          "prompt_version": PROMPT_VERSION}
        self.load_seconds: float | None = None

    def rank(self, query: str, candidates: Sequence[Passage]) -> SystemResult:
        """Rerank the top ``top`` candidates with the teacher; the rest follow in first-stage order."""
        # Imported here: evals and training both sit above the core, and only this system needs training.
        from r2r_agent.training.annotate import AnnotationConfig, annotate_query

        head = list(candidates[: self.top])
        load = getattr(self.teacher, "load", None)
        if self.load_seconds is None and callable(load):  # a local model loads once, outside the per-query time
            started = time.perf_counter()
            load()
            self.load_seconds = time.perf_counter() - started
        config = AnnotationConfig(window_size=self.window_size, stride=self.stride, max_attempts=self.max_attempts,
                                  require_reasons=False)  # only the ranking is used here
        start = time.perf_counter()
        annotation = annotate_query(self.teacher, query, head, query_id="", config=config)
        seconds = time.perf_counter() - start
        order = list(annotation.order) + list(range(len(head), len(candidates)))
        shown = sum(len(w.positions) for w in annotation.windows)
        failures = len(annotation.failures)
        if failures:
            logger.warning("%s: %d of %d teacher windows failed for query %r (kept their order): %s", self.name,
                           failures, len(annotation.windows), query[:60], annotation.failures[0].error)
        # Scores n, n-1, ..., 1 by place: the teacher gives an order, not scores.
        ranking = Ranking.from_order(query, candidates, order, stage="teacher", model=self.teacher.name,
                                     stages=[StageCost("teacher", self.teacher.name, shown, seconds)])
        return SystemResult(ranking, seconds, failures=failures)


__all__ = ["TeacherSystem"]
