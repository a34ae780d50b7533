"""Fixtures for the framework integration tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from integration_fakes import make_reranker  # noqa: E402

from r2r_agent import Reranker  # noqa: E402


@pytest.fixture
def reranker() -> Reranker:
    """A reranker around the fake student (fresh per test)."""
    return make_reranker()
