"""The measures ``r2r eval`` computes, in ``ir_measures`` syntax, and their pure-Python per-query values.

Semantics (those of ``trec_eval`` and of the published anchors): documents are ordered by score, highest first, ties
broken by doc id in *descending* string order (:func:`rank_order`); nDCG@k is :func:`r2r_agent.metrics.ndcg_at_k`
(graded gains, negative labels count as 0: the core's one implementation); RR@k is the reciprocal rank of the first
document with label ``>= rel`` within the top k (0 if none); R@k is the fraction of the query's documents with label
``>= rel`` found in the top k.

Example:
    >>> query_values({"d2": 1}, {"d1": 2.0, "d2": 1.0}, [parse_measure("RR@10")])
    {'RR@10': 0.5}
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from r2r_agent.errors import InvalidInputError
from r2r_agent.metrics import ndcg_at_k

#: The measures reported by default: the headline first.
DEFAULT_MEASURES: tuple[str, ...] = ("nDCG@10", "RR@10", "R@100")

_MEASURE_RE = re.compile(r"^(nDCG|RR|MRR|R)(?:\(rel=(\d+)\))?@(\d+)$")
_ACCEPTED = "nDCG@k, RR@k (alias MRR@k), RR(rel=r)@k, R@k, R(rel=r)@k, with integers k >= 1 and r >= 1"


@dataclass(frozen=True)
class Measure:
    """One supported measure, parsed from ``ir_measures`` syntax (see :func:`parse_measure`).

    Args:
        kind: ``"nDCG"``, ``"RR"`` or ``"R"``.
        cutoff: The rank cut-off k.
        rel: Minimum label counted as relevant by RR and R (ignored by nDCG, which uses graded gains).
    """

    kind: str
    cutoff: int
    rel: int = 1

    @property
    def name(self) -> str:
        """The canonical ``ir_measures`` name, e.g. ``"RR(rel=2)@10"``."""
        rel = f"(rel={self.rel})" if self.rel != 1 and self.kind != "nDCG" else ""
        return f"{self.kind}{rel}@{self.cutoff}"

    def __str__(self) -> str:
        return self.name


def parse_measure(text: str | Measure) -> Measure:
    """Parse a measure name.

    Raises:
        InvalidInputError: for anything else, listing the accepted forms.

    Example:
        >>> parse_measure("MRR@10").name
        'RR@10'
    """
    if isinstance(text, Measure):
        return text
    match = _MEASURE_RE.match(str(text).strip())
    if not match:
        raise InvalidInputError(f"Unsupported measure {text!r}. Accepted: {_ACCEPTED}.")
    kind, rel, cutoff = match.group(1), int(match.group(2) or 1), int(match.group(3))
    kind = "RR" if kind == "MRR" else kind
    if cutoff < 1 or rel < 1:
        raise InvalidInputError(f"Unsupported measure {text!r}: k and rel must be >= 1. Accepted: {_ACCEPTED}.")
    if kind == "nDCG" and match.group(2):
        raise InvalidInputError(f"nDCG uses graded gains and takes no rel parameter, got {text!r}.")
    return Measure(kind, cutoff, rel)


def rank_order(docs: Mapping[str, float]) -> list[str]:
    """Doc ids in trec_eval order: score descending, ties by doc id descending.

    Example:
        >>> rank_order({"a": 1.0, "b": 1.0, "c": 2.0})
        ['c', 'b', 'a']
    """
    return [d for d, _ in sorted(docs.items(), key=lambda item: (item[1], item[0]), reverse=True)]


def query_values(rels: Mapping[str, int], docs: Mapping[str, float], measures: Sequence[Measure]) -> dict[str, float]:
    """Each measure's value for one query: ``rels`` its judgments, ``docs`` its run ``{docid: score}``.

    The pure-Python backend of :func:`r2r_agent.evals.metrics.evaluate` (same numbers as trec_eval).
    """
    order = rank_order(docs)
    out = {}
    for m in measures:
        top = order[: m.cutoff]
        if m.kind == "nDCG":
            value = ndcg_at_k(top, rels, m.cutoff) if top else 0.0
        elif m.kind == "RR":
            value = next((1.0 / (i + 1) for i, d in enumerate(top) if rels.get(d, 0) >= m.rel), 0.0)
        else:
            relevant = sum(1 for r in rels.values() if r >= m.rel)
            value = sum(1 for d in top if rels.get(d, 0) >= m.rel) / relevant if relevant else 0.0
        out[m.name] = value
    return out


__all__ = ["DEFAULT_MEASURES", "Measure", "parse_measure", "query_values", "rank_order"]
