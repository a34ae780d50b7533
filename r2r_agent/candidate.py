"""One candidate's state as it goes through the cascade: :class:`Candidate`, with what each stage found about it
(:class:`Judged`, :class:`Explained`).

The stages (:mod:`r2r_agent.stages`) and the orderings (:mod:`r2r_agent.orderings`) take candidates and return new
ones (frozen: :func:`dataclasses.replace`), so everything known about a passage travels in one record, never in lists
kept in step by index.

Example:
    >>> from r2r_agent.types import Passage
    >>> c = Candidate(index=0, passage=Passage("Fleas live 2-3 months."), text="Fleas live 2-3 months.",
    ...               raw_score=0.7, score=0.7)
    >>> c.score, c.stage, c.input_rank
    (0.7, 'score', 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .types import Passage


@dataclass(frozen=True)
class Judged:
    """What the judging stage found about one passage."""

    relevance: float | None = None
    verdict: str | None = None
    evidence: str | None = None
    evidence_span: tuple[int, int] | None = None
    evidence_score: float | None = None  # the highest score of any of its sentences (a calibrator feature)


@dataclass(frozen=True)
class Explained:
    """One explanation and the unsupported claims the guard removed from it.

    Attributes:
        text: The explanation.
        unsupported: Claims the grounding guard removed.
        truncated: Whether the explainer cut the passage to its budget.
        by: What wrote it: ``"lm"`` (the explainer LM's reason, guarded) or ``"evidence"`` (the verdict and the
            best sentence, no LM: ``explain="evidence"``, no explainer, a reason the guard emptied or that
            contradicted the verdict, or a spent ``budget_ms``).
    """

    text: str
    unsupported: tuple[str, ...] = ()
    truncated: bool = False
    by: str = "evidence"


@dataclass(frozen=True)
class Candidate:
    """One passage of a call and everything the cascade knows about it so far.

    Attributes:
        index: Its position in the input (0-based).
        passage: The passage as given.
        text: The passage as the models read it (:func:`r2r_agent.types.model_text`).
        raw_score: The scorer's score alone (what the calibrator was fitted on).
        score: The value it is ordered by (the scorer's, mixed, fused or re-scored; see :attr:`stage`).
        stage: What gave :attr:`score` (:attr:`r2r_agent.Judgment.stage`).
        truncated: Whether a model cut the passage to its budget.
        judged: What the judging stage found (empty until it ran).
        explained: Its direct explanation, if it got one.
        windows: For a passage the scorer read in several windows, each window's ``(start, end, score)`` (offsets
            into :attr:`text`); the judging stage looks for evidence in the best ones.
    """

    index: int
    passage: Passage
    text: str
    raw_score: float
    score: float
    stage: str = "score"
    truncated: bool = False
    judged: Judged = field(default_factory=Judged)
    explained: Explained | None = None
    windows: tuple[tuple[int, int, float], ...] = ()

    @property
    def input_rank(self) -> int:
        """Its position in the input, from 1."""
        return self.index + 1


__all__ = ["Candidate", "Explained", "Judged"]
