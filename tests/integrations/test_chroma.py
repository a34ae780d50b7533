"""The LlamaIndex embedding that delegates to a chromadb embedding function (a fake one here: no model)."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core")

from r2r_agent.integrations.chroma import ChromaEmbedding  # noqa: E402


class CountingFunction:
    """A stand-in for a chromadb embedding function: one 2-d vector per text (its length and word count)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts):
        self.calls.append(list(texts))
        return [[len(t), len(t.split())] for t in texts]


def test_queries_and_texts_go_through_the_function():
    function = CountingFunction()
    embedding = ChromaEmbedding(function)
    assert embedding.get_query_embedding("how long") == [8.0, 2.0]
    assert embedding.get_text_embedding_batch(["a b c", "d"]) == [[5.0, 3.0], [1.0, 1.0]]
    assert ["a b c", "d"] in function.calls  # one batched call, not one per text
    assert embedding.model_name == "all-MiniLM-L6-v2"


async def test_async_query_embedding():
    assert await ChromaEmbedding(CountingFunction()).aget_query_embedding("x y") == [3.0, 2.0]


def test_rejects_a_non_callable():
    with pytest.raises(TypeError, match="chromadb embedding function"):
        ChromaEmbedding("all-MiniLM-L6-v2")


class FakeChromaFunction:
    """A chromadb embedding function with no model: 3-d vectors (length, word count, 1), recording each call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, input):  # chromadb's protocol names the argument ``input``
        self.calls.append(list(input))
        return [[float(len(t)), float(len(t.split())), 1.0] for t in input]

    @staticmethod
    def name() -> str:
        return "r2r-test-fake"


@pytest.mark.filterwarnings("ignore:legacy embedding function config:DeprecationWarning")
def test_persistent_collection_embeds_only_the_missing_passages(tmp_path):
    pytest.importorskip("chromadb")
    from r2r_agent.integrations.chroma import persistent_collection

    function = FakeChromaFunction()
    passages = {"d1": "fleas live two months", "d2": "cats", "d3": "dogs bark loudly"}
    collection = persistent_collection(tmp_path / "db", passages, name="test_passages",
                                       embedding_function=function, batch_size=2)
    assert collection.count() == 3
    assert function.calls == [["fleas live two months", "cats"], ["dogs bark loudly"]]  # batches of 2
    stored = collection.get(ids=["d2"], include=["documents", "metadatas"])
    assert stored["documents"] == ["cats"] and stored["metadatas"] == [{"docid": "d2"}]
    assert collection.metadata["hnsw:space"] == "cosine"

    # Reopened from disk with one new passage: only that one is embedded.
    function.calls.clear()
    again = persistent_collection(tmp_path / "db", {**passages, "d4": "birds sing"}, name="test_passages",
                                  embedding_function=function)
    assert again.count() == 4
    assert function.calls == [["birds sing"]]


def test_persistent_collection_rejects_a_bad_batch_size(tmp_path):
    from r2r_agent.errors import InvalidInputError
    from r2r_agent.integrations.chroma import persistent_collection

    with pytest.raises(InvalidInputError, match="batch_size must be an int >= 1"):
        persistent_collection(tmp_path, {"d1": "x"}, embedding_function=FakeChromaFunction(), batch_size=0)
