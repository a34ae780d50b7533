"""The LlamaIndex R2R postprocessor, with a fake student."""

from __future__ import annotations

import asyncio
import copy

import pytest

pytest.importorskip("llama_index.core")

from integration_fakes import CORE, PASSAGES, QUERY, make_reranker  # noqa: E402
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload  # noqa: E402
from llama_index.core.callbacks.base_handler import BaseCallbackHandler  # noqa: E402
from llama_index.core.instrumentation import get_dispatcher  # noqa: E402
from llama_index.core.instrumentation.event_handlers import BaseEventHandler  # noqa: E402
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent  # noqa: E402
from llama_index.core.retrievers import BaseRetriever  # noqa: E402
from llama_index.core.schema import ImageNode, MetadataMode, NodeWithScore, QueryBundle, TextNode  # noqa: E402

from r2r_agent.integrations.llama_index import (  # noqa: E402
    R2R,
    RANKING_PAYLOAD_KEY,
    R2RRetriever,
    create_r2r_tool,
    format_nodes,
)


def make_nodes() -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(id_=i, text=t, metadata={"source": f"{i}.txt"}), score=s)
            for i, t, s in PASSAGES]


def snapshot(nodes: list[NodeWithScore]) -> list[dict]:
    return [copy.deepcopy(n.model_dump()) for n in nodes]


def test_ranks_like_the_core_and_writes_metadata_on_copies(reranker):
    nodes = make_nodes()
    before = snapshot(nodes)
    out = R2R(top_n=3, reranker=reranker, **CORE).postprocess_nodes(nodes, query_str=QUERY)

    expected = reranker.rerank(QUERY, [t for _, t, _ in PASSAGES], top_n=3)
    assert [n.node.node_id for n in out] == [PASSAGES[j.input_rank - 1][0] for j in expected]
    assert [n.score for n in out] == pytest.approx([j.score for j in expected])
    for rank, (n, j) in enumerate(zip(out, expected, strict=True), start=1):
        assert n.node.metadata["r2r_rank"] == rank
        assert n.node.metadata["r2r_score"] == pytest.approx(j.score)
        assert n.node.metadata["r2r_explanation"] == j.explanation
        assert n.node.metadata["source"] == f"{n.node.node_id}.txt"
        original = next(s for i, _, s in PASSAGES if i == n.node.node_id)
        assert n.node.metadata["r2r_first_stage_score"] == original
    assert out[0].node.metadata["r2r_comparison"] == expected.comparison
    assert all("r2r_comparison" not in n.node.metadata for n in out[1:])
    # The caller's nodes are untouched.
    assert snapshot(nodes) == before
    assert all(o.node is not n.node for o in out for n in nodes)


def test_explanation_keys_hidden_from_embedding_and_shown_to_llm(reranker):
    out = R2R(top_n=2, reranker=reranker).postprocess_nodes(make_nodes(), query_str=QUERY)
    top = out[0].node
    embed_text = top.get_content(metadata_mode=MetadataMode.EMBED)
    llm_text = top.get_content(metadata_mode=MetadataMode.LLM)
    assert "r2r_" not in embed_text and "r2r_first_stage_score" not in embed_text
    assert "source: " in embed_text
    assert f"r2r_explanation: {top.metadata['r2r_explanation']}" in llm_text
    assert "r2r_comparison" in llm_text
    assert "r2r_score" not in llm_text


def test_llm_visibility_is_configurable(reranker):
    out = R2R(top_n=2, reranker=reranker, explanations_visible_to_llm=False, scores_visible_to_llm=True
              ).postprocess_nodes(make_nodes(), query_str=QUERY)
    llm_text = out[0].node.get_content(metadata_mode=MetadataMode.LLM)
    assert "r2r_explanation" not in llm_text
    assert "r2r_score" in llm_text and "r2r_rank" in llm_text


def test_keep_first_stage_score_off(reranker):
    out = R2R(top_n=2, reranker=reranker, keep_first_stage_score=False).postprocess_nodes(make_nodes(), query_str=QUERY)
    assert all("r2r_first_stage_score" not in n.node.metadata for n in out)


def test_reranking_twice_does_not_keep_stale_keys(reranker):
    pp = R2R(top_n=4, reranker=reranker, explain_top=1, compare_top=0, **CORE)
    first = pp.postprocess_nodes(make_nodes(), query_str=QUERY)
    second = pp.postprocess_nodes(list(reversed(first)), query_str="stock market")
    assert second[0].node.node_id == "d2"
    assert sum("r2r_explanation" in n.node.metadata for n in second) == 1
    assert all("r2r_comparison" not in n.node.metadata for n in second)
    assert second[0].node.excluded_embed_metadata_keys.count("r2r_score") == 1


