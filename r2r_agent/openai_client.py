"""The HTTP client of a served student: any OpenAI-compatible server (vLLM, llama.cpp server, SGLang, TGI, Ollama).

One :class:`OpenAIClient` per student, shared by its scorer and explainer. It posts JSON and returns JSON, with
timeouts, retries with exponential backoff on timeouts, connection errors, HTTP 408/409/425/429 and 5xx (honouring
``Retry-After``) and malformed or truncated response bodies, and a bound on the requests in flight. Each attempt
ends by its ``timeout`` however slowly the server sends, and a response body is read up to ``max_response_bytes``
(after decompression; :mod:`r2r_agent.bounded_http`). Two paths:
:meth:`OpenAIClient.post` (``httpx.Client``, fanned out over a thread pool by :meth:`OpenAIClient.map`) and
:meth:`OpenAIClient.apost` (``httpx.AsyncClient``, one per event loop). ``httpx`` is the ``served`` extra, imported on
first use.

The API key is sent as a bearer token and shown nowhere else: not in the client's or its owner's ``repr``, not in
errors or log lines, not in student names or traces. A server that echoes it back, in any encoding
(:mod:`r2r_agent.redaction`), is redacted before anything is cut or shown, and every string of a decoded answer is
scrubbed before it is read; errors leave the client with no ``httpx`` exception (which holds the request's headers)
chained to them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import json
import logging
import math
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

from ._optional import require
from .aio import gather_or_cancel, results_or_cancel
from .bounded_http import (
    ACCEPT_ENCODING,
    AttemptTimeout,
    BodyError,
    BodyTooLarge,
    aread_response,
    attempt_deadline,
    install_deadlines,
    read_response,
)
from .errors import InvalidInputError, R2RError
from .redaction import Redactor, Secret

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Statuses retried besides 5xx: request timeout, conflict, too early, too many requests.
RETRY_STATUS = frozenset({408, 409, 425, 429})
#: Default cap on a response body, in bytes after decompression. An answer with 20 top logprobs is a few kB; parsed
#: JSON can take ~25 times its size in memory, so 32 answers in flight at the cap stay under 1 GB.
MAX_RESPONSE_BYTES = 2**20
_HINTS = {401: "not retried: check the API key (api_key=, or the environment variable the command reads it from)",
          403: "not retried: check the API key's permissions",
          404: "not retried: check the base URL (it usually ends in /v1) and the model name the server serves",
          400: "not retried: the server refused the request: check the model name, and for scoring that the server "
               "returns logprobs and the top_logprobs asked for (vLLM caps it with --max-logprobs)"}


class ServerError(R2RError, RuntimeError):
    """A served model failed: the server refused a request, kept failing after the retries, or answered without
    what was asked (e.g. no logprobs). The message names the URL, what was expected, what arrived and the fix."""


class MalformedResponse(ServerError):
    """A 2xx response whose body is not the expected JSON (truncated, garbled, another shape): retried."""


def first_choice(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """``choices[0]`` of an OpenAI-style answer.

    Raises:
        MalformedResponse: ``choices`` missing, empty or of another shape (retried as a garbled body).
    """
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise MalformedResponse(f"no choices in the answer (keys: {sorted(body)})")
    return choices[0]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if absent or invalid.

    Example:
        >>> parse_retry_after("3")
        3.0
        >>> parse_retry_after("soon") is None
        True
    """
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def display_url(url: str) -> str:
    """``url`` without any ``user:password@`` part (safe to show in names, logs and errors).

    Example:
        >>> display_url("http://user:secret@gpu-1:8000/v1")
        'http://gpu-1:8000/v1'
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


class _Retry(Exception):
    """One failed attempt that may be retried: why, and the server's Retry-After (seconds) if it sent one."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _Done:
    """A finished attempt's result (an attempt returns this or a :class:`_Retry`, and raises only fatal errors)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


#: What a parser may raise on a body of an unexpected shape, besides MalformedResponse: retried as malformed.
_SHAPE_ERRORS = (TypeError, KeyError, IndexError, AttributeError, ValueError, ArithmeticError, RecursionError)


class OpenAIClient:
    """``POST`` JSON to an OpenAI-compatible server, with retries, timeouts and a bound on requests in flight.

    Args:
        base_url: The API root, e.g. ``http://localhost:8000/v1`` (vLLM) or ``http://localhost:8080/v1``
            (llama.cpp). Credentials in it (``user:pw@``) are used but never shown.
        api_key: Sent as ``Authorization: Bearer ...`` when given; shown nowhere.
        timeout: Seconds per attempt, start to end: connecting, sending, waiting and reading the whole body (a
            server that sends slowly is cut off at this deadline and the attempt is retried).
        max_retries: Retries after the first attempt (timeouts, connection errors, 408/409/425/429, 5xx and
            malformed bodies). Other statuses (400, 401, 404...) fail at once.
        backoff: First retry delay in seconds, doubled at each retry (plus up to 10% jitter), at most
            ``max_backoff``.
        max_backoff: Longest delay between retries without a ``Retry-After``.
        max_retry_after: Longest ``Retry-After`` honoured, in seconds (a longer one waits this long).
        max_concurrency: Requests in flight at most: on the sync path (threads) and on each event loop. A vLLM
            server batches whatever is in flight, so keep it at or above its ``--max-num-seqs`` share.
        max_response_bytes: Largest response body read, in bytes, on the wire and after ``gzip``/``deflate``
            decompression (default 1 MiB); a larger one is a :class:`ServerError`, not retried.
        headers: Extra HTTP headers.
        transport: An ``httpx`` transport for the sync path (tests).
        async_transport: An ``httpx`` transport for the async path (tests).
        jitter: Random extra delay before a retry, as a fraction of the delay (parallel clients do not retry in step).
        sleep: How the sync path waits between retries (tests pass a recorder).
        extra: The optional dependency's extra and purpose named when httpx is missing.

    Raises:
        InvalidInputError: a setting that is not a finite number in range (NaN and infinity are refused).

    Example:
        >>> client = OpenAIClient("http://localhost:8000/v1", api_key="sk-...")          # doctest: +SKIP
        >>> client.post("chat/completions", {"model": "r2r", "messages": [...]})       # doctest: +SKIP
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 60.0, max_retries: int = 4,
                 backoff: float = 0.5, max_backoff: float = 30.0, max_retry_after: float = 120.0,
                 max_concurrency: int = 32, max_response_bytes: int = MAX_RESPONSE_BYTES,
                 headers: Mapping[str, str] | None = None, transport: Any = None, async_transport: Any = None,
                 jitter: float = 0.1, sleep: Callable[[float], None] = time.sleep,
                 extra: tuple[str, str] = ("served", "a served student (Student.from_openai)")) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise InvalidInputError(f"OpenAIClient: base_url must be an http(s) URL such as "
                                    f"'http://localhost:8000/v1', got {base_url!r}")
        for label, value, positive in (("timeout", timeout, True), ("backoff", backoff, False),
                                       ("max_backoff", max_backoff, False),
                                       ("max_retry_after", max_retry_after, False), ("jitter", jitter, False)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                    or value < 0 or (positive and value == 0):
                raise InvalidInputError(f"OpenAIClient: {label} must be a finite number {'>' if positive else '>='}"
                                        f" 0, got {value!r}")
        for label, value, least in (("max_retries", max_retries, 0), ("max_concurrency", max_concurrency, 1),
                                    ("max_response_bytes", max_response_bytes, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InvalidInputError(f"OpenAIClient: {label} must be an int >= {least}, got {value!r}")
        parts = urllib.parse.urlsplit(base_url)
        # Credentials in the URL become HTTP basic auth: httpx logs every request's URL, so it must hold none.
        self._basic = (Secret(urllib.parse.unquote(parts.username or "")),
                       Secret(urllib.parse.unquote(parts.password or ""))) if parts.username else None
        self.base_url = self.url = display_url(base_url)
        self.timeout, self.max_retries = float(timeout), max_retries
        self.backoff, self.max_backoff = float(backoff), float(max_backoff)
        self.max_retry_after = float(max_retry_after)
        self.max_concurrency = max_concurrency
        self.max_response_bytes = max_response_bytes
        self.jitter = float(jitter)
        self._sleep = sleep
        self._extra = extra
        self._closes = 0  # how many times close() ran: a sync call started before a close sends nothing more
        self._api_key = Secret(api_key) if api_key else None
        self._redact = Redactor([api_key or "", *(s.reveal() for s in self._basic or ())], basic=self._auth())
        self._headers = {"Accept-Encoding": ACCEPT_ENCODING, **dict(headers or {})}  # only codings read here
        self._transport, self._async_transport = transport, async_transport
        self._lock = threading.Lock()
        self._client: Any = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(max_concurrency)
        # One AsyncClient and one semaphore per event loop: both are bound to the loop they were first used on.
        self._async: dict[int, tuple[asyncio.AbstractEventLoop, Any, asyncio.Semaphore]] = {}

    def __repr__(self) -> str:
        return (f"OpenAIClient({self.url!r}, api_key={'***' if self._api_key else None}, timeout={self.timeout:g}, "
                f"max_retries={self.max_retries}, max_concurrency={self.max_concurrency})")

    def redact(self, text: str) -> str:
        """``text`` with the API key and the URL's credentials, in any encoding, replaced by ``***`` (for errors and
        logs; redact a text before cutting it short)."""
        return self._redact(text)

    def _auth(self) -> tuple[str, str] | None:
        return (self._basic[0].reveal(), self._basic[1].reveal()) if self._basic else None

    def _all_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **self._headers}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key.reveal()}"
        return headers

    def _sync_client(self) -> Any:
        with self._lock:
            if self._client is None:
                httpx = require("httpx", *self._extra)
                self._client = httpx.Client(timeout=httpx.Timeout(self.timeout), headers=self._all_headers(),
                                            auth=self._auth(), transport=self._transport)
                install_deadlines(self._client)
            return self._client

    def _async_client(self) -> tuple[Any, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        with self._lock:
            for key, (other, _, _) in list(self._async.items()):
                if other.is_closed():  # its loop is gone (asyncio.run returned): nothing can use it any more
                    del self._async[key]
            if id(loop) not in self._async:
                httpx = require("httpx", *self._extra)
                limits = httpx.Limits(max_connections=self.max_concurrency,
                                      max_keepalive_connections=self.max_concurrency)
                client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout), headers=self._all_headers(),
                                           auth=self._auth(), transport=self._async_transport, limits=limits)
                self._async[id(loop)] = (loop, client, asyncio.Semaphore(self.max_concurrency))
            _, client, slots = self._async[id(loop)]
            return client, slots

    def _endpoint(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def _delay(self, retry: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        delay = min(self.backoff * (2**retry), self.max_backoff)
        return delay + random.uniform(0.0, self.jitter * delay)

    # -- one attempt: send, read the body within the cap and the deadline, parse --------------------------------

    def _exchange(self, client: Any, path: str, payload: Mapping[str, Any]) -> tuple[int, Any, bytes]:
        """One sync attempt: the status, headers and body, all within the attempt's deadline."""
        with attempt_deadline(self.timeout) as deadline, \
                client.stream("POST", self._endpoint(path), json=dict(payload)) as response:
            return response.status_code, response.headers, read_response(response, self.max_response_bytes,
                                                                          deadline)

    async def _aexchange(self, client: Any, path: str, payload: Mapping[str, Any]) -> tuple[int, Any, bytes]:
        """One async attempt (the caller bounds it with the attempt's deadline)."""
        async with client.stream("POST", self._endpoint(path), json=dict(payload)) as response:
            return response.status_code, response.headers, await aread_response(response, self.max_response_bytes)

    def _late(self) -> str:
        return f"no answer within {self.timeout:g}s (the attempt's deadline)"

    def _too_large(self, path: str) -> ServerError:
        return ServerError(f"{self.url}/{path} answered with more than {self.max_response_bytes} bytes "
                           f"(max_response_bytes={self.max_response_bytes}, counted after decompression); not "
                           "retried: check that the base URL is the model server, or raise max_response_bytes if "
                           "its answers are that large (e.g. top_logprobs over a whole vocabulary)")

    def _sync_attempt(self, client: Any, httpx: Any, path: str, payload: Mapping[str, Any],
                      parse: Callable[[dict[str, Any]], Any] | None) -> _Done | _Retry:
        try:
            exchanged = self._exchange(client, path, payload)
        except Exception as exc:
            failure = self._failed(exc, httpx, path)
            if failure is None:
                raise
        else:
            return self._outcome(path, *exchanged, parse)
        return self._settle(failure)

    async def _async_attempt(self, client: Any, httpx: Any, path: str, payload: Mapping[str, Any],
                             parse: Callable[[dict[str, Any]], Any] | None) -> _Done | _Retry:
        try:
            exchanged = await asyncio.wait_for(self._aexchange(client, path, payload), self.timeout)
        except Exception as exc:
            failure = self._failed(exc, httpx, path)
            if failure is None:
                raise
        else:
            return self._outcome(path, *exchanged, parse)
        return self._settle(failure)

    def _failed(self, exc: Exception, httpx: Any, path: str) -> _Retry | ServerError | None:
        """What a failed exchange means: a retry, an error not retried, or ``None`` (not a failure of the exchange:
        raised as it is)."""
        if isinstance(exc, AttemptTimeout | asyncio.TimeoutError):  # (TimeoutError is an OSError: first)
            return _Retry(self._late())
        if isinstance(exc, BodyTooLarge):
            return self._too_large(path)
        if isinstance(exc, BodyError):
            return _Retry(f"a body that cannot be read: {exc}")
        if isinstance(exc, httpx.HTTPError | httpx.StreamError | RuntimeError | OSError):
            # RuntimeError: httpx's "the client has been closed", i.e. close() ran meanwhile
            return self._failure(exc, httpx)
        return None

    @staticmethod
    def _settle(failure: _Retry | ServerError) -> _Retry:
        # Raised here, after the except block that built it, so that no httpx exception (it holds the request and
        # its Authorization header) is chained to what leaves the client.
        if isinstance(failure, ServerError):
            raise failure
        return failure

    def _outcome(self, path: str, status: int, headers: Any, content: bytes,
                 parse: Callable[[dict[str, Any]], Any] | None) -> _Done | _Retry:
        fatal: ServerError | None = None
        try:
            body = self._check(path, status, headers, content)
        except _Retry as retry:
            return _Retry(str(retry), retry.retry_after)
        except ServerError as exc:
            fatal = ServerError(str(exc))
        if fatal is not None:
            raise fatal
        if parse is None:
            return _Done(body)
        message, retried = "", True
        try:
            return _Done(parse(body))
        except MalformedResponse as exc:
            message = str(exc)
        except ServerError as exc:  # not retried: add where it came from
            message, retried = f"{self.url}/{path}: {exc}", False
        except _SHAPE_ERRORS as exc:
            message = f"an answer of an unexpected shape ({type(exc).__name__}: {exc})"
        message = self.redact(message)
        if retried:
            return _Retry(message)
        raise ServerError(message)

    def _check(self, path: str, status: int, headers: Any, content: bytes) -> dict[str, Any]:
        """The JSON body of a 2xx answer, every string in it redacted; raises :class:`_Retry` (retry) or
        :class:`ServerError` (do not)."""
        if status >= 300:
            body = " ".join(self._shown(content).split())[:300]
            if status in RETRY_STATUS or status >= 500:
                raise _Retry(f"HTTP {status}: {body!r}", parse_retry_after(headers.get("retry-after")))
            hint = _HINTS.get(status, "not retried: check the request")
            raise ServerError(f"{self.url}/{path} answered HTTP {status}: {body!r}; {hint}")
        try:
            data = json.loads(content)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            reason = f"{type(exc).__name__}" if isinstance(exc, RecursionError) else str(exc)
            text = self.redact(content.decode("utf-8", "replace"))  # before the cut: a cut can leave part of a key
            raise _Retry(f"a body that is not JSON ({reason}): {text[:200]!r}") from None
        if not isinstance(data, dict):
            raise _Retry(f"a JSON {type(data).__name__} instead of an object: {self._shown(content)[:200]!r}")
        return self._redact.scrub(data)  # type: ignore[no-any-return]

    def _shown(self, content: bytes) -> str:
        """A body as shown in an error, redacted: JSON is decoded and written again first, so that no escape
        (``\\u0073k-...``) hides a secret from the redaction; other text as it came."""
        try:
            shown = json.dumps(self._redact.scrub(json.loads(content)), ensure_ascii=False)
        except (ValueError, UnicodeDecodeError, RecursionError):
            shown = content.decode("utf-8", "replace")
        return self.redact(shown)

    def _failure(self, exc: Exception, httpx: Any) -> _Retry:
        if isinstance(exc, httpx.TimeoutException):
            return _Retry(f"no answer within {self.timeout:g}s ({type(exc).__name__})")
        return _Retry(f"connection error: {type(exc).__name__}: {self.redact(str(exc))}")

    def _give_up(self, path: str, last: str) -> ServerError:
        return ServerError(f"{self.url}/{path} failed after {self.max_retries + 1} attempts; last failure: "
                           f"{last.rstrip('.')}. "
                           "Check that the server is up and reachable, or raise timeout/max_retries.")

    def _retry_delay(self, path: str, failed: _Retry, attempt: int) -> float | None:
        """Seconds to wait before retrying after ``failed`` (logged), or ``None`` when no retry is left."""
        if attempt == self.max_retries:
            return None
        delay = self._delay(attempt, failed.retry_after)
        logger.warning("%s/%s: %s; retry %d/%d in %.2fs", self.url, path, failed, attempt + 1, self.max_retries,
                       delay)
        return delay

    def post(self, path: str, payload: Mapping[str, Any], *,
             parse: Callable[[dict[str, Any]], T] | None = None) -> T:
        """``POST`` ``payload`` to ``{base_url}/{path}`` and return the JSON body (or ``parse(body)``), retrying.

        ``parse`` may raise :class:`MalformedResponse` to have the request retried (a body of the wrong shape); a
        ``TypeError``, ``KeyError``... from it counts as malformed too. It sees the body with every string redacted.

        Raises:
            ServerError: a status that is not retried, a body over ``max_response_bytes``, every attempt failed, or
                ``parse`` raised one.
        """
        httpx = require("httpx", *self._extra)
        with self._lock:
            closes = self._closes
        client = self._sync_client()
        last = ""
        with self._slots:
            for attempt in range(self.max_retries + 1):
                self._check_open(path, closes)
                outcome = self._sync_attempt(client, httpx, path, payload, parse)
                self._check_open(path, closes)
                if isinstance(outcome, _Done):
                    return outcome.value  # type: ignore[no-any-return]
                last, delay = str(outcome), self._retry_delay(path, outcome, attempt)
                if delay is None:
                    break
                self._sleep(delay)
        raise self._give_up(path, last)

    def _check_open(self, path: str, closes: int) -> None:
        if self._closes != closes:
            raise ServerError(f"{self.url}/{path}: closed while a request was in flight; not retried")

    async def apost(self, path: str, payload: Mapping[str, Any], *,
                    parse: Callable[[dict[str, Any]], T] | None = None) -> T:
        """:meth:`post` on the running event loop (``httpx.AsyncClient``); the same retries and errors."""
        httpx = require("httpx", *self._extra)
        client, slots = self._async_client()
        last = ""
        async with slots:
            for attempt in range(self.max_retries + 1):
                outcome = await self._async_attempt(client, httpx, path, payload, parse)
                if isinstance(outcome, _Done):
                    return outcome.value  # type: ignore[no-any-return]
                last, delay = str(outcome), self._retry_delay(path, outcome, attempt)
                if delay is None:
                    break
                await asyncio.sleep(delay)
        raise self._give_up(path, last)

    def map(self, function: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``function(item)`` for each item on the client's threads (at most ``max_concurrency`` at once), results
        in input order. The first failure is raised after the calls in flight end; calls not started are dropped."""
        items = list(items)
        if len(items) <= 1:
            return [function(item) for item in items]
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.max_concurrency,
                                                                   thread_name_prefix="r2r-served")
            pool = self._pool
        return results_or_cancel([pool.submit(function, item) for item in items])

    async def amap(self, function: Callable[[T], Any], items: Iterable[T]) -> list[Any]:
        """``await function(item)`` for each item concurrently (each request waits for a slot in :meth:`apost`),
        results in input order; on the first failure the others are cancelled."""
        return await gather_or_cancel([function(item) for item in items])

    def close(self) -> None:
        """Close the sync connection pool and threads (a later call opens new ones). Async clients close with
        :meth:`aclose` on their loop, or are dropped with it."""
        with self._lock:
            self._closes += 1
            client, self._client = self._client, None
            pool, self._pool = self._pool, None
        if client is not None:
            client.close()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        """Close this event loop's async client (and the sync one)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._async.pop(id(loop), None)
        if entry is not None:
            await entry[1].aclose()
        self.close()


__all__ = ["MAX_RESPONSE_BYTES", "MalformedResponse", "OpenAIClient", "Secret", "ServerError", "display_url",
           "first_choice", "parse_retry_after"]
