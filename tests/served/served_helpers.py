"""Helpers of the served-student tests (``conftest`` holds the fixtures; import these by name)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from openai_server import OpenAITestServer

from r2r_agent import Student

T = TypeVar("T")

#: The served model's name in these tests.
MODEL = "tiny"
#: Client settings that keep fault tests short: small timeouts, quick retries.
FAST: dict[str, Any] = {"timeout": 5.0, "max_retries": 2, "backoff": 0.01, "max_backoff": 0.05}

QUERY = "how long do fleas live"
PASSAGES = [
    "Adult fleas live two to three months on a cat or dog host.",
    "The earth orbit and axis tilt give the seasons: summer and winter.",
    "A flea egg becomes a larva, then a pupa, then an adult flea in weeks.",
    "The cost of a concrete floor is a price per square foot.",
    "Fleas do not live long without a host: a few days.",
    "Why is the sun hot? Heat and light come from the sun.",
]


def served(server: OpenAITestServer, tokenizer: Any, **options: Any) -> Student:
    """A student on ``server``: every token's logprob asked for, quick retries (``options`` override)."""
    settings: dict[str, Any] = {"top_logprobs": len(tokenizer), "max_new_tokens": 8, **FAST}
    settings.update(options)
    return Student.from_openai(server.url, MODEL, **settings)


def bounded(function: Callable[[], T], seconds: float = 60.0) -> T:
    """``function()`` in a thread; fail the test (never hang it) when it takes longer than ``seconds``."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = function()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds}s: a hang"
    if "error" in box:
        raise box["error"]
    return box["value"]
