"""The cascade's stages after the order is known: judge the returned passages (evidence, relevance, verdict), explain
the top ones, compare the first few. :class:`~r2r_agent.Reranker` runs them in this order; each returns what it
found and what it cost (:class:`~r2r_agent.StageCost`).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .calibration import Calibrator
from .evidence import candidate_spans, choose_evidence
from .explanations import compose, contradicts, evidence_explanation, grounded_comparison
from .grounding import guard
from .scorers import as_scores
from .student import Student
from .types import Judgment, StageCost

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Judged:
    """What the judging stage found about one passage."""

    relevance: float | None = None
    verdict: str | None = None
    evidence: str | None = None
    evidence_span: tuple[int, int] | None = None
    evidence_score: float | None = None  # the highest score of any of its sentences (a calibrator feature)


_warned_calibrators: set[tuple[str, str]] = set()


def usable_calibrator(student: Student) -> Calibrator | None:
    """The student's calibrator when it was fitted for the student's scorer (a warning, once, when it was not)."""
    calibrator = student.calibrator
    if calibrator is None:
        return None
    if calibrator.scorer != student.scorer.name:
        key = (calibrator.scorer, student.scorer.name)
        if key not in _warned_calibrators:
            _warned_calibrators.add(key)
            logger.warning("the calibrator was fitted for the scorer %r, not %r: no relevance or verdicts (fit one "
                           "with `r2r calibrate`)", calibrator.scorer, student.scorer.name)
        return None
    return calibrator


def _best_per_passage(spans: Sequence[Sequence[tuple[int, int]]], scores: Sequence[float]) -> list[float | None]:
    """The highest sentence score of each passage (``None`` for one without sentences)."""
    out: list[float | None] = []
    position = 0
    for own in spans:
        chunk = scores[position : position + len(own)]
        position += len(own)
        out.append(max(chunk) if chunk else None)
    return out


def judge(student: Student, query: str, texts: Sequence[str], originals: Sequence[str], indices: Sequence[int],
          scores: Sequence[float]) -> tuple[dict[int, Judged], StageCost | None]:
    """Evidence (the best sentence, scored by the student's own scorer), relevance and verdict of ``indices``.

    Args:
        student: The student (its scorer scores the sentences; its calibrator gives relevance and verdicts).
        query: The query as the models read it.
        texts: Every passage as the models read it (same length as the original).
        originals: Every passage as given (evidence is cut from these, so it is an exact substring).
        indices: The passages to judge.
        scores: Every passage's score from the scorer alone (what the calibrator was fitted on).
    """
    if not indices:
        return {}, None
    start = time.perf_counter()
    scorer = student.scorer
    visible = getattr(scorer, "visible_chars", None)
    spans = [candidate_spans(originals[i], visible(texts[i]) if callable(visible) else None) for i in indices]
    sentences = [texts[i][s:e] for i, own in zip(indices, spans) for s, e in own]
    sentence_scores = as_scores(scorer.score(query, sentences), len(sentences), scorer.name).values if sentences \
        else []
    calibrator = usable_calibrator(student)
    # With a calibrator, the evidence is the sentence most likely to answer on its own (its score and the query
    # words it holds); without one, the sentence the scorer scores highest.
    preference = None if calibrator is None else [
        calibrator.relevance(calibrator.feature_values(query, sentence, score, score))
        for sentence, score in zip(sentences, sentence_scores)]
    evidence = choose_evidence([originals[i] for i in indices], spans, sentence_scores, preference)
    best_scores = _best_per_passage(spans, sentence_scores)
    judged = {}
    for i, found, best in zip(indices, evidence, best_scores):
        relevance = verdict = None
        if calibrator is not None:
            relevance = calibrator.relevance(calibrator.feature_values(query, texts[i], scores[i], best))
            verdict = calibrator.verdict(relevance)
        judged[i] = Judged(relevance, verdict, found.text if found else None, found.span if found else None, best)
    return judged, StageCost("judge", scorer.name, len(sentences), time.perf_counter() - start)


@dataclass(frozen=True)
class Explained:
    """One explanation and the unsupported claims the guard removed from it."""

    text: str
    unsupported: tuple[str, ...] = ()
    truncated: bool = False


def _takes_judgments(explainer: object) -> bool:
    """Whether ``explainer.explain`` accepts ``verdicts=`` and ``evidence=`` (every explainer of this package does)."""
    try:
        parameters = inspect.signature(explainer.explain).parameters  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return False
    return "verdicts" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def explain(student: Student, mode: str, query: str, texts: Sequence[str], originals: Sequence[str],
            indices: Sequence[int], judged: dict[int, Judged]) -> tuple[dict[int, Explained], StageCost | None, bool]:
    """Explanations of ``indices``: from the verdict and evidence alone (``mode == "evidence"`` or no explainer), or
    with the explainer LM's reason, guarded (``"full"``). Returns them, the stage cost, and whether the explainer
    cut the query."""
    if not indices:
        return {}, None, False
    explainer = student.explainer
    if mode == "evidence" or explainer is None:
        start = time.perf_counter()
        out = {i: Explained(evidence_explanation(judged[i].verdict, judged[i].evidence)) for i in indices}
        return out, StageCost("explain", "evidence", len(indices), time.perf_counter() - start), False
    passages = [texts[i] for i in indices]
    if _takes_judgments(explainer):
        result = explainer.explain(query, passages, verdicts=[judged[i].verdict for i in indices],
                                   evidence=[judged[i].evidence for i in indices])
    else:  # an explainer written for 0.1 judges by itself; its reason is still guarded and checked against the verdict
        result = explainer.explain(query, passages)
    out = {}
    cut = list(result.truncated) or [False] * len(indices)
    for i, reason, was_cut in zip(indices, result.texts, cut):
        verdict = judged[i].verdict
        checked = guard(reason, originals[i], query)
        if not checked.text.strip() or contradicts(checked.text, verdict):
            text = evidence_explanation(verdict, judged[i].evidence)
        else:
            text = compose(verdict, checked.text)
        out[i] = Explained(text, checked.unsupported, was_cut)
    cost = StageCost("explain", explainer.name, len(indices), result.seconds, result.generated_tokens)
    return out, cost, bool(getattr(result, "query_truncated", False))


def compare(student: Student, mode: str, query: str, top: Sequence[Judgment]) -> tuple[str | None, StageCost | None]:
    """The comparison of ``top`` (best first): grounded in their verdicts and evidence, or written by the LM from
    them and guarded (``mode == "lm"``), falling back to the grounded one."""
    if len(top) < 2:
        return None, None
    grounded = grounded_comparison(top)
    explainer = student.explainer
    if mode != "lm" or explainer is None:
        return grounded, StageCost("compare", "grounded", len(top), 0.0)
    result = explainer.compare_grounded(query, [j.evidence for j in top], [j.verdict for j in top])
    written = result.texts[0] if result.texts else ""
    checked = guard(written, "\n".join(j.text for j in top), query)
    text = checked.text if checked.text.strip() else grounded
    return text, StageCost("compare", explainer.name, len(top), result.seconds, result.generated_tokens)


__all__ = ["Explained", "Judged", "compare", "explain", "judge", "usable_calibrator"]
