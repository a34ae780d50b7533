"""Where trace records go: the :class:`TraceSink` protocol, a memory sink, a JSON Lines file sink, the reader of such
files, and the :class:`Tracer` a :class:`~r2r_agent.Reranker` calls (tracing never fails a query)."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import InvalidInputError, R2RError
from ..types import Passage, Ranking
from .otel import OpenInferenceSink, otel_enabled
from .records import TRACE_PATH_ENV, TRACE_RUN_ENV, CallDetails, TraceRecord, keep_text_default

if TYPE_CHECKING:
    from ..calibration import Calibrator
    from ..candidate import Candidate

logger = logging.getLogger(__name__)


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
        text: Keep the returned passages' whole text (default: yes unless ``$R2R_TRACE_TEXT`` is ``0``).

    Example:
        >>> sink = MemoryTraceSink(run="v1")
        >>> sink.write(TraceRecord(query="q"))
        >>> sink.records[0].run, len(sink)
        ('v1', 1)
    """

    def __init__(self, *, run: str | None = None, text: bool | None = None) -> None:
        self.run = run
        self.text = keep_text_default() if text is None else text
        self._records: list[TraceRecord] = []
        self._lock = threading.Lock()

    def write(self, record: TraceRecord) -> None:
        """Append ``record`` (stamped with this sink's run label when it has none)."""
        if self.run is not None and record.run is None:
            record = replace(record, run=self.run)
        if not self.text:
            record = record.without_text()
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
        text: Keep the returned passages' whole text, so the trace page shows the evidence in place (default: yes
            unless ``$R2R_TRACE_TEXT`` is ``0``). The file then holds the full text of every returned document:
            treat it as you treat the documents (see :data:`~r2r_agent.traces.TRACE_TEXT_ENV`).

    Example:
        >>> sink = JsonlTraceSink("traces.jsonl", run="v1")   # doctest: +SKIP
        >>> reranker = Reranker(trace=sink)                      # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str], *, run: str | None = None, text: bool | None = None) -> None:
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            raise InvalidInputError(f"JsonlTraceSink: path must be a non-empty file path, got {path!r}")
        self.path = Path(path).expanduser()
        self.run = run
        self.text = keep_text_default() if text is None else text
        self.failed_writes = 0
        self._warned = False
        self._lock = _file_lock(self.path)

    def write(self, record: TraceRecord) -> None:
        """Append ``record`` as one line; never raises for an unwritable file (see the class docs)."""
        if self.run is not None and record.run is None:
            record = replace(record, run=self.run)
        if not self.text:
            record = record.without_text()
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
        return f"JsonlTraceSink({str(self.path)!r}, run={self.run!r}, text={self.text!r})"


class TeeTraceSink:
    """Writes every record to several sinks (a file and OpenTelemetry, say); one failing does not stop the others.

    Args:
        sinks: The sinks, each with ``write(record)``.

    Raises:
        InvalidInputError: when a sink has no ``write`` method.

    Example:
        >>> a, b = MemoryTraceSink(), MemoryTraceSink()
        >>> TeeTraceSink(a, b).write(TraceRecord(query="q"))
        >>> len(a), len(b)
        (1, 1)
    """

    def __init__(self, *sinks: TraceSink) -> None:
        for sink in sinks:
            if isinstance(sink, type) or not isinstance(sink, TraceSink):
                raise InvalidInputError(f"TeeTraceSink: each sink needs a write(record) method, got "
                                        f"{type(sink).__name__} {sink!r:.60}")
        self.sinks = tuple(sinks)

    def write(self, record: TraceRecord) -> None:
        """Write ``record`` to every sink; then raise the first failure, if any (the Tracer logs it)."""
        failure: Exception | None = None
        for sink in self.sinks:
            try:
                sink.write(record)
            except Exception as exc:  # noqa: BLE001 - the next sink still gets the record
                failure = failure or exc
        if failure is not None:
            raise failure

    def __repr__(self) -> str:
        return f"TeeTraceSink({', '.join(map(repr, self.sinks))})"


