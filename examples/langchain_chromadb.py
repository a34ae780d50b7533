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

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local: never reach for a hub
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
if str(Path(__file__).resolve().parent) not in sys.path:  # the helpers shared by the examples sit here
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from _example_common import (  # noqa: E402
    COLLECTION,
    database_folder,
    load_passages,
    parse_args,
)
from langchain_core.callbacks import CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns the exit status."""
    args = parse_args(__doc__, argv)
    from r2r_agent.integrations.chroma import persistent_collection
    from r2r_agent.integrations.langchain import R2RRetriever, create_r2r_tool
    from r2r_agent.traces import JsonlTraceSink

    queries, passages, source = load_passages(args.queries, args.data_dir)
    query = args.query or queries[0]
    print(f"{len(passages)} passages from {source}")
    with database_folder(args.db) as folder:
        collection = persistent_collection(folder, passages, name=COLLECTION)
        print(f"chromadb collection {COLLECTION!r} in {folder}: {collection.count()} passages")
        # The one-liner: wrap any LangChain retriever; fetch_k is passed to it as k=. The settings are the
        # adapter's (fusion of the two orders, evidence-based reasons) with these on top; trace= records each call.
        trace = JsonlTraceSink(args.trace, run="langchain-example")
        retriever = R2RRetriever(base_retriever=ChromaCollectionRetriever(collection=collection),
                                 fetch_k=args.fetch_k, top_n=args.top_n, explain_top=args.explain_top,
                                 rescore_top=args.rescore_top, trace=trace)
        # What an agent sees: the tool's content has the passages with their explanations, the artifact the documents.
        tool = create_r2r_tool(retriever)
        message = tool.invoke({"type": "tool_call", "id": "call-1", "name": tool.name, "args": {"query": query}})
    documents: list[Document] = message.artifact
    print(f"\nQuery: {query}\nAnswer context for the agent (tool {tool.name!r}; top {len(documents)} of "
          f"{args.fetch_k} retrieved, reranked by {retriever.reranker.student.name}):\n")
    print(message.content)
    print(f"\nTrace appended to {args.trace}; render it with: r2r traces show {args.trace}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
