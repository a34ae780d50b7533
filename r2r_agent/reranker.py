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

from . import prompts, traces
from .errors import InvalidInputError
from .scorers import as_scores
from .student import Student
from .types import Judgment, Passage, Ranking, StageCost, to_passages

logger = logging.getLogger(__name__)

#: The :attr:`Judgment.stage` of a passage ordered by its scorer score mixed with its first-stage score.
FUSED_STAGE = "score+first_stage"


def _check_count(name: str, value: int | None, *, allow_zero: bool) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an int or None, got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidInputError(f"{name} must be {'>= 0' if allow_zero else '>= 1'}, got {value}")


def _check_weight(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise InvalidInputError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _first_stage_scores(items: Sequence[Passage]) -> list[float] | None:
    """Every passage's first-stage score, or ``None`` when one is missing or not finite (nothing to mix with)."""
    values = [p.score for p in items]
    if any(v is None or not math.isfinite(v) for v in values):
        return None
    return [float(v) for v in values if v is not None]


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
        mean = sum(values) / len(values)
        spread = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
        return [(v - mean) / spread if spread > 0 else 0.0 for v in values]

    return [(1.0 - weight) * a + weight * b for a, b in zip(standardised(first), standardised(second))]


class Reranker:
    """Reranks passages for a query and explains the order.

    The cascade: the student's scorer scores every passage (optionally mixed with the first-stage score each passage
    came with, ``first_stage_weight``); optionally its LM re-scorer re-scores the top ``rescore_top``; the explainer
    writes a direct explanation for each of the top ``explain_top`` and one comparison over the top ``compare_top``.
    Each stage's cost is recorded in :attr:`Ranking.stages`.

    Args:
        student: The models to run. ``None`` loads :meth:`Student.default` on first use.
        rescore_top: How many top passages the student's LM re-scorer re-scores (0 disables; needs a re-scorer).
        rescore_weight: How much the re-scorer counts there: ``1.0`` (default) orders the top by its score alone;
            between 0 and 1 orders it by ``(1 - w) * z(scorer) + w * z(re-scorer)``, each score standardised over
            the re-scored passages (:func:`mix_scores`), so neither model's scale dominates and a re-scorer that is
            weaker than the scorer alone can still add what it knows. With ``first_stage_weight`` the scorer's
            score here is its mix with the first-stage score.
        first_stage_weight: How much the retriever's own score (:attr:`Passage.score`, higher = more relevant)
            counts in the order of all passages: ``0.0`` (default) orders them by the scorer alone; between 0 and 1
            by ``w * z(first stage) + (1 - w) * z(scorer)``, each standardised over the call's passages
            (:func:`mix_scores`); ``1.0`` by the first-stage score alone. Worth it when the first stage is
            stronger than the scorer (e.g. SPLADE++ vs MiniLM: see docs/results.md). The mixed score becomes
            :attr:`Judgment.score`, with ``stage == "score+first_stage"``. A call where any passage has no finite
            first-stage score cannot be mixed: it is ordered by the scorer alone (``stage == "score"``) and a
            warning is logged (once per reranker; later ones at debug level). Distances (lower = closer) must be
            negated first.
        explain_top: Default number of passages to explain per call.
        compare_top: Default number of top passages the comparison explanation covers (< 2 disables it).
        student_factory: How to build the student when ``student`` is ``None`` (default :meth:`Student.default`).
        trace: Where to record a :class:`~r2r_agent.traces.TraceRecord` of every call: a trace sink (e.g.
            ``MemoryTraceSink()``), a JSON Lines file path, ``None`` (default: the file named by ``$R2R_TRACE_PATH``,
            if set) or ``False`` (off). A trace that cannot be written logs a warning, never fails the call.

    Example:
        >>> reranker = Reranker()                                        # doctest: +SKIP
        >>> ranking = reranker.rerank("how long do fleas live", passages, top_n=5)  # doctest: +SKIP
        >>> [(j.rank, j.original_rank, j.explanation) for j in ranking]  # doctest: +SKIP
    """

    def __init__(self, student: Student | None = None, *, rescore_top: int = 0, rescore_weight: float = 1.0,
                 first_stage_weight: float = 0.0, explain_top: int = 5, compare_top: int = 3,
                 student_factory: Callable[[], Student] | None = None,
                 trace: traces.TraceSink | str | os.PathLike[str] | bool | None = None) -> None:
        _check_count("rescore_top", rescore_top, allow_zero=True)
        _check_count("explain_top", explain_top, allow_zero=True)
        _check_count("compare_top", compare_top, allow_zero=True)
        self._student = student
        self._student_factory = student_factory or Student.default
        self.rescore_top = rescore_top
        self.rescore_weight = _check_weight("rescore_weight", rescore_weight)
        self.first_stage_weight = _check_weight("first_stage_weight", first_stage_weight)
        self._warned_unfused = False
        self.explain_top = explain_top
        self.compare_top = compare_top
        self._tracer = traces.Tracer.from_option(trace)
        # One model run at a time: torch already uses every core, and concurrent callers would only oversubscribe.
        self._lock = threading.Lock()

    @property
    def student(self) -> Student:
        """The student, loaded on first access."""
        if self._student is None:
            with self._lock:
                if self._student is None:
                    self._student = self._student_factory()
        return self._student

    def rerank(self, query: str, passages: Sequence[Any], top_n: int | None = None, *,
               explain_top: int | None = None, compare_top: int | None = None,
               first_stage_weight: float | None = None) -> Ranking:
        """Rerank ``passages`` for ``query``.

        Args:
            query: The search query (non-empty).
            passages: Strings, :class:`Passage` objects or mappings with a ``text`` (see
                :func:`r2r_agent.types.to_passage`). Never modified.
            top_n: How many judgments to return (all when ``None``; more than there are returns all).
            explain_top: How many of the top passages get a direct explanation (default: the reranker's).
            compare_top: How many top passages the comparison covers (default: the reranker's; < 2 disables).
            first_stage_weight: How much the passages' first-stage scores count (default: the reranker's; see
                the class docs).

        Returns:
            A :class:`Ranking`, best first. Ties keep the input order.

        Raises:
            InvalidInputError: empty or whitespace query, a negative/zero count or a weight outside [0, 1].
            InvalidPassageError: a passage that is not text.
        """
        if not isinstance(query, str):
            raise InvalidInputError(f"query must be a str, got {type(query).__name__}")
        if not query.strip():
            raise InvalidInputError("query is empty or whitespace; pass the user's search text")
        _check_count("top_n", top_n, allow_zero=False)
        _check_count("explain_top", explain_top, allow_zero=True)
        _check_count("compare_top", compare_top, allow_zero=True)
        weight = (self.first_stage_weight if first_stage_weight is None
                  else _check_weight("first_stage_weight", first_stage_weight))
        start = time.perf_counter()
        items = to_passages(passages)
        explain_top = self.explain_top if explain_top is None else explain_top
        compare_top = self.compare_top if compare_top is None else compare_top
        if not items:
            ranking = Ranking(query=query, prompt_version=prompts.PROMPT_VERSION)
        else:
            student = self.student
            with self._lock:
                ranking = self._rerank_locked(student, query, items, top_n, explain_top, compare_top, weight)
        if self._tracer is not None:
            self._tracer.record(ranking, items, top_n=top_n, seconds=time.perf_counter() - start)
        return ranking

    async def arerank(self, query: str, passages: Sequence[Any], top_n: int | None = None, *,
                      explain_top: int | None = None, compare_top: int | None = None,
                      first_stage_weight: float | None = None) -> Ranking:
        """:meth:`rerank` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.rerank, query, passages, top_n, explain_top=explain_top,
                                       compare_top=compare_top, first_stage_weight=first_stage_weight)

    def _fuse(self, scores: list[float], items: Sequence[Passage], weight: float) -> list[float] | None:
        """The scorer's scores mixed with the first-stage ones, or ``None`` (with a log line) when some are missing."""
        given = _first_stage_scores(items)
        if given is None:
            missing = sum(1 for p in items if p.score is None or not math.isfinite(p.score))
            # Once per reranker: a retriever that never returns scores would otherwise log on every call; the
            # judgments' stage ("score", not "score+first_stage") still says so on each call.
            log = logger.debug if self._warned_unfused else logger.warning
            self._warned_unfused = True
            log("first_stage_weight=%g not applied: %d of %d passages have no finite first-stage score "
                "(Passage.score); ordered by the scorer alone (stage 'score'). Pass every passage's retriever "
                "score, or set first_stage_weight=0.", weight, missing, len(items))
            return None
        # mix_scores weighs its second argument by ``weight``: the first-stage scores go second.
        return mix_scores(scores, given, weight)

    def _rerank_locked(self, student: Student, query: str, items: list[Passage], top_n: int | None,
                       explain_top: int, compare_top: int, first_stage_weight: float) -> Ranking:
        texts = [p.text for p in items]
        stages: list[StageCost] = []
        start = time.perf_counter()
        first = as_scores(student.scorer.score(query, texts), len(items), student.scorer.name)
        stages.append(StageCost("score", student.scorer.name, len(items), time.perf_counter() - start))
        scores = list(first.values)
        truncated = list(first.truncated)
        stage_of = ["score"] * len(items)
        if first_stage_weight > 0.0:  # 0 skips the mix entirely, so the default is today's order bit for bit
            fused = self._fuse(scores, items, first_stage_weight)
            if fused is not None:
                scores = fused
                stage_of = [FUSED_STAGE] * len(items)
        # Stable: ties keep the input order.
        order = sorted(range(len(items)), key=lambda i: (-scores[i], i))

        rescorer = student.rescorer
        k = min(self.rescore_top, len(items)) if rescorer is not None else 0
        if rescorer is not None and k > 0:
            head = order[:k]
            start = time.perf_counter()
            second = as_scores(rescorer.score(query, [texts[i] for i in head]), k, rescorer.name)
            stages.append(StageCost("rescore", rescorer.name, k, time.perf_counter() - start))
            mixed = mix_scores([scores[i] for i in head], list(second.values), self.rescore_weight)
            for i, value, cut in zip(head, mixed, second.truncated):
                scores[i] = value
                truncated[i] = truncated[i] or cut
                stage_of[i] = "rescore"
            first_stage_position = {i: position for position, i in enumerate(head)}
            order = sorted(head, key=lambda i: (-scores[i], first_stage_position[i])) + order[k:]

        n = len(items) if top_n is None else min(top_n, len(items))
        explanations: dict[int, str] = {}
        comparison = None
        explainer = student.explainer
        n_explain = min(explain_top, n) if explainer is not None else 0
        if explainer is not None and n_explain > 0:
            chosen = order[:n_explain]
            result = explainer.explain(query, [texts[i] for i in chosen])
            stages.append(StageCost("explain", explainer.name, n_explain, result.seconds, result.generated_tokens))
            for i, text, cut in zip(chosen, result.texts, result.truncated):
                explanations[i] = text
                truncated[i] = truncated[i] or cut
        n_compare = min(compare_top, n)
        if explainer is not None and n_compare >= 2:
            result = explainer.compare(query, [texts[i] for i in order[:n_compare]])
            stages.append(StageCost("compare", explainer.name, n_compare, result.seconds, result.generated_tokens))
            comparison = result.texts[0] if result.texts else None

        judgments = tuple(
            Judgment(id=items[i].id, text=items[i].text, score=scores[i], rank=rank, original_rank=i + 1,
                     original_score=items[i].score, explanation=explanations.get(i), truncated=truncated[i],
                     stage=stage_of[i], metadata=dict(items[i].metadata))
            for rank, i in enumerate(order[:n], start=1)
        )
        return Ranking(query=query, judgments=judgments, comparison=comparison, model=student.name,
                       adapter=student.adapter, num_candidates=len(items), stages=tuple(stages),
                       prompt_version=prompts.PROMPT_VERSION)
