"""Async and concurrency helpers of the core: how :meth:`Reranker.arerank` awaits async-native components, and how
:meth:`Reranker.rerank_many` keeps a served student busy.

The cascade (:class:`~r2r_agent.Reranker`) is synchronous: its stages call ``scorer.score`` and
``explainer.explain``. :meth:`~r2r_agent.Reranker.arerank` runs it in a worker thread through :func:`run_in_thread`,
which remembers the caller's event loop. A component with an async path (a served student's ``ascore``,
``aexplain``...) implements its sync method with :func:`call`: called from such a worker thread, it runs the
coroutine *on the caller's event loop* (its ``httpx.AsyncClient``, its concurrency limit) and waits for it; called
anywhere else, it takes its sync path. In-process models have no async path: they run in the worker thread as
before, one call at a time under the student's lock.

Cancellation: when the task awaiting :func:`run_in_thread` is cancelled (``asyncio.wait_for`` timing out, a client
that disconnected), the worker thread cannot be interrupted, but it is told: :func:`checkpoint` (called by the
reranker between stages) then raises :class:`asyncio.CancelledError` in it, :func:`holding` stops waiting for a lock,
and :func:`call` cancels the coroutine it waits for. Abandoned calls so stop at the next stage boundary and release
the student's lock instead of running every stage for nobody.

Models: :func:`model_lock` is the one lock of an in-process model or tokenizer object, whatever holds it (two
students sharing one scorer share its lock); :func:`guarded_by_model` takes it around a method.

Example:
    >>> import asyncio
    >>> class Echo:
    ...     def score(self, query, passages):
    ...         return call(lambda: [0.0] * len(passages), lambda: self.ascore(query, passages))
    ...     async def ascore(self, query, passages):
    ...         return [1.0] * len(passages)
    >>> Echo().score("q", ["a", "b"])                                  # no event loop: the sync path
    [0.0, 0.0]
    >>> asyncio.run(run_in_thread(Echo().score, "q", ["a", "b"]))     # from arerank: the async path, on the loop
    [1.0, 1.0]
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from .errors import InvalidInputError
from .validation import check_count

T = TypeVar("T")
R = TypeVar("R")

#: The event loop of the :func:`run_in_thread` call this thread works for (``None``: none).
_CALLER_LOOP: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar(
    "r2r_caller_loop", default=None)

#: Set when the task awaiting the :func:`run_in_thread` call this thread works for was cancelled.
_CANCELLED: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("r2r_cancelled", default=None)
#: How often a thread waiting for a lock checks whether its call was cancelled.
_LOCK_POLL_SECONDS = 0.05

# Worker threads of run_in_thread. Not asyncio's default executor: that one has min(32, cores + 4) threads (6 on a
# 2-core machine), which would cap the queries a served student runs at once; these threads mostly wait on the loop.
_MAX_WORKERS = 64
#: How often a worker thread waiting for the caller's loop checks that the loop still runs.
_POLL_SECONDS = 1.0
_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _worker_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(max_workers=_MAX_WORKERS,
                                                              thread_name_prefix="r2r-arerank")
        return _executor


async def run_in_thread(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` in a worker thread; components it calls through :func:`call` run their async
    path on this event loop."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    context.run(_CALLER_LOOP.set, loop)
    cancelled = threading.Event()
    context.run(_CANCELLED.set, cancelled)
    try:
        return await loop.run_in_executor(_worker_pool(), functools.partial(context.run, function, *args, **kwargs))
    except asyncio.CancelledError:
        # The thread cannot be stopped from here; it stops itself at its next checkpoint (see the module docstring).
        cancelled.set()
        raise


def cancelled() -> bool:
    """Whether the task awaiting the :func:`run_in_thread` call this thread works for was cancelled (``False``
    outside one)."""
    event = _CANCELLED.get()
    return event is not None and event.is_set()


def checkpoint(where: str) -> None:
    """Raise :class:`asyncio.CancelledError` if this thread's call was cancelled (:func:`cancelled`): what the
    reranker calls between stages, so abandoned work stops there. ``where`` names the next stage (in the message)."""
    if cancelled():
        raise asyncio.CancelledError(f"arerank was cancelled by its caller; stopped before {where}")


@contextmanager
def cancelled_by(event: threading.Event) -> Iterator[None]:
    """Run the block as a call that ``event`` cancels, as :func:`run_in_thread` does for a cancelled task: the
    reranker's stage checkpoints and its wait for the student's lock stop once ``event`` is set. For a caller with
    its own worker threads and cancel signal (``r2r serve``: a deadline, a disconnect, the shutdown)."""
    token = _CANCELLED.set(event)
    try:
        yield
    finally:
        _CANCELLED.reset(token)


@contextmanager
def holding(lock: Any) -> Iterator[None]:
    """``with lock:``, except that a thread whose call was cancelled while it waited gives up waiting
    (:class:`asyncio.CancelledError`) instead of queueing its work behind the others. A lock without ``acquire``
    (e.g. ``contextlib.nullcontext()``, a served student's) is entered as it is."""
    acquire = getattr(lock, "acquire", None)
    if acquire is None or _CANCELLED.get() is None:  # not cancellable: wait as `with lock` would
        with lock:
            yield
        return
    while not acquire(timeout=_LOCK_POLL_SECONDS):
        checkpoint("it got the student's lock")
    try:
        checkpoint("it got the student's lock")  # cancelled while the lock was being handed over: let it go at once
        yield
    finally:
        lock.release()


_model_locks: dict[int, threading.RLock] = {}
_model_locks_guard = threading.Lock()


def model_lock(model: object) -> threading.RLock:
    """The one lock of ``model`` (an in-process model or tokenizer object), the same for every caller: whatever
    holds the object (two students sharing one scorer, a scorer and an explainer sharing a tokenizer) runs it one
    call at a time. Hugging Face fast tokenizers are not safe to call from two threads at once (``ValueError:
    Unable to create tensor``), and torch already uses every core.

    Reentrant, so a guarded method may call another guarded method of the same model.
    """
    key = id(model)
    with _model_locks_guard:
        lock = _model_locks.get(key)
        if lock is None:
            lock = _model_locks[key] = threading.RLock()
            try:  # forgotten with the object, before its id can be reused
                weakref.finalize(model, _model_locks.pop, key, None)
            except TypeError:  # not weak-referenceable: its lock lives as long as the process (harmless)
                pass
        return lock


F = TypeVar("F", bound=Callable[..., Any])


def guarded_by_model(attribute: str = "tokenizer") -> Callable[[F], F]:
    """A method decorator: the method runs holding :func:`model_lock` of ``self.<attribute>`` (the object that
    must not run in two threads at once: by default the tokenizer, which every model call goes through).

    Example:
        >>> class Scorer:
        ...     def __init__(self, tokenizer): self.tokenizer = tokenizer
        ...     @guarded_by_model()
        ...     def score(self, query, passages): return [0.0] * len(passages)
        >>> Scorer(object()).score("q", ["a"])
        [0.0]
    """

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
            with model_lock(getattr(self, attribute)):
                return method(self, *args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def caller_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop that :func:`call` would use from this thread (``None``: take the sync path)."""
    loop = _CALLER_LOOP.get()
    if loop is None or loop.is_closed() or not loop.is_running():
        return None
    try:
        if asyncio.get_running_loop() is loop:  # on the loop's own thread: waiting for it would block it forever
            return None
    except RuntimeError:
        pass
    return loop


def call(sync: Callable[[], T], asynchronous: Callable[[], Awaitable[T]]) -> T:
    """Run ``asynchronous()`` on the caller's event loop when this thread works for :func:`run_in_thread`, else
    ``sync()``. What a component with an async path calls in its sync methods (see the module example)."""
    loop = caller_loop()
    if loop is None:
        return sync()

    async def run() -> T:
        return await asynchronous()

    future = asyncio.run_coroutine_threadsafe(run(), loop)
    while True:  # never wait forever on a loop that stopped before it ran the coroutine
        try:
            return future.result(timeout=_LOCK_POLL_SECONDS if _CANCELLED.get() is not None else _POLL_SECONDS)
        except concurrent.futures.TimeoutError:
            if cancelled():  # nobody awaits the answer any more: stop the request on the loop too
                future.cancel()
                checkpoint("its request finished")
            if loop.is_closed() or not loop.is_running():
                future.cancel()
                raise RuntimeError("the event loop that called arerank stopped before the request finished; keep "
                                   "it running until the awaited call returns") from None


def check_lists(queries: Sequence[str], passages_lists: Sequence[Sequence[Any]]) -> None:
    """Raise :class:`InvalidInputError` (or :class:`~r2r_agent.errors.InvalidPassageError`) unless there is one list
    of passages per query, every query is text and every passage list holds passages: all checked up front, so a bad
    6th list fails before the first query runs (it used to fail after 13 requests and 8 s).

    A passage list given as an iterator (not a sequence) is checked only when its query runs: checking would use it up.
    """
    from .errors import R2RError
    from .types import to_passages

    if isinstance(queries, str):
        raise InvalidInputError("rerank_many: queries must be a list of query strings, got one str; use rerank() "
                                "for a single query")
    if len(queries) != len(passages_lists):
        raise InvalidInputError(f"rerank_many: {len(queries)} queries but {len(passages_lists)} passage lists; pass "
                                "one list of passages per query, in the same order")
    for number, (query, passages) in enumerate(zip(queries, passages_lists), start=1):
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError(f"rerank_many: query {number} must be a non-empty str, got {query!r:.60}")
        if isinstance(passages, Sequence) or not isinstance(passages, Iterator):
            try:
                to_passages(passages)
            except R2RError as exc:
                raise type(exc)(f"rerank_many: passage list {number} (query {query!r:.60}): {exc}") from None


def concurrency_of(student: Any, concurrency: int | None) -> int:
    """How many queries to run at once: ``concurrency`` when given (>= 1), else the student's own
    (:attr:`Student.concurrency`: 1 for in-process models, more for a served student)."""
    value = concurrency if concurrency is not None else getattr(student, "concurrency", 1)
    return check_count("rerank_many: concurrency", value, hint=" or None")


def run_many(function: Callable[[str, Sequence[Any]], T], queries: Sequence[str],
             passages_lists: Sequence[Sequence[Any]], concurrency: int) -> list[T]:
    """``function(query, passages)`` for each pair, at most ``concurrency`` at once, results in input order.

    The first failure is raised once the calls already started have finished; calls not started are cancelled.
    """
    pairs = list(zip(queries, passages_lists))
    if concurrency == 1 or len(pairs) <= 1:
        return [function(query, passages) for query, passages in pairs]
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(concurrency, len(pairs)),
                                               thread_name_prefix="r2r-rerank-many") as pool:
        return results_or_cancel([pool.submit(contextvars.copy_context().run, function, q, p) for q, p in pairs])


def results_or_cancel(futures: Sequence[concurrent.futures.Future[R]]) -> list[R]:
    """Each future's result in order; at the first failure (or Ctrl-C) the ones not started are cancelled, so no
    work is queued for a call that has already failed."""
    try:
        return [future.result() for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        raise


async def arun_many(function: Callable[[str, Sequence[Any]], Awaitable[T]], queries: Sequence[str],
                    passages_lists: Sequence[Sequence[Any]], concurrency: int) -> list[T]:
    """``await function(query, passages)`` for each pair, at most ``concurrency`` at once, results in input order.

    On the first failure the other calls are cancelled and the failure is raised.
    """
    slots = asyncio.Semaphore(concurrency)

    async def one(query: str, passages: Sequence[Any]) -> T:
        async with slots:
            return await function(query, passages)

    return await gather_or_cancel([one(q, p) for q, p in zip(queries, passages_lists)])


async def gather_or_cancel(awaitables: Sequence[Awaitable[R]]) -> list[R]:
    """The awaitables run concurrently, results in input order; at the first failure (or cancellation) the others
    are cancelled, so nothing keeps running for a call that has already failed."""
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


__all__ = ["arun_many", "call", "caller_loop", "cancelled", "check_lists", "checkpoint", "concurrency_of",
           "gather_or_cancel", "guarded_by_model", "holding", "model_lock", "results_or_cancel", "run_in_thread",
           "run_many"]
