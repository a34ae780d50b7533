"""LlamaIndex integration: the :class:`R2R` node postprocessor.

Example:
    >>> from r2r_agent.integrations.llama_index import R2R                       # doctest: +SKIP
    >>> engine = index.as_query_engine(similarity_top_k=50, node_postprocessors=[R2R(top_n=5)])  # doctest: +SKIP
    >>> for n in engine.query("how long do fleas live").source_nodes:            # doctest: +SKIP
    ...     print(n.score, n.metadata["r2r_explanation"])

Needs ``pip install "r2r-agent[llama-index]"``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .._optional import missing_extra_error
from ..config import RerankConfig
from ..errors import InvalidInputError, InvalidPassageError, InvalidTypeError
from ..types import Passage, Ranking
from . import _common as common

try:
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.bridge.pydantic import Field, PrivateAttr
    from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
    from llama_index.core.tools import FunctionTool
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_extra_error("llama_index.core", "llama-index", "r2r_agent.integrations.llama_index") from exc

if TYPE_CHECKING:
    from ..reranker import Reranker
    from ..student import Student

logger = logging.getLogger(__name__)
dispatcher = get_dispatcher(__name__)

#: Extra callback payload key carrying the whole :class:`~r2r_agent.Ranking` (as a dict) at the end of the event.
RANKING_PAYLOAD_KEY = "r2r_ranking"

_EXPLANATION_KEYS = common.REASON_KEYS
_SCORE_KEYS = common.NUMBER_KEYS
#: How many nodes R2R returns unless told otherwise.
DEFAULT_TOP_N = 5


class R2R(common.HoldsReranker, BaseNodePostprocessor):
    """Reranks retrieved nodes with r2r-agent's student and writes *why* into each node's metadata.

    The returned nodes are new copies (the caller's nodes are never modified). Each ranked copy gets
    ``NodeWithScore.score`` set to the calibrated relevance, the probability in [0, 1] that it answers the query (for a
    student without a calibrator: the value that ordered it), as LlamaIndex's own rerankers set their relevance there,
    so ``SimilarityPostprocessor(similarity_cutoff=0.2)`` after ``R2R`` keeps the nodes of relevance >= 0.2 for every
    query. The metadata keys: ``r2r_score`` (the value that ordered the nodes, of the kind ``r2r_stage`` names:
    ``verdict+first_stage_order`` for the default verdict tiers, ``score+rrf`` for the fused order, ``score`` for the
    scorer's...), ``r2r_rank``, ``r2r_first_stage_score`` and
    ``retrieval_score`` (LlamaIndex's name; the node's incoming score, when it had one and ``keep_first_stage_score``),
    ``r2r_relevance`` (the probability that it answers the query), ``r2r_verdict`` (``relevant``, ``partial``,
    ``not_relevant``), ``r2r_evidence`` (its best sentence), ``r2r_explanation`` (for the top ``explain_top``) and, on
    the first node only, ``r2r_comparison`` (why the top nodes are ordered as they are) and ``r2r_answerable`` (whether
    any returned node answers the query), and ``r2r_order_matches_score``. The nodes come in R2R's order (``r2r_rank``),
    which need not be the order of their scores: within a verdict tier (the default ``ordering="tiers"``) a node the
    retriever ranked high can precede one of higher relevance. A step that re-sorts by score (many do) gets the
    relevance order; ``r2r_order_matches_score`` on the first node says whether the two agree. ``min_relevance`` drops
    nodes unlikely to answer. All these keys are excluded from the text the embedding model sees; the verdicts and
    explanations are shown to the LLM by default (so an agent can use them; the explanations hold no claim the passage
    does not state), the numbers and the evidence (already in the text) are not.

    Nodes without text content (e.g. image-only nodes, blank text) cannot be judged: they come after the ranked
    ones, with no score (``None``) and an ``r2r_note`` saying why, within the ``top_n`` returned.

    Args:
        config: The rerank settings (:class:`~r2r_agent.RerankConfig`). Default: the adapters' defaults
            (``ordering="tiers"``, ``explain="evidence"``, README "Integrations") with ``top_n=5``.
        reranker: An existing :class:`~r2r_agent.Reranker` (shared, e.g. across postprocessors), for its student and
            its trace: its own settings are not used (a warning names them), the adapter's are. Default: one
            ``Reranker()`` on the process's shared default student, built on first use.
        student: Build the reranker around this :class:`~r2r_agent.Student` instead (not with ``reranker``).
        trace: Record every call (a trace sink such as ``MemoryTraceSink()``, or a JSON Lines path), as
            ``Reranker(trace=...)`` does, without bringing a reranker (not with ``reranker``).
        **settings: Any :class:`~r2r_agent.RerankConfig` setting (``top_n``, ``explain_top``, ``compare_top``,
            ``first_stage_weight``...) applied over ``config``, and this class's own fields below. Unknown names are
            refused (``R2R(topn=2)`` is an error naming ``top_n``).

    Attributes:
        keep_first_stage_score: Copy each node's incoming score to ``metadata["r2r_first_stage_score"]``.
        metadata_mode: Which node text the student reads (``MetadataMode.NONE``: the text only; ``EMBED``/``LLM``:
            with the node's metadata header).
        explanations_visible_to_llm: Show the reasons (``r2r_explanation``, ``r2r_comparison``, ``r2r_verdict``,
            ``r2r_answerable``, ``r2r_note``) in the LLM's context.
        scores_visible_to_llm: Show the numbers and the evidence (``r2r_score``, ``r2r_rank``,
            ``r2r_first_stage_score``, ``r2r_relevance``, ``r2r_evidence``) in the LLM's context.

    Example:
        >>> postprocessor = R2R(top_n=3, reranker=my_reranker)                        # doctest: +SKIP
        >>> nodes = postprocessor.postprocess_nodes(retrieved, query_str="how long do fleas live")  # doctest: +SKIP
    """

    config: RerankConfig = Field(default_factory=lambda: common.ADAPTER_DEFAULTS.replace(top_n=DEFAULT_TOP_N),
                                 description="The rerank settings (top_n, explain_top, first_stage_weight...).")
    keep_first_stage_score: bool = Field(
        default=True, description="Copy the incoming score to metadata['r2r_first_stage_score'].")
    metadata_mode: MetadataMode = Field(default=MetadataMode.NONE, description="Which node text the student reads.")
    explanations_visible_to_llm: bool = Field(
        default=True, description="Show r2r_explanation/r2r_comparison/r2r_verdict/r2r_answerable/r2r_note to the LLM.")
    scores_visible_to_llm: bool = Field(
        default=False, description="Show r2r_score/r2r_rank/r2r_first_stage_score/r2r_relevance/r2r_evidence to the "
        "LLM.")

    _reranker: Any = PrivateAttr(default=None)

    def __init__(self, *, reranker: Reranker | None = None, student: Student | None = None,
                 config: RerankConfig | None = None, trace: Any = None, **data: Any) -> None:
        if "keep_retrieval_score" in data:  # the 0.1 name, read for one release
            warnings.warn("R2R(keep_retrieval_score=) is deprecated; use keep_first_stage_score=", DeprecationWarning,
                          stacklevel=2)
            data["keep_first_stage_score"] = data.pop("keep_retrieval_score")
        settings, own = common.split_init_kwargs("R2R", data, {*type(self).model_fields, "callback_manager"})
        resolved = common.resolve_reranker("R2R", reranker, student, trace)
        own["config"] = common.build_config("R2R", config=config, reranker=reranker, settings=settings,
                                            default_top_n=DEFAULT_TOP_N)
        super().__init__(**own)
        self._reranker = resolved

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex uses to (de)serialise this component."""
        return "R2R"

    # -- LlamaIndex entry points -------------------------------------------------------------------------------

    def _postprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
                           ) -> list[NodeWithScore]:
        query = self._query_of(query_bundle)
        passages, textual, textless = self._to_passages(nodes)
        reranker = self.reranker
        model_name = reranker.student.name if passages else ""
        with self._events(nodes, query_bundle, query, model_name) as finish:
            ranking = reranker.rerank(query, passages, config=self.config) if passages else None
            return finish(self._to_nodes(nodes, ranking, textual, textless), ranking)

    @dispatcher.span
    async def _apostprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
                                  ) -> list[NodeWithScore]:
        query = self._query_of(query_bundle)
        passages, textual, textless = self._to_passages(nodes)
        reranker = self.reranker
        # Loading the default student takes seconds: do it off the event loop.
        model_name = (await asyncio.to_thread(lambda: reranker.student.name)) if passages else ""
        with self._events(nodes, query_bundle, query, model_name) as finish:
            ranking = await reranker.arerank(query, passages, config=self.config) if passages else None
            return finish(self._to_nodes(nodes, ranking, textual, textless), ranking)

    # -- mapping -----------------------------------------------------------------------------------------------

    @staticmethod
    def _query_of(query_bundle: QueryBundle | None) -> str:
        if query_bundle is None:
            raise InvalidInputError(
                "R2R: missing query bundle; reranking needs the query. Call postprocess_nodes(nodes, "
                "query_str=...) or postprocess_nodes(nodes, query_bundle=QueryBundle(...)); query engines pass it "
                "for you")
        return query_bundle.query_str

    def _to_passages(self, nodes: Sequence[NodeWithScore]) -> tuple[list[Passage], list[int], list[int]]:
        if nodes is None or isinstance(nodes, (str, bytes, NodeWithScore)):
            raise InvalidPassageError(f"R2R: nodes must be a list of NodeWithScore, got {type(nodes).__name__}")
        passages: list[Passage] = []
        textual: list[int] = []
        textless: list[int] = []
        for i, item in enumerate(nodes):
            if not isinstance(item, NodeWithScore):
                raise InvalidPassageError(f"R2R: node {i} must be a NodeWithScore, got {type(item).__name__}; wrap "
                                        "bare nodes as NodeWithScore(node=node)")
            content = item.node.get_content(metadata_mode=self.metadata_mode)
            if common.has_text(content):
                textual.append(i)
                passages.append(Passage(text=content, id=item.node.node_id,
                                        first_stage_score=common.first_stage_score(item.score)))
            else:
                textless.append(i)
        if textless:
            logger.info("R2R: %d of %d nodes have no text content; passing them through unranked at the end",
                        len(textless), len(nodes))
        return passages, textual, textless

    def _copy(self, item: NodeWithScore, score: float | None, updates: dict[str, Any]) -> NodeWithScore:
        metadata = {k: v for k, v in (item.node.metadata or {}).items() if k not in common.STALE_KEYS}
        if not self.keep_first_stage_score:
            dropped = (common.FIRST_STAGE_SCORE_KEY, common.RETRIEVAL_SCORE_KEY)
            updates = {k: v for k, v in updates.items() if k not in dropped}
        metadata.update(updates)
        ours = set(metadata) & {*_EXPLANATION_KEYS, *_SCORE_KEYS}
        hidden_from_llm: set[str] = set()
        if not self.explanations_visible_to_llm:
            hidden_from_llm.update(_EXPLANATION_KEYS)
        if not self.scores_visible_to_llm:
            hidden_from_llm.update(_SCORE_KEYS)
        stale = set(common.STALE_KEYS)
        embed_excluded = [k for k in item.node.excluded_embed_metadata_keys if k not in stale] + sorted(ours)
        llm_excluded = [k for k in item.node.excluded_llm_metadata_keys if k not in stale] + sorted(
            ours & hidden_from_llm)
        # A copy with fresh metadata and key lists: the caller's node (and its dicts) stay as they were.
        node = item.node.model_copy(update={"metadata": copy.deepcopy(metadata),
                                            "excluded_embed_metadata_keys": embed_excluded,
                                            "excluded_llm_metadata_keys": llm_excluded})
        return NodeWithScore(node=node, score=score)

    def _to_nodes(self, nodes: Sequence[NodeWithScore], ranking: Ranking | None, textual: list[int],
                  textless: list[int]) -> list[NodeWithScore]:
        out: list[NodeWithScore] = []
        for position, judgment in common.ordered_results(ranking, textual, textless, self.config.top_n):
            if judgment is None or ranking is None:
                out.append(self._copy(nodes[position], None, {common.NOTE_KEY: common.NO_TEXT_NOTE}))
            else:
                updates = common.result_updates(judgment, ranking)
                if judgment.first_stage_score is not None:  # where LlamaIndex's rerankers keep it
                    updates[common.RETRIEVAL_SCORE_KEY] = judgment.first_stage_score
                out.append(self._copy(nodes[position], common.reported_score(judgment), updates))
        return out

    # -- instrumentation ---------------------------------------------------------------------------------------

    @contextmanager
    def _events(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None, query: str,
                model_name: str) -> Iterator[Callable[[list[NodeWithScore], Ranking | None], list[NodeWithScore]]]:
        """Emit ``ReRankStartEvent``/``ReRankEndEvent`` and the legacy ``RERANKING`` callback around a rerank.

        Yields the function that closes both with the result (the reranked nodes and the full ranking).
        """
        top_n = self.config.top_n if self.config.top_n is not None else len(nodes)
        dispatcher.event(ReRankStartEvent(query=query_bundle, nodes=list(nodes), top_n=top_n, model_name=model_name))
        payload: dict[str, Any] = {EventPayload.NODES: list(nodes), EventPayload.MODEL_NAME: model_name,
                                   EventPayload.QUERY_STR: query, EventPayload.TOP_K: top_n}
        with self.callback_manager.event(CBEventType.RERANKING, payload=payload) as event:

            def finish(result: list[NodeWithScore], ranking: Ranking | None) -> list[NodeWithScore]:
                end: dict[str, Any] = {EventPayload.NODES: result}
                if ranking is not None:
                    end[RANKING_PAYLOAD_KEY] = ranking.to_dict()
                event.on_end(payload=end)
                dispatcher.event(ReRankEndEvent(nodes=result))
                return result

            yield finish


class R2RRetriever(BaseRetriever):
    """Wraps any LlamaIndex retriever: fetch candidates, rerank them with reasons (:class:`R2R`), return the top.

    Drops into ``RetrieverQueryEngine``, routers and agents. The number of candidates is the base retriever's own
    setting (e.g. ``index.as_retriever(similarity_top_k=50)``); ``fetch_k`` can cap it further.

    Args:
        retriever: The first-stage retriever.
        postprocessor: A configured :class:`R2R` to use (otherwise one is built from ``r2r_kwargs``).
        fetch_k: Keep at most this many candidates before reranking (``None``: all the base returned).
        callback_manager: LlamaIndex callback manager (also given to the built :class:`R2R`).
        verbose: LlamaIndex's retriever verbosity.
        **r2r_kwargs: Settings for the built :class:`R2R`: ``top_n``, ``reranker``, ``explain_top``,
            ``first_stage_weight``... (not with ``postprocessor``).

    Example:
        >>> retriever = R2RRetriever(index.as_retriever(similarity_top_k=50), top_n=5)   # doctest: +SKIP
        >>> engine = RetrieverQueryEngine.from_args(retriever)                            # doctest: +SKIP
    """

    def __init__(self, retriever: BaseRetriever, *, postprocessor: R2R | None = None, fetch_k: int | None = None,
                 callback_manager: CallbackManager | None = None, verbose: bool = False, **r2r_kwargs: Any) -> None:
        if not isinstance(retriever, BaseRetriever):
            raise InvalidTypeError(f"R2RRetriever: retriever must be a LlamaIndex BaseRetriever, got "
                                    f"{type(retriever).__name__} (e.g. index.as_retriever(similarity_top_k=50))")
        if postprocessor is not None and r2r_kwargs:
            raise InvalidInputError(f"R2RRetriever: {sorted(r2r_kwargs)} configure a new R2R, but postprocessor= "
                                    "was given; set them on it instead")
        if postprocessor is None:
            if callback_manager is not None:
                r2r_kwargs.setdefault("callback_manager", callback_manager)
            postprocessor = R2R(**r2r_kwargs)
        self.base_retriever = retriever
        self.postprocessor = postprocessor
        self.fetch_k = common.check_count("R2RRetriever", "fetch_k", fetch_k)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _candidates(self, nodes: list[NodeWithScore]) -> list[NodeWithScore]:
        return nodes if self.fetch_k is None else nodes[: self.fetch_k]

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        nodes = self.base_retriever.retrieve(query_bundle)
        return self.postprocessor.postprocess_nodes(self._candidates(nodes), query_bundle=query_bundle)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        nodes = await self.base_retriever.aretrieve(query_bundle)
        return await self.postprocessor.apostprocess_nodes(self._candidates(nodes), query_bundle=query_bundle)


def format_nodes(nodes: Sequence[NodeWithScore], *, max_chars: int = 600) -> str:
    """Render reranked nodes for an agent: rank, id, score, the text and *why* it was chosen, then the comparison."""
    entries = [(position, n.node.node_id, n.score, n.node.get_content(metadata_mode=MetadataMode.NONE),
                n.node.metadata or {}) for position, n in enumerate(nodes, start=1)]
    return common.format_ranked(entries, max_chars=max_chars)


def create_r2r_tool(retriever: BaseRetriever, *, name: str = "search_with_reasons", description: str | None = None,
                    max_chars: int = 600, **retriever_kwargs: Any) -> FunctionTool:
    """A tool for LlamaIndex agents: search, rerank with reasons; the output text carries each explanation.

    The tool's content lists each node with its score and explanation, then why they are ordered that way; its
    ``raw_output`` is the list of reranked :class:`NodeWithScore`.

    Args:
        retriever: An :class:`R2RRetriever`, or any LlamaIndex retriever, then wrapped in one built with
            ``retriever_kwargs`` (``top_n``, ``reranker``, ``fetch_k``...).
        name: The tool name the agent sees.
        description: The tool description (default: says what the tool returns).
        max_chars: Longest node text shown in the content (``raw_output`` keeps the full nodes).
        **retriever_kwargs: Settings for the wrapping :class:`R2RRetriever` (only when ``retriever`` is not one).

    Example:
        >>> tool = create_r2r_tool(index.as_retriever(similarity_top_k=30), top_n=3)   # doctest: +SKIP
        >>> agent = FunctionAgent(tools=[tool], llm=llm)                                # doctest: +SKIP
    """
    if isinstance(retriever, R2RRetriever):
        if retriever_kwargs:
            raise InvalidInputError(f"create_r2r_tool: {sorted(retriever_kwargs)} configure a new R2RRetriever, "
                                    "but an R2RRetriever was given; set them on it instead")
        r2r = retriever
    else:
        r2r = R2RRetriever(retriever, **retriever_kwargs)
    description = description or (
        "Search the knowledge base and rerank the results. Returns the best passages, best first, each with a "
        "relevance score and a short explanation of why it is relevant, then why they are ordered that way. "
        "Input: a search query.")

    def search(query: str) -> list[NodeWithScore]:
        return r2r.retrieve(query)

    async def asearch(query: str) -> list[NodeWithScore]:
        return await r2r.aretrieve(query)

    def render(nodes: list[NodeWithScore]) -> str:
        return format_nodes(nodes, max_chars=max_chars)

    async def arender(nodes: list[NodeWithScore]) -> str:
        return render(nodes)

    return FunctionTool.from_defaults(fn=search, async_fn=asearch, name=name, description=description,
                                      callback=render, async_callback=arender)


__all__ = ["RANKING_PAYLOAD_KEY", "R2R", "R2RRetriever", "create_r2r_tool", "format_nodes"]
