"""The one entry point: :class:`Reranker`."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import aio, prompts, traces
from . import stages as stage
from .config import FIRST_STAGE_ORDER, FUSED_STAGE, RRF_STAGE, RerankConfig
from .errors import InvalidInputError
from .scorers import as_scores
from .student import Student, shared_default_student
from .types import Judgment, Passage, Ranking, StageCost, model_text, to_passages

logger = logging.getLogger(__name__)

#: Reciprocal-rank fusion's constant (Cormack, Clarke and Buettcher, 2009), not tuned here.
RRF_K = 60
#: The :attr:`Judgment.stage` of a passage explained in the order given, not scored (:meth:`Reranker.explain`).
GIVEN_STAGE = "given"


def _first_stage_scores(items: Sequence[Passage]) -> list[float] | None:
    """Every passage's first-stage score, or ``None`` when one is missing or not finite (nothing to mix with)."""
    values = [p.first_stage_score for p in items]
    if any(v is None or not math.isfinite(v) for v in values):
        return None
    return [float(v) for v in values if v is not None]


def reciprocal_rank_fusion(scores: Sequence[float], k: int = RRF_K) -> list[float]:
    """``1 / (k + input rank) + 1 / (k + scorer rank)`` per passage (ranks from 1; the scorer's ties keep the input
    order): the input order is the retriever's, so no retriever score is needed.

    Example:
        >>> [round(v, 5) for v in reciprocal_rank_fusion([0.1, 0.9, 0.5])]
        [0.03227, 0.03252, 0.032]
    """
    by_score = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    scorer_rank = {i: rank for rank, i in enumerate(by_score, start=1)}
    return [1.0 / (k + i + 1) + 1.0 / (k + scorer_rank[i]) for i in range(len(scores))]


#: Beyond this magnitude (or below its inverse) :func:`mix_scores` rescales before squaring.
_SCALE_LIMIT = 1e100


def mix_scores(first: Sequence[float], second: Sequence[float], weight: float) -> list[float]:
    """``(1 - weight) * z(first) + weight * z(second)``, z-scores over the list; ``weight == 1`` returns ``second``.

    Standardising makes a cosine in [-1, 1] and a log-odds in the tens comparable; a constant list contributes 0.

    Example:
        >>> mix_scores([0.9, 0.5, 0.1], [0.0, 2.0, 1.0], 0.5)
        [0.0, 0.6123724356957945, -0.6123724356957945]
    """
    if weight >= 1.0:
        return [float(v) for v in second]

    def standardised(values: Sequence[float]) -> list[float]:
        # Huge (or tiny) scores are scaled first: z-scores do not depend on the scale, and squares of 1e200 overflow.
        # Ordinary ones are not touched, so their mixed scores stay exactly what they always were.
        scale = max((abs(v) for v in values), default=0.0)
        if scale > _SCALE_LIMIT or 0.0 < scale < 1.0 / _SCALE_LIMIT:
            values = [v / scale for v in values]
        mean = sum(values) / len(values)
        spread = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
        return [(v - mean) / spread if spread > 0 else 0.0 for v in values]

    return [(1.0 - weight) * a + weight * b for a, b in zip(standardised(first), standardised(second))]


_UNSET: Any = object()


