"""The LangChain compressor, retriever and agent tool, with a fake student; plus the standard retriever suite."""

from __future__ import annotations

import asyncio
import copy
import subprocess
import sys
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from integration_fakes import CORE, PASSAGES, QUERY, make_reranker  # noqa: E402
from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.messages import ToolMessage  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_core.runnables import RunnableLambda  # noqa: E402

from r2r_agent.integrations.langchain import (  # noqa: E402
    RERANK_EVENT,
    R2RCompressor,
    R2RRetriever,
    create_r2r_tool,
    format_documents,
)


def make_docs() -> list[Document]:
    return [Document(page_content=t, id=i, metadata={"source": f"{i}.txt", "first_stage": s}) for i, t, s in PASSAGES]


class FixedRetriever(BaseRetriever):
    """Returns its documents (the first ``k``), recording what it was asked."""

    docs: list[Document]
    calls: list[dict] = []

    def _get_relevant_documents(self, query: str, *, run_manager: Any, k: int = 100) -> list[Document]:
        self.calls.append({"query": query, "k": k, "parent": run_manager.parent_run_id})
        return self.docs[:k]


class Events(BaseCallbackHandler):
    def __init__(self) -> None:
        self.custom: list[tuple[str, Any]] = []
        self.retriever_starts = 0

    def on_custom_event(self, name, data, *, run_id, tags=None, metadata=None, **kwargs) -> None:
        self.custom.append((name, data))

    def on_retriever_start(self, serialized, query, **kwargs) -> None:
        self.retriever_starts += 1


def ids(docs) -> list[str | None]:
    return [d.id for d in docs]


# -- compressor ----------------------------------------------------------------------------------------------------


def test_compressor_matches_core_and_keeps_ids_and_metadata(reranker):
    docs = make_docs()
    before = copy.deepcopy([d.model_dump() for d in docs])
    out = R2RCompressor(top_n=3, reranker=reranker, **CORE).compress_documents(docs, QUERY)
    expected = reranker.rerank(QUERY, [t for _, t, _ in PASSAGES], top_n=3)
    assert ids(out) == [PASSAGES[j.input_rank - 1][0] for j in expected]
    for rank, (doc, j) in enumerate(zip(out, expected, strict=True), start=1):
        assert doc.metadata["r2r_score"] == pytest.approx(j.score)
        assert doc.metadata["r2r_rank"] == rank
        assert doc.metadata["r2r_explanation"] == j.explanation
        assert doc.metadata["source"] == f"{doc.id}.txt"
    assert out[0].metadata["r2r_comparison"] == expected.comparison
    assert [d.model_dump() for d in docs] == before
    assert all(o is not d and o.metadata is not d.metadata for o in out for d in docs)


async def test_acompress_equals_compress(reranker):
    compressor = R2RCompressor(top_n=2, reranker=reranker)
    sync = compressor.compress_documents(make_docs(), QUERY)
    assert await compressor.acompress_documents(make_docs(), QUERY) == sync


def test_compressor_empty_list(reranker):
    assert list(R2RCompressor(reranker=reranker).compress_documents([], QUERY)) == []


def test_compressor_none_and_empty_metadata_duplicate_ids(reranker):
    docs = [Document(page_content=t, id="dup") for _, t, _ in PASSAGES]
    docs.append(Document.model_construct(page_content="fleas live long", id=None, metadata=None))
    out = R2RCompressor(top_n=None, reranker=reranker, **CORE).compress_documents(docs, QUERY)
    expected = reranker.rerank(QUERY, [d.page_content for d in docs])
    assert [d.page_content for d in out] == [j.text for j in expected]
    assert sorted(map(str, ids(out))) == sorted(map(str, ids(docs)))
    assert docs[-1].metadata is None  # the caller's document is untouched


def test_compressor_textless_documents_come_after_the_ranked_ones_within_top_n(reranker):
    docs = [Document(page_content="", id="empty"), *make_docs()]
    assert len(R2RCompressor(top_n=2, reranker=reranker).compress_documents(docs, QUERY)) == 2
    out = R2RCompressor(top_n=None, reranker=reranker).compress_documents(docs, QUERY)
    assert len(out) == len(docs) and out[-1].id == "empty"
    assert out[-1].metadata["r2r_note"].startswith("not reranked")
    assert "r2r_score" not in out[-1].metadata


