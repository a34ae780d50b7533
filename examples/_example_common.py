"""What the chromadb examples share: their options, the passages they index, and where the database lives.

Not part of r2r-agent: the reusable part (a persistent chromadb collection embedded with the bundled MiniLM) is
:func:`r2r_agent.integrations.chroma.persistent_collection`.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

#: The chromadb collection the examples create or reuse.
COLLECTION = "dl19_passages"


def parse_args(description: str | None, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The examples' options (``description``: the calling script's docstring, shown by ``--help``)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--query", default=None, help="the question (default: the first DL19 query)")
    parser.add_argument("--db", type=Path, default=None, help="chromadb folder to create or reuse (default: a "
                        "temporary one, removed at the end)")
    parser.add_argument("--data-dir", type=Path, default=None, help="the shared data folder holding trec-dl/")
    parser.add_argument("--queries", type=int, default=5, help="index the candidates of this many DL19 queries")
    parser.add_argument("--fetch-k", type=int, default=50, help="passages retrieved from chromadb (default 50)")
    parser.add_argument("--top-n", type=int, default=5, help="passages kept after reranking (default 5)")
    parser.add_argument("--explain-top", type=int, default=5, help="passages explained (default 5)")
    parser.add_argument("--rescore-top", type=int, default=0, help="re-score the top K with the student's LM "
                        "(default 0: the MiniLM scorer alone, the same model as this retriever, keeps its order)")
    parser.add_argument("--trace", type=Path, default=Path("r2r-traces.jsonl"),
                        help="trace file appended to (default ./r2r-traces.jsonl)")
    return parser.parse_args(argv)


def load_passages(num_queries: int, data_dir: Path | None) -> tuple[list[str], dict[str, str], str]:
    """The queries, the passages (docid -> text) of their first-stage candidates, and where they came from."""
    from r2r_agent.demo import load_demo_queries

    queries, source = load_demo_queries(num_queries, data_dir)
    passages = {c["docid"]: c["text"] for q in queries for c in q.candidates}
    return [q.query for q in queries], passages, source


@contextlib.contextmanager
def database_folder(path: Path | None) -> Iterator[str]:
    """``path`` (created when missing), or a temporary folder removed afterwards."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield str(path)
        return
    with tempfile.TemporaryDirectory(prefix="r2r-chroma-", ignore_cleanup_errors=True) as folder:
        yield folder


__all__ = ["COLLECTION", "database_folder", "load_passages", "parse_args"]
