"""Explanations anchored on the verdict and the evidence, and the comparison of the top passages.

Every explanation opens with its verdict in words (:data:`VERDICT_WORDS`), so what it says agrees with
:attr:`Judgment.verdict` by construction. What follows is either built from the evidence (``explain="evidence"``, no
LM: :func:`evidence_reason`) or written by the explainer LM, which was given the verdict and the evidence
(``explain="full"``), then checked by the grounding guard (:mod:`r2r_agent.grounding`): a reason left empty by the
guard, or one that contradicts the verdict, falls back to the evidence reason.

The comparison (:func:`grounded_comparison`) cites the top passages by rank and separates them by their verdicts,
relevance and evidence; it uses no LM, so it costs nothing and states nothing the passages do not.

Example:
    >>> evidence_reason("relevant", "Adult fleas live two to three months.")
    'the passage says "Adult fleas live two to three months."'
    >>> compose("relevant", "It gives the lifespan of an adult flea.")
    'Relevant: It gives the lifespan of an adult flea.'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .config import FIRST_STAGE_ORDER, FUSED_STAGE, RRF_STAGE
from .vocabulary import VERDICT_LABELS, VERDICT_STRENGTH, contradicts

#: How each verdict opens an explanation (the core's labels, :data:`r2r_agent.vocabulary.VERDICT_LABELS`).
VERDICT_WORDS = VERDICT_LABELS
#: The longest evidence quoted in full in an explanation, in words (longer quotes end with "...").
QUOTE_WORDS = 30


def quote(evidence: str, words: int = QUOTE_WORDS) -> str:
    """``evidence`` in quotation marks, cut to its first ``words`` words (with "...")."""
    parts = evidence.split()
    shown = " ".join(parts[:words]) + ("..." if len(parts) > words else "")
    return f'"{shown}"'


def evidence_reason(verdict: str | None, evidence: str | None) -> str:
    """The reason built from the verdict and the evidence alone (no LM)."""
    if not evidence:
        return {"relevant": "the passage answers the query.",
                "partial": "the passage is about the query's topic but does not answer it.",
                "not_relevant": "nothing in the passage answers the query."}.get(verdict or "", "no sentence to show.")
    if verdict == "relevant" or verdict is None:
        return f"the passage says {quote(evidence)}"
    if verdict == "partial":
        return f"the closest it comes to an answer is {quote(evidence)}"
    return f"nothing in it answers the query; its closest sentence is {quote(evidence)}"


def compose(verdict: str | None, reason: str) -> str:
    """``"<Verdict words>: <reason>"``; the reason alone when there is no verdict."""
    reason = reason.strip()
    return reason if verdict is None else f"{VERDICT_WORDS[verdict]}: {reason}"


def evidence_explanation(verdict: str | None, evidence: str | None) -> str:
    """The whole explanation built from the verdict and the evidence (``explain="evidence"``, or a fallback).

    Example:
        >>> evidence_explanation("not_relevant", None)
        'Not relevant: nothing in the passage answers the query.'
        >>> evidence_explanation(None, "Fleas jump.")
        'The passage says "Fleas jump."'
    """
    reason = evidence_reason(verdict, evidence)
    return compose(verdict, reason) if verdict else reason[:1].upper() + reason[1:]


def grounded_comparison(judgments: Sequence[Any]) -> str | None:
    """Why the top judgments (best first, at least two) are ordered as they are, from their verdicts, relevance and
    evidence: each is cited by rank (``[1]``, ``[2]``...) with what separates it from the one above.

    Returns ``None`` for fewer than two judgments.
    """
    if len(judgments) < 2:
        return None
    parts = []
    for j in judgments:
        tag = f"[{j.rank}]"
        shown = quote(j.evidence, 16) if j.evidence else "no sentence of it"
        if j.verdict == "relevant":
            parts.append(f"{tag} answers the query: {shown}")
        elif j.verdict == "partial":
            parts.append(f"{tag} is on the topic but only comes close: {shown}")
        elif j.verdict == "not_relevant":
            parts.append(f"{tag} does not answer it")
        else:
            parts.append(f"{tag} scores {j.score:.3f}: {shown}")
    return " ".join([*(p if p.endswith(('."', '!"', '?"', ".")) else p + "." for p in parts), _order_reason(judgments)])


#: What ordered a passage, by its :attr:`Judgment.stage` (anything else: its score).
_ORDERED_BY = {FUSED_STAGE: "the scorer's score mixed with the retriever's",
               RRF_STAGE: "a fusion of the retriever's order and the scorer's",
               FIRST_STAGE_ORDER: "the retriever's order"}


def _order_reason(judgments: Sequence[Any]) -> str:
    """The sentence that says what ordered ``judgments``, true of these judgments: the ranking comes from the scorer,
    while verdict and relevance also weigh the best sentence, so the two can disagree; then it says so."""
    orderer = _ORDERED_BY.get(getattr(judgments[0], "stage", None) or "", "the scorer's score")
    verdicts = [j.verdict for j in judgments]
    if any(v not in VERDICT_STRENGTH for v in verdicts):
        return f"They are ordered by {orderer}."
    strengths = [VERDICT_STRENGTH[v] for v in verdicts]
    relevances = [j.relevance for j in judgments]
    if len(set(verdicts)) == 1:
        if any(r is None for r in relevances):
            return f"All {len(judgments)} share the verdict; {orderer} orders them."
        shown = ", ".join(f"{r:.2f}" for r in relevances)
        if all(a >= b for a, b in zip(relevances, relevances[1:])):
            return f"All {len(judgments)} share the verdict; {orderer} orders them (relevance {shown})."
        return (f"All {len(judgments)} share the verdict; {orderer} orders them, although their relevance "
                f"({shown}), which also weighs the best sentence, would order them differently.")
    if all(a >= b for a, b in zip(strengths, strengths[1:])):
        return "Passages that answer come before those that only touch the topic, and those before the rest."
    above, below = next((a, b) for i, a in enumerate(judgments) for b in judgments[i + 1:]
                        if VERDICT_STRENGTH[a.verdict] < VERDICT_STRENGTH[b.verdict])
    return (f"The order is {orderer}: [{above.rank}] stays above [{below.rank}] although its verdict is weaker; "
            "the verdict also weighs how well the best sentence answers.")


__all__ = ["QUOTE_WORDS", "VERDICT_WORDS", "compose", "contradicts", "evidence_explanation", "evidence_reason",
           "grounded_comparison", "quote"]
