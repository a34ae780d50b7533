"""A whole annotation run: many queries, resumable through the cache, concurrent, and stoppable with Ctrl-C.

Every finished window is committed to the cache at once, so running again with the same teacher, prompt version and
cache continues where a run stopped. The queries are annotated by ``workers`` daemon threads while the calling thread
waits, so Ctrl-C (``KeyboardInterrupt``) stops the run promptly: no new window starts, the windows in flight get
``interrupt_wait`` seconds to finish (their answers are cached), the rest are left behind, and :func:`annotate` raises
:class:`AnnotationInterrupted` with what was finished. A second Ctrl-C ends the wait at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from r2r_agent.progress import maybe_progress

from .annotate import AnnotationConfig, AnnotationRequest, annotate_query
from .records import QueryAnnotation, WindowAnnotation
from .teacher import Teacher
from .windows import sliding_windows

if TYPE_CHECKING:
    from .cache import AnnotationCache

logger = logging.getLogger(__name__)


@dataclass
class AnnotationRun:
    """The result of :func:`annotate`: the annotations and counts.

    Attributes:
        annotations: One per query, in input order (of an interrupted run: the finished queries only).
        windows: Windows processed (cached ones included).
        cached: Windows answered from the cache.
        failed: Windows that failed.
        seconds: Wall-clock seconds.
        failed_queries: Queries with at least one failed window.
        first_error: The error of the first window that failed (``None`` when none did).
    """

    annotations: list[QueryAnnotation]
    windows: int = 0
    cached: int = 0
    failed: int = 0
    seconds: float = 0.0
    failed_queries: int = 0
    first_error: str | None = None

    @property
    def success_share(self) -> float:
        """The share of the windows that succeeded (1.0 when there were none)."""
        return (self.windows - self.failed) / self.windows if self.windows else 1.0


class AnnotationInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`annotate`; every finished window is in the cache, so running again continues.

    Attributes:
        run: The finished queries and the counts so far.
        queries: How many queries the run was given.
        abandoned: Queries whose windows were still in flight when the run stopped waiting for them.
    """

    def __init__(self, run: AnnotationRun, queries: int, abandoned: int) -> None:
        super().__init__(f"annotation interrupted: {len(run.annotations)} of {queries} queries finished")
        self.run = run
        self.queries = queries
        self.abandoned = abandoned


