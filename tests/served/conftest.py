"""Fixtures for the served-student tests: the answer-word tiny LM and a real OpenAI-compatible server around it."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("httpx")

from openai_server import OpenAITestServer, build_answer_word_lm  # noqa: E402

from .served_helpers import MODEL  # noqa: E402


@pytest.fixture(scope="session")
def answer_lm() -> tuple[Any, Any]:
    """The tiny LM whose tokenizer spells the answer words as single tokens (shared: tests use copies)."""
    return build_answer_word_lm(seed=1)  # seed 1: varied greedy explanations (seed 0 repeats one)


@pytest.fixture
def lm(answer_lm) -> tuple[Any, Any]:
    """A fresh copy of the answer-word LM and its tokenizer, for in-process oracles."""
    model, tokenizer = answer_lm
    return copy.deepcopy(model), copy.deepcopy(tokenizer)


@pytest.fixture
def server(answer_lm) -> Iterator[OpenAITestServer]:
    """A server on 127.0.0.1 around its own copy of the answer-word LM (every token's logprob on request)."""
    model, tokenizer = answer_lm
    with OpenAITestServer(copy.deepcopy(model), copy.deepcopy(tokenizer), model_name=MODEL) as running:
        yield running
