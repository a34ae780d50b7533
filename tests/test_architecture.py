"""The import contract: the core imports no layer above it, integrations and training do not import each other,
evals may use everything below it, nothing imports in a cycle, and the core names no upper package even by string.

Layers (``package-dir`` maps the folders into ``r2r_agent``):

    r2r_agent.evals                                  (3) compares systems; may use training and integrations
    r2r_agent.integrations | r2r_agent.training      (2) siblings: neither imports the other
    r2r_agent (core)                                 (1) types, reranker, student, prompts, traces, CLI
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"r2r_agent": "r2r_agent", "integrations": "r2r_agent.integrations", "training": "r2r_agent.training",
           "evals": "r2r_agent.evals"}
LAYER = {"r2r_agent": 1, "r2r_agent.integrations": 2, "r2r_agent.training": 2, "r2r_agent.evals": 3}


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


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports(module: str) -> list[tuple[str, bool]]:
    """``(imported r2r_agent module, at run time)`` for every import in ``module`` (lazy ones included)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = _type_checking_lines(tree)
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in MODULES else prefix
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target.startswith("r2r_agent"):
                found.append((target, node.lineno not in typing_only))
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_layers(module):
    source = package_of(module)
    for target, _ in imports(module):
        destination = package_of(target)
        if destination == source:
            continue
        assert LAYER[destination] < LAYER[source], f"{module} imports {target}: {source} may not use {destination}"


def test_no_import_cycles():
    graph = {module: {t for t, runtime in imports(module) if runtime and t != module} for module in MODULES}
    # A package importing its own submodules (to re-export them) is not a cycle when they do not import it back.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


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
