"""Admission and cancellation: a bounded priority queue in front of the model, and a token that stops a request's
work at its next model call.

The in-process student runs one call at a time (its lock), so requests beyond :attr:`Admission.capacity` wait here,
lowest ``priority`` first (then first come); beyond ``max_queue`` waiting, :meth:`Admission.acquire` refuses at once
(the server answers 429). A slot is released only when its work has really ended, even after its client got a 504 or
went away, so the queue depth is the truth about the model.

Cancellation: :class:`~r2r_agent.Reranker` has no cancel token of its own yet, so :func:`cancellable_student` wraps
the student's scorer, re-scorer and explainer so that every call to one of them first checks the request's
:class:`CancelToken`. A cancelled request stops at its next model call (scoring, judging, each explanation batch,
the comparison); the call already running finishes first (one scorer pass over all documents, or one explanation
batch), which is the bound on wasted work.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import heapq
import inspect
import itertools
import threading
from typing import Any

from ..errors import R2RError
from ..student import Student


class QueueFull(R2RError):
    """The queue is at its bound; ``retry_after`` is a guess of the seconds until a slot frees."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the server is busy (queue full); retry after {retry_after} s")
        self.retry_after = retry_after


class Cancelled(R2RError):
    """The request's work was stopped (deadline passed or client gone)."""


class CancelToken:
    """Set once (by the deadline or a disconnect); checked by the models' wrappers before each call."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    @property
    def event(self) -> threading.Event:
        """Set when cancelled (for :func:`r2r_agent.aio.cancelled_by`)."""
        return self._event

    def check(self) -> None:
        """Raise :class:`Cancelled` when cancelled."""
        if self._event.is_set():
            raise Cancelled(f"request cancelled: {self.reason}")


class _Checked:
    """``inner`` with every public method checking ``token`` first; other attributes read through."""

    def __init__(self, inner: Any, token: CancelToken) -> None:
        self._inner = inner
        self._token = token

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or not inspect.ismethod(value):
            return value

        @functools.wraps(value)
        def checked(*args: Any, **kwargs: Any) -> Any:
            self._token.check()
            return value(*args, **kwargs)

        return checked


def cancellable_student(student: Student, token: CancelToken) -> Student:
    """A copy of ``student`` (same models, same lock, same calibrator) whose model calls check ``token`` first."""

    def checked(part: Any) -> Any:
        return _Checked(part, token) if part is not None else None

    return dataclasses.replace(student, scorer=checked(student.scorer), rescorer=checked(student.rescorer),
                               explainer=checked(student.explainer))


class Admission:
    """At most ``capacity`` requests run; at most ``max_queue`` wait, lowest priority value first.

    Only touched from the event loop's thread (release from a worker thread goes through ``call_soon_threadsafe``).
    """

    def __init__(self, capacity: int, max_queue: int) -> None:
        self.capacity = capacity
        self.max_queue = max_queue
        self.running = 0
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._seconds = 1.0  # a running mean of the seconds a request holds its slot, for Retry-After

    @property
    def queued(self) -> int:
        return sum(1 for *_, waiter in self._waiting if not waiter.done())

    def retry_after(self) -> int:
        """Seconds until the queue has likely moved by one full round."""
        return max(1, round((self.queued + self.running) * self._seconds / self.capacity))

    async def acquire(self, priority: int = 0) -> None:
        """Wait for a slot. Raises :class:`QueueFull` at once when ``max_queue`` requests already wait."""
        if self.running < self.capacity and not self.queued:
            self.running += 1
            return
        if self.queued >= self.max_queue:
            raise QueueFull(self.retry_after())
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # the slot was handed over as we were cancelled
                self.release()
            raise

    def release(self, seconds: float | None = None) -> None:
        """Free a slot (hand it to the next waiter)."""
        if seconds is not None:
            self._seconds = 0.8 * self._seconds + 0.2 * seconds
        while self._waiting:
            *_, waiter = heapq.heappop(self._waiting)
            if not waiter.done():
                waiter.set_result(None)
                return
        self.running -= 1


__all__ = ["Admission", "CancelToken", "Cancelled", "QueueFull", "cancellable_student"]
