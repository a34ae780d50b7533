"""LangChain + chromadb + r2r-agent, offline: retrieve 50 passages, rerank them with reasons, hand them to an agent.

A real chromadb ``PersistentClient`` collection of TREC DL19 passages (the BM25 candidates of the first few DL19
queries, read from ``../shared/data`` or ``$R2R_DATA_DIR``; the small example bundled with r2r-agent otherwise),
embedded with the bundled all-MiniLM-L6-v2. A small LangChain retriever over the collection fetches the 50 nearest
passages; ``R2RRetriever`` reranks them with the embedded default student; the agent tool from ``create_r2r_tool``
returns the answer context with each passage's explanation (and the documents as the artifact). Every rerank call is
appended to a trace file; ``r2r traces show`` renders it.

Only ``langchain-core`` is used (no ``langchain``, no ``langchain-chroma``).

    pip install "r2r-agent[langchain,chromadb]"
    R2R_CACHE_DIR=/tmp/r2rcache python examples/langchain_chromadb.py
    python examples/langchain_chromadb.py --query "what is the daily life of thai people" --db ./chroma-db
    r2r traces show r2r-traces.jsonl
"""

# ruff: noqa: T201 - an example script prints its results

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local: never reach for a hub
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from langchain_core.callbacks import CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402

COLLECTION = "dl19_passages"


class ChromaCollectionRetriever(BaseRetriever):
    """A LangChain retriever over a chromadb collection (the collection's own embedding function embeds the query).

    Each document keeps its chromadb id and metadata, plus ``retrieval_score`` (cosine similarity for a collection
    made with ``{"hnsw:space": "cosine"}``).
    """

    collection: Any
    k: int = 4

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None) -> list[Document]:
        n = min(k or self.k, self.collection.count())
        if n == 0:
            return []
        found = self.collection.query(query_texts=[query], n_results=n,
                                      include=["documents", "metadatas", "distances"])
        return [Document(id=doc_id, page_content=text or "",
                         metadata={**(metadata or {}), "retrieval_score": 1.0 - float(distance)})
                for doc_id, text, metadata, distance in zip(found["ids"][0], found["documents"][0],
                                                            found["metadatas"][0], found["distances"][0])]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The example's options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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


def quiet_model_loading() -> None:
    """Hide transformers' per-load progress bars, which would bury the output."""
    with contextlib.suppress(ImportError):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


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


def build_collection(folder: str, passages: dict[str, str], function: object) -> Any:
    """A persistent chromadb collection holding ``passages`` (only the missing ones are embedded)."""
    import chromadb

    client = chromadb.PersistentClient(path=folder, settings=chromadb.config.Settings(anonymized_telemetry=False))
    collection = client.get_or_create_collection(COLLECTION, embedding_function=function,
                                                 metadata={"hnsw:space": "cosine"})
    known = set(collection.get(ids=list(passages), include=[])["ids"])
    missing = [docid for docid in passages if docid not in known]
    for start in range(0, len(missing), 256):
        batch = missing[start:start + 256]
        collection.add(ids=batch, documents=[passages[d] for d in batch], metadatas=[{"docid": d} for d in batch])
    return collection


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns the exit status."""
    args = parse_args(argv)
    from r2r_agent import Reranker
    from r2r_agent.integrations.chroma import minilm_embedding_function
    from r2r_agent.integrations.langchain import R2RRetriever, create_r2r_tool
    from r2r_agent.traces import JsonlTraceSink

    quiet_model_loading()
    queries, passages, source = load_passages(args.queries, args.data_dir)
    query = args.query or queries[0]
    print(f"{len(passages)} passages from {source}")
    with database_folder(args.db) as folder:
        collection = build_collection(folder, passages, minilm_embedding_function())
        print(f"chromadb collection {COLLECTION!r} in {folder}: {collection.count()} passages")
        reranker = Reranker(explain_top=args.explain_top, rescore_top=args.rescore_top,
                            trace=JsonlTraceSink(args.trace, run="langchain-example"))
        # The one-liner: wrap any LangChain retriever; fetch_k is passed to it as k=.
        retriever = R2RRetriever(base_retriever=ChromaCollectionRetriever(collection=collection),
                                 fetch_k=args.fetch_k, top_n=args.top_n, reranker=reranker)
        # What an agent sees: the tool's content has the passages with their explanations, the artifact the documents.
        tool = create_r2r_tool(retriever)
        message = tool.invoke({"type": "tool_call", "id": "call-1", "name": tool.name, "args": {"query": query}})
    documents: list[Document] = message.artifact
    print(f"\nQuery: {query}\nAnswer context for the agent (tool {tool.name!r}; top {len(documents)} of "
          f"{args.fetch_k} retrieved, reranked by {reranker.student.name}):\n")
    print(message.content)
    print(f"\nTrace appended to {args.trace}; render it with: r2r traces show {args.trace}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