class Reranker:
    """Reranks passages for a query and explains the order.

    The cascade: the student's scorer scores every passage (optionally mixed with the first-stage score each passage
    came with, ``first_stage_weight``); optionally its LM re-scorer re-scores the top ``rescore_top``; the explainer
    writes a direct explanation for each of the top ``explain_top`` and one comparison over the top ``compare_top``.
    Each stage's cost is recorded in :attr:`Ranking.stages`.

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
            with student.lock:
                ranking = self._rerank_locked(student, query, items, call)
        if self._tracer is not None:
            self._tracer.record(ranking, items, top_n=call.top_n, seconds=time.perf_counter() - start,
                                config=call.to_dict())
        return ranking

    async def arerank(self, query: str, passages: Sequence[Any], top_n: int | None = _UNSET, *,
                      config: RerankConfig | None = None, **settings: Any) -> Ranking:
        """:meth:`rerank` in a worker thread, so the event loop keeps running. The student's async-native parts (a
        served student's ``ascore``/``aexplain``) run on this event loop (:mod:`r2r_agent.aio`)."""
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
        with student.lock:
            texts = [model_text(p.text) for p in items]
            model_query = model_text(query)
            begin = time.perf_counter()
            scored = as_scores(student.scorer.score(model_query, texts), len(items), student.scorer.name)
            stages = [StageCost("score", student.scorer.name, len(items), time.perf_counter() - begin)]
            everything = list(range(len(items)))
            ranking = self._judged_ranking(student, call.replace(explain_top=len(items), min_relevance=None),
                                           query, model_query, items, texts, everything, scored.values,
                                           scored.values, [GIVEN_STAGE] * len(items), scored.truncated, stages,
                                           scored.query_truncated)
        if self._tracer is not None:
            self._tracer.record(ranking, items, top_n=None, seconds=time.perf_counter() - start,
                                config=call.to_dict())
        return ranking

    def _fuse(self, scores: list[float], items: Sequence[Passage], weight: float) -> list[float] | None:
        """The scorer's scores mixed with the first-stage ones, or ``None`` (with a log line) when some are missing."""
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
            return None
        # mix_scores weighs its second argument by ``weight``: the first-stage scores go second.
        return mix_scores(scores, given, weight)

    def _rerank_locked(self, student: Student, query: str, items: list[Passage], call: RerankConfig) -> Ranking:
        texts = [model_text(p.text) for p in items]
        model_query = model_text(query)
        stages: list[StageCost] = []
        start = time.perf_counter()
        first = as_scores(student.scorer.score(model_query, texts), len(items), student.scorer.name)
        query_cut = first.query_truncated
        stages.append(StageCost("score", student.scorer.name, len(items), time.perf_counter() - start))
        scores = list(first.values)
        truncated = list(first.truncated)
        stage_of = ["score"] * len(items)
        if call.first_stage_weight > 0.0:  # 0 skips the mix entirely, so the default is today's order bit for bit
            fused = self._fuse(scores, items, call.first_stage_weight)
            if fused is not None:
                scores = fused
                stage_of = [FUSED_STAGE] * len(items)
        if call.ordering == "rrf":
            scores = reciprocal_rank_fusion(scores)
            stage_of = [RRF_STAGE] * len(items)
        # Stable: ties keep the input order.
        order = sorted(range(len(items)), key=lambda i: (-scores[i], i))
        if call.ordering == "first_stage":  # the retriever's order is kept; the scores say what the student thinks
            order = list(range(len(items)))
            stage_of = [FIRST_STAGE_ORDER] * len(items)

        rescorer = student.rescorer
        k = min(call.rescore_top, len(items)) if rescorer is not None else 0
        if rescorer is not None and k > 0:
            head = order[:k]
            start = time.perf_counter()
            second = as_scores(rescorer.score(model_query, [texts[i] for i in head]), k, rescorer.name)
            query_cut = query_cut or second.query_truncated
            stages.append(StageCost("rescore", rescorer.name, k, time.perf_counter() - start))
            mixed = mix_scores([scores[i] for i in head], list(second.values), call.rescore_weight)
            for i, value, cut in zip(head, mixed, second.truncated):
                scores[i] = value
                truncated[i] = truncated[i] or cut
                stage_of[i] = "rescore"
            first_stage_position = {i: position for position, i in enumerate(head)}
            order = sorted(head, key=lambda i: (-scores[i], first_stage_position[i])) + order[k:]

        n = len(items) if call.top_n is None else min(call.top_n, len(items))
        return self._judged_ranking(student, call, query, model_query, items, texts, order[:n], first.values,
                                    scores, stage_of, truncated, stages, query_cut)

    def _judged_ranking(self, student: Student, call: RerankConfig, query: str, model_query: str,
                        items: Sequence[Passage], texts: Sequence[str], head: Sequence[int],
                        raw_scores: Sequence[float], scores: Sequence[float], stage_of: Sequence[str],
                        truncated: Sequence[bool], stages: list[StageCost], query_cut: bool) -> Ranking:
        """Judge ``head`` (the passages to return, in order), drop those under ``min_relevance``, explain and compare
        the top ones, and build the ranking."""
        originals = [p.text for p in items]
        judged: dict[int, stage.Judged] = {i: stage.Judged() for i in head}
        answerable = None
        if call.judge:
            judged, cost = stage.judge(student, model_query, texts, originals, head, raw_scores)
            stages.extend([cost] if cost else [])
            if stage.usable_calibrator(student) is not None:
                answerable = any(judged[i].verdict == "relevant" for i in head)
        floor = call.min_relevance
        if floor is not None:
            head = [i for i in head if (relevance := judged[i].relevance) is None or relevance >= floor]
        explained, cost, explain_cut = stage.explain(student, call.explain, model_query, texts, originals,
                                                     head[: call.explain_top], judged)
        stages.extend([cost] if cost else [])
        judgments = tuple(
            Judgment(id=items[i].id, text=items[i].text, score=scores[i], rank=rank, input_rank=i + 1,
                     first_stage_score=items[i].first_stage_score,
                     explanation=explained[i].text if i in explained else None,
                     truncated=truncated[i] or (i in explained and explained[i].truncated), stage=stage_of[i],
                     metadata=items[i].metadata, relevance=judged[i].relevance, verdict=judged[i].verdict,
                     evidence=judged[i].evidence, evidence_span=judged[i].evidence_span,
                     unsupported=explained[i].unsupported if i in explained else ())
            for rank, i in enumerate(head, start=1)
        )
        comparison, cost = stage.compare(student, call.comparison, model_query, judgments[: call.compare_top])
        stages.extend([cost] if cost else [])
        return Ranking(query=query, judgments=judgments, comparison=comparison, model=student.name,
                       adapter=student.adapter, num_candidates=len(items), stages=tuple(stages),
                       prompt_version=prompts.PROMPT_VERSION, query_truncated=query_cut or explain_cut,
                       answerable=answerable)


def _check_query(query: Any) -> None:
    if not isinstance(query, str):
        raise InvalidInputError(f"query must be a str, got {type(query).__name__}")
    if not query.strip():
        raise InvalidInputError("query is empty or whitespace; pass the user's search text")
