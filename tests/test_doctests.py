"""Every module's docstring examples run, so the docs cannot drift from the code.

The modules are found from the source folders (``package-dir`` maps them into ``r2r_agent``), not from a hand-kept
list: a new module's examples run without anyone adding it here.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"r2r_agent": "r2r_agent", "integrations": "r2r_agent.integrations", "training": "r2r_agent.training",
           "evals": "r2r_agent.evals"}


def module_names() -> list[str]:
    """Every module of the package, by its installed name."""
    names = []
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__main__":
                continue
            if parts[-1] == "__init__":
                parts.pop()
            names.append(".".join([package, *parts]))
    return names


MODULES = module_names()


def test_the_modules_are_found():
    assert {"r2r_agent.vocabulary", "r2r_agent.integrations._common", "r2r_agent.training.teacher_verdicts",
            "r2r_agent.evals.verdicts"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    if not any(test.examples for test in doctest.DocTestFinder().find(module)):
        pytest.skip("no examples")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
