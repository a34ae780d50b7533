"""Small, dependency-free ranking metrics (trec_eval semantics) used by the demo; ``r2r_agent.evals`` has the rest."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def ndcg_at_k(ranked_ids: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k of one ranked list, as trec_eval's ``ndcg_cut`` computes it (linear gains, log2 discount).

    Args:
        ranked_ids: Document ids, best first. A repeated id counts once, at its first position.
        qrels: Graded judgments ``{doc_id: label}``; unjudged documents have gain 0.
        k: Cut-off.

    Returns:
        A value in [0, 1]; 0 when the query has no relevant document.

    Example:
        >>> round(ndcg_at_k(["a", "b"], {"b": 1}), 4)
        0.6309
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    seen: set[str] = set()
    gains = []
    for doc in ranked_ids:
        if doc in seen:
            continue
        seen.add(doc)
        gains.append(max(qrels.get(doc, 0), 0))
        if len(gains) == k:
            break
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve: the chance that a random positive scores above a random negative (ties count
    half); NaN without both classes.

    Example:
        >>> auc([0.9, 0.8, 0.3, 0.1], [True, False, True, False])
        0.75
    """
    positives = [s for s, y in zip(scores, labels) if y]
    negatives = [s for s, y in zip(scores, labels) if not y]
    if not positives or not negatives:
        return math.nan
    ranked = sorted((s, i) for i, s in enumerate(scores))
    ranks = [0.0] * len(scores)
    start = 0
    while start < len(ranked):  # average ranks over ties
        end = start
        while end + 1 < len(ranked) and ranked[end + 1][0] == ranked[start][0]:
            end += 1
        for k in range(start, end + 1):
            ranks[ranked[k][1]] = (start + end) / 2 + 1
        start = end + 1
    positive_rank_sum = math.fsum(r for r, y in zip(ranks, labels) if y)
    n_pos, n_neg = len(positives), len(negatives)
    return (positive_rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def balanced_accuracy(labels: Sequence[bool], predicted: Sequence[bool]) -> float:
    """The mean of the true-positive and true-negative rates of ``predicted`` against ``labels`` (0.5 for a constant
    guess); NaN without both classes in ``labels``, as :func:`auc`. The argument order is scikit-learn's
    (``y_true, y_pred``).

    Example:
        >>> balanced_accuracy([True, True, False, False], [True, False, False, False])
        0.75
    """
    if len(labels) != len(predicted):
        raise ValueError(f"balanced_accuracy: {len(labels)} labels but {len(predicted)} predictions")
    positives = [p for p, y in zip(predicted, labels) if y]
    negatives = [p for p, y in zip(predicted, labels) if not y]
    if not positives or not negatives:
        return math.nan
    return (sum(map(bool, positives)) / len(positives) + sum(not p for p in negatives) / len(negatives)) / 2


def brier(probabilities: Sequence[float], labels: Sequence[bool]) -> float:
    """Mean squared difference between predicted probabilities and outcomes (0 is perfect); NaN when empty."""
    if not probabilities:
        return math.nan
    return math.fsum((p - float(y)) ** 2 for p, y in zip(probabilities, labels)) / len(probabilities)


def expected_calibration_error(probabilities: Sequence[float], labels: Sequence[bool], bins: int = 10) -> float:
    """ECE over ``bins`` equal-width bins of the predicted probability: the bin-size-weighted mean of
    ``|mean prediction - observed rate|``; NaN when empty.

    Example:
        >>> round(expected_calibration_error([0.1, 0.1, 0.9, 0.9], [False, False, True, False]), 3)
        0.25
    """
    if not probabilities:
        return math.nan
    sums: list[list[float]] = [[0.0, 0.0, 0.0] for _ in range(bins)]  # count, predicted, observed
    for p, y in zip(probabilities, labels):
        b = min(int(p * bins), bins - 1)
        sums[b][0] += 1
        sums[b][1] += p
        sums[b][2] += float(y)
    total = len(probabilities)
    return math.fsum(count / total * abs(predicted / count - observed / count)
                     for count, predicted, observed in sums if count)
