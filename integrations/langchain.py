"""LangChain integration: a document compressor, a reranking retriever and an agent tool, all with reasons.

Only ``langchain-core`` is needed (``pip install "r2r-agent[langchain]"``).

Example:
    >>> from r2r_agent.integrations.langchain import R2RRetriever, create_r2r_tool        # doctest: +SKIP
    >>> retriever = R2RRetriever(base_retriever=vectorstore.as_retriever(), fetch_k=50, top_n=5)  # doctest: +SKIP
    >>> for doc in retriever.invoke("how long do fleas live"):                            # doctest: +SKIP
    ...     print(doc.metadata["r2r_score"], doc.metadata["r2r_explanation"])
    >>> tool = create_r2r_tool(retriever)  # explanations as content, documents as artifact  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .._optional import missing_extra_error
from ..config import RerankConfig, split_settings
from ..errors import InvalidInputError, InvalidPassageError, InvalidTypeError
from ..types import Passage, Ranking
from . import _common as common

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
        Callbacks,
    )
    from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
    from langchain_core.documents import BaseDocumentCompressor, Document
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables.config import (
        ensure_config,
        get_async_callback_manager_for_config,
        get_callback_manager_for_config,
    )
    from langchain_core.tools import BaseTool, StructuredTool
    from pydantic import ConfigDict, Field, PrivateAttr, field_validator
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_extra_error("langchain_core", "langchain", "r2r_agent.integrations.langchain") from exc

if TYPE_CHECKING:
    from ..reranker import Reranker
    from ..student import Student

logger = logging.getLogger(__name__)

#: Name of the custom event dispatched (inside a parent run) with each ranking's explanations.
RERANK_EVENT = "r2r_rerank"


# -- mapping -------------------------------------------------------------------------------------------------------


#: Metadata keys a first-stage retriever's score is read from (the first finite number wins). ``retrieval_score``
#: is where LlamaIndex rerankers (and r2r-agent 0.1) keep it.
FIRST_STAGE_SCORE_KEYS = ("score", common.FIRST_STAGE_SCORE_KEY, common.RETRIEVAL_SCORE_KEY)


def _retriever_score(metadata: dict[str, Any] | None) -> float | None:
    """The first-stage score in ``metadata["score"]`` (or ``r2r_first_stage_score``, ``retrieval_score``)."""
    for key in FIRST_STAGE_SCORE_KEYS:
        value = common.first_stage_score((metadata or {}).get(key))
        if value is not None:
            return value
    return None


def _to_passages(owner: str, documents: Sequence[Document]) -> tuple[list[Passage], list[int], list[int]]:
    if documents is None or isinstance(documents, (str, bytes, Document)):
        raise InvalidPassageError(f"{owner}: documents must be a list of Document, got {type(documents).__name__}")
    passages: list[Passage] = []
    textual: list[int] = []
    textless: list[int] = []
    for i, doc in enumerate(documents):
        if not isinstance(doc, Document):
            raise InvalidPassageError(f"{owner}: document {i} must be a langchain_core Document, got "
                                      f"{type(doc).__name__}; wrap text as Document(page_content=...)")
        if common.has_text(doc.page_content):
            textual.append(i)
            passages.append(Passage(text=doc.page_content, id=doc.id, first_stage_score=_retriever_score(doc.metadata)))
        else:
            textless.append(i)
    if textless:
        logger.info("%s: %d of %d documents have no text; passing them through unranked at the end", owner,
                    len(textless), len(documents))
    return passages, textual, textless


def _copy(doc: Document, updates: dict[str, Any]) -> Document:
    metadata = {k: v for k, v in (doc.metadata or {}).items() if k not in common.STALE_KEYS}
    metadata.update(updates)
    # A new Document (same class, id and content) with its own metadata: the caller's stays as it was.
    return doc.model_copy(update={"metadata": copy.deepcopy(metadata)})


def _to_documents(documents: Sequence[Document], ranking: Ranking | None, textual: list[int],
                  textless: list[int], top_n: int | None) -> list[Document]:
    out: list[Document] = []
    for position, judgment in common.ordered_results(ranking, textual, textless, top_n):
        if judgment is None or ranking is None:
            out.append(_copy(documents[position], {common.NOTE_KEY: common.NO_TEXT_NOTE}))
        else:
            # LangChain's rerankers (Cohere, FlashRank, Jina) write relevance_score, and code downstream reads it.
            updates = {common.RELEVANCE_SCORE_KEY: common.reported_score(judgment),
                       **common.result_updates(judgment, ranking)}
            out.append(_copy(documents[position], updates))
    return out


def _event_data(ranking: Ranking) -> dict[str, Any]:
    """What the custom event carries: the order and the reasons, not the passage texts."""
    return {
        "query": ranking.query,
        "model": ranking.model,
        "num_candidates": ranking.num_candidates,
        "comparison": ranking.comparison,
        "seconds": ranking.seconds,
        "judgments": [{"id": j.id, "rank": j.rank, "input_rank": j.input_rank, "score": j.score,
                       "relevance": j.relevance, "verdict": j.verdict, "explanation": j.explanation,
                       "truncated": j.truncated} for j in ranking],
    }


def _emit(ranking: Ranking | None, callbacks: Callbacks | None) -> None:
    if ranking is None:
        return
    config = ensure_config({"callbacks": callbacks} if callbacks is not None else None)
    # dispatch_custom_event raises without a parent run (a bare compress_documents call): skip it there.
    if get_callback_manager_for_config(config).parent_run_id is None:
        return
    dispatch_custom_event(RERANK_EVENT, _event_data(ranking), config=config)


async def _aemit(ranking: Ranking | None, callbacks: Callbacks | None) -> None:
    if ranking is None:
        return
    config = ensure_config({"callbacks": callbacks} if callbacks is not None else None)
    if get_async_callback_manager_for_config(config).parent_run_id is None:
        return
    await adispatch_custom_event(RERANK_EVENT, _event_data(ranking), config=config)


class _R2RSettings(common.HoldsReranker):
    """The rerank settings (one :class:`~r2r_agent.RerankConfig`) and the reranker, shared by the compressor and the
    retriever. Any ``RerankConfig`` setting may be given by keyword; unknown names are refused."""

    #: How many documents are returned unless told otherwise.
    DEFAULT_TOP_N: ClassVar[int | None] = 3

    if TYPE_CHECKING:  # declared as pydantic fields on the concrete classes
        config: RerankConfig
        _reranker: Any

    def __init__(self, *, reranker: Reranker | None = None, student: Student | None = None,
                 config: RerankConfig | None = None, trace: Any = None, **data: Any) -> None:
        owner = type(self).__name__
        settings, own = common.split_init_kwargs(owner, data, set(type(self).model_fields))  # type: ignore[attr-defined]
        resolved = common.resolve_reranker(owner, reranker, student, trace)
        own["config"] = common.build_config(owner, config=config, reranker=reranker, settings=settings,
                                            default_top_n=self.DEFAULT_TOP_N)
        super().__init__(**own)
        self._reranker = resolved

    def _rerank(self, owner: str, documents: Sequence[Document], query: str, config: RerankConfig,
                callbacks: Callbacks | None) -> list[Document]:
        passages, textual, textless = _to_passages(owner, documents)
        ranking = self.reranker.rerank(query, passages, config=config) if passages else None
        _emit(ranking, callbacks)
        return _to_documents(documents, ranking, textual, textless, config.top_n)

    async def _arerank(self, owner: str, documents: Sequence[Document], query: str, config: RerankConfig,
                       callbacks: Callbacks | None) -> list[Document]:
        passages, textual, textless = _to_passages(owner, documents)
        ranking = await self.reranker.arerank(query, passages, config=config) if passages else None
        await _aemit(ranking, callbacks)
        return _to_documents(documents, ranking, textual, textless, config.top_n)


# -- compressor ----------------------------------------------------------------------------------------------------


_SETTINGS_DOC = """
    Args:
        config: The rerank settings (:class:`~r2r_agent.RerankConfig`). Default: the adapters' defaults
            (``ordering="tiers"``, ``explain="evidence"``, README "Integrations") with this class's ``top_n``.
        reranker: An existing :class:`~r2r_agent.Reranker`, for its student and its trace: its own settings are not
            used (a warning names them), the adapter's are. Default: ``Reranker()`` on the process's shared default
            student, built on first use.
        student: Build the reranker around this :class:`~r2r_agent.Student` instead (not with ``reranker``).
        trace: Record every call (a trace sink such as ``MemoryTraceSink()``, or a JSON Lines path), as
            ``Reranker(trace=...)`` does, without bringing a reranker (not with ``reranker``).
        **settings: Any :class:`~r2r_agent.RerankConfig` setting (``top_n``, ``explain_top``, ``compare_top``,
            ``first_stage_weight``...) applied over ``config``, and the fields below. Unknown names are refused.