@dataclass(frozen=True)
class TraceFile:
    """The good records of a trace file, and the lines that were not records.

    Attributes:
        records: The records, in file order.
        skipped: One problem per skipped line (``"FILE, line N: what is wrong"``).
    """

    records: tuple[TraceRecord, ...]
    skipped: tuple[str, ...] = ()


def load_traces(path: str | os.PathLike[str], *, skip_bad_lines: bool = True) -> TraceFile:
    """Read a JSON Lines trace file, keeping the good records and counting the damaged lines (blank lines are skipped).

    A damaged line is one cut by a crash mid-write, not UTF-8, not JSON, nested too deeply, or not a trace record
    (a wrong type anywhere, e.g. ``"unsupported": [1, 2]``). Each is logged as a warning naming the line.

    Args:
        path: The file.
        skip_bad_lines: Keep going past damaged lines (default); ``False`` raises at the first.

    Raises:
        R2RError: when the file is missing, or (unless ``skip_bad_lines``) a line is not a trace record, naming it.
    """
    file = Path(path)
    if not file.is_file():
        raise R2RError(f"trace file {str(path)!r} not found (expected a JSON Lines file written by a Reranker with "
                       f"trace=... or ${TRACE_PATH_ENV})")
    records = []
    skipped = []
    with file.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                records.append(_parse_line(raw))
            except ValueError as exc:
                problem = f"{path}, line {number}: {exc}"
                if not skip_bad_lines:
                    raise R2RError(problem + "; each line must be one trace record as written by JsonlTraceSink "
                                   "(r2r traces show skips bad lines)") from None
                logger.warning("%s (line skipped)", problem)
                skipped.append(problem)
    return TraceFile(records=tuple(records), skipped=tuple(skipped))


def read_traces(path: str | os.PathLike[str], *, skip_bad_lines: bool = False) -> list[TraceRecord]:
    """Read every record from a JSON Lines trace file (blank lines are skipped).

    Args:
        path: The file.
        skip_bad_lines: Keep the good records of a damaged file (see :func:`load_traces`), logging a warning that
            names each bad line. By default such a line is an error.

    Raises:
        R2RError: when the file is missing, or (unless ``skip_bad_lines``) a line is not a trace record, naming it.
    """
    return list(load_traces(path, skip_bad_lines=skip_bad_lines).records)


