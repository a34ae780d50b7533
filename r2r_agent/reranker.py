"""The one entry point: :class:`Reranker`."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from . import aio, orderings, prompts, traces
from . import stages as stage
from .candidate import Candidate
from .config import RerankConfig
from .errors import InvalidInputError
from .orderings import FUSED_STAGE, RRF_K, mix_scores, reciprocal_rank_fusion
from .student import Student, shared_default_student
from .types import Judgment, Passage, Ranking, StageCost, model_text, to_passages

logger = logging.getLogger(__name__)

#: The :attr:`Judgment.stage` of a passage explained in the order given, not scored (:meth:`Reranker.explain`).
GIVEN_STAGE = "given"


def _first_stage_scores(items: Sequence[Passage]) -> list[float] | None:
    """Every passage's first-stage score, or ``None`` when one is missing or not finite (nothing to mix with)."""
    values = [p.first_stage_score for p in items]
    if any(v is None or not math.isfinite(v) for v in values):
        return None
    return [float(v) for v in values if v is not None]


_UNSET: Any = object()


class Reranker:
    """Reranks passages for a query and explains the order.

    The cascade (:mod:`r2r_agent.stages`, one :class:`~r2r_agent.candidate.Candidate` record per passage): the
    student's scorer scores every passage (optionally mixed with the first-stage score each passage came with,
    ``first_stage_weight``); the ``ordering`` (:mod:`r2r_agent.orderings`) orders them all (the verdict tiers judge
    every passage first); optionally its LM re-scorer re-scores the top ``rescore_top``; the returned passages are
    judged (evidence, relevance, verdict); the top ``explain_top`` get a direct explanation and the top
    ``compare_top`` one comparison (LM stages that ``budget_ms`` may skip). Each stage's cost is recorded in
    :attr:`Ranking.stages`.

    Every setting of a call lives in one :class:`~r2r_agent.RerankConfig` (see its fields for what each does). The
    reranker holds the defaults; each call may override any of them by keyword or pass a whole ``config``.

    Args:
        student: The models to run. ``None`` loads the embedded default on first use, shared by every reranker in
            the process that was also given none (:func:`r2r_agent.student.shared_default_student`).
        config: The default settings of every call (default: ``RerankConfig()``).
        student_factory: How to build the student when ``student`` is ``None`` (default: the shared default).
        trace: Where to record a :class:`~r2r_agent.traces.TraceRecord` of every call: a trace sink (e.g.
            ``MemoryTraceSink()``), a JSON Lines file path, ``None`` (default: the file named by ``$R2R_TRACE_PATH``,
            if set) or ``False`` (off). A trace that cannot be written logs a warning, never fails the call.
        **settings: Any :class:`~r2r_agent.RerankConfig` setting, applied over ``config`` (e.g. ``explain_top=3``,
            ``first_stage_weight=0.5``). Unknown names are refused.

    Notes:
        ``first_stage_weight``: the retriever's own score (:attr:`Passage.first_stage_score`, higher = more
        relevant) counts in the order of all passages as ``w * z(first stage) + (1 - w) * z(scorer)``, each
        standardised over the call's passages (:func:`mix_scores`). Worth it when the first stage is stronger than
        the scorer (e.g. SPLADE++ vs MiniLM: see docs/results.md). The mixed score becomes :attr:`Judgment.score`,
        with ``stage == "score+first_stage"``. A call where any passage has no finite first-stage score cannot be
        mixed: it is ordered by the scorer alone (``stage == "score"``) and a warning is logged (once per reranker;
        later ones at debug level). Distances (lower = closer) must be negated first.

    Example:
        >>> reranker = Reranker(explain_top=3)                           # doctest: +SKIP
        >>> ranking = reranker.rerank("how long do fleas live", passages, top_n=5)  # doctest: +SKIP
        >>> [(j.rank, j.input_rank, j.explanation) for j in ranking]    # doctest: +SKIP
    """

    def __init__(self, student: Student | None = None, *, config: RerankConfig | None = None,
                 student_factory: Callable[[], Student] | None = None,
                 trace: traces.TraceSink | str | os.PathLike[str] | bool | None = None, **settings: Any) -> None:
        if config is not None and not isinstance(config, RerankConfig):
            raise InvalidInputError(f"Reranker: config must be a RerankConfig, got {type(config).__name__}")
        RerankConfig.check_names(settings, "Reranker")
        self.config = (config or RerankConfig()).replace(**settings)
        self._student = student
        self._student_factory = student_factory or shared_default_student
        self._warned_unfused = False
        self._tracer = traces.Tracer.from_option(trace)
        self._load_lock = threading.Lock()

    @property
    def student(self) -> Student:
        """The student, loaded on first access."""
        if self._student is None:
            with self._load_lock:
                if self._student is None:
                    began = time.perf_counter()
                    self._student = self._student_factory()
                    if self._tracer is not None:  # the one-time load belongs to no stage: the trace says what it cost
                        self._tracer.loaded(time.perf_counter() - began)
        return self._student

    def settings(self, config: RerankConfig | None = None, top_n: Any = _UNSET, **settings: Any) -> RerankConfig:
        """The settings of one call: ``config`` (default: this reranker's) with ``settings`` (and ``top_n``) applied.

        Raises:
            InvalidInputError: for an unknown setting or a value out of range.
        """
        if config is not None and not isinstance(config, RerankConfig):
            raise InvalidInputError(f"config must be a RerankConfig, got {type(config).__name__}")
        RerankConfig.check_names(settings, "rerank()")
        base = config or self.config
        if top_n is not _UNSET:
            settings["top_n"] = top_n
        return base.override(**settings)

    def rerank(self, query: str, passages: Sequence[Any], top_n: int | None = _UNSET, *,
               config: RerankConfig | None = None, **settings: Any) -> Ranking:
        """Rerank ``passages`` for ``query``.

        Args:
            query: The search query (non-empty).
            passages: Strings, :class:`Passage` objects or mappings with a ``text`` (see
                :func:`r2r_agent.types.to_passage`). Never modified.
            top_n: How many judgments to return (``None``: all; default: the config's, which keeps all).
            config: The settings of this call (default: the reranker's).
            **settings: Any :class:`~r2r_agent.RerankConfig` setting for this call only, e.g. ``explain_top=0``.

        Returns:
            A :class:`Ranking`, best first. Ties keep the input order.

        Raises:
            InvalidInputError: empty or whitespace query, an unknown setting or a value out of range.
            InvalidPassageError: a passage that is not text.
        """
        call = self.settings(config, top_n, **settings)
        _check_query(query)
        start = time.perf_counter()
        items = to_passages(passages)
        if not items:
            ranking = Ranking(query=query, prompt_version=prompts.PROMPT_VERSION)
        else:
            student = self.student
            with aio.holding(student.lock):  # an arerank cancelled while it waits gives up its place
                ranking = self._rerank_locked(student, query, items, call, _deadline(start, call))
        self._trace(ranking, items, call.top_n, start, call)
        return ranking

    async def arerank(self, query: str, passages: Sequence[Any], top_n: int | None = _UNSET, *,
                      config: RerankConfig | None = None, **settings: Any) -> Ranking:
        """:meth:`rerank` in a worker thread, so the event loop keeps running. The student's async-native parts (a
        served student's ``ascore``/``aexplain``) run on this event loop (:mod:`r2r_agent.aio`).

        Cancelling it (``asyncio.wait_for`` timing out, a client that went away) stops the work in the thread at the
        next stage boundary, or while it still waits for the student's lock, and releases the lock: an abandoned call
        never runs its later stages (a stage already running, e.g. one batch of explanations, is finished first).
        """
        return await aio.run_in_thread(self.rerank, query, passages, top_n, config=config, **settings)

    def rerank_many(self, queries: Sequence[str], passages_lists: Sequence[Sequence[Any]], top_n: int | None = _UNSET,
                    *, config: RerankConfig | None = None, concurrency: int | None = None,
                    **settings: Any) -> list[Ranking]:
        """:meth:`rerank` for each query and its passages, up to ``concurrency`` queries at once (default: the
        student's :attr:`~r2r_agent.Student.concurrency`: 1 in-process, more for a served student, whose server then
        batches the requests of several queries). Rankings in input order; the first failure is raised."""
        aio.check_lists(queries, passages_lists)
        self.settings(config, top_n, **settings)  # a bad setting fails here, once, before any query runs
        return aio.run_many(lambda q, p: self.rerank(q, p, top_n, config=config, **settings), queries,
                            passages_lists, aio.concurrency_of(self.student, concurrency))

    async def arerank_many(self, queries: Sequence[str], passages_lists: Sequence[Sequence[Any]],
                           top_n: int | None = _UNSET, *, config: RerankConfig | None = None,
                           concurrency: int | None = None, **settings: Any) -> list[Ranking]:
        """:meth:`rerank_many` on the event loop: :meth:`arerank` for each query, up to ``concurrency`` at once."""
        aio.check_lists(queries, passages_lists)
        self.settings(config, top_n, **settings)
        student = await asyncio.to_thread(lambda: self.student)  # loading the default student takes seconds
        return await aio.arun_many(lambda q, p: self.arerank(q, p, top_n, config=config, **settings), queries,
                                   passages_lists, aio.concurrency_of(student, concurrency))

    def explain(self, query: str, passages: Sequence[Any], *, config: RerankConfig | None = None,
                **settings: Any) -> Ranking:
        """Judge and explain ``passages`` in the order given (they are scored, for their verdicts, but not reordered).

        Every passage gets a direct explanation (``explain_top`` and ``min_relevance`` do not apply: the caller chose
        them) and the first ``compare_top`` are compared (as in :meth:`rerank`). Use it to explain an order made
        elsewhere (a teacher's, another reranker's) or to compare students' explanations of the same passages.

        Returns:
            A :class:`Ranking` in input order (``rank == input_rank``), each judgment with its scorer score and
            ``stage == "given"``.

        Raises:
            InvalidInputError: as :meth:`rerank`, or when the student has no explainer.
        """
        call = self.settings(config, **settings)
        _check_query(query)
        start = time.perf_counter()
        items = to_passages(passages)
        student = self.student
        if student.explainer is None:
            raise InvalidInputError(f"Reranker.explain: the student {student.name!r} has no explainer; build it with "
                                    "one (e.g. Student.default())")
        with aio.holding(student.lock):
            aio.checkpoint("scoring")
            model_query = model_text(query)
            candidates, cost, query_cut = stage.score(student.scorer, model_query, items)
            given = [replace(c, stage=GIVEN_STAGE) for c in candidates]
            ranking = self._judged_ranking(student, call.replace(explain_top=len(items), min_relevance=None),
                                           query, model_query, given, len(items), [cost], query_cut,
                                           deadline=_deadline(start, call))
        self._trace(ranking, items, None, start, call)
        return ranking

    def _trace(self, ranking: Ranking, items: Sequence[Passage], top_n: int | None, start: float,
               call: RerankConfig) -> None:
        """Record the call, with the time a model that loads lazily (the default student's LM) spent loading in it:
        no stage's time holds that."""
        if self._tracer is None:
            return
        if self._student is not None and (lazily := self._student.take_load_seconds()):
            self._tracer.loaded(lazily)
        self._tracer.record(ranking, items, top_n=top_n, seconds=time.perf_counter() - start, config=call.to_dict())

    def _fuse(self, candidates: list[Candidate], items: Sequence[Passage], weight: float) -> list[Candidate]:
        """The candidates' scores mixed with their first-stage scores (stage ``"score+first_stage"``), or the
        candidates unchanged (with a log line) when some passage has none."""
        given = _first_stage_scores(items)
        if given is None:
            missing = sum(1 for p in items if p.first_stage_score is None or not math.isfinite(p.first_stage_score))
            # Once per reranker: a retriever that never returns scores would otherwise log on every call; the
            # judgments' stage ("score", not "score+first_stage") still says so on each call.
            log = logger.debug if self._warned_unfused else logger.warning
            self._warned_unfused = True
            log("first_stage_weight=%g not applied: %d of %d passages have no finite first-stage score "
                "(Passage.first_stage_score); ordered by the scorer alone (stage 'score'). Pass every passage's "
                "retriever score, or set first_stage_weight=0.", weight, missing, len(items))
            return candidates
        # mix_scores weighs its second argument by ``weight``: the first-stage scores go second.
        mixed = mix_scores([c.score for c in candidates], given, weight)
        return [replace(c, score=value, stage=FUSED_STAGE) for c, value in zip(candidates, mixed)]

    def _rerank_locked(self, student: Student, query: str, items: list[Passage], call: RerankConfig,
                       deadline: float | None = None) -> Ranking:
        # Between stages: an arerank cancelled by its caller stops here (aio.checkpoint), lock released on the way out.
        aio.checkpoint("scoring")
        model_query = model_text(query)
        candidates, cost, query_cut = stage.score(student.scorer, model_query, items)
        stages = [cost]
        if call.first_stage_weight > 0.0:  # 0 skips the mix entirely, so the default is today's order bit for bit
            candidates = self._fuse(candidates, items, call.first_stage_weight)
        ordering = orderings.get(call.ordering)
        if ordering.needs_verdicts:  # it orders by verdict: every candidate is judged first, not only those returned
            aio.checkpoint("judging")
            candidates, judging = stage.judge_candidates(student, model_query, candidates)
            stages.extend([judging] if judging else [])
        ordered = ordering.order(candidates)
        rescorer = student.rescorer
        k = min(call.rescore_top, len(items)) if rescorer is not None else 0
        if rescorer is not None and k > 0:
            aio.checkpoint("re-scoring")
            head, cost, cut = stage.rescore(rescorer, model_query, ordered[:k], call.rescore_weight)
            stages.append(cost)
            query_cut = query_cut or cut
            ordered = ordering.reorder_head(head) + ordered[k:]
        n = len(items) if call.top_n is None else min(call.top_n, len(items))
        if self._tracer is not None:  # every candidate's score, which the Ranking does not keep
            self._tracer.observe(ordered)
        return self._judged_ranking(student, call, query, model_query, ordered[:n], len(items), stages, query_cut,
                                    judged=ordering.needs_verdicts, deadline=deadline)

    def _judged_ranking(self, student: Student, call: RerankConfig, query: str, model_query: str,
                        head: list[Candidate], num_candidates: int, stages: list[StageCost],
                        query_cut: bool, judged: bool = False, deadline: float | None = None) -> Ranking:
        """Judge ``head`` (the passages to return, in order; unless already ``judged``), drop those under
        ``min_relevance``, explain and compare the top ones, and build the ranking. Past ``deadline`` (a
        ``time.perf_counter()`` value: ``budget_ms``), the LM stages are replaced by their no-LM forms."""
        answerable = None
        if call.judge or judged:
            if not judged:
                aio.checkpoint("judging")
                head, cost = stage.judge_candidates(student, model_query, head)
                stages.extend([cost] if cost else [])
            if stage.usable_calibrator(student) is not None:
                answerable = any(c.judged.verdict == "relevant" for c in head)
        if self._tracer is not None:  # the verdicts, also of the passages min_relevance drops next
            self._tracer.observe(head, student.calibrator)
        floor = call.min_relevance
        if floor is not None:
            head = [c for c in head if (relevance := c.judged.relevance) is None or relevance >= floor]
        aio.checkpoint("explaining")
        # budget_ms: an LM stage starts only while the budget lasts, and one that started is finished (see RerankConfig)
        explain_mode = "evidence" if _spent(deadline) else call.explain
        top, cost, explain_cut = stage.explain(student, explain_mode, model_query, head[: call.explain_top])
        stages.extend([cost] if cost else [])
        head = top + head[len(top):]
        judgments = tuple(_judgment(c, rank) for rank, c in enumerate(head, start=1))
        aio.checkpoint("comparing")
        compare_mode = "grounded" if _spent(deadline) else call.comparison
        comparison, cost = stage.compare(student, compare_mode, model_query, judgments[: call.compare_top])
        stages.extend([cost] if cost else [])
        return Ranking(query=query, judgments=judgments, comparison=comparison, model=student.name,
                       adapter=student.adapter, num_candidates=num_candidates, stages=tuple(stages),
                       prompt_version=prompts.PROMPT_VERSION, query_truncated=query_cut or explain_cut,
                       answerable=answerable)


