"""The server's own settings (limits, queue, deadline, keys): one frozen :class:`ServerSettings`.

The rerank settings (``explain``, ``ordering``, ``top_n``...) are not here: they are the
:class:`~r2r_agent.RerankConfig` of the reranker the server runs, overridable per request. These are what an operator
sets once for the process; the ``r2r serve`` flags are derived from the fields (their ``help`` metadata), as the
rerank flags are derived from :class:`~r2r_agent.RerankConfig`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError


def _setting(default: Any, help: str, metavar: str = "N") -> Any:
    return field(default=default, metadata={"help": help, "metavar": metavar})


@dataclass(frozen=True)
class ServerSettings:
    """What ``r2r serve`` (or :func:`r2r_agent.server.create_app`) enforces on every request.

    Attributes:
        max_documents: Documents per request at most (Cohere recommends no more than 1,000).
        max_document_chars: Characters (Unicode code points) per document at most.
        max_query_chars: Characters per query at most.
        max_body_bytes: Bytes per request body at most (413 beyond).
        max_queue: Requests waiting for the model at most; one more gets ``429`` with ``Retry-After``.
        max_concurrency: Requests running at once (default: the student's ``concurrency``: 1 for in-process models,
            which run one call at a time anyway, more for a served student).
        deadline_s: Seconds a request may take, queueing included; past it: ``504``, and its work is stopped.
        shutdown_timeout_s: On SIGTERM, seconds given to the requests in flight before the server exits.
        default_max_tokens_per_doc: Cohere's ``max_tokens_per_doc`` when a request does not send one.
        model_name: The model name ``/v1/models`` lists (default: the student's name).
        cors_origins: Origins allowed to call from a browser (default: none, CORS off).
        log_texts: Log each request's query (never the documents' texts otherwise).
        trace_dir: Record every request in the trace format (:mod:`r2r_agent.traces`) in this folder, one file per
            process (``serve-PID.jsonl``).
        warmup: Run one rerank at start-up, before ``/ready`` says yes.
        api_keys: Accepted bearer keys (empty: no auth). Never shown in ``repr``, logs or responses.
    """

    max_documents: int = _setting(1000, "documents per request at most")
    max_document_chars: int = _setting(100_000, "characters per document at most")
    max_query_chars: int = _setting(10_000, "characters per query at most")
    max_body_bytes: int = _setting(32 * 1024 * 1024, "bytes per request body at most (413 beyond)", "BYTES")
    max_queue: int = _setting(64, "requests waiting for the model at most (429 with Retry-After beyond)")
    max_concurrency: int | None = _setting(
        None, "requests running at once (default: the student's concurrency: 1 in process)")
    deadline_s: float = _setting(60.0, "seconds a request may take, queueing included (504 beyond, its work stopped)",
                                 "SECONDS")
    shutdown_timeout_s: float = _setting(30.0, "on SIGTERM, seconds the requests in flight get to finish", "SECONDS")
    default_max_tokens_per_doc: int = _setting(4096, "Cohere max_tokens_per_doc when a request sends none")
    model_name: str | None = _setting(None, "the model name /v1/models lists (default: the student's name)", "NAME")
    cors_origins: tuple[str, ...] = _setting((), "origins allowed to call from a browser (default: none, CORS off)")
    log_texts: bool = _setting(False, "log each request's query text (documents are never logged)")
    trace_dir: str | None = _setting(None, "record every request in the trace format in this folder", "DIR")
    warmup: bool = _setting(True, "run one rerank at start-up before /ready says yes")
    api_keys: tuple[str, ...] = field(default=(), repr=False, metadata={"help": "", "secret": True})

    def __post_init__(self) -> None:
        counts = ("max_documents", "max_document_chars", "max_query_chars", "max_body_bytes",
                  "default_max_tokens_per_doc")
        for name in counts:
            _check_int(name, getattr(self, name), 1)
        _check_int("max_queue", self.max_queue, 0)
        if self.max_concurrency is not None:
            _check_int("max_concurrency", self.max_concurrency, 1)
        for name in ("deadline_s", "shutdown_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                    or value <= 0:
                raise InvalidInputError(f"ServerSettings: {name} must be a number of seconds > 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in ("cors_origins", "api_keys"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(item, str) and item for item in value):
                raise InvalidInputError(f"ServerSettings: {name} must be a sequence of non-empty strings")
            object.__setattr__(self, name, tuple(value))
        for key in self.api_keys:
            if key != key.strip() or any(c.isspace() for c in key):
                raise InvalidInputError("ServerSettings: an API key holds whitespace; keys are single tokens "
                                        "(the key itself is not shown)")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The names of the settings that have a command-line flag (all but the keys)."""
        return tuple(item.name for item in fields(cls) if not item.metadata.get("secret"))


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(f"ServerSettings: {name} must be an int >= {minimum}, got {value!r}")


def read_api_keys(*, env: str | None = None, file: str | os.PathLike[str] | None = None) -> tuple[str, ...]:
    """The API keys in the environment variable ``env`` (comma- or whitespace-separated) and in ``file`` (one per
    line, ``#`` comments). The keys themselves never appear in an error.

    Raises:
        InvalidInputError: the variable is unset or empty, the file cannot be read, or no key was found.
    """
    keys: list[str] = []
    if env is not None:
        value = os.environ.get(env, "")
        if not value.strip():
            raise InvalidInputError(f"--api-key-env {env}: that environment variable is not set or empty; export "
                                    f"{env}=KEY1,KEY2 first")
        keys += value.replace(",", " ").split()
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"--api-key-file {file}: cannot read it ({type(exc).__name__}); pass a UTF-8 "
                                    "text file with one key per line") from None
        found = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        found = [key for key in found if key]
        if not found:
            raise InvalidInputError(f"--api-key-file {file}: holds no key (one per line, # starts a comment)")
        keys += found
    return tuple(dict.fromkeys(keys))


__all__ = ["ServerSettings", "read_api_keys"]
