"""Resident memory (RSS) of this process, measured in-process while a system runs.

Three readings, all in MiB:

- :func:`peak_rss_mb`: the process's peak so far (``getrusage`` ``ru_maxrss``); it never goes down, so on its own
  it cannot tell one system from the systems that ran before it;
- :func:`current_rss_mb`: the RSS now (``/proc/self/statm`` on Linux, else ``psutil`` when installed);
- :class:`MemorySampler`: while a block runs, samples :func:`current_rss_mb` in a background thread and reports the
  RSS at the start, the peak during the block and their difference (:class:`MemoryUse`). When the block set a new
  process peak, that exact peak (``ru_maxrss``) is used, so short spikes between samples are not missed then.

Example:
    >>> with MemorySampler() as sampler:
    ...     block = bytearray(64 * 1024 * 1024)
    ...     block[::4096] = b"x" * len(block[::4096])   # touch every page so it is resident
    >>> sampler.use.increase_mb > 50                      # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import threading
from dataclasses import dataclass
from types import TracebackType

logger = logging.getLogger(__name__)

_MIB = 1024 * 1024


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / _MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def current_rss_mb() -> float | None:
    """The process's resident memory now, in MiB; ``None`` where it cannot be read (no ``/proc``, no psutil)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / _MIB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    return float(psutil.Process().memory_info().rss) / _MIB


@dataclass(frozen=True)
class MemoryUse:
    """The RSS of the process around one block of work (MiB; ``None`` where RSS cannot be read).

    Attributes:
        start_mb: RSS when the block started.
        peak_mb: The highest RSS during the block (sampled; exact when the block set a new process peak). It
            includes everything resident before the block (the interpreter, models loaded earlier).
        increase_mb: ``peak_mb - start_mb``: what the block added at its highest (its model loading and working
            memory; about 0 when its models were already loaded).
    """

    start_mb: float | None
    peak_mb: float | None

    @property
    def increase_mb(self) -> float | None:
        """``peak_mb - start_mb`` (never negative), or ``None`` when either is unknown."""
        if self.start_mb is None or self.peak_mb is None:
            return None
        return max(0.0, self.peak_mb - self.start_mb)


class MemorySampler:
    """Measure the RSS peak of a ``with`` block from a background sampling thread.

    Args:
        interval: Seconds between samples (default 0.05: cheap, a ``/proc`` read each).

    Attributes:
        use: The :class:`MemoryUse` of the block, set when it exits.
    """

    def __init__(self, interval: float = 0.05) -> None:
        if not interval > 0:
            raise ValueError(f"MemorySampler: interval must be > 0 seconds, got {interval!r}.")
        self.interval = interval
        self.use = MemoryUse(None, None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak: float | None = None
        self._start: float | None = None
        self._maxrss_before = 0.0

    def _sample(self) -> None:
        now = current_rss_mb()
        if now is not None and (self._peak is None or now > self._peak):
            self._peak = now

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> MemorySampler:
        self._maxrss_before = peak_rss_mb()
        self._start = current_rss_mb()
        self._peak = self._start
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="r2r-memory-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        peak = self._peak
        maxrss_after = peak_rss_mb()
        if maxrss_after > self._maxrss_before:  # a new process peak was set inside the block: it is exact
            peak = maxrss_after if peak is None else max(peak, maxrss_after)
        self.use = MemoryUse(self._start, peak)


__all__ = ["MemorySampler", "MemoryUse", "current_rss_mb", "peak_rss_mb"]