def test_missing_query_bundle_is_a_clear_error(reranker):
    with pytest.raises(ValueError, match="query_str"):
        R2R(reranker=reranker).postprocess_nodes(make_nodes())


@pytest.mark.parametrize("top_n", [0, -1])
def test_top_n_must_be_positive(top_n, reranker):
    with pytest.raises(ValueError, match="top_n must be an int >= 1"):
        R2R(top_n=top_n, reranker=reranker)


def test_empty_list(reranker):
    assert R2R(reranker=reranker).postprocess_nodes([], query_str=QUERY) == []


def test_textless_nodes_come_after_the_ranked_ones_unscored_within_top_n(reranker):
    nodes = make_nodes()
    blank = NodeWithScore(node=TextNode(id_="blank", text="   "), score=5.0)
    image = NodeWithScore(node=ImageNode(id_="img", image="aGVsbG8="), score=4.0)
    out = R2R(top_n=None, reranker=reranker, **CORE).postprocess_nodes([blank, *nodes, image], query_str=QUERY)
    assert len(out) == 6
    assert [n.node.node_id for n in out[4:]] == ["blank", "img"]
    assert all(n.node.metadata["r2r_note"].startswith("not reranked") for n in out[4:])
    assert [n.score for n in out[4:]] == [None, None]  # never a retrieval score among the student's scores
    assert all("r2r_rank" not in n.node.metadata for n in out[4:])
    assert isinstance(out[5].node, ImageNode)
    scores = [n.score for n in out[:4]]
    assert scores == sorted(scores, reverse=True)
    assert [n.node.node_id for n in R2R(top_n=5, reranker=reranker).postprocess_nodes(
        [blank, *nodes, image], query_str=QUERY)][4:] == ["blank"]
    two = R2R(top_n=2, reranker=reranker).postprocess_nodes([blank, *nodes, image], query_str=QUERY)
    assert len(two) == 2 and all("r2r_rank" in n.node.metadata for n in two)


def test_only_textless_nodes(reranker):
    image = NodeWithScore(node=ImageNode(id_="img", image="aGVsbG8="), score=None)
    out = R2R(reranker=reranker).postprocess_nodes([image], query_str=QUERY)
    assert [n.node.node_id for n in out] == ["img"]


def test_none_and_empty_metadata_and_duplicate_ids(reranker):
    nodes = [NodeWithScore(node=TextNode(id_="same", text=t, metadata={}), score=None) for _, t, _ in PASSAGES]
    out = R2R(top_n=None, reranker=reranker, **CORE).postprocess_nodes(nodes, query_str=QUERY)
    expected = reranker.rerank(QUERY, [t for _, t, _ in PASSAGES])
    assert [n.node.text for n in out] == [j.text for j in expected]
    assert all(n.node.node_id == "same" for n in out)
    assert all("r2r_first_stage_score" not in n.node.metadata for n in out)  # the nodes had no score


def test_rejects_non_node_items(reranker):
    with pytest.raises(TypeError, match="node 0 must be a NodeWithScore"):
        R2R(reranker=reranker).postprocess_nodes([TextNode(text="x")], query_str=QUERY)  # type: ignore[list-item]


def test_reranker_and_student_are_exclusive(reranker):
    with pytest.raises(ValueError, match="either reranker= or student="):
        R2R(reranker=reranker, student=reranker.student)


def test_student_builds_a_reranker(reranker):
    pp = R2R(top_n=1, student=reranker.student, ordering="scorer")
    assert pp.postprocess_nodes(make_nodes(), query_str=QUERY)[0].node.node_id == "d3"


def test_the_adapter_defaults_apply_whatever_reranker_is_given(reranker):
    from r2r_agent.integrations._common import ADAPTER_DEFAULTS

    assert R2R(student=reranker.student).config == ADAPTER_DEFAULTS.replace(top_n=5)
    assert R2R(student=reranker.student, ordering="scorer").config.ordering == "scorer"
    assert R2R(reranker=reranker).config == ADAPTER_DEFAULTS.replace(top_n=5)  # a reranker brings no settings


