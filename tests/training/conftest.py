"""Fixtures for the distillation tests: scripted teachers that answer the core teacher prompt."""

from __future__ import annotations

import json
import os
import re

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

_PASSAGE = re.compile(r"^\[(\d+)\] (.*)$", re.MULTILINE)


def window_of(messages: list[dict[str, str]]) -> list[str]:
    """The passage texts a teacher prompt shows, in prompt order."""
    return [m.group(2) for m in _PASSAGE.finditer(messages[-1]["content"])]


def keyword_reply(messages: list[dict[str, str]]) -> str:
    """A well-formed teacher reply ranking passages by the number in their text ("score 7"), highest first."""
    texts = window_of(messages)
    def score(text: str) -> int:
        found = re.search(r"score (\d+)", text)
        return int(found.group(1)) if found else 0
    ranking = sorted(range(1, len(texts) + 1), key=lambda i: -score(texts[i - 1]))
    reasons = [{"passage": i, "direct": f"it says {texts[i - 1]}", "comparison": f"rank {r + 1} of {len(texts)}"}
               for r, i in enumerate(ranking)]
    return json.dumps({"ranking": ranking, "reasons": reasons, "comparison": "higher scores first"})


@pytest.fixture
def keyword_teacher():
    from r2r_agent.training import ScriptedTeacher

    return ScriptedTeacher(default=keyword_reply, name="keyword")
