"""Explanation traces: one record per rerank call, written to a sink, for debugging agents and comparing students.

A :class:`TraceRecord` holds what went in (the query, each candidate's id, input rank and first-stage score), what
came out (the order, the student's scores, the explanations and the comparison), and what it cost (the stages and the
wall time), with the model, adapter and prompt version that produced it.

A sink is any object with ``write(record)`` (:class:`TraceSink`). Two are provided: :class:`MemoryTraceSink` (a list)
and :class:`JsonlTraceSink` (one JSON line per call, appended). A :class:`~r2r_agent.Reranker` traces every call when
given ``trace=`` (a sink or a file path), or, by default, when the environment variable ``R2R_TRACE_PATH`` names a
file (``R2R_TRACE_RUN`` adds a run label). Tracing never fails a query: a sink that cannot write logs one warning.

Example:
    >>> sink = MemoryTraceSink()
    >>> reranker = Reranker(trace=sink)                                   # doctest: +SKIP
    >>> ranking = reranker.rerank("how long do fleas live", passages)   # doctest: +SKIP
    >>> sink.records[-1].moves()[0]                                      # doctest: +SKIP

``r2r traces show FILE`` renders a trace file; ``r2r traces diff A B`` compares two runs of the same queries.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .errors import InvalidInputError, R2RError
from .types import Passage, Ranking, StageCost

logger = logging.getLogger(__name__)

#: Environment variable naming the JSONL file a default :class:`~r2r_agent.Reranker` appends traces to.
TRACE_PATH_ENV = "R2R_TRACE_PATH"
#: Environment variable with a run label stamped on those traces (e.g. the student version).
TRACE_RUN_ENV = "R2R_TRACE_RUN"
#: Version of the record layout written by :meth:`TraceRecord.to_dict`.
TRACE_FORMAT = 1
#: How many characters of each candidate's text a record keeps (enough to recognise it in ``r2r traces show``).
PREVIEW_CHARS = 200


@dataclass(frozen=True)
class TraceCandidate:
    """One passage as it came in.

    Attributes:
        input_rank: 1-based position in the input (the first-stage order).
        id: The passage id, if any.
        first_stage_score: The retriever's score, if one was passed in.
        preview: The start of the passage text (at most :data:`PREVIEW_CHARS` characters, whitespace collapsed).
        truncated: Whether a model cut the passage to its token budget; ``None`` when unknown (the passage was not
            among the returned ones).
    """

    input_rank: int
    id: str | None = None
    first_stage_score: float | None = None
    preview: str = ""
    truncated: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TraceCandidate:
        """Build from :meth:`to_dict` output (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class TraceResult:
    """One returned passage.

    Attributes:
        rank: 1-based position in the reranked order.
        input_rank: 1-based position in the input (links to :class:`TraceCandidate`).
        id: The passage id, if any.
        score: The student's score (from ``stage``).
        stage: The cascade stage that produced ``score``.
        explanation: Why the passage is (or is not) relevant, or ``None`` when it was not explained.
        truncated: Whether a model cut the passage to its token budget.
    """

    rank: int
    input_rank: int
    id: str | None
    score: float
    stage: str = "score"
    explanation: str | None = None
    truncated: bool = False

    @property
    def move(self) -> int:
        """How many places the passage moved up (negative: down)."""
        return self.input_rank - self.rank

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TraceResult:
        """Build from :meth:`to_dict` output (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _preview(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class TraceRecord:
    """What one rerank call saw, did and said.

    Attributes:
        query: The query.
        candidates: Every passage that came in, in input order.
        results: The returned passages, best first.
        comparison: Why the top passages are ordered as they are, or ``None``.
        top_n: How many results were asked for (``None``: all).
        model: The student that ranked (scorer and explainer).
        adapter: The distilled adapter in use, if any.
        prompt_version: The version of the prompts the student saw.
        stages: What each cascade stage cost.
        seconds: Wall-clock seconds of the whole call (``None`` when not measured).
        timestamp: When the record was made (ISO 8601, UTC).
        run: An optional label for the run (a student version, an experiment), set by the sink.
    """

    query: str
    candidates: tuple[TraceCandidate, ...] = ()
    results: tuple[TraceResult, ...] = ()
    comparison: str | None = None
    top_n: int | None = None
    model: str = ""
    adapter: str | None = None
    prompt_version: str = ""
    stages: tuple[StageCost, ...] = ()
    seconds: float | None = None
    timestamp: str = field(default_factory=_now)
    run: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidates", tuple(self.candidates))
        object.__setattr__(self, "results", tuple(self.results))
        object.__setattr__(self, "stages", tuple(self.stages))

    @classmethod
    def from_ranking(cls, ranking: Ranking, passages: Sequence[Passage] | None = None, *, top_n: int | None = None,
                     seconds: float | None = None, run: str | None = None,
                     preview_chars: int = PREVIEW_CHARS) -> TraceRecord:
        """Build a record from a :class:`~r2r_agent.Ranking` and the passages that went in.

        Args:
            ranking: The result of the call.
            passages: The input passages in input order (as :class:`~r2r_agent.Passage`). Without them the candidates
                are only those the ranking returned.
            top_n: The ``top_n`` the call asked for.
            seconds: Wall-clock seconds of the call.
            run: A run label.
            preview_chars: How many characters of each candidate's text to keep.

        Raises:
            InvalidInputError: when ``passages`` do not match the ranking (a different number of candidates).
        """
        truncated = {j.input_rank: j.truncated for j in ranking}
        if passages is not None:
            if ranking.num_candidates and len(passages) != ranking.num_candidates:
                raise InvalidInputError(
                    f"TraceRecord.from_ranking: the ranking was made from {ranking.num_candidates} passages but "
                    f"{len(passages)} were given; pass the same passages that went into the rerank call")
            candidates = tuple(
                TraceCandidate(input_rank=i, id=p.id, first_stage_score=p.first_stage_score,
                               preview=_preview(p.text, preview_chars), truncated=truncated.get(i))
                for i, p in enumerate(passages, start=1))
        else:
            candidates = tuple(
                TraceCandidate(input_rank=j.input_rank, id=j.id, first_stage_score=j.first_stage_score,
                               preview=_preview(j.text, preview_chars), truncated=j.truncated)
                for j in sorted(ranking, key=lambda j: j.input_rank))
        results = tuple(TraceResult(rank=j.rank, input_rank=j.input_rank, id=j.id, score=j.score, stage=j.stage,
                                    explanation=j.explanation, truncated=j.truncated) for j in ranking)
        return cls(query=ranking.query, candidates=candidates, results=results, comparison=ranking.comparison,
                   top_n=top_n, model=ranking.model, adapter=ranking.adapter, prompt_version=ranking.prompt_version,
                   stages=ranking.stages, seconds=seconds, run=run)

    @property
    def num_candidates(self) -> int:
        """How many passages came in."""
        return len(self.candidates)

    def candidate(self, input_rank: int) -> TraceCandidate | None:
        """The candidate at ``input_rank`` (1-based), if recorded."""
        for c in self.candidates:
            if c.input_rank == input_rank:
                return c
        return None

    def dropped(self) -> list[TraceCandidate]:
        """Candidates that were in the input's first ``len(results)`` places but are not returned (pushed out)."""
        returned = {r.input_rank for r in self.results}
        return [c for c in self.candidates if c.input_rank <= len(self.results) and c.input_rank not in returned]

    def moves(self) -> list[TraceResult]:
        """The returned passages ordered by how far they moved (largest first; ties keep the output order)."""
        return sorted(self.results, key=lambda r: (-abs(r.move), r.rank))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (with a ``format`` version)."""
        return {
            "format": TRACE_FORMAT,
            "query": self.query,
            "run": self.run,
            "timestamp": self.timestamp,
            "model": self.model,
            "adapter": self.adapter,
            "prompt_version": self.prompt_version,
            "top_n": self.top_n,
            "seconds": self.seconds,
            "stages": [s.to_dict() for s in self.stages],
            "candidates": [c.to_dict() for c in self.candidates],
            "results": [r.to_dict() for r in self.results],
            "comparison": self.comparison,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TraceRecord:
        """Build from :meth:`to_dict` output.

        Raises:
            InvalidInputError: when ``data`` is not a trace record of a known format.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("query"), str):
            raise InvalidInputError(
                "a trace record must be a JSON object with a string 'query' (as written by JsonlTraceSink), got "
                f"{type(data).__name__}" + (f" with keys {sorted(map(str, data))[:8]}" if isinstance(data, Mapping)
                                            else ""))
        version = data.get("format", TRACE_FORMAT)
        if version != TRACE_FORMAT:
            raise InvalidInputError(f"trace record format {version!r} is not supported (this version reads format "
                                    f"{TRACE_FORMAT}); upgrade r2r-agent to read it")
        return cls(
            query=data["query"],
            candidates=tuple(TraceCandidate.from_dict(c) for c in data.get("candidates") or ()),
            results=tuple(TraceResult.from_dict(r) for r in data.get("results") or ()),
            comparison=data.get("comparison"),
            top_n=data.get("top_n"),
            model=data.get("model") or "",
            adapter=data.get("adapter"),
            prompt_version=data.get("prompt_version") or "",
            stages=tuple(StageCost.from_dict(s) for s in data.get("stages") or ()),
            seconds=data.get("seconds"),
            timestamp=data.get("timestamp") or "",
            run=data.get("run"),
        )

    def to_json(self) -> str:
        """One line of JSON (no newline)."""
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> TraceRecord:
        """Parse :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))


# -- sinks ---------------------------------------------------------------------------------------------------------


@runtime_checkable
class TraceSink(Protocol):
    """Where trace records go: anything with ``write(record)``. It should be thread-safe."""

    def write(self, record: TraceRecord) -> None:
        """Store one record."""


class MemoryTraceSink:
    """Keeps records in a list (thread-safe), for tests and notebooks.

    Args:
        run: A label stamped on records that have none.

    Example:
        >>> sink = MemoryTraceSink(run="v1")
        >>> sink.write(TraceRecord(query="q"))
        >>> sink.records[0].run, len(sink)
        ('v1', 1)
    """

    def __init__(self, *, run: str | None = None) -> None:
        self.run = run
        self._records: list[TraceRecord] = []
        self._lock = threading.Lock()

    def write(self, record: TraceRecord) -> None:
        """Append ``record`` (stamped with this sink's run label when it has none)."""
        if self.run is not None and record.run is None:
            record = replace(record, run=self.run)
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> list[TraceRecord]:
        """A copy of the records so far, oldest first."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __iter__(self) -> Iterator[TraceRecord]:
        return iter(self.records)


# One lock per file, shared by every sink of this process that writes to it, so lines never interleave.
_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> threading.Lock:
    key = os.path.abspath(path)
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(key, threading.Lock())


class JsonlTraceSink:
    """Appends one JSON line per record to a file (created with its folder when missing); thread-safe.

    A file that cannot be written (a folder, a read-only place, a full disk) never fails the query: the first failure
    is logged as a warning, later ones at debug level, and :attr:`failed_writes` counts them.

    Args:
        path: The JSON Lines file.
        run: A label stamped on records that have none (e.g. ``"student-v2"``), so ``r2r traces diff`` can name runs.

    Example:
        >>> sink = JsonlTraceSink("traces.jsonl", run="v1")   # doctest: +SKIP
        >>> reranker = Reranker(trace=sink)                      # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str], *, run: str | None = None) -> None:
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            raise InvalidInputError(f"JsonlTraceSink: path must be a non-empty file path, got {path!r}")
        self.path = Path(path).expanduser()
        self.run = run
        self.failed_writes = 0
        self._warned = False
        self._lock = _file_lock(self.path)

    def write(self, record: TraceRecord) -> None:
        """Append ``record`` as one line; never raises for an unwritable file (see the class docs)."""
        if self.run is not None and record.run is None:
            record = replace(record, run=self.run)
        line = record.to_json() + "\n"
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(line)
        except OSError as exc:
            self.failed_writes += 1
            if not self._warned:
                self._warned = True
                logger.warning("r2r traces: cannot write the trace file %s (%s: %s); reranking goes on without "
                               "traces. Set another path (trace= or $%s).", self.path, type(exc).__name__, exc,
                               TRACE_PATH_ENV)
            else:
                logger.debug("r2r traces: write to %s failed again: %s", self.path, exc)

    def __repr__(self) -> str:
        return f"JsonlTraceSink({str(self.path)!r}, run={self.run!r})"


def read_traces(path: str | os.PathLike[str]) -> list[TraceRecord]:
    """Read every record from a JSON Lines trace file (blank lines are skipped).

    Raises:
        R2RError: when the file is missing or a line is not a trace record (naming the line).
    """
    file = Path(path)
    if not file.is_file():
        raise R2RError(f"trace file {str(path)!r} not found (expected a JSON Lines file written by a Reranker with "
                       f"trace=... or ${TRACE_PATH_ENV})")
    records = []
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(TraceRecord.from_dict(json.loads(line)))
            except json.JSONDecodeError as exc:
                raise R2RError(f"{path}, line {number}: not JSON ({exc.msg}); each line must be one trace record "
                               "as written by JsonlTraceSink") from exc
            except (InvalidInputError, TypeError, KeyError) as exc:
                raise R2RError(f"{path}, line {number}: not a trace record: {exc}") from exc
    return records


# -- what the Reranker calls ---------------------------------------------------------------------------------------


class Tracer:
    """Builds a record for each rerank call and hands it to a sink, so tracing never fails a query.

    Any error while building or writing a record is logged once per tracer as a warning (later ones at debug level).

    Args:
        sink: Where the records go.
    """

    def __init__(self, sink: TraceSink) -> None:
        self.sink = sink
        self._warned = False

    @classmethod
    def from_option(cls, trace: Any) -> Tracer | None:
        """The tracer for a ``Reranker(trace=...)`` setting.

        Args:
            trace: A :class:`TraceSink`; a file path (``str`` or path-like) for a :class:`JsonlTraceSink`; ``None``
                to follow ``$R2R_TRACE_PATH`` (no tracing when unset or empty); ``False`` for no tracing at all.

        Raises:
            InvalidInputError: for anything else.
        """
        if trace is False:
            return None
        run = os.environ.get(TRACE_RUN_ENV) or None
        if trace is None:
            path = os.environ.get(TRACE_PATH_ENV, "").strip()
            return cls(JsonlTraceSink(path, run=run)) if path else None
        if isinstance(trace, (str, os.PathLike)) and os.fspath(trace):
            return cls(JsonlTraceSink(trace, run=run))
        if isinstance(trace, TraceSink) and not isinstance(trace, type):
            return cls(trace)
        raise InvalidInputError(
            f"trace must be a trace sink (an object with write(record), e.g. MemoryTraceSink()), a file path for a "
            f"JSON Lines trace, None (follow ${TRACE_PATH_ENV}) or False (off); got {type(trace).__name__} "
            f"{trace!r:.60}")

    def record(self, ranking: Ranking, passages: Sequence[Passage], *, top_n: int | None,
               seconds: float | None) -> None:
        """Write the record of one call; never raises."""
        try:
            self.sink.write(TraceRecord.from_ranking(ranking, passages, top_n=top_n, seconds=seconds))
        except Exception as exc:  # noqa: BLE001 - a trace must never fail the query it describes
            if not self._warned:
                self._warned = True
                logger.warning("r2r traces: the trace sink %r failed (%s: %s); reranking goes on without traces",
                               self.sink, type(exc).__name__, exc)
            else:
                logger.debug("r2r traces: the trace sink failed again: %s", exc)


# -- comparing two runs --------------------------------------------------------------------------------------------


def kendall_tau(a: Sequence[Any], b: Sequence[Any]) -> float | None:
    """Kendall's tau between two orders, over the items they share (``None`` when they share fewer than 2).

    Example:
        >>> kendall_tau(["x", "y", "z"], ["x", "y", "z"]), kendall_tau(["x", "y", "z"], ["z", "y", "x"])
        (1.0, -1.0)
    """
    position_b = {item: i for i, item in enumerate(b)}
    shared = [item for item in a if item in position_b]
    n = len(shared)
    if n < 2:
        return None
    concordant = discordant = 0
    for i in range(n):
        for j in range(i + 1, n):  # shared is in a's order, so a ranks shared[i] above shared[j]
            if position_b[shared[i]] < position_b[shared[j]]:
                concordant += 1
            else:
                discordant += 1
    return (concordant - discordant) / (n * (n - 1) / 2)


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
    """

    key: str
    input_rank: int
    rank_a: int | None
    rank_b: int | None
    explanation_a: str | None = None
    explanation_b: str | None = None

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
        """Whether the two output orders differ."""
        return self.order_a != self.order_b

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["order_a"], data["order_b"] = list(self.order_a), list(self.order_b)
        data["shifts"] = [s.to_dict() for s in self.shifts]
        return data


def diff_records(a: TraceRecord, b: TraceRecord) -> QueryDiff:
    """Compare two records of the same query (e.g. from two student versions)."""
    keys_a, keys_b = _keys(a), _keys(b)
    order_a = tuple(keys_a[r.input_rank] for r in a.results)
    order_b = tuple(keys_b[r.input_rank] for r in b.results)
    result_a = {keys_a[r.input_rank]: r for r in a.results}
    result_b = {keys_b[r.input_rank]: r for r in b.results}
    shifts = []
    for key in dict.fromkeys([*order_a, *order_b]):
        ra, rb = result_a.get(key), result_b.get(key)
        shifts.append(DocumentShift(key=key, input_rank=(ra or rb).input_rank,  # type: ignore[union-attr]
                                    rank_a=ra.rank if ra else None, rank_b=rb.rank if rb else None,
                                    explanation_a=ra.explanation if ra else None,
                                    explanation_b=rb.explanation if rb else None))
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


def _by_query(records: Iterable[TraceRecord]) -> dict[tuple[str, int], TraceRecord]:
    seen: dict[str, int] = {}
    out = {}
    for record in records:
        n = seen.get(record.query, 0)
        seen[record.query] = n + 1
        out[(record.query, n)] = record
    return out


def diff_traces(a: Iterable[TraceRecord], b: Iterable[TraceRecord]) -> TraceDiff:
    """Compare two runs: records are matched by query text (the n-th occurrence in A with the n-th in B)."""
    by_a, by_b = _by_query(a), _by_query(b)
    queries = tuple(diff_records(record, by_b[key]) for key, record in by_a.items() if key in by_b)
    return TraceDiff(queries=queries, only_a=tuple(key[0] for key in by_a if key not in by_b),
                     only_b=tuple(key[0] for key in by_b if key not in by_a))


__all__ = [
    "PREVIEW_CHARS",
    "TRACE_FORMAT",
    "TRACE_PATH_ENV",
    "TRACE_RUN_ENV",
    "DocumentShift",
    "JsonlTraceSink",
    "MemoryTraceSink",
    "QueryDiff",
    "TraceCandidate",
    "TraceDiff",
    "TraceRecord",
    "TraceResult",
    "TraceSink",
    "Tracer",
    "diff_records",
    "diff_traces",
    "kendall_tau",
    "rank_biased_overlap",
    "read_traces",
]
