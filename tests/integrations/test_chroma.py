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
