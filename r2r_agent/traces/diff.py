"""Comparing two runs of the same queries (e.g. two student versions): Kendall's tau, rank-biased overlap, and which
documents moved, with both runs' explanations."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from ..errors import InvalidInputError
from .records import TraceCandidate, TraceRecord, TraceResult


def kendall_tau(a: Sequence[Any], b: Sequence[Any]) -> float | None:
    """Kendall's tau between two orders, over the items they share (``None`` when they share fewer than 2).

    Example:
        >>> kendall_tau(["x", "y", "z"], ["x", "y", "z"]), kendall_tau(["x", "y", "z"], ["z", "y", "x"])
        (1.0, -1.0)
    """
    position_b = {item: i for i, item in enumerate(b)}
    # b's positions of the shared items, in a's order: each inversion is a discordant pair.
    positions = [position_b[item] for item in a if item in position_b]
    n = len(positions)
    if n < 2:
        return None
    pairs = n * (n - 1) // 2
    discordant = _inversions(positions)
    return (pairs - 2 * discordant) / pairs


def _inversions(values: list[int]) -> int:
    """How many pairs ``i < j`` have ``values[i] > values[j]``: a bottom-up merge sort, O(n log n) (pairwise counting
    was quadratic: a diff of two 50k-passage records did not finish in 120 s)."""
    count = 0
    run = values[:]
    width = 1
    n = len(run)
    while width < n:
        merged: list[int] = []
        for lo in range(0, n, 2 * width):
            left, right = run[lo:lo + width], run[lo + width:lo + 2 * width]
            i = j = 0
            while i < len(left) and j < len(right):
                if left[i] <= right[j]:
                    merged.append(left[i])
                    i += 1
                else:
                    merged.append(right[j])
                    count += len(left) - i  # right[j] comes before every left item not yet placed
                    j += 1
            merged.extend(left[i:])
            merged.extend(right[j:])
        run = merged
        width *= 2
    return count


def rank_biased_overlap(a: Sequence[Any], b: Sequence[Any], p: float = 0.9) -> float:
    """Extrapolated rank-biased overlap (Webber, Moffat and Zobel, 2010, eq. 32) of two top lists.

    1.0 for identical lists, 0.0 for disjoint ones; agreement near the top weighs more (``p`` sets how much: the
    top ``1 / (1 - p)`` places carry most of the weight). Lists may differ in length; items should be unique.

    Example:
        >>> rank_biased_overlap(["x", "y", "z"], ["x", "y", "z"]), rank_biased_overlap(["x"], ["y"])
        (1.0, 0.0)
    """
    if not 0.0 < p < 1.0:
        raise InvalidInputError(f"rank_biased_overlap: p must be in (0, 1), got {p}")
    short, long = (list(a), list(b)) if len(a) <= len(b) else (list(b), list(a))
    s, length = len(short), len(long)
    if length == 0:
        return 1.0
    if s == 0:
        return 0.0
    seen_short: set[Any] = set()
    seen_long: set[Any] = set()
    overlap = 0
    overlaps = [0] * (length + 1)  # overlaps[d]: items shared by short[:d] and long[:d] (short stops at s)
    for d in range(1, length + 1):
        x = long[d - 1]
        if d <= s:
            y = short[d - 1]
            if x == y:
                overlap += 1
            else:
                overlap += (x in seen_short) + (y in seen_long)
            seen_short.add(y)
        else:
            overlap += x in seen_short
        seen_long.add(x)
        overlaps[d] = overlap
    x_s, x_l = overlaps[s], overlaps[length]
    total = sum(overlaps[d] / d * p**d for d in range(1, length + 1))
    total += sum(x_s * (d - s) / (s * d) * p**d for d in range(s + 1, length + 1))
    return (1 - p) / p * total + ((x_l - x_s) / length + x_s / s) * p**length


def _keys(record: TraceRecord) -> dict[int, str]:
    """A stable name for each input rank: the id when ids are unique, else ``#<input rank>``."""
    ids = [c.id for c in record.candidates] or [r.id for r in record.results]
    unique = all(i is not None for i in ids) and len(set(ids)) == len(ids)
    names = {c.input_rank: (c.id if unique else f"#{c.input_rank}") for c in record.candidates}
    for r in record.results:
        names.setdefault(r.input_rank, r.id if unique and r.id is not None else f"#{r.input_rank}")
    return {rank: str(name) for rank, name in names.items()}


