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
