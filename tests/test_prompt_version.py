"""A prompt template that changes must come with a new PROMPT_VERSION: adapters record the version they were trained
on and teacher caches are keyed by it, so a silent change would serve a student prompts it never saw.

The digest covers every ``*_messages`` builder in :mod:`r2r_agent.prompts` (called with fixed sample arguments) and
every upper-case string constant. When you change a prompt on purpose: bump ``PROMPT_VERSION`` and add the new
version's digest (printed by the failure) to ``tests/golden/prompt_digests.json``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

from r2r_agent import prompts

GOLDEN = Path(__file__).parent / "golden" / "prompt_digests.json"

#: Sample arguments by parameter name; a builder with a parameter not listed here fails the test (add one).
SAMPLES = {
    "query": "how long do fleas live",
    "passage": "An adult flea lives two to three months.",
    "passages": ["An adult flea lives two to three months.", "The sun is a star."],
    "verdict": "relevant",
    "evidence": "An adult flea lives two to three months.",
    "verdicts": ["relevant", "not_relevant"],
    "evidences": ["An adult flea lives two to three months.", None],
}


def prompt_digest() -> str:
    parts = {}
    for name, value in sorted(vars(prompts).items()):
        if name.isupper() and isinstance(value, str | tuple) and name != "PROMPT_VERSION":
            parts[name] = value
        elif name.endswith("_messages") and inspect.isfunction(value):
            params = inspect.signature(value).parameters
            missing = [p for p in params if p not in SAMPLES and params[p].default is inspect.Parameter.empty]
            assert not missing, f"add sample arguments for {name}{missing} to SAMPLES in {__file__}"
            parts[name] = value(**{p: SAMPLES[p] for p in params if p in SAMPLES})
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def test_prompt_changes_come_with_a_new_prompt_version():
    digests = json.loads(GOLDEN.read_text())
    digest = prompt_digest()
    recorded = digests.get(prompts.PROMPT_VERSION)
    assert recorded is not None, (f"PROMPT_VERSION {prompts.PROMPT_VERSION!r} has no recorded digest: add "
                                  f'"{prompts.PROMPT_VERSION}": "{digest}" to {GOLDEN}')
    assert digest == recorded, (f"a prompt template changed but PROMPT_VERSION is still {prompts.PROMPT_VERSION!r}: "
                                f'bump it and add "<new version>": "{digest}" to {GOLDEN}')
    assert list(digests.values()).count(digest) == 1, "two versions with the same prompts"
