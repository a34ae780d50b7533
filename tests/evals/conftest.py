"""Fixtures for the evals tests: the shared data folder (skipped when absent) and synthetic BRIGHT folders."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path | None:
    """``$R2R_DATA_DIR`` or ``../shared/data`` relative to the repo root, if it exists."""
    env = os.environ.get("R2R_DATA_DIR")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("shared data folder not found (set R2R_DATA_DIR or place it at ../shared/data)")
    return path


# A tiny BRIGHT subset in the published xlangai/BRIGHT schema.
EXAMPLES: list[dict[str, Any]] = [
    {
        "query": "Why are insects attracted to light?",
        "reasoning": "Needs phototaxis.",
        "id": "0",
        "excluded_ids": ["N/A"],
        "gold_ids_long": ["insects/Phototaxis.txt"],
        "gold_ids": ["insects/Phototaxis_0.txt", "insects/Phototaxis_1.txt"],
    },
    {
        "query": "How is memory managed in PyTorch?",
        "reasoning": "Needs the caching allocator.",
        "id": "1",
        "excluded_ids": ["torch/Memory Management_2_0.txt"],
        "gold_ids_long": ["torch/Memory Management.txt"],
        "gold_ids": ["torch/Memory Management_1_0.txt"],
    },
]
DOCUMENTS: list[dict[str, str]] = [
    {"id": "insects/Phototaxis_0.txt", "content": "Phototaxis is movement toward light."},
    {"id": "insects/Phototaxis_1.txt", "content": "Moths navigate by the moon."},
    {"id": "torch/Memory Management_1_0.txt", "content": "PyTorch uses a caching memory allocator."},
    {"id": "torch/Memory Management_2_0.txt", "content": "Excluded duplicate of the answer."},
    {"id": "misc/Newton%27s_laws_0.txt", "content": "Force equals mass times acceleration."},
]
LONG_DOCUMENTS: list[dict[str, str]] = [
    {"id": "insects/Phototaxis.txt", "content": "Phototaxis ... (long)"},
    {"id": "torch/Memory Management.txt", "content": "Memory management ... (long)"},
]


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _write_parquet(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(list(rows)), path)


@pytest.fixture
def make_bright_folder(tmp_path: Path) -> Callable[..., Path]:
    """Write a synthetic BRIGHT folder in the published layout and return its path.

    ``fmt`` is ``"jsonl"`` or ``"parquet"``; ``subsets`` the subsets to write (all with the same tiny content).
    """

    def make(fmt: str = "jsonl", subsets: Sequence[str] = ("biology",), name: str = "BRIGHT") -> Path:
        root = tmp_path / name
        for subset in subsets:
            for config, rows in (("examples", EXAMPLES), ("documents", DOCUMENTS), ("long_documents", LONG_DOCUMENTS)):
                if fmt == "parquet":
                    _write_parquet(root / config / f"{subset}-00000-of-00001.parquet", rows)
                else:
                    _write_jsonl(root / config / f"{subset}.jsonl", rows)
        return root

    return make


@pytest.fixture
def bright_content() -> dict[str, list[dict[str, Any]]]:
    """The rows :func:`make_bright_folder` writes, per config (copies)."""
    return {
        "examples": [dict(r) for r in EXAMPLES],
        "documents": [dict(r) for r in DOCUMENTS],
        "long_documents": [dict(r) for r in LONG_DOCUMENTS],
    }


@pytest.fixture
def add_system(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``add_system(name, builder)`` registers a system for one test, in a copy of the system registry (so no test
    sees another's systems)."""
    from r2r_agent.evals import systems
    from r2r_agent.registry import Registry

    registry: Registry[Any] = Registry("system", forbidden=",")
    for entry in systems.SYSTEMS:
        registry.register(entry.name, entry.value, argument=entry.argument, description=entry.description)
    monkeypatch.setattr(systems, "SYSTEMS", registry)
    return lambda name, builder: registry.register(name, builder, description="registered by a test")
