"""The import contract: the core imports no layer above it, integrations and training do not import each other,
evals may use everything below it, nothing imports in a cycle, and the core names no upper package even by string.

Layers (``package-dir`` maps the folders into ``r2r_agent``):

    r2r_agent.evals                                  (3) compares systems; may use training and integrations
    r2r_agent.integrations | r2r_agent.training      (2) siblings: neither imports the other
    r2r_agent (core)                                 (1) types, reranker, student, prompts, traces, CLI

The contracts are import-linter's, declared in ``pyproject.toml`` (``[tool.importlinter]``); import-linter sees every
import, at module level, inside functions and under ``TYPE_CHECKING``. It reads a package's folder, so
:func:`installed_layout` copies the sources as they are installed (``integrations/`` as ``r2r_agent/integrations``).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"r2r_agent": "r2r_agent", "integrations": "r2r_agent.integrations", "training": "r2r_agent.training",
           "evals": "r2r_agent.evals"}


def _modules() -> dict[str, Path]:
    modules = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


MODULES = _modules()


def package_of(module: str) -> str:
    """The layer package a module belongs to (the core for everything in r2r_agent/ itself)."""
    for package in ("r2r_agent.integrations", "r2r_agent.training", "r2r_agent.evals"):
        if module == package or module.startswith(package + "."):
            return package
    return "r2r_agent"


def installed_layout(target: Path) -> Path:
    """Copy the sources into ``target`` as installed (``package-dir``): ``target/r2r_agent/{integrations,...}``."""
    for folder, package in FOLDERS.items():
        destination = target.joinpath(*package.split("."))
        shutil.copytree(ROOT / folder, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                        dirs_exist_ok=True)
    return target


def lint_imports(source: Path, config: Path) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` with ``config`` on the installed layout of ``source``'s copy."""
    environment = {**os.environ, "PYTHONPATH": str(source)}
    command = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; "
               "sys.exit(c())", "--no-cache", str(config)]
    return subprocess.run(command, cwd=source, env=environment, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    return installed_layout(tmp_path_factory.mktemp("installed"))


def test_the_import_contracts_hold(layout):
    result = lint_imports(layout, ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken." in result.stdout, result.stdout[-2000:]


def test_the_contracts_see_imports_inside_functions_and_for_typing(layout, tmp_path):
    # The checks must fail when they should: a lazy import of training from the core, and a typing-only cycle.
    broken = installed_layout(tmp_path / "broken")
    with (broken / "r2r_agent" / "render.py").open("a", encoding="utf-8") as f:
        f.write("\n\ndef _probe():\n    from .training import dataset\n\n    return dataset\n")
    with (broken / "r2r_agent" / "training" / "rng.py").open("a", encoding="utf-8") as f:
        f.write("\nif TYPE_CHECKING:\n    from .trainer_loop import TrainerLoop\n")
    result = lint_imports(broken, ROOT / "pyproject.toml")
    assert result.returncode != 0
    assert "r2r_agent.render -> r2r_agent.training.dataset" in result.stdout
    assert "No cycles are allowed in r2r_agent.training" in result.stdout


def test_the_core_names_no_upper_package_even_by_string():
    for module, path in MODULES.items():
        if package_of(module) != "r2r_agent":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                for upper in ("r2r_agent.integrations", "r2r_agent.training", "r2r_agent.evals"):
                    assert upper not in node.value, f"{module}:{node.lineno} names {upper} in a string"
