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

import os
import sys
from collections.abc import Sequence
from pathlib import Path

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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns the exit status."""
    args = parse_args(__doc__, argv)
    from llama_index.core import VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.response_synthesizers.no_text import NoText
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from r2r_agent.integrations.chroma import ChromaEmbedding, minilm_embedding_function, persistent_collection
    from r2r_agent.integrations.llama_index import R2R, format_nodes
    from r2r_agent.traces import JsonlTraceSink

    queries, passages, source = load_passages(args.queries, args.data_dir)
    query = args.query or queries[0]
    print(f"{len(passages)} passages from {source}")
    function = minilm_embedding_function()
    with database_folder(args.db) as folder:
        collection = persistent_collection(folder, passages, name=COLLECTION, embedding_function=function)
        print(f"chromadb collection {COLLECTION!r} in {folder}: {collection.count()} passages")
        index = VectorStoreIndex.from_vector_store(ChromaVectorStore(chroma_collection=collection),
                                                   embed_model=ChromaEmbedding(function))
        # The one-liner: any query engine takes R2R as a node postprocessor (the adapter's settings, these on top;
        # trace= records each call). This example has no answer LLM, so the NoText synthesizer stops at the context;
        # with a real LLM, pass llm=... alone to get the answer too (without llm=, LlamaIndex uses Settings.llm,
        # OpenAI unless set, which fails offline).
        r2r = R2R(top_n=args.top_n, explain_top=args.explain_top, rescore_top=args.rescore_top,
                  trace=JsonlTraceSink(args.trace, run="llama-index-example"))
        engine = index.as_query_engine(similarity_top_k=args.fetch_k, llm=MockLLM(),
                                       response_synthesizer=NoText(llm=MockLLM()), node_postprocessors=[r2r])
        response = engine.query(query)
    print(f"\nQuery: {query}\nAnswer context (top {len(response.source_nodes)} of {args.fetch_k} retrieved, "
          f"reranked by {r2r.reranker.student.name}):\n")
    print(format_nodes(response.source_nodes))
    print(f"\nTrace appended to {args.trace}; render it with: r2r traces show {args.trace}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