def _judgment(c: Candidate, rank: int) -> Judgment:
    """The :class:`Judgment` of candidate ``c`` at ``rank``."""
    p, found, explained = c.passage, c.judged, c.explained
    return Judgment(id=p.id, text=p.text, score=c.score, rank=rank, input_rank=c.input_rank,
                    first_stage_score=p.first_stage_score, explanation=explained.text if explained else None,
                    truncated=c.truncated or (explained is not None and explained.truncated), stage=c.stage,
                    metadata=p.metadata, relevance=found.relevance, verdict=found.verdict, evidence=found.evidence,
                    evidence_span=found.evidence_span, unsupported=explained.unsupported if explained else (),
                    explained_by=explained.by if explained else None)


def _deadline(start: float, call: RerankConfig) -> float | None:
    """When ``call``'s ``budget_ms`` runs out (a ``time.perf_counter()`` value), counted from ``start``."""
    return None if call.budget_ms is None else start + call.budget_ms / 1000.0


def _spent(deadline: float | None) -> bool:
    """Whether the budget ending at ``deadline`` is spent (never without one)."""
    return deadline is not None and time.perf_counter() >= deadline


def _check_query(query: Any) -> None:
    if not isinstance(query, str):
        raise InvalidInputError(f"query must be a str, got {type(query).__name__}")
    if not query.strip():
        raise InvalidInputError("query is empty or whitespace; pass the user's search text")


__all__ = ["GIVEN_STAGE", "RRF_K", "Reranker", "mix_scores", "reciprocal_rank_fusion"]
