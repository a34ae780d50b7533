"""The measures ``r2r eval`` computes, in ``ir_measures`` syntax, and their per-query values (by ``ir_measures``).

Semantics (those of ``trec_eval``, which computes them, and of the published anchors): documents are ordered by score,
highest first, ties broken by doc id in *descending* string order (:func:`rank_order`); nDCG@k has graded gains,
negative labels count as 0; RR@k is the reciprocal rank of the first document with label ``>= rel`` within the top k
(0 if none; trec_eval's ``recip_rank`` has no cut-off, so the ranking is cut to its top k first); R@k is the fraction
of the query's documents with label ``>= rel`` found in the top k. The values need the ``evals`` extra.

Example:
    >>> query_values({"d2": 1}, {"d1": 2.0, "d2": 1.0}, [parse_measure("RR@10")])
    {'RR@10': 0.5}
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from r2r_agent._optional import require
from r2r_agent.errors import InvalidInputError

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


def ir_measures_values(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]],
                       measures: Sequence[Measure], evaluated: Sequence[str]) -> dict[str, dict[str, float]]:
    """Each measure's value for each query in ``evaluated`` (0 for one missing from ``run``), computed by
    ``ir_measures`` on trec_eval itself (its pytrec_eval provider): the reference for tie-breaking and cut-offs.
    Needs the ``evals`` extra.
    """
    ir_measures = require("ir_measures", "evals", "The ir_measures metrics backend")
    provider = ir_measures.pytrec_eval
    keep = set(evaluated)
    sub_qrels = {q: d for q, d in qrels.items() if q in keep}
    sub_run = {q: d for q, d in run.items() if q in keep and d}
    per_query: dict[str, dict[str, float]] = {q: {} for q in evaluated}

    def collect(objs: list[Any], run_used: Mapping[str, Mapping[str, float]], rename: Mapping[str, str]) -> None:
        if not run_used:
            return
        for metric in provider.iter_calc(objs, sub_qrels, run_used):
            if metric.query_id in per_query:
                name = str(metric.measure)
                per_query[metric.query_id][rename.get(name, name)] = float(metric.value)

    direct = [m for m in measures if m.kind != "RR"]
    collect([ir_measures.parse_measure(m.name) for m in direct], sub_run, {})
    # trec_eval's recip_rank has no cut-off; RR@k is recip_rank on each ranking truncated to its top k.
    for cutoff in sorted({m.cutoff for m in measures if m.kind == "RR"}):
        group = [m for m in measures if m.kind == "RR" and m.cutoff == cutoff]
        truncated = {q: {d: docs[d] for d in rank_order(docs)[:cutoff]} for q, docs in sub_run.items()}
        objs = [ir_measures.parse_measure("RR" if m.rel == 1 else f"RR(rel={m.rel})") for m in group]
        collect(objs, truncated, {str(o): m.name for o, m in zip(objs, group, strict=True)})
    for values in per_query.values():
        for m in measures:
            values.setdefault(m.name, 0.0)  # judged queries absent from the run (missing="zero")
    return {q: {m.name: per_query[q][m.name] for m in measures} for q in evaluated}


def query_values(rels: Mapping[str, int], docs: Mapping[str, float], measures: Sequence[Measure]) -> dict[str, float]:
    """Each measure's value for one query: ``rels`` its judgments, ``docs`` its run ``{docid: score}`` (by
    :func:`ir_measures_values`)."""
    return ir_measures_values({"q": rels}, {"q": docs}, measures, ["q"])["q"]


__all__ = ["DEFAULT_MEASURES", "Measure", "ir_measures_values", "parse_measure", "query_values", "rank_order"]
