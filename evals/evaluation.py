"""Ranking metrics with trec_eval semantics: nDCG@k (the headline), RR@k (MRR@k) and Recall@k.

Semantics (those of ``trec_eval`` and of the published anchors):

- each query's documents are ordered by score, highest first, ties broken by doc id in *descending* string order;
- gains are the graded labels (negative labels count as 0); binary measures count a document as relevant when its
  label is ``>= rel`` (1 unless a measure says ``(rel=2)``);
- RR@k is the reciprocal rank of the first relevant document within the top k (0 if none);
- R@k is the fraction of the query's relevant documents found in the top k;
- the mean is over the queries present in both the run and the qrels (``missing="skip"``, trec_eval's default);
  ``missing="zero"`` scores judged queries absent from the run as 0 (``trec_eval -c``).

The numbers are ``ir_measures``' (trec_eval itself through pytrec_eval, from the ``evals`` extra; it runs offline, so
the pure-Python copy that gave the same numbers is gone). Bad input is reported
in :class:`RunIssues`, never a crash: judged queries missing from the run and the reverse, duplicate doc ids in a run
(the highest-scored copy is kept), queries with no documents and an empty run.

The measures themselves live in :mod:`.measures` and the paired tests in :mod:`.significance`; both are importable
from here too.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from r2r_agent.errors import InvalidInputError

from .bright import remove_excluded
from .measures import DEFAULT_MEASURES, Measure, ir_measures_values, parse_measure, rank_order
from .records import Qrel, Qrels, Run, ScoredDoc, qrels_from_records
from .significance import PairedTest, paired_test

logger = logging.getLogger(__name__)

Backend = Literal["auto", "ir_measures", "python"]
Missing = Literal["skip", "zero"]


# ---------------------------------------------------------------------------------------------------------------
# Input normalisation and issues
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunIssues:
    """What did not line up between a run and its qrels (reported, never raised).

    Attributes:
        missing_in_run: Judged queries with no documents in the run.
        missing_in_qrels: Run queries with no judgments (not evaluated).
        duplicates: ``{qid: doc ids that appeared more than once}``; the highest-scored copy was kept.
        empty_queries: Run queries that have no documents left (e.g. after removing excluded ids).
        empty_run: The run has no documents at all.
    """

    missing_in_run: tuple[str, ...] = ()
    missing_in_qrels: tuple[str, ...] = ()
    duplicates: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    empty_queries: tuple[str, ...] = ()
    empty_run: bool = False

    @property
    def ok(self) -> bool:
        """True when nothing was reported."""
        return not (
            self.missing_in_run or self.missing_in_qrels or self.duplicates or self.empty_queries or self.empty_run
        )

    def messages(self) -> list[str]:
        """One human-readable line per kind of issue."""
        out = []
        if self.empty_run:
            out.append("the run is empty: no query has any document")
        if self.missing_in_run:
            out.append(
                f"{len(self.missing_in_run)} judged queries are missing from the run: {_head(self.missing_in_run)}"
            )
        if self.missing_in_qrels:
            out.append(
                f"{len(self.missing_in_qrels)} run queries have no judgments and are not evaluated: "
                f"{_head(self.missing_in_qrels)}"
            )
        if self.duplicates:
            total = sum(len(v) for v in self.duplicates.values())
            out.append(
                f"{total} duplicate doc ids in {len(self.duplicates)} queries (highest score kept): "
                f"{_head([f'{q}:{d}' for q, ds in self.duplicates.items() for d in ds])}"
            )
        if self.empty_queries:
            out.append(f"{len(self.empty_queries)} run queries have no documents: {_head(self.empty_queries)}")
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "missing_in_run": list(self.missing_in_run),
            "missing_in_qrels": list(self.missing_in_qrels),
            "duplicates": {q: list(d) for q, d in self.duplicates.items()},
            "empty_queries": list(self.empty_queries),
            "empty_run": self.empty_run,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunIssues:
        """Build from :meth:`to_dict` output."""
        return cls(
            missing_in_run=tuple(data.get("missing_in_run", ())),
            missing_in_qrels=tuple(data.get("missing_in_qrels", ())),
            duplicates={q: tuple(d) for q, d in (data.get("duplicates") or {}).items()},
            empty_queries=tuple(data.get("empty_queries", ())),
            empty_run=bool(data.get("empty_run", False)),
        )


def _head(items: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(map(str, items[:n]))
    return shown + (f", ... (+{len(items) - n})" if len(items) > n else "")


def to_run(
    run: Mapping[str, Mapping[str, float]] | Mapping[str, Sequence[str]] | Iterable[ScoredDoc],
) -> tuple[Run, dict[str, tuple[str, ...]]]:
    """Normalise a run to ``{qid: {docid: score}}`` and report duplicate doc ids.

    Accepted forms:

    - ``{qid: {docid: score}}`` (copied);
    - ``{qid: [docid, ...]}``, a ranking best first (e.g. a reranker's output): scores ``n, n-1, ..., 1`` are
      assigned, and a repeated id keeps its first (best) position;
    - an iterable of :class:`ScoredDoc` (or ``ir_measures.ScoredDoc``): a repeated ``(qid, docid)`` keeps its
      highest score, which is also its best rank.

    Returns:
        The run and ``{qid: duplicated doc ids}``.
    """
    out: Run = {}
    dups: dict[str, list[str]] = {}
    if isinstance(run, Mapping):
        for qid, docs in run.items():
            qid = str(qid)
            if isinstance(docs, Mapping):
                out[qid] = {str(d): float(s) for d, s in docs.items()}
                continue
            if isinstance(docs, str) or not isinstance(docs, Sequence):
                raise InvalidInputError(
                    f"Run entry for query {qid!r} must be a mapping {{docid: score}} or a list of doc ids best "
                    f"first, got {type(docs).__name__}."
                )
            ranked: dict[str, float] = {}
            for pos, doc in enumerate(docs):
                doc = str(doc)
                if doc in ranked:
                    dups.setdefault(qid, []).append(doc)
                    continue
                ranked[doc] = float(len(docs) - pos)
            out[qid] = ranked
    else:
        for item in run:
            qid, doc, score = str(item[0]), str(item[1]), float(item[2])
            docs = out.setdefault(qid, {})
            if doc in docs:
                dups.setdefault(qid, []).append(doc)
                docs[doc] = max(docs[doc], score)
            else:
                docs[doc] = score
    return out, {q: tuple(dict.fromkeys(d)) for q, d in dups.items()}


def to_qrels(qrels: Mapping[str, Mapping[str, int]] | Iterable[Qrel]) -> Qrels:
    """Normalise qrels to ``{qid: {docid: label}}`` (copied)."""
    if isinstance(qrels, Mapping):
        return {str(q): {str(d): int(r) for d, r in docs.items()} for q, docs in qrels.items()}
    return qrels_from_records(Qrel(str(q[0]), str(q[1]), int(q[2])) for q in qrels)


# ---------------------------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """The result of :func:`evaluate`.

    Attributes:
        measures: Canonical measure names, in the order asked.
        aggregates: ``{measure: mean over the evaluated queries}`` (0.0 when no query could be evaluated).
        per_query: ``{qid: {measure: value}}`` for every evaluated query.
        issues: What did not line up (see :class:`RunIssues`).
        backend: ``"ir_measures"`` or ``"python"``.
        missing: ``"skip"`` or ``"zero"``.
    """

    measures: tuple[str, ...]
    aggregates: Mapping[str, float]
    per_query: Mapping[str, Mapping[str, float]]
    issues: RunIssues
    backend: str
    missing: str = "skip"

    @property
    def n_queries(self) -> int:
        """How many queries the means are over."""
        return len(self.per_query)

    def values(self, measure: str | Measure) -> dict[str, float]:
        """``{qid: value}`` of one measure."""
        name = parse_measure(measure).name
        if name not in self.measures:
            raise InvalidInputError(f"Measure {name!r} was not computed; computed: {', '.join(self.measures)}.")
        return {q: v[name] for q, v in self.per_query.items()}

    def __getitem__(self, measure: str) -> float:
        return self.aggregates[parse_measure(measure).name]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "measures": list(self.measures),
            "aggregates": dict(self.aggregates),
            "per_query": {q: dict(v) for q, v in self.per_query.items()},
            "n_queries": self.n_queries,
            "issues": self.issues.to_dict(),
            "backend": self.backend,
            "missing": self.missing,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        """Build from :meth:`to_dict` output."""
        return cls(
            measures=tuple(data["measures"]),
            aggregates=dict(data["aggregates"]),
            per_query={q: dict(v) for q, v in data["per_query"].items()},
            issues=RunIssues.from_dict(data.get("issues") or {}),
            backend=data.get("backend", "python"),
            missing=data.get("missing", "skip"),
        )


def evaluate(
    qrels: Mapping[str, Mapping[str, int]] | Iterable[Qrel],
    run: Mapping[str, Mapping[str, float]] | Mapping[str, Sequence[str]] | Iterable[ScoredDoc],
    measures: Sequence[str | Measure] = DEFAULT_MEASURES,
    *,
    excluded: Mapping[str, Iterable[str]] | None = None,
    missing: Missing = "skip",
    backend: Backend = "auto",
) -> Evaluation:
    """Score a run against qrels with trec_eval semantics (see the module docstring).

    Args:
        qrels: ``{qid: {docid: label}}`` or an iterable of :class:`Qrel`.
        run: ``{qid: {docid: score}}``, ``{qid: [docid, ...]}`` best first, or an iterable of :class:`ScoredDoc`.
        measures: Measure names (see :func:`parse_measure`).
        excluded: ``{qid: doc ids}`` removed from the run before scoring (BRIGHT's ``excluded_ids`` rule).
        missing: ``"skip"`` averages over queries in both run and qrels; ``"zero"`` also counts judged queries
            absent from the run, as 0.
        backend: ``"auto"`` or ``"ir_measures"``: the measures are ``ir_measures``' (trec_eval itself, the ``evals``
            extra). ``"python"``, the pure-Python copy removed in 0.2, is accepted with a ``DeprecationWarning``.

    Returns:
        An :class:`Evaluation` with means, per-query values and the issues found (also logged as warnings).

    Example:
        >>> ev = evaluate({"q1": {"d2": 1}}, {"q1": {"d1": 2.0, "d2": 1.0}}, ["nDCG@10", "RR@10"])
        >>> round(ev["nDCG@10"], 4), ev["RR@10"]
        (0.6309, 0.5)
    """
    if missing not in ("skip", "zero"):
        raise InvalidInputError(f"missing must be 'skip' or 'zero', got {missing!r}.")
    parsed = list(dict.fromkeys(parse_measure(m) for m in measures))
    if not parsed:
        raise InvalidInputError("evaluate() needs at least one measure; e.g. measures=['nDCG@10'].")
    judged = to_qrels(qrels)
    ranked, dups = to_run(run)
    if excluded:
        ranked = remove_excluded(ranked, {q: set(ids) for q, ids in excluded.items()})

    empty_queries = tuple(q for q, docs in ranked.items() if not docs)
    present = {q for q, docs in ranked.items() if docs}
    issues = RunIssues(
        missing_in_run=tuple(q for q in judged if q not in present),
        missing_in_qrels=tuple(q for q in ranked if q not in judged),
        duplicates=dups,
        empty_queries=empty_queries,
        empty_run=not present,
    )
    for message in issues.messages():
        logger.warning("evaluate: %s", message)

    evaluated = [q for q in judged if q in present] if missing == "skip" else list(judged)
    chosen = _choose_backend(backend)
    per_query = ir_measures_values(judged, ranked, parsed, evaluated)

    names = tuple(m.name for m in parsed)
    aggregates = {
        name: (math.fsum(v[name] for v in per_query.values()) / len(per_query) if per_query else 0.0) for name in names
    }
    return Evaluation(names, aggregates, per_query, issues, chosen, missing)


def _choose_backend(backend: str) -> str:
    if backend in ("auto", "ir_measures"):
        return "ir_measures"
    if backend == "python":
        warnings.warn("evaluate(backend='python') is deprecated and ignored: the measures are ir_measures' (the "
                      "pure-Python copy gave the same numbers and is gone); drop backend=", DeprecationWarning,
                      stacklevel=3)
        return "ir_measures"
    raise InvalidInputError(f"backend must be 'auto' or 'ir_measures', got {backend!r}.")


__all__ = ["DEFAULT_MEASURES", "Backend", "Evaluation", "Measure", "Missing", "PairedTest", "RunIssues", "evaluate",
           "paired_test", "parse_measure", "rank_order", "to_qrels", "to_run"]