@pytest.mark.parametrize("top_n", [0, -3])
def test_top_n_must_be_positive(top_n, reranker):
    with pytest.raises(ValueError, match="top_n must be an int >= 1"):
        R2RCompressor(top_n=top_n, reranker=reranker)
    with pytest.raises(ValueError, match="top_n must be an int >= 1"):
        R2RRetriever(base_retriever=FixedRetriever(docs=make_docs()), top_n=top_n, reranker=reranker)
    retriever = R2RRetriever(base_retriever=FixedRetriever(docs=make_docs()), reranker=reranker)
    with pytest.raises(ValueError, match="top_n must be an int >= 1"):
        retriever.invoke(QUERY, top_n=top_n)


def test_compressor_rejects_unknown_fields_and_non_documents(reranker):
    with pytest.raises(ValueError, match="unexpected setting 'top_k' \\(did you mean 'top_n'\\?\\)"):
        R2RCompressor(reranker=reranker, top_k=3)
    with pytest.raises(TypeError, match="document 0 must be a langchain_core Document"):
        R2RCompressor(reranker=reranker).compress_documents(["text"], QUERY)  # type: ignore[list-item]


def test_rerank_twice_drops_stale_keys(reranker):
    compressor = R2RCompressor(top_n=None, reranker=reranker, explain_top=1, compare_top=0, **CORE)
    first = compressor.compress_documents(make_docs(), QUERY)
    second = compressor.compress_documents(first, "stock market")
    assert second[0].id == "d2"
    assert sum("r2r_explanation" in d.metadata for d in second) == 1
    assert all("r2r_comparison" not in d.metadata for d in second)


def test_custom_event_only_inside_a_run(reranker):
    compressor = R2RCompressor(top_n=2, reranker=reranker)
    compressor.compress_documents(make_docs(), QUERY)  # no parent run: no event, no error
    handler = Events()
    chain = RunnableLambda(lambda q: compressor.compress_documents(make_docs(), q))
    out = chain.invoke(QUERY, config={"callbacks": [handler]})
    assert [name for name, _ in handler.custom] == [RERANK_EVENT]
    data = handler.custom[0][1]
    assert data["query"] == QUERY and data["model"] == "fake-student"
    assert [j["id"] for j in data["judgments"]] == ids(out)
    assert data["judgments"][0]["explanation"] == out[0].metadata["r2r_explanation"]


# -- retriever -----------------------------------------------------------------------------------------------------


def test_retriever_fetches_k_reranks_and_passes_callbacks(reranker):
    base = FixedRetriever(docs=make_docs(), calls=[])
    retriever = R2RRetriever(base_retriever=base, fetch_k=3, top_n=2, reranker=reranker, **CORE)
    handler = Events()
    out = retriever.invoke(QUERY, config={"callbacks": [handler]})
    assert base.calls[0]["k"] == 3 and base.calls[0]["parent"] is not None
    expected = reranker.rerank(QUERY, [t for _, t, _ in PASSAGES[:3]], top_n=2)
    assert ids(out) == [PASSAGES[j.input_rank - 1][0] for j in expected]
    assert handler.retriever_starts == 2  # ours and the base retriever, as its child
    assert [name for name, _ in handler.custom] == [RERANK_EVENT]


async def test_retriever_async_equals_sync(reranker):
    retriever = R2RRetriever(base_retriever=FixedRetriever(docs=make_docs()), top_n=3, reranker=reranker)
    handler = Events()
    aout = await retriever.ainvoke(QUERY, config={"callbacks": [handler]})
    assert aout == retriever.invoke(QUERY)
    assert [name for name, _ in handler.custom] == [RERANK_EVENT]


def test_retriever_empty_base(reranker):
    retriever = R2RRetriever(base_retriever=FixedRetriever(docs=[]), reranker=reranker)
    assert retriever.invoke(QUERY) == []


async def test_fifty_concurrent_calls_equal_sequential(reranker):
    retriever = R2RRetriever(base_retriever=FixedRetriever(docs=make_docs()), top_n=3, reranker=reranker)
    queries = [f"{QUERY} {i}" if i % 2 else "stock market monday" for i in range(50)]
    sequential = [retriever.invoke(q) for q in queries]
    assert list(await asyncio.gather(*(retriever.ainvoke(q) for q in queries))) == sequential
    compressor = R2RCompressor(top_n=3, reranker=reranker)
    sequential = [compressor.compress_documents(make_docs(), q) for q in queries]
    concurrent = await asyncio.gather(*(compressor.acompress_documents(make_docs(), q) for q in queries))
    assert list(concurrent) == sequential


