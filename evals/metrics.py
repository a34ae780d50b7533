"""Ranking metrics with trec_eval semantics: nDCG@k (the headline), RR@k (MRR@k) and Recall@k.

Semantics (those of ``trec_eval`` and of the published anchors):

- each query's documents are ordered by score, highest first, ties broken by doc id in *descending* string order;
- gains are the graded labels (negative labels count as 0); binary measures count a document as relevant when its
  label is ``>= rel`` (1 unless a measure says ``(rel=2)``);
- RR@k is the reciprocal rank of the first relevant document within the top k (0 if none);
- R@k is the fraction of the query's relevant documents found in the top k;
- the mean is over the queries present in both the run and the qrels (``missing="skip"``, trec_eval's default);
  ``missing="zero"`` scores judged queries absent from the run as 0 (``trec_eval -c``).

Two backends give the same numbers: ``ir_measures`` (pytrec_eval, from the ``evals`` extra) and a pure-Python one
built on :func:`r2r_agent.metrics.ndcg_at_k`. Bad input is reported in :class:`RunIssues`, never a crash: judged
queries missing from the run and the reverse, duplicate doc ids in a run (the highest-scored copy is kept), queries
with no documents and an empty run.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from r2r_agent._optional import is_available, require
from r2r_agent.errors import InvalidInputError
from r2r_agent.metrics import ndcg_at_k

from .bright import remove_excluded
from .records import Qrel, Qrels, Run, ScoredDoc, qrels_from_records

logger = logging.getLogger(__name__)

Backend = Literal["auto", "ir_measures", "python"]
Missing = Literal["skip", "zero"]

#: The measures reported by default: the headline first.
DEFAULT_MEASURES: tuple[str, ...] = ("nDCG@10", "RR@10", "R@100")

_MEASURE_RE = re.compile(r"^(nDCG|RR|MRR|R)(?:\(rel=(\d+)\))?@(\d+)$")
_ACCEPTED = "nDCG@k, RR@k (alias MRR@k), RR(rel=r)@k, R@k, R(rel=r)@k, with integers k >= 1 and r >= 1"


# ---------------------------------------------------------------------------------------------------------------
# Measures
# ---------------------------------------------------------------------------------------------------------------


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
        backend: ``"ir_measures"`` (needs the ``evals`` extra), ``"python"``, or ``"auto"`` (ir_measures when
            installed).

    Returns:
        An :class:`Evaluation` with means, per-query values and the issues found (also logged as warnings).

    Example:
        >>> ev = evaluate({"q1": {"d2": 1}}, {"q1": {"d1": 2.0, "d2": 1.0}}, ["nDCG@10", "RR@10"], backend="python")
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
    if chosen == "ir_measures":
        per_query = _ir_measures_per_query(judged, ranked, parsed, evaluated)
    else:
        per_query = {q: _python_query(judged[q], ranked.get(q, {}), parsed) for q in evaluated}

    names = tuple(m.name for m in parsed)
    aggregates = {
        name: (math.fsum(v[name] for v in per_query.values()) / len(per_query) if per_query else 0.0) for name in names
    }
    return Evaluation(names, aggregates, per_query, issues, chosen, missing)


def _choose_backend(backend: str) -> str:
    if backend == "python":
        return "python"
    if backend == "ir_measures":
        require("ir_measures", "evals", "The ir_measures metrics backend")
        return "ir_measures"
    if backend == "auto":
        return "ir_measures" if is_available("ir_measures") and is_available("pytrec_eval") else "python"
    raise InvalidInputError(f"backend must be 'auto', 'ir_measures' or 'python', got {backend!r}.")


def _python_query(rels: Mapping[str, int], docs: Mapping[str, float], measures: Sequence[Measure]) -> dict[str, float]:
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


def _ir_measures_per_query(
    qrels: Qrels, run: Run, measures: Sequence[Measure], evaluated: Sequence[str]
) -> dict[str, dict[str, float]]:
    ir_measures = require("ir_measures", "evals", "The ir_measures metrics backend")
    provider = ir_measures.pytrec_eval  # trec_eval itself: its tie-breaking and cut-offs are the reference.
    keep = set(evaluated)
    sub_qrels = {q: d for q, d in qrels.items() if q in keep}
    sub_run = {q: d for q, d in run.items() if q in keep and d}
    per_query: dict[str, dict[str, float]] = {q: {} for q in evaluated}

    def collect(objs: list[Any], run_used: Run, rename: Mapping[str, str]) -> None:
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


# ---------------------------------------------------------------------------------------------------------------
# Paired significance tests
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedTest:
    """The result of :func:`paired_test` (two-sided).

    Attributes:
        method: ``"t"`` (paired t-test) or ``"randomization"`` (paired sign-flip permutation test).
        n: Number of paired queries.
        mean_a: Mean of system A over the paired queries.
        mean_b: Mean of system B.
        delta: ``mean_b - mean_a``.
        statistic: The t statistic (``"t"``) or the observed mean difference (``"randomization"``).
        p_value: Two-sided p-value.
        exact: Randomization test only: all ``2**n`` sign flips were enumerated.
        n_unpaired: Queries present in only one of the two systems (left out).
    """

    method: str
    n: int
    mean_a: float
    mean_b: float
    delta: float
    statistic: float
    p_value: float
    exact: bool = False
    n_unpaired: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairedTest:
        """Build from :meth:`to_dict` output."""
        return cls(**dict(data))


def paired_test(
    a: Mapping[str, float],
    b: Mapping[str, float],
    *,
    method: Literal["t", "randomization"] = "randomization",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> PairedTest:
    """Two-sided paired significance test between two systems' per-query values (e.g. :meth:`Evaluation.values`).

    ``"randomization"`` flips the sign of each per-query difference at random (Fisher's paired randomization test,
    Smucker et al., CIKM 2007); it enumerates all ``2**n`` flips when that is at most ``n_resamples``, else samples
    ``n_resamples`` with ``p = (hits + 1) / (n_resamples + 1)``. ``"t"`` is the paired Student t-test (scipy when
    installed, else an equivalent pure-Python computation).

    Args:
        a: ``{qid: value}`` of system A.
        b: ``{qid: value}`` of system B; only queries in both are paired (the rest are counted in ``n_unpaired``).
        method: ``"randomization"`` or ``"t"``.
        n_resamples: Random sign flips when the test is not exact.
        seed: Seed of the random flips (results are reproducible).

    Raises:
        InvalidInputError: with fewer than 2 paired queries, or an unknown method.
    """
    common = [q for q in a if q in b]
    unpaired = len(set(a) ^ set(b))
    if unpaired:
        logger.warning("paired_test: %d queries are in only one system and are left out", unpaired)
    n = len(common)
    if n < 2:
        raise InvalidInputError(
            f"paired_test needs at least 2 queries scored by both systems, got {n} "
            f"({len(a)} in A, {len(b)} in B). Evaluate both systems on the same queries."
        )
    diffs = [float(b[q]) - float(a[q]) for q in common]
    mean_a = math.fsum(float(a[q]) for q in common) / n
    mean_b = math.fsum(float(b[q]) for q in common) / n
    delta = math.fsum(diffs) / n
    if method == "t":
        t, p = _paired_t(diffs)
        return PairedTest("t", n, mean_a, mean_b, delta, t, p, n_unpaired=unpaired)
    if method == "randomization":
        if n_resamples < 1:
            raise InvalidInputError(f"n_resamples must be >= 1, got {n_resamples}.")
        p, exact = _randomization_p(diffs, n_resamples, seed)
        return PairedTest("randomization", n, mean_a, mean_b, delta, delta, p, exact, unpaired)
    raise InvalidInputError(f"method must be 't' or 'randomization', got {method!r}.")


def _randomization_p(diffs: Sequence[float], n_resamples: int, seed: int) -> tuple[float, bool]:
    n = len(diffs)
    observed = abs(math.fsum(diffs))
    tol = 1e-12 * max(1.0, observed)  # equal sums must count as "as extreme" despite float rounding
    if 2**n <= n_resamples:
        hits = 0
        for mask in range(2**n):
            total = math.fsum(-d if mask >> i & 1 else d for i, d in enumerate(diffs))
            hits += abs(total) >= observed - tol
        return hits / 2**n, True
    rng = random.Random(seed)
    hits = 0
    for _ in range(n_resamples):
        total = math.fsum(d if rng.random() < 0.5 else -d for d in diffs)
        hits += abs(total) >= observed - tol
    return (hits + 1) / (n_resamples + 1), False


def _paired_t(diffs: Sequence[float]) -> tuple[float, float]:
    n = len(diffs)
    mean = math.fsum(diffs) / n
    var = math.fsum((d - mean) ** 2 for d in diffs) / (n - 1)
    if var == 0.0:
        # Identical differences: no variance. Same values -> no evidence; a constant shift -> certain.
        return (0.0, 1.0) if mean == 0.0 else (math.copysign(math.inf, mean), 0.0)
    t = mean / math.sqrt(var / n)
    if is_available("scipy"):
        from scipy import stats

        return t, float(stats.t.sf(abs(t), n - 1) * 2)
    df = n - 1
    return t, _betainc(df / 2, 0.5, df / (df + t * t))


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) (continued fraction, Numerical Recipes 6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def _betacf(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h