def test_class_name_and_serialisation_skip_the_model(reranker):
    pp = R2R(top_n=3, reranker=reranker)
    data = pp.to_dict()
    assert data["class_name"] == "R2R" and data["config"]["top_n"] == 3
    assert R2R.from_dict(data, reranker=reranker).config == pp.config
    assert "reranker" not in data and "_reranker" not in data


def test_default_reranker_is_lazy():
    pp = R2R(top_n=2)
    assert pp._reranker is None  # nothing built until first use
    assert pp.reranker is pp.reranker


class _Collect(BaseEventHandler):
    events: list = []

    @classmethod
    def class_name(cls) -> str:
        return "Collect"

    def handle(self, event, **kwargs) -> None:
        self.events.append(event)


class _Callbacks(BaseCallbackHandler):
    def __init__(self) -> None:
        super().__init__([], [])
        self.starts: list = []
        self.ends: list = []

    def on_event_start(self, event_type, payload=None, event_id="", parent_id="", **kwargs):
        if event_type == CBEventType.RERANKING:
            self.starts.append(payload)
        return event_id

    def on_event_end(self, event_type, payload=None, event_id="", **kwargs):
        if event_type == CBEventType.RERANKING:
            self.ends.append(payload)

    def start_trace(self, trace_id=None):
        pass

    def end_trace(self, trace_id=None, trace_map=None):
        pass


@pytest.fixture
def collected():
    handler = _Collect(events=[])
    root = get_dispatcher()
    root.add_event_handler(handler)
    yield handler.events
    root.event_handlers.remove(handler)


async def test_instrumentation_and_callbacks(reranker, collected):
    callbacks = _Callbacks()
    pp = R2R(top_n=2, reranker=reranker, callback_manager=CallbackManager([callbacks]))
    out = pp.postprocess_nodes(make_nodes(), query_str=QUERY)
    aout = await pp.apostprocess_nodes(make_nodes(), query_str=QUERY)

    starts = [e for e in collected if isinstance(e, ReRankStartEvent)]
    ends = [e for e in collected if isinstance(e, ReRankEndEvent)]
    assert len(starts) == 2 and len(ends) == 2
    assert starts[0].model_name == "fake-student" and starts[0].top_n == 2 and len(starts[0].nodes) == 4
    assert [n.node.metadata["r2r_explanation"] for n in ends[0].nodes] == [
        n.node.metadata["r2r_explanation"] for n in out]
    assert [n.node.node_id for n in ends[1].nodes] == [n.node.node_id for n in aout]

    assert len(callbacks.starts) == 2 and len(callbacks.ends) == 2
    assert callbacks.starts[0][EventPayload.QUERY_STR] == QUERY
    assert callbacks.starts[0][EventPayload.MODEL_NAME] == "fake-student"
    assert callbacks.ends[0][EventPayload.NODES][0].node.metadata["r2r_comparison"]
    assert callbacks.ends[0][RANKING_PAYLOAD_KEY]["judgments"][0]["explanation"] == out[0].node.metadata[
        "r2r_explanation"]


async def test_async_matches_sync_and_does_not_block_the_loop():
    slow = make_reranker(delay=0.2)
    pp = R2R(top_n=3, reranker=slow)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(10):
            await asyncio.sleep(0.01)
            ticks += 1

    result, _ = await asyncio.gather(pp.apostprocess_nodes(make_nodes(), query_str=QUERY), ticker())
    assert ticks == 10
    sync = pp.postprocess_nodes(make_nodes(), query_str=QUERY)
    assert [n.node.node_id for n in result] == [n.node.node_id for n in sync]
    assert [n.node.metadata for n in result] == [n.node.metadata for n in sync]


async def test_fifty_concurrent_calls_equal_sequential(reranker):
    pp = R2R(top_n=3, reranker=reranker)
    queries = [f"{QUERY} {i}" if i % 2 else "stock market monday" for i in range(50)]
    sequential = [pp.postprocess_nodes(make_nodes(), query_str=q) for q in queries]
    concurrent = await asyncio.gather(*(pp.apostprocess_nodes(make_nodes(), query_str=q) for q in queries))
    assert [[(n.node.node_id, n.score, n.node.metadata) for n in r] for r in concurrent] == [
        [(n.node.node_id, n.score, n.node.metadata) for n in r] for r in sequential]


async def test_async_missing_query_bundle(reranker):
    with pytest.raises(ValueError, match="missing query bundle"):
        await R2R(reranker=reranker).apostprocess_nodes(make_nodes())