"""


class R2RCompressor(_R2RSettings, BaseDocumentCompressor):
    __doc__ = """A document compressor that reranks with r2r-agent's student and says why.

    Returns new :class:`~langchain_core.documents.Document` objects (same class, ``id``, content and a deep copy of
    the metadata) with ``relevance_score``, the key LangChain's own rerankers (Cohere, FlashRank, Jina) write: the
    calibrated relevance in [0, 1] (the ordering value for a student without a calibrator). Beside it:
    ``r2r_score`` (the value that ordered them, of the kind ``r2r_stage`` names: the fused, scored or retriever's
    order), ``r2r_rank``, ``r2r_first_stage_score`` (the incoming
    score, when there was one), ``r2r_relevance`` (the probability that it answers the query), ``r2r_verdict``,
    ``r2r_evidence`` (its best sentence), ``r2r_explanation`` (for the top ``explain_top``) and, on the first
    document, ``r2r_comparison``, ``r2r_answerable`` and ``r2r_order_matches_score`` (the order is R2R's, which
    within a verdict tier of the default ``ordering="tiers"`` can differ from the order of ``relevance_score``: code
    that re-sorts by ``relevance_score`` gets the relevance order). ``min_relevance`` drops documents unlikely to
    answer. Documents with no text cannot be judged: they come after the ranked ones with an ``r2r_note``, within the
    ``top_n`` returned. Inside a LangChain run, each ranking is also dispatched as the custom
    event ``"r2r_rerank"``. A numeric ``metadata["score"]`` (or ``r2r_first_stage_score``) is passed to the reranker
    as the first-stage score, so traces record it and ``first_stage_weight`` can mix it in. LangChain's vector-store
    retrievers drop their scores: to mix them in, put each document's score (higher = more relevant, e.g. from
    ``similarity_search_with_relevance_scores``) in ``metadata["score"]``. Returns 3 documents unless ``top_n`` says
    otherwise.
