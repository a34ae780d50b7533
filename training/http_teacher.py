"""A teacher behind any OpenAI-compatible chat-completions endpoint (vLLM, Ollama, llama.cpp server, hosted APIs).

Uses ``httpx`` (the ``training`` extra): timeouts, retries with exponential backoff on timeouts, connection errors,
HTTP 429 and 5xx (honouring ``Retry-After``) and malformed or truncated response bodies, and a limit on concurrent
requests shared by all threads using the teacher; each attempt ends by its timeout, a reply is read up to
``max_response_bytes``, and the API key is redacted (in any encoding) from every error, log line and cached reply.
:meth:`OpenAIChatTeacher.close` ends the calls in flight in other threads quietly: they send no further request (no
retry) and raise :class:`~r2r_agent.training.TeacherError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from r2r_agent.errors import InvalidInputError
from r2r_agent.openai_client import (
    MAX_RESPONSE_BYTES,
    MalformedResponse,
    OpenAIClient,
    ServerError,
    parse_retry_after,
)

from .errors import TeacherError


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
        timeout: Seconds per attempt, start to end (connecting, sending, waiting and reading the whole reply): a
            server that sends slowly is cut off at this deadline and the attempt retried.
        max_retries: Retries after the first attempt on timeouts, connection errors, 408/409/425/429, 5xx and
            malformed response bodies.
        backoff: First retry delay in seconds; doubled at each retry, capped at ``max_backoff``.
        max_backoff: Longest delay between retries (a longer ``Retry-After`` is honoured up to ``max_retry_after``).
        max_retry_after: Longest ``Retry-After`` honoured, in seconds.
        jitter: Random extra delay, as a fraction of the delay, so that parallel clients do not retry in step.
        max_concurrency: Requests in flight at most (shared by all threads calling this teacher).
        max_response_bytes: Largest reply read, in bytes (on the wire and after decompression); a larger one is a
            :class:`~r2r_agent.training.TeacherError`, not retried.
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
    max_response_bytes: int = MAX_RESPONSE_BYTES
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    transport: Any = field(default=None, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    _client: OpenAIClient = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.model:
            raise InvalidInputError("OpenAIChatTeacher.model must be a non-empty model name")
        self.name = self.name or self.model
        try:
            # The core's OpenAI client: the same retries, Retry-After, malformed-body handling and bound on requests
            # in flight as a served student's, one implementation.
            self._client = OpenAIClient(self.base_url, api_key=self.api_key, timeout=self.timeout,
                                        max_retries=self.max_retries, backoff=self.backoff,
                                        max_backoff=self.max_backoff, max_retry_after=self.max_retry_after,
                                        max_concurrency=self.max_concurrency,
                                        max_response_bytes=self.max_response_bytes, headers=self.headers,
                                        transport=self.transport, jitter=self.jitter, sleep=self.sleep,
                                        extra=("training", "OpenAIChatTeacher"))
        except InvalidInputError as exc:
            raise InvalidInputError(f"OpenAIChatTeacher: {exc}") from None

    @property
    def url(self) -> str:
        """The chat-completions URL."""
        return self._client.url + "/chat/completions"

    def close(self) -> None:
        """Close the HTTP connection pool; calls in flight in other threads stop (no retry) with a TeacherError.

        A later :meth:`complete` opens a new pool.
        """
        self._client.close()

    def __enter__(self) -> OpenAIChatTeacher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(self, messages: list[dict[str, str]]) -> str:
        """Send ``messages`` and return the reply text.

        Raises:
            TeacherError: on a non-retryable HTTP status (e.g. 400, 401, 404), when every retry failed, or when
                :meth:`close` ran meanwhile; the message names the URL, the attempts and the last failure.
        """
        payload = {"model": self.model, "messages": [dict(m) for m in messages], "temperature": self.temperature,
                   "max_tokens": self.max_tokens, **dict(self.extra_body)}
        try:
            return self._client.post("chat/completions", payload, parse=_message_content)
        except ServerError as exc:
            raise TeacherError(f"teacher {self.name!r}: {exc}") from None


def _message_content(body: dict[str, Any]) -> str:
    """The reply text of a chat-completions body; a body of another shape is retried (truncated or garbled)."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise MalformedResponse(f"a response without choices[0].message.content ({type(exc).__name__}; keys: "
                                f"{sorted(map(str, body))[:10]})") from None
    if not isinstance(content, str):
        raise ServerError(f"message content is {type(content).__name__}, expected text")
    return content


__all__ = ["OpenAIChatTeacher", "parse_retry_after"]
