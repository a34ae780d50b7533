"""``r2r demo``: rerank a few real TREC DL19 queries (or a small bundled example) and compare nDCG@10 with BM25."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

DL19_CANDIDATES = "trec-dl/dl19.bm25.top100.jsonl.gz"
DL19_QRELS = "trec-dl/qrels.dl19-passage.txt"


@dataclass(frozen=True)
class DemoQuery:
    """One query with its first-stage candidates (best first) and graded judgments."""

    qid: str
    query: str
    candidates: list[dict[str, Any]]
    qrels: dict[str, int]


def find_shared_data() -> Path | None:
    """The shared data folder: ``$R2R_DATA_DIR``, else ``../shared/data`` from the working directory or the repo."""
    env = os.environ.get("R2R_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates += [Path.cwd().parent / "shared" / "data", Path(__file__).resolve().parents[2] / "shared" / "data"]
    return next((c for c in candidates if (c / DL19_CANDIDATES).is_file() and (c / DL19_QRELS).is_file()), None)


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == 4:
                qrels.setdefault(parts[0], {})[parts[2]] = int(parts[3])
    return qrels


def _iter_jsonl(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.strip():
            yield json.loads(line)


def load_demo_queries(limit: int, data_dir: Path | None = None) -> tuple[list[DemoQuery], str]:
    """Up to ``limit`` DL19 queries from the shared data, else the bundled example; and a description of the source."""
    data_dir = data_dir or find_shared_data()
    if data_dir is not None:
        qrels = _read_qrels(data_dir / DL19_QRELS)
        queries = []
        with gzip.open(data_dir / DL19_CANDIDATES, "rt", encoding="utf-8") as handle:
            for row in _iter_jsonl(handle):
                queries.append(DemoQuery(row["qid"], row["query"], row["candidates"], qrels.get(row["qid"], {})))
                if len(queries) == limit:
                    break
        return queries, f"TREC DL19, BM25 top-100 ({data_dir / DL19_CANDIDATES})"
    text = resources.files("r2r_agent").joinpath("data/example.jsonl").read_text(encoding="utf-8")
    queries = [
        DemoQuery(row["qid"], row["query"], row["candidates"], {c["docid"]: c["label"] for c in row["candidates"]})
        for row in _iter_jsonl(iter(text.splitlines()))
    ][:limit]
    return queries, "the bundled example (shared TREC DL data not found; set R2R_DATA_DIR to use it)"