""" + _SETTINGS_DOC + """
    Example:
        >>> from langchain_core.documents import Document                               # doctest: +SKIP
        >>> docs = R2RCompressor(top_n=2).compress_documents(candidates, "how long do fleas live")  # doctest: +SKIP
        >>> docs[0].metadata["r2r_explanation"]                                          # doctest: +SKIP
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    config: RerankConfig = Field(description="The rerank settings (top_n, explain_top, first_stage_weight...).")

    _reranker: Any = PrivateAttr(default=None)

    def compress_documents(self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
                           ) -> Sequence[Document]:
        """Rerank ``documents`` for ``query``; returns new documents, best first (see the class docs)."""
        return self._rerank("R2RCompressor", documents, query, self.config, callbacks)

    async def acompress_documents(self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
                                  ) -> Sequence[Document]:
        """:meth:`compress_documents` without blocking the event loop (the model runs in a worker thread)."""
        return await self._arerank("R2RCompressor", documents, query, self.config, callbacks)


# -- retriever -----------------------------------------------------------------------------------------------------


class R2RRetriever(_R2RSettings, BaseRetriever):
    __doc__ = """Wraps any LangChain retriever: fetch candidates, rerank them with reasons, return the top ``top_n``.

    The returned documents carry the same metadata keys as :class:`R2RCompressor`'s. Callbacks flow through: the
    base retriever runs as a child of this retriever's run, and the ``"r2r_rerank"`` custom event is attached to it.
    ``top_n`` (default 4) is also accepted per call: ``invoke(query, top_n=3)``.
""" + _SETTINGS_DOC + """
    Attributes:
        base_retriever: The first-stage retriever (a vector store's ``as_retriever()``, BM25, an ensemble...).
        fetch_k: How many candidates to ask the base retriever for (passed as ``fetch_k_arg``, e.g. ``k``, which
            retrievers that do not take it ignore) and to keep before reranking. ``None``: what it returns.
        fetch_k_arg: The base retriever's keyword for the number of results.

    Example:
        >>> retriever = R2RRetriever(base_retriever=store.as_retriever(), fetch_k=50, top_n=5)  # doctest: +SKIP
        >>> docs = await retriever.ainvoke("how long do fleas live")                             # doctest: +SKIP
    """

    DEFAULT_TOP_N: ClassVar[int | None] = 4
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    base_retriever: BaseRetriever = Field(description="The first-stage retriever whose results are reranked.")
    config: RerankConfig = Field(description="The rerank settings (top_n, explain_top, first_stage_weight...).")
    fetch_k: int | None = Field(default=None, description="How many candidates to fetch (None: base's default).")
    fetch_k_arg: str = Field(default="k", description="The base retriever's keyword for the number of results.")

    _reranker: Any = PrivateAttr(default=None)

    @field_validator("fetch_k")
    @classmethod
    def _validate_fetch_k(cls, value: int | None) -> int | None:
        return common.check_count(cls.__name__, "fetch_k", value)

    def _fetch_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.fetch_k is not None:
            return {self.fetch_k_arg: self.fetch_k, **kwargs}
        return dict(kwargs)

    def _candidates(self, documents: list[Document]) -> list[Document]:
        return documents if self.fetch_k is None else documents[: self.fetch_k]

    def _call_config(self, kwargs: dict[str, Any]) -> RerankConfig:
        """This call's settings: ``invoke(query, top_n=3)`` (or any other setting) overrides the retriever's."""
        settings, _ = split_settings(kwargs)
        for name in settings:
            kwargs.pop(name)
        try:
            return self.config.override(**settings)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{type(self).__name__}: {exc}") from None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[Document]:
        config = self._call_config(kwargs)
        candidates = self.base_retriever.invoke(query, config={"callbacks": run_manager.get_child()},
                                                **self._fetch_kwargs(kwargs))
        return self._rerank(type(self).__name__, self._candidates(candidates), query, config, run_manager.get_child())

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       **kwargs: Any) -> list[Document]:
        config = self._call_config(kwargs)
        candidates = await self.base_retriever.ainvoke(query, config={"callbacks": run_manager.get_child()},
                                                       **self._fetch_kwargs(kwargs))
        return await self._arerank(type(self).__name__, self._candidates(candidates), query, config,
                                   run_manager.get_child())