@dataclass(frozen=True)
class DocumentShift:
    """Where one document landed in each of two runs of the same query.

    Attributes:
        key: The document id (or ``#<input rank>`` when ids are missing or repeated).
        input_rank: Its input rank (in run A, else B).
        rank_a: Its output rank in run A (``None``: not returned).
        rank_b: Its output rank in run B (``None``: not returned).
        explanation_a: Run A's explanation, if any.
        explanation_b: Run B's explanation, if any.
        score_a: Run A's score of it, also when A did not return it (``None``: not recorded, in older traces).
        score_b: Run B's score of it.
        verdict_a: Run A's verdict, where A judged it.
        verdict_b: Run B's verdict, where B judged it.
    """

    key: str
    input_rank: int
    rank_a: int | None
    rank_b: int | None
    explanation_a: str | None = None
    explanation_b: str | None = None
    score_a: float | None = None
    score_b: float | None = None
    verdict_a: str | None = None
    verdict_b: str | None = None

    @property
    def shift(self) -> int | None:
        """Places moved up from A to B (negative: down); ``None`` when one run did not return it."""
        if self.rank_a is None or self.rank_b is None:
            return None
        return self.rank_a - self.rank_b

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, "shift": self.shift}


@dataclass(frozen=True)
class QueryDiff:
    """How two runs ranked the same query.

    Attributes:
        query: The query.
        order_a: Run A's output order (document keys, best first).
        order_b: Run B's output order.
        kendall_tau: Kendall's tau over the documents both returned (``None``: fewer than 2 shared).
        rbo: Extrapolated rank-biased overlap of the two orders (p = 0.9).
        shifts: Every document either run returned, largest change first (left/entered the top first).
        same_candidates: Whether both runs saw the same candidates in the same order.
        comparison_a: Run A's comparison explanation.
        comparison_b: Run B's comparison explanation.
    """

    query: str
    order_a: tuple[str, ...]
    order_b: tuple[str, ...]
    kendall_tau: float | None
    rbo: float
    shifts: tuple[DocumentShift, ...]
    same_candidates: bool = True
    comparison_a: str | None = None
    comparison_b: str | None = None

    @property
    def changed(self) -> bool:
        """Whether the two output lists differ (in order or in members)."""
        return self.order_a != self.order_b

    @property
    def shared(self) -> tuple[str, ...]:
        """The documents both runs returned, in A's order."""
        in_b = set(self.order_b)
        return tuple(key for key in self.order_a if key in in_b)

    @property
    def entered(self) -> tuple[str, ...]:
        """Documents B returned that A did not, in B's order."""
        in_a = set(self.order_a)
        return tuple(key for key in self.order_b if key not in in_a)

    @property
    def left(self) -> tuple[str, ...]:
        """Documents A returned that B did not, in A's order."""
        in_b = set(self.order_b)
        return tuple(key for key in self.order_a if key not in in_b)

    @property
    def reordered(self) -> bool:
        """Whether the shared documents come in a different order (Kendall tau below 1)."""
        in_a = set(self.order_a)
        return self.shared != tuple(key for key in self.order_b if key in in_a)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["order_a"], data["order_b"] = list(self.order_a), list(self.order_b)
        data["shifts"] = [s.to_dict() for s in self.shifts]
        data.update(entered=list(self.entered), left=list(self.left), reordered=self.reordered)
        return data


