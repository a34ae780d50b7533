"""A teacher behind any OpenAI-compatible chat-completions endpoint (vLLM, Ollama, llama.cpp server, hosted APIs).

Uses ``httpx`` (the ``training`` extra): timeouts, retries with exponential backoff on timeouts, connection errors,
HTTP 429 and 5xx (honouring ``Retry-After``) and malformed or truncated response bodies, and a limit on concurrent
requests shared by all threads using the teacher. :meth:`OpenAIChatTeacher.close` ends the calls in flight in other
threads quietly: they send no further request (no retry) and raise :class:`~r2r_agent.training.TeacherError`.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from r2r_agent._optional import require
from r2r_agent.errors import InvalidInputError

from .errors import TeacherError

logger = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 409, 425, 429})


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


@dataclass
class OpenAIChatTeacher:
    """A :class:`~r2r_agent.training.Teacher` that calls ``POST {base_url}/chat/completions``.

    Args:
        model: The model name sent to the endpoint.
        base_url: The API root, e.g. ``http://localhost:8000/v1`` (vLLM) or ``http://localhost:11434/v1`` (Ollama).
        api_key: Sent as a bearer token when given.
        name: The teacher's name in the annotation cache (default: ``model``). Give different names to setups that
            may answer differently (another temperature, another quantisation).
        temperature: Sampling temperature (0 for reproducible annotations).
        max_tokens: Upper bound on the answer's length.
        timeout: Seconds per request (connect, read and write).
        max_retries: Retries after the first attempt on timeouts, connection errors, 408/409/425/429, 5xx and
            malformed response bodies.
        backoff: First retry delay in seconds; doubled at each retry, capped at ``max_backoff``.
        max_backoff: Longest delay between retries (a longer ``Retry-After`` is honoured up to ``max_retry_after``).
        max_retry_after: Longest ``Retry-After`` honoured, in seconds.
        jitter: Random extra delay, as a fraction of the delay, so that parallel clients do not retry in step.
        max_concurrency: Requests in flight at most (shared by all threads calling this teacher).
        extra_body: Extra JSON fields for the request (e.g. ``{"response_format": {"type": "json_object"}}``).
        headers: Extra HTTP headers.
        transport: An ``httpx`` transport (tests pass ``httpx.MockTransport``).
        sleep: The function used to wait between retries (tests pass a recorder).

    Example:
        >>> teacher = OpenAIChatTeacher("qwen2.5-72b-instruct", base_url="http://localhost:8000/v1")  # doctest: +SKIP
        >>> teacher.complete([{"role": "user", "content": "Say hi"}])                                 # doctest: +SKIP
    """

    model: str
    base_url: str = "http://localhost:8000/v1"
    api_key: str | None = field(default=None, repr=False)
    name: str = ""
    temperature: float = 0.0
    max_tokens: int = 2048
    timeout: float = 120.0
    max_retries: int = 4
    backoff: float = 1.0
    max_backoff: float = 60.0
    max_retry_after: float = 300.0
    jitter: float = 0.1
    max_concurrency: int = 4
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    transport: Any = field(default=None, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self) -> None:
        if not self.model:
            raise InvalidInputError("OpenAIChatTeacher.model must be a non-empty model name")
        for label in ("timeout", "backoff", "max_backoff", "max_retry_after", "jitter"):
            if getattr(self, label) < 0:
                raise InvalidInputError(f"OpenAIChatTeacher.{label} must be >= 0, got {getattr(self, label)}")
        if self.max_retries < 0:
            raise InvalidInputError(f"OpenAIChatTeacher.max_retries must be >= 0, got {self.max_retries}")
        if self.max_concurrency < 1:
            raise InvalidInputError(f"OpenAIChatTeacher.max_concurrency must be >= 1, got {self.max_concurrency}")
        self.name = self.name or self.model
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._closes = 0  # how many times close() ran: a call started before a close sends nothing more

    @property
    def url(self) -> str:
        """The chat-completions URL."""
        return self.base_url.rstrip("/") + "/chat/completions"

    def _http(self) -> Any:
        with self._client_lock:
            if self._client is None:
                httpx = require("httpx", "training", "OpenAIChatTeacher")
                headers = dict(self.headers)
                if self.api_key:
                    headers["Authorization"] = f"Bearer {self.api_key}"
                self._client = httpx.Client(timeout=httpx.Timeout(self.timeout), headers=headers,
                                            transport=self.transport)
            return self._client

    def close(self) -> None:
        """Close the HTTP connection pool; calls in flight in other threads stop (no retry) with a TeacherError.

        A later :meth:`complete` opens a new pool.
        """
        with self._client_lock:
            self._closes += 1
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> OpenAIChatTeacher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _delay(self, retry: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        delay = min(self.backoff * (2**retry), self.max_backoff)
        return delay + random.uniform(0.0, self.jitter * delay)

    def complete(self, messages: list[dict[str, str]]) -> str:
        """Send ``messages`` and return the reply text.

        Raises:
            TeacherError: on a non-retryable HTTP status (e.g. 400, 401, 404), when every retry failed, or when
                :meth:`close` ran meanwhile; the message names the URL, the attempts and the last failure.
        """
        httpx = require("httpx", "training", "OpenAIChatTeacher")
        with self._client_lock:
            closes = self._closes
        client = self._http()
        payload = {"model": self.model, "messages": [dict(m) for m in messages], "temperature": self.temperature,
                   "max_tokens": self.max_tokens, **dict(self.extra_body)}
        last = ""
        with self._slots:
            for attempt in range(self.max_retries + 1):
                retry_after = None
                self._check_open(closes)
                try:
                    response = client.post(self.url, json=payload)
                except httpx.TimeoutException as exc:
                    last = f"timeout after {self.timeout:g}s ({type(exc).__name__})"
                except (httpx.TransportError, RuntimeError) as exc:  # RuntimeError: the client was closed
                    last = f"connection error: {type(exc).__name__}: {exc}"
                else:
                    status = response.status_code
                    if status < 300:
                        try:
                            return self._content(response)
                        except _MalformedBody as exc:  # a truncated or garbled body: the next try usually is fine
                            last = str(exc)
                    elif status not in _RETRY_STATUS and status < 500:
                        body = " ".join(response.text.split())[:200]
                        raise TeacherError(f"teacher {self.name!r}: {self.url} answered HTTP {status}: {body!r}; "
                                           "this is not retried: check the model name, the API key and the request")
                    else:
                        last = f"HTTP {status}: {' '.join(response.text.split())[:200]!r}"
                        retry_after = parse_retry_after(response.headers.get("retry-after"))
                self._check_open(closes)
                if attempt == self.max_retries:
                    break
                delay = self._delay(attempt, retry_after)
                logger.warning("teacher %s: %s; retry %d/%d in %.1fs", self.name, last, attempt + 1,
                               self.max_retries, delay)
                self.sleep(delay)
        raise TeacherError(f"teacher {self.name!r}: {self.url} failed after {self.max_retries + 1} attempts; last "
                           f"failure: {last}. Check that the server is up, or raise max_retries/timeout.")

    def _check_open(self, closes: int) -> None:
        if self._closes != closes:
            raise TeacherError(f"teacher {self.name!r}: closed while a request to {self.url} was in flight; not "
                               "retried")

    def _content(self, response: Any) -> str:
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _MalformedBody(f"a response without choices[0].message.content ({type(exc).__name__}): "
                                 f"{response.text[:200]!r}") from exc
        if not isinstance(content, str):
            raise TeacherError(f"teacher {self.name!r}: message content is {type(content).__name__}, expected text")
        return content


class _MalformedBody(Exception):
    """A 2xx response whose body is not the expected JSON (truncated, garbled, or another shape): retried."""


__all__ = ["OpenAIChatTeacher", "parse_retry_after"]