async def test_async_does_not_block_the_loop():
    compressor = R2RCompressor(top_n=2, reranker=make_reranker(delay=0.2))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(10):
            await asyncio.sleep(0.01)
            ticks += 1

    await asyncio.gather(compressor.acompress_documents(make_docs(), QUERY), ticker())
    assert ticks == 10


# -- tool ----------------------------------------------------------------------------------------------------------


def test_tool_returns_explanations_as_content_and_documents_as_artifact(reranker):
    tool = create_r2r_tool(FixedRetriever(docs=make_docs()), top_n=2, reranker=reranker)
    assert tool.response_format == "content_and_artifact"
    assert set(tool.args) == {"query"}
    message = tool.invoke({"type": "tool_call", "id": "call-1", "name": tool.name, "args": {"query": QUERY}})
    assert isinstance(message, ToolMessage)
    docs = message.artifact
    assert [d.metadata["r2r_rank"] for d in docs] == [1, 2]
    assert message.content == format_documents(docs)
    for doc in docs:
        assert f"Why: {doc.metadata['r2r_explanation']}" in message.content
    assert f"Why this order: {docs[0].metadata['r2r_comparison']}" in message.content


async def test_tool_async_and_existing_retriever(reranker):
    retriever = R2RRetriever(base_retriever=FixedRetriever(docs=make_docs()), top_n=1, reranker=reranker)
    tool = create_r2r_tool(retriever, name="kb")
    message = await tool.ainvoke({"type": "tool_call", "id": "c", "name": "kb", "args": {"query": QUERY}})
    assert ids(message.artifact) == ids(retriever.invoke(QUERY))
    with pytest.raises(ValueError, match="set them on it instead"):
        create_r2r_tool(retriever, top_n=3)


def test_format_documents_empty_says_nothing_answers():
    assert format_documents([]).startswith("No passage found for this query")


