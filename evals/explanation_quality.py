"""Explanation quality: pure, dependency-free measures of the student's direct explanations.

Four measures, each defined on :class:`r2r_agent.Ranking` objects (their judgments' ``text``, ``explanation`` and
``id``) plus TREC qrels ``{qid: {docid: grade}}``:

- **verdict agreement** (:func:`~r2r_agent.evals.verdicts.extract_verdict`,
  :func:`~r2r_agent.evals.verdicts.verdict_agreement`): the verdict an explanation states (relevant / not relevant /
  unknown) against the qrels grade (relevant when ``grade >= threshold``, 1 for TREC DL). Reported as *accuracy*
  over explanations with a known verdict and a qrels grade, plus *coverage*, the fraction of explanations whose
  verdict is known.
- **groundedness** (:func:`~r2r_agent.evals.text_measures.groundedness`): the fraction of an explanation's content
  words found in the passage, and the fraction found only in the query (the explanation restates the query instead
  of citing the passage).
- **specificity** (:func:`~r2r_agent.evals.text_measures.specificity`): ``1 - mean pairwise Jaccard similarity`` of
  the content-word sets of the explanations of different passages of the same query (near-duplicate explanations
  give a low value).
- **teacher agreement** (:func:`~r2r_agent.evals.text_measures.rouge_l_f1`,
  :func:`~r2r_agent.evals.text_measures.unigram_f1`): ROUGE-L F1 on tokens and F1 of the content-word bags between a
  student's explanation and a reference (teacher) explanation; measured on the held-out validation split of the
  training data by :mod:`r2r_agent.evals.teacher_agreement`.

:func:`explanation_quality` aggregates the first three over a run and keeps the worst cases for reports. The
measures live in :mod:`.verdicts` and :mod:`.text_measures` (tokenisation rules there); all are importable from here.

Example:
    >>> extract_verdict("The passage is not relevant: it does not mention fleas.")
    'not_relevant'
    >>> round(rouge_l_f1("fleas live two months", "adult fleas live about two months"), 3)
    0.8
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from r2r_agent import Judgment, Ranking
from r2r_agent.errors import InvalidInputError
from r2r_agent.explanations import VERDICT_WORDS

from .claims import quotes_evidence, unsupported_claims
from .text_measures import (
    META_WORDS,
    STOP_WORDS,
    Groundedness,
    content_words,
    groundedness,
    jaccard,
    rouge_l_f1,
    specificity,
    tokenize,
    unigram_f1,
)
from .verdicts import Verdict, VerdictAgreement, extract_verdict, verdict_agreement


@dataclass(frozen=True)
class ExplanationCase:
    """One explanation shown in a report as a worst case.

    Attributes:
        qid: The query id.
        query: The query text.
        passage_id: The passage's id (``None`` when it had none).
        explanation: The explanation text.
        value: The measure's value for this case (groundedness ``in_passage``), if any.
        note: What is wrong, e.g. ``"verdict relevant, grade 0"``.
    """

    qid: str
    query: str
    passage_id: str | None
    explanation: str
    value: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExplanationCase:
        """Build from :meth:`to_dict` output."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class DuplicatePair:
    """The two most similar explanations of one query (a specificity worst case).

    Attributes:
        qid: The query id.
        query: The query text.
        passage_ids: The two passages' ids.
        explanations: The two explanations.
        similarity: Their :func:`jaccard` similarity in [0, 1].
    """

    qid: str
    query: str
    passage_ids: tuple[str | None, str | None]
    explanations: tuple[str, str]
    similarity: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "qid": self.qid,
            "query": self.query,
            "passage_ids": list(self.passage_ids),
            "explanations": list(self.explanations),
            "similarity": self.similarity,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DuplicatePair:
        """Build from :meth:`to_dict` output."""
        a, b = data["passage_ids"]
        ea, eb = data["explanations"]
        return cls(data["qid"], data["query"], (a, b), (ea, eb), data["similarity"])


