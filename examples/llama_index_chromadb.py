"""LlamaIndex + chromadb + r2r-agent, offline: retrieve 50 passages, rerank them with reasons, print the context.

A real chromadb ``PersistentClient`` collection of TREC DL19 passages (the BM25 candidates of the first few DL19
queries, read from ``../shared/data`` or ``$R2R_DATA_DIR``; the small example bundled with r2r-agent otherwise),
embedded with the bundled all-MiniLM-L6-v2. A LlamaIndex query engine retrieves the 50 nearest passages and the
``R2R`` postprocessor reranks them with the embedded default student, which explains its choice. Every rerank call
is appended to a trace file; ``r2r traces show`` renders it.

    pip install "r2r-agent[llama-index,chromadb]"
    R2R_CACHE_DIR=/tmp/r2rcache python examples/llama_index_chromadb.py
    python examples/llama_index_chromadb.py --query "what is the daily life of thai people" --db ./chroma-db
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local: never reach for a hub
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

COLLECTION = "dl19_passages"


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


def load_passages(num_queries: int, data_dir: Path | None) -> tuple[list[str], dict[str, str], str]:
    """The queries, the passages (docid -> text) of their first-stage candidates, and where they came from."""
    from r2r_agent.demo import load_demo_queries

    queries, source = load_demo_queries(num_queries, data_dir)
    passages = {c["docid"]: c["text"] for q in queries for c in q.candidates}
    return [q.query for q in queries], passages, source


def quiet_model_loading() -> None:
    """Hide transformers' per-load progress bars, which would bury the output."""
    with contextlib.suppress(ImportError):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


@contextlib.contextmanager
def database_folder(path: Path | None) -> Iterator[str]:
    """``path`` (created when missing), or a temporary folder removed afterwards."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield str(path)
        return
    with tempfile.TemporaryDirectory(prefix="r2r-chroma-", ignore_cleanup_errors=True) as folder:
        yield folder


def build_collection(folder: str, passages: dict[str, str], function: object) -> object:
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
    from llama_index.core import VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.response_synthesizers.no_text import NoText
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from r2r_agent import Reranker
    from r2r_agent.integrations.chroma import ChromaEmbedding, minilm_embedding_function
    from r2r_agent.integrations.llama_index import R2R, format_nodes
    from r2r_agent.traces import JsonlTraceSink

    quiet_model_loading()
    queries, passages, source = load_passages(args.queries, args.data_dir)
    query = args.query or queries[0]
    print(f"{len(passages)} passages from {source}")
    function = minilm_embedding_function()
    with database_folder(args.db) as folder:
        collection = build_collection(folder, passages, function)
        print(f"chromadb collection {COLLECTION!r} in {folder}: {collection.count()} passages")
        index = VectorStoreIndex.from_vector_store(ChromaVectorStore(chroma_collection=collection),
                                                   embed_model=ChromaEmbedding(function))
        reranker = Reranker(explain_top=args.explain_top, rescore_top=args.rescore_top,
                            trace=JsonlTraceSink(args.trace, run="llama-index-example"))
        # The one-liner: any query engine takes R2R as a node postprocessor. This example has no answer LLM, so the
        # NoText synthesizer stops at the context; with a real LLM, pass llm=... alone to get the answer too.
        engine = index.as_query_engine(similarity_top_k=args.fetch_k, llm=MockLLM(),
                                       response_synthesizer=NoText(llm=MockLLM()),
                                       node_postprocessors=[R2R(top_n=args.top_n, reranker=reranker)])
        response = engine.query(query)
    print(f"\nQuery: {query}\nAnswer context (top {len(response.source_nodes)} of {args.fetch_k} retrieved, "
          f"reranked by {reranker.student.name}):\n")
    print(format_nodes(response.source_nodes))
    print(f"\nTrace appended to {args.trace}; render it with: r2r traces show {args.trace}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
