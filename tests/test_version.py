"""One version: pyproject.toml, ``r2r_agent.__version__`` and the CHANGELOG's newest entry say the same."""

from __future__ import annotations

import re
from pathlib import Path

import r2r_agent

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_the_module_and_the_changelog_agree_on_the_version() -> None:
    # A plain read: tomllib is Python 3.11+, and the [project] table's version line is the one at a line start.
    declared = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.MULTILINE)
    assert declared is not None, "pyproject.toml has no version line"
    newest = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.MULTILINE)
    assert newest is not None, "CHANGELOG.md has no '## <version>' heading"
    assert declared.group(1) == r2r_agent.__version__ == newest.group(1)