def test_module_depends_on_langchain_core_only():
    code = ("import sys, r2r_agent.integrations.langchain; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'langchain', 'langchain_classic', "
            "'langchain_community', 'llama_index', 'torch'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# -- the standard LangChain retriever suite ------------------------------------------------------------------------

langchain_tests = pytest.importorskip("langchain_tests.integration_tests")


class TestR2RRetrieverStandard(langchain_tests.RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[R2RRetriever]:
        return R2RRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"base_retriever": FixedRetriever(docs=make_docs()), "reranker": make_reranker(), "top_n": 4}

    @property
    def retriever_query_example(self) -> str:
        return QUERY

    @property
    def num_results_arg_name(self) -> str:
        return "top_n"


# -- first-stage scores --------------------------------------------------------------------------------------------


def test_retriever_scores_in_metadata_reach_the_trace():
    from r2r_agent import Reranker
    from r2r_agent.traces import MemoryTraceSink

    sink = MemoryTraceSink()
    reranker = Reranker(student=make_reranker().student, trace=sink)
    metadata = [{"score": 12.5}, {"retrieval_score": 0.75}, {"score": "high", "retrieval_score": 3},
                {"score": True}, {"score": float("nan")}, {}]
    texts = [t for _, t, _ in PASSAGES] + ["Cats sleep a lot.", "Fleas jump far."]
    docs = [Document(page_content=t, id=f"m{i}", metadata=m) for i, (t, m) in enumerate(zip(texts, metadata))]
    R2RCompressor(top_n=2, reranker=reranker).compress_documents(docs, QUERY)
    (record,) = sink.records
    assert {c.id: c.first_stage_score for c in record.candidates} == {
        "m0": 12.5, "m1": 0.75, "m2": 3.0, "m3": None, "m4": None, "m5": None}
    assert [d.metadata for d in docs] == metadata  # the caller's documents are untouched


def scored_docs() -> list[Document]:
    """The passages with the retriever's score where a retriever would put it (metadata["score"])."""
    return [Document(page_content=t, id=i, metadata={"source": f"{i}.txt", "score": s}) for i, t, s in PASSAGES]


def test_compressor_first_stage_weight_mixes_metadata_scores(reranker):
    from r2r_agent import Passage

    docs = scored_docs()
    before = copy.deepcopy([d.model_dump() for d in docs])
    out = R2RCompressor(top_n=None, reranker=reranker, first_stage_weight=0.5, **CORE).compress_documents(docs, QUERY)
    expected = reranker.rerank(QUERY, [Passage(t, id=i, first_stage_score=s) for i, t, s in PASSAGES],
                               first_stage_weight=0.5)
    assert ids(out) == [j.id for j in expected]
    assert [d.metadata["r2r_score"] for d in out] == [j.score for j in expected]
    assert [d.metadata["score"] for d in out] == [j.first_stage_score for j in expected]  # the retriever's, kept
    assert [d.model_dump() for d in docs] == before
    first = R2RCompressor(top_n=None, reranker=reranker, first_stage_weight=1.0).compress_documents(docs, QUERY)
    assert ids(first) == ["d1", "d2", "d3", "d4"]


async def test_retriever_first_stage_weight_sync_and_async(reranker):
    retriever = R2RRetriever(base_retriever=FixedRetriever(docs=scored_docs(), calls=[]), top_n=2,
                             reranker=reranker, first_stage_weight=1.0)
    assert ids(retriever.invoke(QUERY)) == ids(await retriever.ainvoke(QUERY)) == ["d1", "d2"]
    out = await R2RCompressor(top_n=2, reranker=reranker, first_stage_weight=1.0).acompress_documents(
        scored_docs(), QUERY)
    assert ids(out) == ["d1", "d2"]


def test_first_stage_weight_without_scores_keeps_the_student_order(reranker, caplog):
    with caplog.at_level("WARNING", logger="r2r_agent.reranker"):
        out = R2RCompressor(top_n=None, reranker=reranker, first_stage_weight=1.0, **CORE).compress_documents(
            make_docs(), QUERY)  # scores under another key: LangChain documents usually carry none
    expected = reranker.rerank(QUERY, [t for _, t, _ in PASSAGES])
    assert ids(out) == [PASSAGES[j.input_rank - 1][0] for j in expected]
    assert "4 of 4 passages have no finite first-stage score" in caplog.text


@pytest.mark.parametrize("weight", [-0.5, 2, True, "half"])
def test_first_stage_weight_must_be_in_0_1(weight, reranker):
    with pytest.raises(ValueError, match=r"first_stage_weight must be a number in \[0, 1\]"):
        R2RCompressor(reranker=reranker, first_stage_weight=weight)
    with pytest.raises(ValueError, match=r"first_stage_weight must be a number in \[0, 1\]"):
        R2RRetriever(base_retriever=FixedRetriever(docs=make_docs()), reranker=reranker, first_stage_weight=weight)


def test_verdicts_relevance_evidence_and_answerable_reach_the_documents_and_the_tool():
    from r2r_agent import Reranker, Student
    from r2r_agent.calibration import Calibrator

    class Words:
        name = "words"

        def score(self, query, passages):
            wanted = set(query.lower().split())
            return [float(len(wanted & set(p.lower().replace(".", "").split()))) for p in passages]

    calibrator = Calibrator(scorer="words", features=("evidence_score",), weights=(1.0,), bias=-2.0, relevant_at=0.5,
                            partial_at=0.25)
    reranker = Reranker(Student(scorer=Words(), calibrator=calibrator))
    docs = [Document(page_content="Adult fleas live two months.", id="a"), Document(page_content="Cats nap.", id="b")]
    query = "how long fleas live"
    out = R2RCompressor(reranker=reranker, top_n=None, explain="evidence").compress_documents(docs, query)
    first = out[0].metadata
    assert (first["r2r_verdict"], first["r2r_answerable"]) == ("relevant", True)
    assert first["r2r_evidence"] == "Adult fleas live two months." and 0 < first["r2r_relevance"] < 1
    assert first["r2r_explanation"].startswith("Relevant: the passage says")
    assert format_documents(out).splitlines()[0].startswith("[1] id=a relevant (relevance 0.")
    kept = R2RCompressor(reranker=reranker, top_n=None, min_relevance=0.5).compress_documents(docs, query)
    assert [d.id for d in kept] == ["a"]
    nothing = R2RCompressor(reranker=reranker, top_n=None).compress_documents(docs, "what do dogs eat")
    assert nothing[0].metadata["r2r_answerable"] is False
    assert format_documents(nothing).startswith("None of these passages answers the query (best relevance")


def test_the_adapter_defaults_apply_whatever_reranker_is_given(reranker):
    from r2r_agent import Reranker
    from r2r_agent.integrations._common import ADAPTER_DEFAULTS

    assert R2RCompressor(student=reranker.student).config == ADAPTER_DEFAULTS.replace(top_n=3)
    assert R2RCompressor(reranker=reranker).config == ADAPTER_DEFAULTS.replace(top_n=3)
    tuned = Reranker(reranker.student, explain_top=1)
    with pytest.warns(UserWarning, match=r"the reranker's own settings \(explain_top=1\) are not used"):
        assert R2RRetriever(base_retriever=FixedRetriever(docs=[]), reranker=tuned).config.explain_top == 5
