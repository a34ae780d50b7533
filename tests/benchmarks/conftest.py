"""Fixtures shared by the timing benchmarks (`make bench`); a module may define its own ``dl19`` (another shape)."""

from __future__ import annotations

import gzip
import json

import pytest


@pytest.fixture(scope="module")
def dl19(dl19_candidates) -> tuple[str, list[str]]:
    """The first DL19 query and the texts of its 100 BM25 candidates."""
    with gzip.open(dl19_candidates, "rt", encoding="utf-8") as handle:
        row = json.loads(handle.readline())
    return row["query"], [c["text"] for c in row["candidates"]]


@pytest.fixture(scope="module")
def student():
    """The default student with SmolLM2 loaded here, not in a timed round."""
    from r2r_agent import Student

    return Student.default(lazy=False)
