"""The cascade's stages, each taking and returning :class:`~r2r_agent.candidate.Candidate` records: score every
passage (:func:`score`), re-score the top (:func:`rescore`), judge the returned ones (evidence, relevance and verdict:
:func:`judge_candidates`), explain the top ones (:func:`explain`) and compare the first few (:func:`compare`).
:class:`~r2r_agent.Reranker` runs them in this order, with an :mod:`ordering <r2r_agent.orderings>` after scoring;
each returns what it found and what it cost (:class:`~r2r_agent.StageCost`).

What the stages need from the student's parts is declared: :class:`~r2r_agent.Scorer`,
:class:`~r2r_agent.explainer.ExplainerLike`, and :class:`ReadsPrefix` for a scorer that reads only the start of a
long passage (evidence is then looked for where it reads).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol, runtime_checkable

from .calibration import Calibrator
from .candidate import Candidate, Explained, Judged
from .evidence import best_window_spans, choose_evidence
from .explanations import compose, contradicts, evidence_explanation, grounded_comparison
from .grounding import guard
from .orderings import mix_scores
from .scorers import Scorer, as_scores
from .student import Student
from .types import Judgment, Passage, StageCost, model_text

logger = logging.getLogger(__name__)


@runtime_checkable
class ReadsPrefix(Protocol):
    """A scorer that reads only the start of a long passage says how much (e.g. :class:`~r2r_agent.EncoderScorer`):
    the judging stage then takes evidence from that part only. A scorer without it reads every passage whole."""

    def visible_chars(self, text: str) -> int:
        """How many leading characters of ``text`` it reads."""
        ...


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


def score(scorer: Scorer, query: str, items: Sequence[Passage]) -> tuple[list[Candidate], StageCost, bool]:
    """Every passage scored by ``scorer``, as candidates in input order; the stage's cost; whether it cut the query.

    Args:
        scorer: The student's scorer.
        query: The query as the models read it.
        items: The passages of the call.
    """
    texts = [model_text(p.text) for p in items]
    start = time.perf_counter()
    scored = as_scores(scorer.score(query, texts), len(items), scorer.name)
    cost = StageCost("score", scorer.name, len(items), time.perf_counter() - start, cache_hits=scored.cache_hits)
    windows = scored.windows or [[] for _ in items]
    candidates = [Candidate(i, p, text, value, value, truncated=cut, windows=tuple(own))
                  for i, (p, text, value, cut, own) in enumerate(zip(items, texts, scored.values, scored.truncated,
                                                                      windows))]
    return candidates, cost, scored.query_truncated


def rescore(rescorer: Scorer, query: str, head: Sequence[Candidate],
            weight: float) -> tuple[list[Candidate], StageCost, bool]:
    """``head`` re-scored by the LM ``rescorer``, mixed with their scores by ``weight``
    (:func:`~r2r_agent.orderings.mix_scores`), in the same order; the cost; whether it cut the query."""
    start = time.perf_counter()
    second = as_scores(rescorer.score(query, [c.text for c in head]), len(head), rescorer.name)
    cost = StageCost("rescore", rescorer.name, len(head), time.perf_counter() - start, cache_hits=second.cache_hits)
    mixed = mix_scores([c.score for c in head], list(second.values), weight)
    out = [replace(c, score=value, truncated=c.truncated or cut, stage="rescore")
           for c, value, cut in zip(head, mixed, second.truncated)]
    return out, cost, second.query_truncated


def judge(student: Student, query: str, texts: Sequence[str], originals: Sequence[str], indices: Sequence[int],
          scores: Sequence[float], windows: Sequence[Sequence[tuple[int, int, float]]] | None = None,
          ) -> tuple[dict[int, Judged], StageCost | None]:
    """Evidence (the best sentence, scored by the student's own scorer), relevance and verdict of ``indices``.

    Args:
        student: The student (its scorer scores the sentences; its calibrator gives relevance and verdicts).
        query: The query as the models read it.
        texts: Every passage as the models read it (same length as the original).
        originals: Every passage as given (evidence is cut from these, so it is an exact substring).
        indices: The passages to judge.
        scores: Every passage's score from the scorer alone (what the calibrator was fitted on).
        windows: Every passage's windows (``Scores.windows``) when the scorer read some in several: their sentences
            are judged from the best-scoring windows (:func:`~r2r_agent.evidence.best_window_spans`), so a
            20,000-character passage's evidence is a sentence, not a group of them.
    """
    if not indices:
        return {}, None
    start = time.perf_counter()
    scorer = student.scorer
    reads = scorer if isinstance(scorer, ReadsPrefix) else None
    spans = [best_window_spans(originals[i], windows[i] if windows else (),
                               reads.visible_chars(texts[i]) if reads else None) for i in indices]
    sentences = [texts[i][s:e] for i, own in zip(indices, spans) for s, e in own]
    scored = as_scores(scorer.score(query, sentences), len(sentences), scorer.name) if sentences else None
    sentence_scores = scored.values if scored else []
    calibrator = usable_calibrator(student)
    # With a calibrator, the evidence is the sentence most likely to answer on its own (its score and the query
    # words it holds); without one, the sentence the scorer scores highest.
    preference = None if calibrator is None else [
        calibrator.relevance(calibrator.feature_values(query, sentence, score, score))
        for sentence, score in zip(sentences, sentence_scores)]
    evidence = choose_evidence([originals[i] for i in indices], spans, sentence_scores, preference, query=query)
    best_scores = _best_per_passage(spans, sentence_scores)
    judged = {}
    for i, found, best in zip(indices, evidence, best_scores):
        relevance = verdict = None
        if calibrator is not None:
            relevance = calibrator.relevance(calibrator.feature_values(query, texts[i], scores[i], best))
            verdict = calibrator.verdict(relevance)
        judged[i] = Judged(relevance, verdict, found.text if found else None, found.span if found else None, best)
    return judged, StageCost("judge", scorer.name, len(sentences), time.perf_counter() - start,
                             cache_hits=scored.cache_hits if scored else 0)


def judge_candidates(student: Student, query: str,
                     candidates: Sequence[Candidate]) -> tuple[list[Candidate], StageCost | None]:
    """``candidates`` with what :func:`judge` finds about each (in the same order), and the stage's cost."""
    if not candidates:
        return [], None
    # judge() indexes every passage of the call; only these are read.
    texts = [c.text for c in candidates]
    found, cost = judge(student, query, texts, [c.passage.text for c in candidates], range(len(candidates)),
                        [c.raw_score for c in candidates], [c.windows for c in candidates])
    return [replace(c, judged=found[n]) for n, c in enumerate(candidates)], cost


def explain(student: Student, mode: str, query: str,
            candidates: Sequence[Candidate]) -> tuple[list[Candidate], StageCost | None, bool]:
    """``candidates`` explained: from the verdict and evidence alone (``mode == "evidence"`` or no explainer), or
    with the explainer LM's reason, guarded (``"full"``). Returns them, the stage cost, and whether the explainer
    cut the query."""
    if not candidates:
        return [], None, False
    explainer = student.explainer
    if mode == "evidence" or explainer is None:
        start = time.perf_counter()
        out = [replace(c, explained=Explained(evidence_explanation(c.judged.verdict, c.judged.evidence)))
               for c in candidates]
        return out, StageCost("explain", "evidence", len(candidates), time.perf_counter() - start), False
    result = explainer.explain(query, [c.text for c in candidates], verdicts=[c.judged.verdict for c in candidates],
                               evidence=[c.judged.evidence for c in candidates])
    cut = list(result.truncated) or [False] * len(candidates)
    out = []
    for c, reason, was_cut in zip(candidates, result.texts, cut):
        verdict = c.judged.verdict
        checked = guard(reason, c.passage.text, query)
        if not checked.text.strip() or contradicts(checked.text, verdict):
            explained = Explained(evidence_explanation(verdict, c.judged.evidence), checked.unsupported, was_cut)
        else:
            explained = Explained(compose(verdict, checked.text), checked.unsupported, was_cut, by="lm")
        out.append(replace(c, explained=explained))
    cost = StageCost("explain", explainer.name, len(candidates), result.seconds, result.generated_tokens)
    return out, cost, result.query_truncated


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


__all__ = ["Candidate", "Explained", "Judged", "ReadsPrefix", "compare", "explain", "judge", "judge_candidates",
           "rescore", "score", "usable_calibrator"]