def diff_records(a: TraceRecord, b: TraceRecord) -> QueryDiff:
    """Compare two records of the same query (e.g. from two student versions)."""
    keys_a, keys_b = _keys(a), _keys(b)
    order_a = tuple(keys_a[r.input_rank] for r in a.results)
    order_b = tuple(keys_b[r.input_rank] for r in b.results)
    result_a = {keys_a[r.input_rank]: r for r in a.results}
    result_b = {keys_b[r.input_rank]: r for r in b.results}
    candidate_a = {keys_a[c.input_rank]: c for c in a.candidates}
    candidate_b = {keys_b[c.input_rank]: c for c in b.candidates}

    def judged(key: str, results: dict[str, TraceResult], candidates: dict[str, TraceCandidate]
               ) -> tuple[float | None, str | None]:
        """The score and verdict a run gave a document: from its result, else (not returned) its candidate."""
        if key in results:
            return results[key].score, results[key].verdict
        candidate = candidates.get(key)
        return (candidate.score, candidate.verdict) if candidate else (None, None)

    shifts = []
    for key in dict.fromkeys([*order_a, *order_b]):
        ra, rb = result_a.get(key), result_b.get(key)
        (score_a, verdict_a), (score_b, verdict_b) = judged(key, result_a, candidate_a), judged(key, result_b,
                                                                                              candidate_b)
        shifts.append(DocumentShift(key=key, input_rank=(ra or rb).input_rank,  # type: ignore[union-attr]
                                    rank_a=ra.rank if ra else None, rank_b=rb.rank if rb else None,
                                    explanation_a=ra.explanation if ra else None,
                                    explanation_b=rb.explanation if rb else None, score_a=score_a,
                                    score_b=score_b, verdict_a=verdict_a, verdict_b=verdict_b))
    big = 1 << 30
    shifts.sort(key=lambda s: (-(big if s.shift is None else abs(s.shift)), s.rank_a or big, s.rank_b or big))
    same = [keys_a[c.input_rank] for c in a.candidates] == [keys_b[c.input_rank] for c in b.candidates]
    return QueryDiff(query=a.query, order_a=order_a, order_b=order_b, kendall_tau=kendall_tau(order_a, order_b),
                     rbo=rank_biased_overlap(order_a, order_b), shifts=tuple(shifts), same_candidates=same,
                     comparison_a=a.comparison, comparison_b=b.comparison)


@dataclass(frozen=True)
class TraceDiff:
    """Two trace files compared query by query.

    Attributes:
        queries: One :class:`QueryDiff` per query traced in both (matched by query text and occurrence).
        only_a: Queries traced only in A.
        only_b: Queries traced only in B.
    """

    queries: tuple[QueryDiff, ...]
    only_a: tuple[str, ...] = ()
    only_b: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {"queries": [q.to_dict() for q in self.queries], "only_a": list(self.only_a),
                "only_b": list(self.only_b)}


def occurrences(records: Iterable[TraceRecord]) -> list[tuple[str, int]]:
    """Each record's matching key: its query and how many records before it had the same query (the n-th occurrence
    of a query in one run is compared with the n-th in the other)."""
    seen: dict[str, int] = {}
    keys = []
    for record in records:
        n = seen.get(record.query, 0)
        seen[record.query] = n + 1
        keys.append((record.query, n))
    return keys


def _by_query(records: Iterable[TraceRecord]) -> dict[tuple[str, int], TraceRecord]:
    items = list(records)
    return dict(zip(occurrences(items), items))


def diff_traces(a: Iterable[TraceRecord], b: Iterable[TraceRecord]) -> TraceDiff:
    """Compare two runs: records are matched by query text (the n-th occurrence in A with the n-th in B)."""
    by_a, by_b = _by_query(a), _by_query(b)
    queries = tuple(diff_records(record, by_b[key]) for key, record in by_a.items() if key in by_b)
    return TraceDiff(queries=queries, only_a=tuple(key[0] for key in by_a if key not in by_b),
                     only_b=tuple(key[0] for key in by_b if key not in by_a))


