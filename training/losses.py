"""Ranking losses and targets for distilling the teacher's order into the student's LM score (torch, lazily).

One loss per function, each citing its paper. Scores and targets are 1-D tensors over one query's candidates
(input order); higher is more relevant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from r2r_agent.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

    from .dataset import RankingExample


def ranking_targets(example: RankingExample, *, label_weight: float = 1.0) -> list[float]:
    """Graded target relevance per passage (input order) from the teacher's order and the labels.

    The teacher's rank ``r`` (0 = best) of ``n`` passages gives ``(n - r) / n`` (1 for the best, ``1/n`` for the
    worst); a known label adds ``label_weight * label``, so a labelled-relevant passage stays above unlabelled ones
    wherever the teacher put it (with ``label_weight >= 1``).

    Example:
        >>> from r2r_agent.training.dataset import RankingExample
        >>> ranking_targets(RankingExample("q", "query", ("a", "b"), (1, 0), labels=(1, 0)))
        [1.5, 1.0]
    """
    n = len(example.passages)
    ranks = example.teacher_ranks()
    targets = [(n - rank) / n for rank in ranks]
    if example.labels and label_weight:
        targets = [t + label_weight * (label or 0) for t, label in zip(targets, example.labels, strict=True)]
    return targets


def _check(scores: torch.Tensor, targets: torch.Tensor, name: str) -> None:
    if scores.dim() != 1 or scores.shape != targets.shape:
        raise InvalidInputError(f"{name}: scores and targets must be 1-D tensors of one query's candidates with the "
                                f"same shape, got {tuple(scores.shape)} and {tuple(targets.shape)}")


def listnet_loss(scores: torch.Tensor, targets: torch.Tensor, *, temperature: float = 0.2) -> torch.Tensor:
    """ListNet top-one loss: cross-entropy between the target and score top-one distributions.

    Cao, Qin, Liu, Tsai and Li, "Learning to Rank: From Pairwise Approach to Listwise Approach", ICML 2007. The target
    distribution is ``softmax(targets / temperature)`` (a small temperature puts most mass on the teacher's top
    passages), the predicted one ``softmax(scores)``.

    Args:
        scores: The student's scores, shape ``[n]``.
        targets: Graded target relevance, shape ``[n]`` (e.g. :func:`ranking_targets`).
        temperature: Sharpness of the target distribution (> 0).

    Example:
        >>> import torch
        >>> good = listnet_loss(torch.tensor([3.0, 0.0]), torch.tensor([1.0, 0.5]))
        >>> bad = listnet_loss(torch.tensor([0.0, 3.0]), torch.tensor([1.0, 0.5]))
        >>> bool(good < bad)
        True
    """
    import torch

    _check(scores, targets, "listnet_loss")
    if temperature <= 0:
        raise InvalidInputError(f"listnet_loss: temperature must be > 0, got {temperature}")
    target = torch.softmax(targets.to(scores.dtype) / temperature, dim=-1)
    return -(target * torch.log_softmax(scores, dim=-1)).sum()


def ranknet_loss(scores: torch.Tensor, targets: torch.Tensor, *, sigma: float = 1.0) -> torch.Tensor:
    """RankNet pairwise logistic loss, averaged over the pairs whose targets differ.

    Burges, Shaked, Renshaw, Lazier, Deeds, Hamilton and Hullender, "Learning to Rank using Gradient Descent", ICML
    2005: for every pair ``i, j`` with ``targets[i] > targets[j]``, ``log(1 + exp(-sigma * (s_i - s_j)))``.

    Args:
        scores: The student's scores, shape ``[n]``.
        targets: Graded target relevance, shape ``[n]``.
        sigma: Steepness of the pairwise sigmoid (> 0).

    Example:
        >>> import torch
        >>> round(float(ranknet_loss(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0]))), 4)
        0.6931
    """
    import torch

    _check(scores, targets, "ranknet_loss")
    if sigma <= 0:
        raise InvalidInputError(f"ranknet_loss: sigma must be > 0, got {sigma}")
    targets = targets.to(scores.dtype)
    better = targets[:, None] > targets[None, :]
    if not bool(better.any()):
        return scores.sum() * 0.0  # no ordered pair: nothing to learn, but keep the graph
    differences = scores[:, None] - scores[None, :]
    return torch.nn.functional.softplus(-sigma * differences[better]).mean()


class RankingLoss(Protocol):
    """A ranking loss: ``loss(scores, targets)`` over one query's candidates (its own options keep their defaults)."""

    def __call__(self, scores: torch.Tensor, targets: torch.Tensor, /) -> torch.Tensor: ...


#: The ranking losses by the name the trainer configs use (``ranking_loss``; explicit registry).
RANKING_LOSSES: Mapping[str, RankingLoss] = {"listnet": listnet_loss, "ranknet": ranknet_loss}


def example_ranking_loss(name: str, scores: torch.Tensor, example: RankingExample, *, label_weight: float = 1.0,
                         temperature: float = 0.2) -> torch.Tensor:
    """The ranking loss ``name`` of one query's ``scores`` (its first ``len(scores)`` candidates) against
    :func:`ranking_targets`; ``temperature`` is ListNet's target temperature.

    Example:
        >>> import torch
        >>> from r2r_agent.training.dataset import RankingExample
        >>> example = RankingExample("q", "query", ("a", "b"), (0, 1))
        >>> bool(example_ranking_loss("ranknet", torch.tensor([1.0, 0.0]), example) < 0.5)
        True
    """
    import torch

    targets = ranking_targets(example, label_weight=label_weight)[: len(scores)]
    target = torch.tensor(targets, dtype=torch.float32, device=scores.device)
    if name == "listnet":
        return listnet_loss(scores, target, temperature=temperature)
    return RANKING_LOSSES[name](scores, target)


def ndcg_from_scores(scores: Sequence[float], gains: Sequence[float], k: int = 5) -> float:
    """nDCG@k of the order given by ``scores`` (ties broken by input position) against graded ``gains``.

    Example:
        >>> ndcg_from_scores([0.1, 0.9], [1.0, 0.0])
        0.6309297535714575
    """
    import math

    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    dcg = sum(max(gains[i], 0.0) / math.log2(rank + 2) for rank, i in enumerate(order))
    ideal = sorted((g for g in gains if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def validation_ndcgs(scores: Sequence[float], example: RankingExample, k: int) -> tuple[float, float | None]:
    """nDCG@k of ``scores`` (the first ``len(scores)`` candidates) against the teacher's order and against the labels
    (``None`` when no scored candidate has a positive label).

    Example:
        >>> from r2r_agent.training.dataset import RankingExample
        >>> validation_ndcgs([0.9, 0.1], RankingExample("q", "query", ("a", "b"), (0, 1), labels=(0, 1)), 5)
        (1.0, 0.6309297535714575)
    """
    n = len(scores)
    ranks = example.teacher_ranks()[:n]
    teacher = ndcg_from_scores(scores, [float(len(ranks) - r) for r in ranks], k)
    labels = [float(label or 0) for label in example.labels[:n]]
    return teacher, (ndcg_from_scores(scores, labels, k) if any(label > 0 for label in labels) else None)


__all__ = ["RANKING_LOSSES", "RankingLoss", "example_ranking_loss", "listnet_loss", "ndcg_from_scores",
           "ranking_targets", "ranknet_loss", "validation_ndcgs"]
