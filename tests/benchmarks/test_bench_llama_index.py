"""End-to-end LlamaIndex query timings: chromadb retrieval, reranking, synthesis (`make bench`; never pass/fail).

A ``VectorStoreIndex`` over a persistent chromadb collection of DL19 passages (the BM25 candidates of the first
``N_QUERIES`` DL19 queries), embedded with the bundled all-MiniLM-L6-v2. One query (the first DL19 query) runs
through three query engines that differ only in their node postprocessor, in the same run, so the figures read as
ratios on any machine:

- no reranking (retrieve the top ``FETCH_K``, synthesize): the pipeline's own cost;
- the float32 MiniLM bi-encoder reranking the same ``FETCH_K`` nodes (``R2R`` around a MiniLM-only student, no
  explanations): the reference every r2r figure is read against;
- ``R2R(top_n=5)`` with the embedded default student (explanations and comparison at the library defaults).

Synthesis uses LlamaIndex's ``MockLLM`` with a fixed-length answer (no model, no network), so the timings are
retrieval + reranking (+ prompt packing: the no-rerank engine packs all ``FETCH_K`` nodes, the others ``TOP_N``).
Models load once per module, outside the timed calls.

    pytest tests/benchmarks/test_bench_llama_index.py -m benchmark
"""

from __future__ import annotations

import gzip
import json
import os

import pytest

pytestmark = [pytest.mark.benchmark, pytest.mark.slow]
pytestmark_chroma = pytest.mark.filterwarnings("ignore:legacy embedding function config:DeprecationWarning")

pytest.importorskip("llama_index.core")
pytest.importorskip("chromadb")
pytest.importorskip("llama_index.vector_stores.chroma")

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

#: DL19 queries whose BM25 top-100 candidates fill the collection (5 queries: 500 passages, as the example).
N_QUERIES = 5
#: Nodes retrieved from chromadb and handed to the postprocessor.
FETCH_K = 50
#: Nodes kept after reranking.
TOP_N = 5
#: The length of MockLLM's answers, in tokens.
MOCK_ANSWER_TOKENS = 32


@pytest.fixture(scope="module")
def dl19_passages(dl19_candidates):
    """The first DL19 query and the passages (docid -> text) of the first ``N_QUERIES`` queries' candidates."""
    queries, passages = [], {}
    with gzip.open(dl19_candidates, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            queries.append(row["query"])
            passages.update({c["docid"]: c["text"] for c in row["candidates"]})
            if len(queries) == N_QUERIES:
                break
    return queries[0], passages


@pytest.fixture(scope="module")
def index(dl19_passages, tmp_path_factory):
    """The ``VectorStoreIndex`` over a persistent chromadb collection embedded with the bundled MiniLM."""
    from llama_index.core import VectorStoreIndex
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from r2r_agent.integrations.chroma import ChromaEmbedding, minilm_embedding_function, persistent_collection

    _, passages = dl19_passages
    function = minilm_embedding_function()
    collection = persistent_collection(tmp_path_factory.mktemp("chroma"), passages, name="dl19_passages",
                                       embedding_function=function)
    assert collection.count() == len(passages)
    return VectorStoreIndex.from_vector_store(ChromaVectorStore(chroma_collection=collection),
                                              embed_model=ChromaEmbedding(function))


@pytest.fixture(scope="module")
def default_reranker():
    from r2r_agent import Reranker

    return Reranker()  # the embedded default student, library defaults


@pytest.fixture(scope="module")
def minilm_reranker():
    from r2r_agent import EncoderScorer, Reranker, Student

    scorer = EncoderScorer.default(dtype="float32")
    return Reranker(Student(scorer=scorer, name=scorer.name), explain_top=0, compare_top=0)


def _engine(index, postprocessors):
    from llama_index.core.llms import MockLLM

    # A bounded mock answer: MockLLM() without max_tokens echoes its prompt, and the refine loop over the 50 nodes of
    # the no-rerank engine would then feed each echoed prompt into the next one until it overflows the window.
    return index.as_query_engine(similarity_top_k=FETCH_K, llm=MockLLM(max_tokens=MOCK_ANSWER_TOKENS),
                                 node_postprocessors=postprocessors)


def _run(benchmark, engine, query, rounds=3):
    return benchmark.pedantic(lambda: engine.query(query), rounds=rounds, iterations=1, warmup_rounds=1)


@pytestmark_chroma
def test_llama_index_query_no_rerank_baseline(benchmark, index, dl19_passages):
    query, passages = dl19_passages
    benchmark.extra_info.update(indexed=len(passages), fetch_k=FETCH_K)
    response = _run(benchmark, _engine(index, []), query)
    assert len(response.source_nodes) == FETCH_K


@pytestmark_chroma
def test_llama_index_query_minilm_rerank_reference(benchmark, index, dl19_passages, minilm_reranker):
    from r2r_agent.integrations.llama_index import R2R

    query, passages = dl19_passages
    benchmark.extra_info.update(indexed=len(passages), fetch_k=FETCH_K, top_n=TOP_N,
                                reranker=minilm_reranker.student.name)
    response = _run(benchmark, _engine(index, [R2R(top_n=TOP_N, reranker=minilm_reranker)]), query)
    assert len(response.source_nodes) == TOP_N


@pytestmark_chroma
def test_llama_index_query_r2r_default_student(benchmark, index, dl19_passages, default_reranker):
    from r2r_agent.integrations.llama_index import R2R

    query, passages = dl19_passages
    benchmark.extra_info.update(indexed=len(passages), fetch_k=FETCH_K, top_n=TOP_N,
                                reranker=default_reranker.student.name)
    response = _run(benchmark, _engine(index, [R2R(top_n=TOP_N, reranker=default_reranker)]), query)
    assert len(response.source_nodes) == TOP_N
    assert all(n.node.metadata.get("r2r_explanation") for n in response.source_nodes)