def test_query_bundle_object(reranker):
    out = R2R(top_n=1, reranker=reranker, **CORE).postprocess_nodes(make_nodes(), query_bundle=QueryBundle(QUERY))
    assert out[0].node.node_id == "d3"


# -- retriever and tool --------------------------------------------------------------------------------------------


class FixedRetriever(BaseRetriever):
    def __init__(self, nodes: list[NodeWithScore]) -> None:
        self.nodes = nodes
        self.queries: list[str] = []
        super().__init__()

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        self.queries.append(query_bundle.query_str)
        return self.nodes


def test_retriever_reranks_the_base_results(reranker):
    base = FixedRetriever(make_nodes())
    retriever = R2RRetriever(base, top_n=2, fetch_k=3, reranker=reranker, **CORE)
    out = retriever.retrieve(QUERY)
    expected = reranker.rerank(QUERY, [t for _, t, _ in PASSAGES[:3]], top_n=2)
    assert [n.node.node_id for n in out] == [PASSAGES[j.input_rank - 1][0] for j in expected]
    assert base.queries == [QUERY]
    assert out[0].node.metadata["r2r_explanation"] == expected[0].explanation


async def test_retriever_async_equals_sync(reranker):
    retriever = R2RRetriever(FixedRetriever(make_nodes()), top_n=3, reranker=reranker)
    aout = await retriever.aretrieve(QUERY)
    sync = retriever.retrieve(QUERY)
    assert [(n.node.node_id, n.score, n.node.metadata) for n in aout] == [
        (n.node.node_id, n.score, n.node.metadata) for n in sync]


def test_retriever_argument_errors(reranker):
    with pytest.raises(TypeError, match="BaseRetriever"):
        R2RRetriever(make_nodes())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="set them on it instead"):
        R2RRetriever(FixedRetriever([]), postprocessor=R2R(reranker=reranker), top_n=2)
    with pytest.raises(ValueError, match="top_n must be an int >= 1"):
        R2RRetriever(FixedRetriever([]), top_n=0, reranker=reranker)
    assert R2RRetriever(FixedRetriever([]), reranker=reranker).retrieve(QUERY) == []


def test_retriever_in_a_query_engine_with_a_mock_llm(reranker):
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine

    engine = RetrieverQueryEngine.from_args(R2RRetriever(FixedRetriever(make_nodes()), top_n=2, reranker=reranker),
                                            llm=MockLLM())
    response = engine.query(QUERY)
    assert [n.node.node_id for n in response.source_nodes] == [
        n.node.node_id for n in R2R(top_n=2, reranker=reranker).postprocess_nodes(make_nodes(), query_str=QUERY)]
    assert "r2r_explanation" in response.source_nodes[0].node.metadata


def test_postprocessor_in_a_query_engine(reranker):
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine

    engine = RetrieverQueryEngine.from_args(FixedRetriever(make_nodes()), llm=MockLLM(),
                                            node_postprocessors=[R2R(top_n=3, reranker=reranker)])
    response = engine.query(QUERY)
    assert len(response.source_nodes) == 3
    assert response.source_nodes[0].node.metadata["r2r_rank"] == 1


async def test_tool_carries_explanations(reranker):
    tool = create_r2r_tool(FixedRetriever(make_nodes()), top_n=2, reranker=reranker)
    output = tool.call(query=QUERY)
    nodes = output.raw_output
    assert [n.node.metadata["r2r_rank"] for n in nodes] == [1, 2]
    assert output.content == format_nodes(nodes)
    for n in nodes:
        assert f"Why: {n.node.metadata['r2r_explanation']}" in output.content
    assert "Why this order:" in output.content
    aoutput = await tool.acall(query=QUERY)
    assert aoutput.content == output.content
    assert tool.metadata.name == "search_with_reasons"
    with pytest.raises(ValueError, match="set them on it instead"):
        create_r2r_tool(R2RRetriever(FixedRetriever([]), reranker=reranker), top_n=3)


# -- first-stage score fusion --------------------------------------------------------------------------------------


