"""Annotating candidates with a teacher: one window, or one query with sliding windows (a whole resumable run of
many queries: :mod:`~r2r_agent.training.annotation_run`).

The teacher always sees :func:`r2r_agent.prompts.teacher_listwise_messages`; its reply is parsed with
:func:`~r2r_agent.training.parsing.parse_teacher_answer`. A window whose reply cannot be parsed is asked again (up
to ``max_attempts`` calls); a window that still fails is recorded as a failure and leaves its passages in their
current order, so one bad reply never stops a run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from r2r_agent import prompts
from r2r_agent.errors import InvalidInputError
from r2r_agent.types import Passage, to_passages
from r2r_agent.validation import check_count

from .errors import ParseError
from .parsing import parse_teacher_answer
from .records import QueryAnnotation, WindowAnnotation
from .teacher import Teacher, TeacherAnswer
from .windows import sliding_windows, window_hash

if TYPE_CHECKING:
    from .cache import AnnotationCache

logger = logging.getLogger(__name__)


def annotate_window(teacher: Teacher, query: str, passages: Sequence[str], *, max_attempts: int = 2,
                    positions: Sequence[int] | None = None, require_reasons: bool = True,
                    min_ranked_fraction: float = 0.5) -> WindowAnnotation:
    """Ask ``teacher`` to rank and explain one window of passages.

    Args:
        teacher: The teacher.
        query: The query.
        passages: The window's passage texts, in the order to show them.
        max_attempts: Teacher calls at most (a reply that cannot be parsed, or a teacher error, is asked again).
        positions: The passages' indices in the query's candidate list (default ``0..len-1``).
        require_reasons: See :func:`~r2r_agent.training.parsing.parse_teacher_answer`.
        min_ranked_fraction: See :func:`~r2r_agent.training.parsing.parse_teacher_answer`.

    Returns:
        The window's annotation; ``error`` is set (and ``answer`` is ``None``) when every attempt failed. An empty
        window returns an empty answer without calling the teacher.
    """
    check_count("max_attempts", max_attempts)
    texts = list(passages)
    positions = tuple(range(len(texts))) if positions is None else tuple(positions)
    if len(positions) != len(texts):
        raise InvalidInputError(f"{len(positions)} positions for {len(texts)} passages")
    key = window_hash(query, texts)
    shown = WindowAnnotation(positions=positions, window_hash=key, teacher=teacher.name,
                             prompt_version=prompts.PROMPT_VERSION)
    if not texts:
        return replace(shown, answer=TeacherAnswer.empty())
    messages = prompts.teacher_listwise_messages(query, texts)
    start = time.perf_counter()
    response: str | None = None
    error = ""
    for attempt in range(1, max_attempts + 1):
        try:
            response = teacher.complete([dict(m) for m in messages])
        except Exception as exc:  # any backend failure is recorded, never fatal to the run
            error = f"{type(exc).__name__}: {exc}"
            logger.warning("teacher %s failed on window %s (attempt %d/%d): %s", teacher.name, key[:12], attempt,
                           max_attempts, error)
            continue
        try:
            answer = parse_teacher_answer(response, len(texts), require_reasons=require_reasons,
                                          min_ranked_fraction=min_ranked_fraction)
        except ParseError as exc:
            error = f"ParseError: {exc}"
            logger.info("unparseable teacher answer on window %s (attempt %d/%d): %s", key[:12], attempt,
                        max_attempts, exc)
            continue
        if answer.repairs:
            logger.debug("repaired teacher answer on window %s: %s", key[:12], "; ".join(answer.repairs))
        return replace(shown, answer=answer, response=response, attempts=attempt,
                       seconds=time.perf_counter() - start)
    return replace(shown, response=response, error=error, attempts=max_attempts, seconds=time.perf_counter() - start)


@dataclass(frozen=True)
class AnnotationConfig:
    """How a teacher annotates candidates.

    Attributes:
        window_size: Passages per teacher call.
        stride: How far each window moves towards the top (overlap = ``window_size - stride``).
        max_attempts: Teacher calls per window at most before it is recorded as a failure.
        max_candidates: Annotate only the first this many candidates of each query (``None``: all).
        workers: Queries annotated concurrently (windows of one query are sequential: each depends on the last).
        retry_failed: Whether a re-run asks the teacher again for windows that failed in an earlier run.
        require_reasons: Reject answers without any direct reason.
        min_ranked_fraction: Reject rankings that name fewer than this fraction of a window's passages.
        min_success_share: ``r2r teach`` fails (exit status 1, no annotations file) when fewer than this share of the
            windows succeeded, or none did; :class:`~r2r_agent.training.AnnotationRun` reports the share.
        interrupt_wait: Seconds Ctrl-C waits for the windows in flight (their answers are cached) before leaving
            them; a second Ctrl-C stops at once.
    """

    window_size: int = field(default=20, metadata={"help": "passages per teacher call"})
    stride: int = field(default=10, metadata={"help": "how far each window moves towards the top"})
    max_attempts: int = field(default=2, metadata={"help": "teacher calls per window before recording a failure"})
    max_candidates: int | None = field(default=None, metadata={"help": "annotate only the first N candidates"})
    workers: int = field(default=1, metadata={"help": "queries annotated concurrently"})
    retry_failed: bool = field(default=True, metadata={"help": "ask again for windows that failed before"})
    require_reasons: bool = field(default=True, metadata={"help": "reject answers without direct reasons"})
    min_ranked_fraction: float = field(default=0.5, metadata={"help": "minimum fraction of a window ranked"})
    min_success_share: float = field(default=0.5, metadata={
        "help": "fail (exit status 1, no annotations file) when fewer than this share of the windows succeeded, or "
                "none did"})
    interrupt_wait: float = field(default=2.0, metadata={
        "help": "seconds Ctrl-C waits for the windows in flight (their answers are cached) before leaving them"})

    def __post_init__(self) -> None:
        sliding_windows(1, self.window_size, self.stride)  # validates size and stride, naming them
        for name in ("max_attempts", "workers"):
            check_count(f"AnnotationConfig.{name}", getattr(self, name))
        if self.max_candidates is not None and self.max_candidates < 1:
            raise InvalidInputError(f"AnnotationConfig.max_candidates must be >= 1 or None, got {self.max_candidates}")
        for name in ("min_ranked_fraction", "min_success_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidInputError(f"AnnotationConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.interrupt_wait < 0:
            raise InvalidInputError(f"AnnotationConfig.interrupt_wait must be >= 0 seconds, got {self.interrupt_wait}")


@dataclass(frozen=True)
class AnnotationRequest:
    """One query to annotate: its id, text and candidates (any form :func:`r2r_agent.types.to_passages` takes).

    Attributes:
        labels: Optional relevance labels, one per candidate in input order, carried into the annotation.
    """

    query_id: str
    query: str
    candidates: Sequence[Any]
    labels: Sequence[int | None] = ()


def annotate_query(teacher: Teacher, query: str, candidates: Sequence[Any], *, query_id: str,
                   config: AnnotationConfig | None = None, cache: AnnotationCache | None = None,
                   labels: Sequence[int | None] = (), on_window: Any = None) -> QueryAnnotation:
    """Rank and explain one query's candidates with sliding windows, back to front.

    Args:
        teacher: The teacher.
        query: The query text.
        candidates: The candidates in first-stage order (strings, :class:`~r2r_agent.Passage` or mappings).
        query_id: The query's id (part of the cache key).
        config: Window and retry settings.
        cache: Where answers are looked up and stored (see :class:`~r2r_agent.training.cache.AnnotationCache`).
        labels: Optional relevance labels per candidate.
        on_window: Called as ``on_window(window, cached)`` after each window (used for progress).

    Returns:
        The annotation; windows that failed are recorded in it and leave their passages in place.
    """
    config = config or AnnotationConfig()
    passages: list[Passage] = to_passages(candidates)
    if config.max_candidates is not None:
        passages = passages[: config.max_candidates]
        labels = tuple(labels)[: config.max_candidates]
    order = list(range(len(passages)))
    windows: list[WindowAnnotation] = []
    for span in sliding_windows(len(passages), config.window_size, config.stride):
        positions = tuple(order[span.start : span.stop])
        texts = [passages[i].text for i in positions]
        key = window_hash(query, texts)
        window = cache.get(teacher.name, prompts.PROMPT_VERSION, query_id, key) if cache is not None else None
        cached = window is not None and (window.ok or not config.retry_failed)
        if cached and window is not None:
            window = replace(window, positions=positions)
        else:
            window = annotate_window(teacher, query, texts, max_attempts=config.max_attempts, positions=positions,
                                     require_reasons=config.require_reasons,
                                     min_ranked_fraction=config.min_ranked_fraction)
            if cache is not None:
                cache.put(query_id, window)
        windows.append(window)
        order[span.start : span.stop] = window.ranked_positions()
        if on_window is not None:
            on_window(window, cached)
    return QueryAnnotation(query_id=query_id, query=query, candidates=tuple(passages), windows=tuple(windows),
                           order=tuple(order), labels=tuple(labels), source="teacher")


__all__ = ["AnnotationConfig", "AnnotationRequest", "annotate_query", "annotate_window"]
