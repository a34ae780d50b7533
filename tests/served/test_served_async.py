"""Async and concurrency: ``arerank`` awaits a served student on the caller's event loop; ``rerank_many``,
``arerank_many``, LangChain's ``batch``/``abatch`` and LlamaIndex's async postprocessing keep several queries in
flight at once; in-process students keep working as before."""

from __future__ import annotations

import asyncio

import pytest

from r2r_agent import Reranker

from .served_helpers import PASSAGES, QUERY, bounded, served

QUICK = {"judge": False, "explain_top": 0, "compare_top": 0}
QUERIES = [f"{QUERY} {i}" for i in range(8)]


def docs_alike(got, expected) -> bool:
    """Same documents and ranks; scores equal up to the server's batching (float32 sums in another order)."""
    return all([(d.id, d.metadata["r2r_rank"]) for d in g] == [(d.id, d.metadata["r2r_rank"]) for d in e]
               and [d.metadata["r2r_score"] for d in g] == pytest.approx([d.metadata["r2r_score"] for d in e],
                                                                          abs=1e-5)
               for g, e in zip(got, expected, strict=True))


def same(a, b) -> bool:
    """Same order; scores equal up to the server's batching."""
    return [j.input_rank for j in a] == [j.input_rank for j in b] and \
        [j.score for j in a] == pytest.approx([j.score for j in b], abs=1e-5)


async def test_arerank_awaits_the_async_path_on_the_callers_loop(server, lm):
    student = served(server, lm[1])
    reranker = Reranker(student, trace=False, explain_top=2)
    expected = await asyncio.to_thread(reranker.rerank, QUERY, PASSAGES)

    def no_sync(*args, **kwargs):
        raise AssertionError("the sync path ran under arerank")

    student.scorer.client.post = no_sync  # type: ignore[method-assign]
    got = await asyncio.wait_for(reranker.arerank(QUERY, PASSAGES), 60)
    assert same(got, expected) and [j.explanation for j in got] == [j.explanation for j in expected]
    assert id(asyncio.get_running_loop()) in student.scorer.client._async  # this loop's AsyncClient served it
    await student.scorer.client.aclose()


def test_the_sync_path_needs_no_event_loop(server, lm):
    student = served(server, lm[1])

    async def no_async(*args, **kwargs):
        raise AssertionError("the async path ran without an event loop")

    student.scorer.client.apost = no_async  # type: ignore[method-assign]
    ranking = bounded(lambda: Reranker(student, trace=False, explain_top=1).rerank(QUERY, PASSAGES))
    assert len(ranking) == len(PASSAGES) and ranking[0].explanation


def test_rerank_many_runs_queries_concurrently_and_keeps_their_order(server, lm):
    student = served(server, lm[1])
    reranker = Reranker(student, trace=False, **QUICK)
    expected = [reranker.rerank(q, PASSAGES[:1]) for q in QUERIES]
    server.gate, server.peak_in_flight = 4, 0
    got = bounded(lambda: reranker.rerank_many(QUERIES, [PASSAGES[:1]] * len(QUERIES), concurrency=4))
    assert server.peak_in_flight >= 4
    assert [r.query for r in got] == QUERIES and all(same(a, b) for a, b in zip(got, expected))


def test_rerank_many_on_one_query_at_a_time_never_overlaps(server, lm):
    reranker = Reranker(served(server, lm[1], concurrency=1), trace=False, **QUICK)
    got = bounded(lambda: reranker.rerank_many(QUERIES[:3], [PASSAGES[:1]] * 3))
    assert server.peak_in_flight == 1 and len(got) == 3


async def test_arerank_many_runs_queries_concurrently(server, lm):
    reranker = Reranker(served(server, lm[1]), trace=False, **QUICK)
    server.gate = 4
    got = await asyncio.wait_for(reranker.arerank_many(QUERIES, [PASSAGES[:1]] * len(QUERIES), concurrency=4), 60)
    assert server.peak_in_flight >= 4 and [r.query for r in got] == QUERIES


async def test_in_process_students_rerank_many_as_a_loop(tiny_student):
    reranker = Reranker(tiny_student, trace=False, explain_top=1)
    expected = [reranker.rerank(q, PASSAGES[:3]) for q in QUERIES[:2]]
    assert all(same(a, b) for a, b in zip(reranker.rerank_many(QUERIES[:2], [PASSAGES[:3]] * 2), expected))
    got = await asyncio.wait_for(reranker.arerank_many(QUERIES[:2], [PASSAGES[:3]] * 2, concurrency=2), 120)
    assert all(same(a, b) for a, b in zip(got, expected))
    assert tiny_student.concurrency == 1


@pytest.mark.parametrize("queries, lists, message", [
    ("one query", [["p"]], "one str"),
    (["q1", "q2"], [["p"]], "2 queries but 1 passage lists"),
])
def test_rerank_many_checks_its_arguments(tiny_student, queries, lists, message):
    with pytest.raises(ValueError, match=message):
        Reranker(tiny_student, trace=False).rerank_many(queries, lists)


def test_rerank_many_checks_settings_and_concurrency_before_running(tiny_student):
    reranker = Reranker(tiny_student, trace=False)
    with pytest.raises(ValueError, match="did you mean 'top_n'"):
        reranker.rerank_many(["q"], [["p"]], topn=2)
    with pytest.raises(ValueError, match="concurrency must be an int >= 1"):
        reranker.rerank_many(["q"], [["p"]], concurrency=0)


def test_langchain_batch_and_abatch_run_queries_concurrently(server, lm):
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    from r2r_agent.integrations.langchain import R2RRetriever

    class One(BaseRetriever):
        def _get_relevant_documents(self, query, *, run_manager):
            return [Document(page_content=PASSAGES[0], id="d1")]

    retriever = R2RRetriever(base_retriever=One(), student=served(server, lm[1]), **QUICK)
    expected = [retriever.invoke(q) for q in QUERIES[:4]]
    server.gate, server.peak_in_flight = 4, 0
    got = bounded(lambda: retriever.batch(QUERIES[:4], config={"max_concurrency": 4}))
    assert server.peak_in_flight >= 4 and docs_alike(got, expected)
    server.peak_in_flight = 0
    got = bounded(lambda: asyncio.run(retriever.abatch(QUERIES[:4])))
    assert server.peak_in_flight >= 4 and docs_alike(got, expected)


async def test_llama_index_async_postprocessing_runs_queries_concurrently(server, lm):
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import NodeWithScore, TextNode

    from r2r_agent.integrations.llama_index import R2R

    postprocessor = R2R(student=served(server, lm[1]), **QUICK)
    nodes = [NodeWithScore(node=TextNode(text=PASSAGES[0], id_="d1"), score=1.0)]
    server.gate = 4
    results = await asyncio.wait_for(asyncio.gather(*(postprocessor.apostprocess_nodes(nodes, query_str=q)
                                                      for q in QUERIES[:4])), 60)
    assert server.peak_in_flight >= 4 and all(r[0].node.node_id == "d1" for r in results)