def test_first_stage_weight_mixes_the_node_scores_in(reranker):
    from r2r_agent import Passage

    nodes = make_nodes()
    before = snapshot(nodes)
    out = R2R(top_n=None, reranker=reranker, first_stage_weight=0.5, **CORE).postprocess_nodes(nodes, query_str=QUERY)
    expected = reranker.rerank(QUERY, [Passage(t, id=i, first_stage_score=s) for i, t, s in PASSAGES],
                               first_stage_weight=0.5)
    assert [n.node.node_id for n in out] == [j.id for j in expected]
    assert [n.score for n in out] == [n.node.metadata["r2r_score"] for n in out] == [j.score for j in expected]
    assert [n.node.metadata["r2r_first_stage_score"] for n in out] == [j.first_stage_score for j in expected]
    assert {j.stage for j in expected} == {"score+first_stage"}
    assert snapshot(nodes) == before
    # 1: the retriever's order; None: the reranker's own setting (0 here: the student's order)
    first = R2R(top_n=None, reranker=reranker, first_stage_weight=1.0, **CORE).postprocess_nodes(nodes, query_str=QUERY)
    assert [n.node.node_id for n in first] == ["d1", "d2", "d3", "d4"]
    plain = R2R(top_n=None, reranker=reranker, **CORE).postprocess_nodes(nodes, query_str=QUERY)
    assert [n.node.node_id for n in plain] == [j.id for j in reranker.rerank(QUERY, [Passage(t, id=i) for i, t, _ in
                                                                                       PASSAGES])]


async def test_first_stage_weight_async_and_through_the_retriever(reranker):
    pp = R2R(top_n=None, reranker=reranker, first_stage_weight=1.0)
    aout = await pp.apostprocess_nodes(make_nodes(), query_str=QUERY)
    assert [n.node.node_id for n in aout] == ["d1", "d2", "d3", "d4"]
    retriever = R2RRetriever(FixedRetriever(make_nodes()), top_n=2, reranker=reranker, first_stage_weight=1.0)
    assert [n.node.node_id for n in retriever.retrieve(QUERY)] == ["d1", "d2"]
    assert retriever.postprocessor.config.first_stage_weight == 1.0


def test_first_stage_weight_without_node_scores_keeps_the_student_order(reranker, caplog):
    nodes = [NodeWithScore(node=n.node, score=None if n.node.node_id == "d2" else n.score) for n in make_nodes()]
    with caplog.at_level("WARNING", logger="r2r_agent.reranker"):
        out = R2R(top_n=None, reranker=reranker, first_stage_weight=1.0, **CORE).postprocess_nodes(nodes,
                                                                                          query_str=QUERY)
    expected = reranker.rerank(QUERY, [t for _, t, _ in PASSAGES])
    assert [n.node.node_id for n in out] == [PASSAGES[j.input_rank - 1][0] for j in expected]
    assert "1 of 4 passages have no finite first-stage score" in caplog.text


@pytest.mark.parametrize("weight", [-0.5, 2, True, "half"])
def test_first_stage_weight_must_be_in_0_1(weight, reranker):
    with pytest.raises(ValueError, match=r"first_stage_weight must be a number in \[0, 1\]"):
        R2R(reranker=reranker, first_stage_weight=weight)


def test_unknown_settings_are_refused_with_the_closest_name(reranker):
    with pytest.raises(ValueError, match="unexpected setting 'topn' \\(did you mean 'top_n'\\?\\)"):
        R2R(topn=2, reranker=reranker)
    with pytest.raises(ValueError, match="unexpected setting 'topn'"):
        R2RRetriever(FixedRetriever([]), topn=2, reranker=reranker)


def test_settings_come_from_one_config(reranker):
    from r2r_agent import RerankConfig

    pp = R2R(reranker=reranker, config=RerankConfig(top_n=2, explain_top=1), compare_top=0)
    assert pp.config == RerankConfig(top_n=2, explain_top=1, compare_top=0)
    shared = type(reranker)(reranker.student, explain_top=1)
    with pytest.warns(UserWarning, match="not used"):  # the adapter's settings, never the reranker's
        assert R2R(reranker=shared).config.explain_top == 5
    assert R2R(reranker=shared, config=shared.config).config == RerankConfig(explain_top=1)


def test_default_postprocessors_share_one_student_per_process(monkeypatch, tiny_student):
    import r2r_agent.student as student_module
    from r2r_agent import Student

    built = []
    monkeypatch.setattr(student_module, "_shared_default", None)
    monkeypatch.setattr(Student, "default", classmethod(lambda cls, **kwargs: built.append(1) or tiny_student))
    one, two = R2R(top_n=2), R2RRetriever(FixedRetriever([]), top_n=3)
    assert one.reranker.student is two.postprocessor.reranker.student and built == [1]


def test_a_tool_on_an_index_instead_of_a_retriever_says_what_to_pass():
    with pytest.raises(TypeError, match="BaseRetriever"):
        create_r2r_tool(make_nodes())  # type: ignore[arg-type]