# -- agent tool ----------------------------------------------------------------------------------------------------


def format_documents(documents: Sequence[Document], *, max_chars: int = 600) -> str:
    """Render reranked documents for an agent: rank, id, score, the text and *why* it was chosen.

    Example:
        >>> doc = Document(page_content="Adult fleas live 2-3 months.", id="d3",
        ...                metadata={"r2r_rank": 1, "r2r_score": 0.91, "r2r_explanation": "Gives the lifespan."})
        >>> print(format_documents([doc]))
        [1] id=d3 score=0.910
        Adult fleas live 2-3 months.
        Why: Gives the lifespan.
    """
    entries = [(position, doc.id, (doc.metadata or {}).get(common.SCORE_KEY),
                doc.page_content if isinstance(doc.page_content, str) else "", doc.metadata or {})
               for position, doc in enumerate(documents, start=1)]
    return common.format_ranked(entries, max_chars=max_chars)


def create_r2r_tool(retriever: BaseRetriever, *, name: str = "search_with_reasons",
                    description: str | None = None, max_chars: int = 600, **retriever_kwargs: Any) -> BaseTool:
    """A tool for LangChain agents: search, rerank with reasons, return the explanations and the documents.

    The tool's content (what the model reads) lists each document with its score and the student's explanation,
    then the comparison; its artifact is the list of reranked :class:`Document` objects
    (``response_format="content_and_artifact"``).

    Args:
        retriever: An :class:`R2RRetriever`, or any retriever, which is then wrapped in one built with
            ``retriever_kwargs`` (``top_n``, ``fetch_k``, ``reranker``...).
        name: The tool name the agent sees.
        description: The tool description (default: explains what the tool returns).
        max_chars: Longest document text shown in the content (the artifact keeps the full text).
        **retriever_kwargs: Settings for the wrapping :class:`R2RRetriever` (only when ``retriever`` is not one).

    Example:
        >>> tool = create_r2r_tool(store.as_retriever(), top_n=3, fetch_k=30)   # doctest: +SKIP
        >>> message = tool.invoke({"type": "tool_call", "id": "1", "name": tool.name,
        ...                        "args": {"query": "flea lifespan"}})        # doctest: +SKIP
        >>> message.artifact[0].metadata["r2r_explanation"]                     # doctest: +SKIP
    """
    if not isinstance(retriever, BaseRetriever):
        hint = (" (a vector store: pass store.as_retriever(), e.g. store.as_retriever(search_kwargs={'k': 50}))"
                if hasattr(retriever, "as_retriever") else "")
        raise InvalidTypeError(f"create_r2r_tool: retriever must be a LangChain BaseRetriever, got "
                               f"{type(retriever).__name__}{hint}")
    if isinstance(retriever, R2RRetriever):
        if retriever_kwargs:
            raise InvalidInputError(f"create_r2r_tool: {sorted(retriever_kwargs)} configure a new R2RRetriever, but an "
                             "R2RRetriever was given; set them on it instead")
        r2r = retriever
    else:
        r2r = R2RRetriever(base_retriever=retriever, **retriever_kwargs)
    description = description or (
        "Search the knowledge base and rerank the results. Returns the best passages, best first, each with a "
        "relevance score and a short explanation of why it is relevant, then why they are ordered that way. "
        "Input: a search query.")

    def search(query: str, callbacks: Callbacks = None) -> tuple[str, list[Document]]:
        docs = r2r.invoke(query, config={"callbacks": callbacks})
        return format_documents(docs, max_chars=max_chars), docs

    async def asearch(query: str, callbacks: Callbacks = None) -> tuple[str, list[Document]]:
        docs = await r2r.ainvoke(query, config={"callbacks": callbacks})
        return format_documents(docs, max_chars=max_chars), docs

    return StructuredTool.from_function(func=search, coroutine=asearch, name=name, description=description,
                                        response_format="content_and_artifact")


__all__ = ["RERANK_EVENT", "R2RCompressor", "R2RRetriever", "create_r2r_tool", "format_documents"]