def _parse_line(raw: bytes) -> TraceRecord:
    """One line as a record; :class:`ValueError` saying what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 (byte {exc.start + 1})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        cut = "" if text.endswith("\n") else " (cut short: the writer probably stopped mid-line)"
        raise ValueError(f"not JSON ({exc.msg}){cut}") from None
    except RecursionError:
        raise ValueError("nested too deeply to be a trace record") from None
    try:
        return TraceRecord.from_dict(data)
    except (InvalidInputError, TypeError, KeyError, AttributeError, ValueError) as exc:
        raise ValueError(f"not a trace record: {str(exc)[:300]}") from None


# -- what the Reranker calls ---------------------------------------------------------------------------------------


class Tracer:
    """Builds a record for each rerank call and hands it to a sink, so tracing never fails a query.

    An error while building or writing a record is logged as a warning the first time each kind of error happens
    (later ones of that kind at debug level, so a broken sink does not flood the log), and :attr:`dropped` counts every
    record lost. A new kind of failure always warns: one hostile document cannot hide behind an earlier failure.

    Args:
        sink: Where the records go.
    """

    def __init__(self, sink: TraceSink) -> None:
        self.sink = sink
        self.dropped = 0
        self._warned: set[str] = set()
        # Per thread: a call's details are noted and then recorded by the same thread (rerank_many runs calls on
        # several threads at once).
        self._pending = threading.local()
        self._load_seconds: float | None = None
        self._load_lock = threading.Lock()

    def loaded(self, seconds: float) -> None:
        """Note that loading models took ``seconds``: the next record (one only) carries it (with any other loading
        noted before it: the student at first use, its LM when a call first needs it)."""
        with self._load_lock:
            self._load_seconds = (self._load_seconds or 0.0) + seconds

    def observe(self, candidates: Sequence[Candidate], calibrator: Calibrator | None = None) -> None:
        """Note what the call in progress on this thread knows beyond its ranking, for its record; never raises.

        Called with every candidate once they are scored (their scores), and with the judged ones (their verdicts,
        with the calibrator that gave them); :meth:`record` writes them with the call's record and forgets them.

        Args:
            candidates: The call's candidates (their ``index``, ``score``, ``stage`` and ``judged``).
            calibrator: The calibrator that gave the verdicts (its thresholds are recorded).
        """
        try:
            details: CallDetails = getattr(self._pending, "details", None) or CallDetails()
            scores = {**details.scores, **{c.index: (c.score, c.stage) for c in candidates}}
            judged = {**details.judged, **{c.index: (c.judged.relevance, c.judged.verdict) for c in candidates
                                           if c.judged.verdict is not None}}
            if calibrator is not None and judged:
                details = replace(details, relevant_at=calibrator.relevant_at, partial_at=calibrator.partial_at)
            self._pending.details = replace(details, scores=scores, judged=judged)
        except Exception as exc:  # noqa: BLE001 - a trace must never fail the query it describes
            logger.debug("r2r traces: could not note the call's details: %s", exc)

    @classmethod
    def from_option(cls, trace: Any) -> Tracer | None:
        """The tracer for a ``Reranker(trace=...)`` setting.

        Args:
            trace: A :class:`TraceSink`; a file path (``str`` or path-like) for a :class:`JsonlTraceSink`; ``None``
                to follow ``$R2R_TRACE_PATH`` (no tracing when unset or empty); ``False`` for no tracing at all.
                Unless it is ``False``, ``$R2R_OTEL=1`` adds an :class:`~r2r_agent.traces.OpenInferenceSink` (every
                call also becomes an OpenTelemetry span).

        Raises:
            InvalidInputError: for anything else.
            R2RError: when ``$R2R_OTEL`` asks for spans and OpenTelemetry is not installed.
        """
        if trace is False:
            return None
        run = os.environ.get(TRACE_RUN_ENV) or None
        sink: TraceSink | None
        if trace is None:
            path = os.environ.get(TRACE_PATH_ENV, "").strip()
            sink = JsonlTraceSink(path, run=run) if path else None
        elif isinstance(trace, (str, os.PathLike)) and os.fspath(trace):
            sink = JsonlTraceSink(trace, run=run)
        elif isinstance(trace, TraceSink) and not isinstance(trace, type):
            sink = trace
        else:
            raise InvalidInputError(
                f"trace must be a trace sink (an object with write(record), e.g. MemoryTraceSink()), a file path for "
                f"a JSON Lines trace, None (follow ${TRACE_PATH_ENV}) or False (off); got {type(trace).__name__} "
                f"{trace!r:.60}")
        if otel_enabled():  # $R2R_OTEL: every call also becomes a span, beside whatever else traces it
            spans = OpenInferenceSink(run=run)
            sink = spans if sink is None else TeeTraceSink(sink, spans)
        return None if sink is None else cls(sink)

    def record(self, ranking: Ranking, passages: Sequence[Passage], *, top_n: int | None,
               seconds: float | None, config: Mapping[str, Any] | None = None) -> None:
        """Write the record of one call (with the details :meth:`observe` noted on this thread); never raises."""
        details: CallDetails | None = getattr(self._pending, "details", None)
        self._pending.details = None
        with self._load_lock:
            load_seconds, self._load_seconds = self._load_seconds, None
        try:
            self.sink.write(TraceRecord.from_ranking(ranking, passages, top_n=top_n, seconds=seconds,
                                                     config=config, details=details, load_seconds=load_seconds))
        except Exception as exc:  # noqa: BLE001 - a trace must never fail the query it describes
            self.dropped += 1
            kind = type(exc).__name__
            if kind not in self._warned:
                self._warned.add(kind)
                logger.warning("r2r traces: the trace sink %r failed (%s: %.300s); this call's record is lost "
                               "(%d so far), reranking goes on", self.sink, kind, exc, self.dropped)
            else:
                logger.debug("r2r traces: the trace sink failed again (%d records lost): %.300s", self.dropped, exc)


