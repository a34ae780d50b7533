"""Real clients nobody here wrote, against a server the test starts on 127.0.0.1: the ``cohere`` SDK (v2 and v1
clients) and, slow, LangChain's ``CohereRerank`` in a retrieval chain."""

from __future__ import annotations

import pytest

from r2r_agent import Reranker

from .server_helpers import DOCUMENTS, QUERY

cohere = pytest.importorskip("cohere")


#: cohere.RerankRelevantSpans (Cohere's rerank v5 ``relevant_spans``) is in SDK 7.x, not in 5.21: on an SDK without
#: it the spans test skips and the rest runs.
HAS_SPANS = hasattr(cohere, "RerankRelevantSpans")


def _check_v2_results(response, expected):
    assert isinstance(response, cohere.V2RerankResponse)
    assert [r.index for r in response.results] == [j.input_rank - 1 for j in expected]
    for result, judgment in zip(response.results, expected):
        assert isinstance(result, cohere.V2RerankResponseResultsItem)
        assert result.relevance_score == pytest.approx(judgment.relevance)
        # r2r's own fields: the SDK keeps unknown fields as attributes
        assert result.verdict == judgment.verdict and result.evidence == judgment.evidence
        assert result.explanation == judgment.explanation and result.rank == judgment.rank
        assert result.input_rank == judgment.input_rank and result.evidence_span == list(judgment.evidence_span)
        assert result.document == {"text": DOCUMENTS[result.index]}
    assert response.results[2].explanation is None  # explain_top=2 reached the server
    assert response.comparison == expected.comparison and response.answerable == expected.answerable
    assert [s["stage"] for s in response.stages] == [s.stage for s in expected.stages]
    assert response.meta.api_version.version == "2" and response.meta.billed_units.search_units == 1


def test_cohere_v2_client(make_server, calibrated_student):
    server = make_server(api_keys=("sdk-key",))
    client = cohere.ClientV2(api_key="sdk-key", base_url=server.url, timeout=60)
    response = client.rerank(model="rerank-v3.5", query=QUERY, documents=DOCUMENTS, top_n=3,
                             request_options={"additional_body_parameters": {"return_documents": True,
                                                                             "explain_top": 2}})
    expected = Reranker(calibrated_student, explain="evidence", trace=False).rerank(QUERY, DOCUMENTS, top_n=3,
                                                                                     explain_top=2)
    _check_v2_results(response, expected)
    with pytest.raises(cohere.core.ApiError) as refused:
        cohere.ClientV2(api_key="wrong", base_url=server.url).rerank(model="m", query=QUERY, documents=DOCUMENTS)
    assert refused.value.status_code == 401


@pytest.mark.skipif(not HAS_SPANS, reason=f"cohere SDK {getattr(cohere, '__version__', '?')} has no "
                    "RerankRelevantSpans (ClientV2.rerank has no relevant_spans argument; 7.3.1 has both)")
def test_cohere_v2_client_relevant_spans(server, calibrated_student):
    client = cohere.ClientV2(api_key="any", base_url=server.url, timeout=60)
    spans = cohere.RerankRelevantSpans(mode="enabled", threshold=0.0, max_spans=1)
    response = client.rerank(model="rerank-v3.5", query=QUERY, documents=DOCUMENTS, top_n=3, relevant_spans=spans,
                             request_options={"additional_body_parameters": {"return_documents": True,
                                                                             "explain_top": 2}})
    expected = Reranker(calibrated_student, explain="evidence", trace=False).rerank(QUERY, DOCUMENTS, top_n=3,
                                                                                     explain_top=2)
    _check_v2_results(response, expected)
    for result, judgment in zip(response.results, expected):
        [span] = result.relevant_spans
        assert (span.start, span.end) == judgment.evidence_span
        assert span.score == pytest.approx(judgment.relevance)


def test_cohere_v2_client_errors_are_typed(server):
    client = cohere.ClientV2(api_key="any", base_url=server.url, timeout=60)
    with pytest.raises(cohere.UnprocessableEntityError) as bad:
        client.rerank(model="m", query=QUERY, documents=DOCUMENTS,
                      request_options={"additional_body_parameters": {"expalin": "full"}})
    assert "did you mean 'explain'" in str(bad.value.body)


def test_cohere_v1_client(server, calibrated_student):
    client = cohere.Client(api_key="any", base_url=server.url, timeout=60)
    documents = [{"text": text} for text in DOCUMENTS]
    response = client.rerank(model="rerank-english-v3.0", query=QUERY, documents=documents, top_n=2,
                             return_documents=True)
    expected = Reranker(calibrated_student, explain="evidence", trace=False).rerank(QUERY, DOCUMENTS, top_n=2)
    assert isinstance(response, cohere.RerankResponse)
    assert [r.index for r in response.results] == [j.input_rank - 1 for j in expected]
    assert [r.document.text for r in response.results] == [j.text for j in expected]
    assert [r.verdict for r in response.results] == [j.verdict for j in expected]
    assert response.meta.api_version.version == "1"


@pytest.mark.slow
def test_langchain_cohere_rerank_in_a_retrieval_chain(server, calibrated_student):
    """LangChain's ``CohereRerank`` (langchain-cohere), given a ``cohere.ClientV2`` pointed at the server, after a
    retriever in a runnable chain."""
    langchain_cohere = pytest.importorskip("langchain_cohere")
    from langchain_core.documents import Document
    from langchain_core.runnables import RunnableLambda

    documents = [Document(page_content=text, metadata={"id": f"d{i}"}) for i, text in enumerate(DOCUMENTS)]
    retriever = RunnableLambda(lambda query: documents)  # a first stage that returns every document
    client = cohere.ClientV2(api_key="any", base_url=server.url, timeout=60)
    rerank = langchain_cohere.CohereRerank(client=client, model="rerank-v3.5", top_n=2)
    chain = {"documents": retriever, "query": lambda query: query} | RunnableLambda(
        lambda x: rerank.compress_documents(x["documents"], x["query"]))
    ranked = chain.invoke(QUERY)
    expected = Reranker(calibrated_student, explain="evidence", trace=False).rerank(QUERY, DOCUMENTS, top_n=2)
    assert [d.metadata["id"] for d in ranked] == [f"d{j.input_rank - 1}" for j in expected]
    assert [d.metadata["relevance_score"] for d in ranked] == pytest.approx([j.relevance for j in expected])