class AnnotationStop:
    """Stops a running :func:`annotate` from a signal handler or another thread, as Ctrl-C does.

    The first :meth:`request` stops the run (no new window starts; the windows in flight get ``interrupt_wait``
    seconds); the second ends that wait at once. ``r2r teach`` calls it on SIGINT, so Ctrl-C never raises inside it.
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.hurried = threading.Event()

    def request(self) -> None:
        """Stop the run; called again, stop waiting for the windows in flight."""
        (self.hurried if self.requested.is_set() else self.requested).set()


class _Stop(Exception):
    """Raised in a worker after a stop, so that it starts no new window."""


class _Bar(Protocol):
    def update(self, n: int = 1) -> object: ...

    def set_postfix_str(self, text: str) -> object: ...


class _Tally:
    """The counts and the progress bar, updated after every window (from any thread); it stops a worker once the
    run halts."""

    def __init__(self, bar: _Bar, halt: threading.Event) -> None:
        self.run = AnnotationRun(annotations=[])
        self.bar: _Bar | None = bar
        self.halt = halt
        self.lock = threading.Lock()

    def on_window(self, window: WindowAnnotation, cached: bool) -> None:
        with self.lock:
            if self.bar is None:  # the run is over: a window left in flight finished late
                raise _Stop
            run = self.run
            run.windows += 1
            run.cached += int(cached)
            run.failed += int(not window.ok)
            if not window.ok and run.first_error is None:
                run.first_error = window.error
            self.bar.update(1)
            self.bar.set_postfix_str(f"cached={run.cached} failed={run.failed}")
        if self.halt.is_set():
            raise _Stop

    def close(self) -> None:
        with self.lock:
            self.bar = None


class _Workers:
    """``count`` daemon threads taking the queries in turn. The main thread only waits, so Ctrl-C reaches it at once,
    and it can leave requests in flight behind (daemon threads do not hold up the interpreter's exit)."""

    def __init__(self, one: Callable[[AnnotationRequest], QueryAnnotation], requests: Sequence[AnnotationRequest],
                 count: int, halt: threading.Event) -> None:
        self.results: list[QueryAnnotation | None] = [None] * len(requests)
        self.error: BaseException | None = None
        self._one, self._requests, self._halt = one, requests, halt
        self._next = iter(range(len(requests)))
        self._lock = threading.Lock()
        # Counted rather than joined: Thread.join interrupted by Ctrl-C can mark a running thread as stopped.
        self._running = min(count, len(requests))
        self._done = threading.Event()
        if not self._running:
            self._done.set()
        for number in range(self._running):
            threading.Thread(target=self._work, name=f"r2r-teach-{number}", daemon=True).start()

    def _work(self) -> None:
        try:
            while not self._halt.is_set():
                with self._lock:
                    index = next(self._next, None)
                if index is None:
                    return
                self.results[index] = self._one(self._requests[index])
        except BaseException as exc:  # handed to the main thread; after a halt (or once left behind) dropped
            with self._lock:
                if not self._halt.is_set():
                    self.error = exc
                self._halt.set()
        finally:
            with self._lock:
                self._running -= 1
                if not self._running:
                    self._done.set()

    def wait(self, seconds: float | None = None, until: threading.Event | None = None) -> bool:
        """Wait for every thread, at most ``seconds`` or until ``until`` is set; whether they all ended."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while not self._done.wait(0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic()))):
            if (deadline is not None and time.monotonic() >= deadline) or (until is not None and until.is_set()):
                return False
        return True

    def in_flight(self) -> int:
        """Threads still running (after a stop: those left behind with a request in flight)."""
        with self._lock:
            return self._running


def annotate(teacher: Teacher, requests: Iterable[AnnotationRequest], *, config: AnnotationConfig | None = None,
             cache: AnnotationCache | None = None, progress: bool = False,
             stop: AnnotationStop | None = None) -> AnnotationRun:
    """Annotate many queries, resumably when a ``cache`` is given.

    Every finished window is committed to the cache at once, so a crash or Ctrl-C loses at most the windows in
    flight, and running again with the same teacher, prompt version and cache continues where it stopped.

    Args:
        teacher: The teacher, called from ``config.workers`` threads.
        requests: The queries and their candidates.
        config: Window, retry, concurrency and interruption settings.
        cache: The resumable cache (``None``: nothing is stored).
        progress: Show a tqdm bar of windows with throughput, cache hits and failures.
        stop: Stops the run when requested (as Ctrl-C does), e.g. from a signal handler.

    Returns:
        The annotations (in input order) and counts; windows that failed are counted, not raised
        (:attr:`AnnotationRun.success_share`).

    Raises:
        AnnotationInterrupted: on Ctrl-C or a ``stop`` request, after at most ``config.interrupt_wait`` seconds for
            the windows in flight. Those still running are left to finish in the background and may write their
            window to ``cache`` until it is closed; close ``teacher`` only once the process no longer needs it.
    """
    config = config or AnnotationConfig()
    stop = stop or AnnotationStop()
    requests = list(requests)
    total = 0
    for request in requests:
        n = len(request.candidates)
        if config.max_candidates is not None:
            n = min(n, config.max_candidates)
        total += len(sliding_windows(n, config.window_size, config.stride))
    halt = threading.Event()
    start = time.perf_counter()
    with maybe_progress(progress, total=total, unit="window", desc=f"teach {teacher.name}") as bar:
        tally = _Tally(bar, halt)

        def one(request: AnnotationRequest) -> QueryAnnotation:
            return annotate_query(teacher, request.query, request.candidates, query_id=str(request.query_id),
                                  config=config, cache=cache, labels=request.labels, on_window=tally.on_window)

        workers = _Workers(one, requests, config.workers, halt)
        try:
            done = workers.wait(until=stop.requested)
        except KeyboardInterrupt:
            done = False
            stop.request()
        interrupted = not done or isinstance(workers.error, KeyboardInterrupt)
        if interrupted:
            halt.set()
            try:
                workers.wait(config.interrupt_wait, until=stop.hurried)
            except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
                pass
        tally.close()
    run = _finish(tally.run, workers.results, start)
    if interrupted:
        abandoned = workers.in_flight()
        logger.warning("interrupted: %d of %d queries finished (%d windows, %d from the cache, %d failed); %d left in "
                       "flight", len(run.annotations), len(requests), run.windows, run.cached, run.failed, abandoned)
        raise AnnotationInterrupted(run, len(requests), abandoned)
    if workers.error is not None:
        raise workers.error
    logger.info("annotated %d queries: %d windows (%d cached, %d failed) in %.1fs", len(requests), run.windows,
                run.cached, run.failed, run.seconds)
    return run


def _finish(run: AnnotationRun, results: Sequence[QueryAnnotation | None], start: float) -> AnnotationRun:
    annotations = [a for a in results if a is not None]
    return AnnotationRun(annotations=annotations, windows=run.windows, cached=run.cached, failed=run.failed,
                         seconds=time.perf_counter() - start, failed_queries=sum(1 for a in annotations if a.failures),
                         first_error=run.first_error)


__all__ = ["AnnotationInterrupted", "AnnotationRun", "AnnotationStop", "annotate"]