@dataclass(frozen=True)
class ExplanationQuality:
    """Explanation-quality measures over a run, with worst cases for reports.

    Attributes:
        n_queries: Rankings considered.
        n_judgments: Judgments in them.
        n_explained: Judgments with a non-blank explanation (the population of every measure).
        n_empty: Judgments whose explanation is an empty or blank string (``None`` is "not explained").
        verdict: Verdict agreement (see :func:`verdict_agreement`).
        groundedness: Mean :attr:`Groundedness.in_passage` over explanations with claim words, or ``None``.
        query_only: Mean :attr:`Groundedness.query_only`, or ``None``.
        unsupported: Mean :attr:`Groundedness.unsupported`, or ``None``.
        n_grounded: Explanations with claim words (the groundedness denominator).
        specificity: Mean per-query :func:`specificity` over queries with at least two explanations, or ``None``.
        n_specificity_queries: Those queries.
        lowest_groundedness: The least grounded explanations, lowest first.
        most_duplicated: Per query, the most similar pair of explanations, most similar first.
        wrong_verdicts: Explanations whose verdict disagrees with the qrels grade.
        n_with_verdict: Explained judgments with a :attr:`~r2r_agent.Judgment.verdict`.
        n_opens_with_verdict: Of those, explanations that open with their own verdict's words
            (``VERDICT_WORDS[verdict] + ":"``, :data:`r2r_agent.explanations.VERDICT_WORDS`).
        n_guard_removed: Explained judgments whose :attr:`~r2r_agent.Judgment.unsupported` is not empty (claims the
            core's grounding guard removed from the explanation).
        n_unsupported: Explanations that still hold a number or quoted phrase that neither the passage nor the query
            states, by this package's own check (:func:`r2r_agent.evals.claims.unsupported_claims`).
        n_with_evidence: Explained judgments with :attr:`~r2r_agent.Judgment.evidence`.
        n_quotes_evidence: Explanations that quote their judgment's evidence
            (:func:`r2r_agent.evals.claims.quotes_evidence`), over all explained judgments.
        unsupported_cases: The explanations failing the check, those with the most unsupported claims first.
    """

    n_queries: int
    n_judgments: int
    n_explained: int
    n_empty: int
    verdict: VerdictAgreement
    groundedness: float | None
    query_only: float | None
    unsupported: float | None
    n_grounded: int
    specificity: float | None
    n_specificity_queries: int
    lowest_groundedness: tuple[ExplanationCase, ...] = field(default=())
    most_duplicated: tuple[DuplicatePair, ...] = field(default=())
    wrong_verdicts: tuple[ExplanationCase, ...] = field(default=())
    n_with_verdict: int = 0
    n_opens_with_verdict: int = 0
    n_guard_removed: int = 0
    n_unsupported: int = 0
    n_with_evidence: int = 0
    n_quotes_evidence: int = 0
    unsupported_cases: tuple[ExplanationCase, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["verdict"] = self.verdict.to_dict()
        for key in ("lowest_groundedness", "most_duplicated", "wrong_verdicts", "unsupported_cases"):
            data[key] = [case.to_dict() for case in data[key]]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExplanationQuality:
        """Build from :meth:`to_dict` output."""
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["verdict"] = VerdictAgreement.from_dict(data["verdict"])
        values["lowest_groundedness"] = tuple(ExplanationCase.from_dict(c) for c in data.get("lowest_groundedness", ()))
        values["most_duplicated"] = tuple(DuplicatePair.from_dict(c) for c in data.get("most_duplicated", ()))
        values["wrong_verdicts"] = tuple(ExplanationCase.from_dict(c) for c in data.get("wrong_verdicts", ()))
        values["unsupported_cases"] = tuple(ExplanationCase.from_dict(c) for c in data.get("unsupported_cases", ()))
        return cls(**values)


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def explanation_quality(
    rankings: Mapping[str, Ranking],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    threshold: int = 1,
    worst_k: int = 5,
) -> ExplanationQuality:
    """Verdict agreement, groundedness and specificity of the direct explanations in a run.

    Only judgments with a non-blank ``explanation`` count; ``Ranking.comparison`` is not measured. A passage with
    no id, or one the qrels do not grade, has no grade: its verdict counts for coverage, not for accuracy.

    Args:
        rankings: ``{qid: Ranking}``, one ranking per query (the qid keys the qrels).
        qrels: ``{qid: {docid: grade}}`` (e.g. from :func:`r2r_agent.evals.read_trec_qrels` via
            :func:`r2r_agent.evals.evaluation.to_qrels`).
        threshold: A passage is relevant when ``grade >= threshold`` (1 for TREC DL).
        worst_k: How many worst cases of each kind to keep.

    Returns:
        An :class:`ExplanationQuality` (nothing in the inputs is modified).

    Raises:
        InvalidInputError: if ``rankings`` is not a mapping of query ids to :class:`~r2r_agent.Ranking`.
    """
    if not isinstance(rankings, Mapping) or not all(isinstance(r, Ranking) for r in rankings.values()):
        got = type(rankings).__name__ if not isinstance(rankings, Mapping) else "a mapping with non-Ranking values"
        raise InvalidInputError(
            f"explanation_quality expects rankings as {{qid: Ranking}}, got {got}. "
            "Key each Ranking by its query id so explanations can be matched with the qrels."
        )
    n_judgments = n_empty = 0
    pairs: list[tuple[str, int | None]] = []
    wrong: list[ExplanationCase] = []
    grounded: list[tuple[Groundedness, ExplanationCase]] = []
    spec_values: list[float] = []
    duplicates: list[DuplicatePair] = []
    trust = Counter[str]()
    unsupported: list[tuple[int, ExplanationCase]] = []
    for qid, ranking in rankings.items():
        grades = qrels.get(qid, {})
        explained = []
        for judgment in ranking.judgments:
            n_judgments += 1
            text = judgment.explanation
            if text is None:
                continue
            if not text.strip():
                n_empty += 1
                continue
            explained.append(judgment)
            grade = grades.get(judgment.id) if judgment.id is not None else None
            pairs.append((text, grade))
            verdict = extract_verdict(text)
            if verdict != "unknown" and grade is not None and (verdict == "relevant") != (grade >= threshold):
                note = f"verdict {verdict}, grade {grade}"
                wrong.append(ExplanationCase(qid, ranking.query, judgment.id, text, note=note))
            trust.update(_trust(judgment, text))
            claims = unsupported_claims(text, judgment.text, ranking.query)
            if claims:
                note = "not in the passage or query: " + ", ".join(claims)
                unsupported.append((len(claims), ExplanationCase(qid, ranking.query, judgment.id, text, note=note)))
            g = groundedness(text, judgment.text, ranking.query)
            if g is not None:
                note = f"in passage {g.in_passage:.2f}, query only {g.query_only:.2f}, unsupported {g.unsupported:.2f}"
                grounded.append((g, ExplanationCase(qid, ranking.query, judgment.id, text, g.in_passage, note)))
        value = specificity([j.explanation or "" for j in explained])
        if value is not None:
            spec_values.append(value)
            similarity, a, b = max(
                (
                    (jaccard(a.explanation or "", b.explanation or ""), a, b)
                    for a, b in itertools.combinations(explained, 2)
                ),
                key=lambda x: x[0],
            )
            duplicates.append(
                DuplicatePair(qid, ranking.query, (a.id, b.id), (a.explanation or "", b.explanation or ""), similarity)
            )
    lowest = sorted(grounded, key=lambda x: x[0].in_passage)[:worst_k]
    return ExplanationQuality(
        n_queries=len(rankings),
        n_judgments=n_judgments,
        n_explained=len(pairs),
        n_empty=n_empty,
        verdict=verdict_agreement(pairs, threshold),
        groundedness=_mean([g.in_passage for g, _ in grounded]),
        query_only=_mean([g.query_only for g, _ in grounded]),
        unsupported=_mean([g.unsupported for g, _ in grounded]),
        n_grounded=len(grounded),
        specificity=_mean(spec_values),
        n_specificity_queries=len(spec_values),
        lowest_groundedness=tuple(case for _, case in lowest),
        most_duplicated=tuple(sorted(duplicates, key=lambda d: -d.similarity)[:worst_k]),
        wrong_verdicts=tuple(wrong[:worst_k]),
        n_with_verdict=trust["verdict"],
        n_opens_with_verdict=trust["opens"],
        n_guard_removed=trust["guarded"],
        n_unsupported=len(unsupported),
        n_with_evidence=trust["evidence"],
        n_quotes_evidence=trust["quotes"],
        unsupported_cases=tuple(case for _, case in sorted(unsupported, key=lambda x: -x[0])[:worst_k]),
    )


def _trust(judgment: Judgment, text: str) -> list[str]:
    """What an explained judgment shows of the trust measures: a verdict, an opening with that verdict's words,
    claims the guard removed, evidence, a quote of the evidence."""
    shown = []
    if judgment.verdict is not None:
        shown.append("verdict")
        if text.startswith(VERDICT_WORDS.get(judgment.verdict, "\0") + ":"):
            shown.append("opens")
    if judgment.unsupported:
        shown.append("guarded")
    if judgment.evidence:
        shown.append("evidence")
    if quotes_evidence(text, judgment.evidence):
        shown.append("quotes")
    return shown


__all__ = ["META_WORDS", "STOP_WORDS", "DuplicatePair", "ExplanationCase", "ExplanationQuality", "Groundedness",
           "Verdict", "VerdictAgreement", "content_words", "explanation_quality", "extract_verdict", "groundedness",
           "jaccard", "rouge_l_f1", "specificity", "tokenize", "unigram_f1", "verdict_agreement"]
