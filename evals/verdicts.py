"""The verdict an explanation states about its passage (relevant / not relevant / unknown), and its agreement with
relevance judgments.

:func:`extract_verdict` finds verdict phrases; :func:`verdict_agreement` compares verdicts with qrels grades
(relevant when ``grade >= threshold``, 1 for TREC DL): *accuracy* over explanations with a known verdict and a
grade, plus *coverage*, the fraction of explanations whose verdict is known.

Example:
    >>> extract_verdict("The passage is not relevant: it does not mention fleas.")
    'not_relevant'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from r2r_agent.vocabulary import stated_verdict

Verdict = Literal["relevant", "not_relevant", "unknown"]

def extract_verdict(explanation: str | None) -> Verdict:
    """The verdict an explanation states about its passage.

    Negative phrases (``not relevant``, ``not directly relevant``, ``isn't relevant``, ``irrelevant``,
    ``unrelated``, ``does not answer/address/mention/...``, ``cannot answer``, ``fails to answer``,
    ``no information``, a leading ``No``) and positive phrases (``is relevant``, ``is highly relevant``,
    ``relevant to``, ``answers``, ``addresses``, ``does answer``, ``directly states``, a leading ``Yes`` or
    ``Relevant``) are found by the core's one reader (:func:`r2r_agent.vocabulary.verdict_phrases`); a
    positive phrase inside a negative one is ignored, and the earliest phrase decides ("The passage is relevant,
    though it does not mention X" is relevant). Graded wording such as "partially relevant" counts as relevant.

    Args:
        explanation: The explanation text (``None`` or blank gives ``"unknown"``).

    Returns:
        ``"relevant"``, ``"not_relevant"`` or ``"unknown"`` (no verdict phrase found).

    Example:
        >>> extract_verdict("The passage is highly relevant to the query.")
        'relevant'
        >>> extract_verdict("It doesn't answer the question.")
        'not_relevant'
        >>> extract_verdict("The passage talks about cats.")
        'unknown'
    """
    return stated_verdict(explanation) or "unknown"


@dataclass(frozen=True)
class VerdictAgreement:
    """Agreement of explanation verdicts with qrels grades.

    Attributes:
        n: Explanations considered (non-empty).
        n_known: Those with a known verdict (see :func:`extract_verdict`).
        n_judged: Those with a known verdict and a qrels grade for their passage (the accuracy's denominator).
        n_correct: Judged ones whose verdict matches ``grade >= threshold``.
        coverage: ``n_known / n`` in [0, 1]; ``None`` when ``n == 0``.
        accuracy: ``n_correct / n_judged`` in [0, 1]; ``None`` when ``n_judged == 0``.
        threshold: The grade from which a passage counts as relevant.
    """

    n: int
    n_known: int
    n_judged: int
    n_correct: int
    coverage: float | None
    accuracy: float | None
    threshold: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VerdictAgreement:
        """Build from :meth:`to_dict` output."""
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def verdict_agreement(items: Iterable[tuple[str | None, int | None]], threshold: int = 1) -> VerdictAgreement:
    """Accuracy and coverage of explanation verdicts against qrels grades.

    Args:
        items: ``(explanation, grade)`` pairs; ``grade`` is ``None`` for an unjudged passage. Blank or ``None``
            explanations are skipped.
        threshold: A passage is relevant when ``grade >= threshold`` (1 for TREC DL; 2 for a strict reading).

    Returns:
        A :class:`VerdictAgreement`.

    Example:
        >>> verdict_agreement([("It is relevant.", 2), ("Not relevant.", 2), ("About cats.", 0)]).accuracy
        0.5
    """
    n = n_known = n_judged = n_correct = 0
    for explanation, grade in items:
        if not explanation or not explanation.strip():
            continue
        n += 1
        verdict = extract_verdict(explanation)
        if verdict == "unknown":
            continue
        n_known += 1
        if grade is None:
            continue
        n_judged += 1
        n_correct += (verdict == "relevant") == (grade >= threshold)
    return VerdictAgreement(
        n=n,
        n_known=n_known,
        n_judged=n_judged,
        n_correct=n_correct,
        coverage=n_known / n if n else None,
        accuracy=n_correct / n_judged if n_judged else None,
        threshold=threshold,
    )


__all__ = ["Verdict", "VerdictAgreement", "extract_verdict", "verdict_agreement"]
