"""How a rerank orders all its passages: small strategies, picked by name with ``RerankConfig.ordering``.

An :class:`Ordering` takes every :class:`~r2r_agent.candidate.Candidate` of a call (each with its score: the scorer's,
or mixed with the first-stage score by ``first_stage_weight``) and returns them best first, with the value and the
stage (:attr:`Judgment.stage <r2r_agent.Judgment.stage>`) they are ordered by. :meth:`Ordering.reorder_head` says how
the top of that order is re-sorted once the LM re-scorer has re-scored it (``rescore_top``).

The orderings live in one :class:`~r2r_agent.registry.Registry`, :data:`REGISTRY`; ``RerankConfig.ordering``
accepts exactly its names. A new ordering is one subclass, registered with :func:`register`.

Example:
    >>> names()
    ('scorer', 'rrf', 'first_stage', 'tiers', 'tiers_rrf')
    >>> get("rrf").stage
    'score+rrf'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .candidate import Candidate
from .registry import Registry
from .vocabulary import VERDICTS

#: Reciprocal-rank fusion's constant (Cormack, Clarke and Buettcher, 2009), not tuned here.
RRF_K = 60
#: The :attr:`Judgment.stage` of a passage ordered by its scorer score mixed with its first-stage score.
FUSED_STAGE = "score+first_stage"
#: The :attr:`Judgment.stage` of a passage ordered by reciprocal-rank fusion of the input order and the scorer's.
RRF_STAGE = "score+rrf"
#: The :attr:`Judgment.stage` of a passage left in the retriever's order (``ordering="first_stage"``).
FIRST_STAGE_ORDER = "first_stage_order"
#: The :attr:`Judgment.stage` of a passage ordered by its verdict's tier, then the retriever's order (``"tiers"``).
TIERS_FIRST_STAGE = "verdict+first_stage_order"
#: The :attr:`Judgment.stage` of a passage ordered by its verdict's tier, then fusion (``"tiers_rrf"``).
TIERS_RRF = "verdict+rrf"


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


class Ordering:
    """One way to order all passages of a call (subclass it and :func:`register` an instance).

    Attributes:
        name: The ``RerankConfig.ordering`` value that picks it.
        description: One line for ``--help`` and errors.
        needs_verdicts: Whether it orders by the verdicts: then the judging stage runs on every candidate before
            :meth:`order` (the verdicts are in each candidate's ``judged``), not only on the returned ones.
    """

    name: str = ""
    description: str = ""
    needs_verdicts: bool = False

    def order(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        """``candidates`` (in input order) best first, each with the score and stage it is ordered by."""
        raise NotImplementedError

    def reorder_head(self, head: Sequence[Candidate]) -> list[Candidate]:
        """The top of the order after re-scoring (each with its new score): by score, ties keeping their order."""
        position = {c.index: p for p, c in enumerate(head)}
        return sorted(head, key=lambda c: (-c.score, position[c.index]))


class ByScore(Ordering):
    """By the student's score (mixed with the first-stage score when ``first_stage_weight > 0``); ties keep the
    input order."""

    name = "scorer"
    description = "the student's score, mixed with the first-stage score by first_stage_weight"

    def order(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        return sorted(candidates, key=lambda c: (-c.score, c.index))


class ReciprocalRankFusion(Ordering):
    """By reciprocal-rank fusion of the input order (the retriever's) and the score's order; needs no retriever
    score.

    Fusion ties are common (input rank 1 and scorer rank 4 fuse to exactly what input rank 4 and scorer rank 1 do):
    a tie goes to the passage the scorer ranks higher, then to the input order. Breaking it by the input order alone
    put a passage the student judged not relevant first on a four-passage list (issue 20).
    """

    name = "rrf"
    description = "reciprocal-rank fusion of the input order and the scorer's"
    stage = RRF_STAGE

    def order(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        scores = [c.score for c in candidates]
        fused = reciprocal_rank_fusion(scores)
        by_score = sorted(range(len(scores)), key=lambda n: (-scores[n], n))
        scorer_rank = {candidates[n].index: rank for rank, n in enumerate(by_score)}
        out = [replace(c, score=value, stage=self.stage) for c, value in zip(candidates, fused)]
        return sorted(out, key=lambda c: (-c.score, scorer_rank[c.index], c.index))


class RetrieverOrder(Ordering):
    """The input order (the retriever's) is kept, also after re-scoring; the scores say what the student thinks."""

    name = "first_stage"
    description = "keep the input order: judge and explain only"
    stage = FIRST_STAGE_ORDER

    def order(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        return [replace(c, stage=self.stage) for c in sorted(candidates, key=lambda c: c.index)]

    def reorder_head(self, head: Sequence[Candidate]) -> list[Candidate]:
        return list(head)


#: Each verdict's tier, best first; a passage without a verdict comes after every judged one.
_TIER: dict[str | None, int] = {verdict: tier for tier, verdict in enumerate(VERDICTS)}


class VerdictTiers(Ordering):
    """Every ``relevant`` passage before every ``partial`` one before every ``not_relevant`` one, and within a tier
    the order of another ordering (``within``). Needs the verdicts of every candidate (the judging stage then runs on
    all of them; without a calibrator there are none, and it orders as ``within``).

    Args:
        within: The order inside each tier.
        name: Its name.
        description: Its one-line description.
        stage: The :attr:`Judgment.stage` it gives.
    """

    needs_verdicts = True

    def __init__(self, within: Ordering, name: str, description: str, stage: str) -> None:
        self.within = within
        self.name = name
        self.description = description
        self.stage = stage

    def _tiered(self, ordered: Sequence[Candidate]) -> list[Candidate]:
        # sorted() is stable: within a tier the inner order stays
        ranked = sorted(ordered, key=lambda c: _TIER.get(c.judged.verdict, len(_TIER)))
        return [replace(c, stage=self.stage) for c in ranked]

    def order(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        return self._tiered(self.within.order(candidates))

    def reorder_head(self, head: Sequence[Candidate]) -> list[Candidate]:
        return self._tiered(self.within.reorder_head(head))


#: Every ordering, by name (``RerankConfig.ordering``).
REGISTRY: Registry[Ordering] = Registry("ordering", hint="Register a new one with r2r_agent.orderings.register.")


def register(ordering: Ordering) -> Ordering:
    """Add ``ordering`` under its :attr:`~Ordering.name` (a taken name is refused)."""
    REGISTRY.register(ordering.name, ordering, description=ordering.description)
    return ordering


def get(name: str) -> Ordering:
    """The ordering named exactly ``name`` (an unknown name raises :class:`~r2r_agent.InvalidInputError`)."""
    return REGISTRY.get(name).value


def names() -> tuple[str, ...]:
    """Every ordering's name, in registration order."""
    return tuple(entry.name for entry in REGISTRY)


for _ordering in (ByScore(), ReciprocalRankFusion(), RetrieverOrder(),
                  VerdictTiers(RetrieverOrder(), "tiers", "verdict tiers (relevant, partial, not relevant), the input "
                               "order within each", TIERS_FIRST_STAGE),
                  VerdictTiers(ReciprocalRankFusion(), "tiers_rrf", "verdict tiers, reciprocal-rank fusion within",
                               TIERS_RRF)):
    register(_ordering)


__all__ = ["FIRST_STAGE_ORDER", "FUSED_STAGE", "REGISTRY", "RRF_K", "RRF_STAGE", "TIERS_FIRST_STAGE", "TIERS_RRF",
           "ByScore", "Ordering", "ReciprocalRankFusion", "RetrieverOrder", "VerdictTiers", "get", "mix_scores",
           "names", "reciprocal_rank_fusion", "register"]
