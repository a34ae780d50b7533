"""The adapters write what each framework's own rerankers write, so code written for those keeps working.

LangChain's (Cohere, FlashRank, Jina) put a 0-1 relevance in ``metadata["relevance_score"]``; LlamaIndex's put theirs
in ``NodeWithScore.score``, which ``SimilarityPostprocessor`` cuts on, and keep the incoming score in
``metadata["retrieval_score"]``. A fake student with a calibrator (no model is loaded).
"""

from __future__ import annotations

import pytest

from r2r_agent import Reranker, Student
from r2r_agent.calibration import Calibrator
from r2r_agent.traces import MemoryTraceSink

QUERY = "how long do fleas live"
#: (id, text, retriever score): the retriever put the weakest passage first and the best one last. Under the
#: calibrator below: howlong 0.97 and fleas 0.62 relevant, eggs 0.38 partial, cats 0.18 not relevant.
DOCS = [
    ("cats", "Cats nap in the sun.", 0.9),
    ("fleas", "Adult fleas live two to three months.", 0.8),
    ("eggs", "Fleas lay eggs that hatch in two days.", 0.7),
    ("howlong", "How long do fleas live? Adult fleas live months.", 0.6),
]


class Words:
    """Scores a passage (and each sentence) by how many query words it holds."""

    name = "words"

    def score(self, query: str, passages: list[str]) -> list[float]:
        wanted = set(query.lower().split())
        return [float(len(wanted & set(p.lower().replace(".", "").split()))) for p in passages]


def calibrated_reranker(**settings) -> Reranker:
    calibrator = Calibrator(scorer="words", features=("evidence_score",), weights=(1.0,), bias=-1.5, relevant_at=0.5,
                            partial_at=0.25)
    return Reranker(Student(scorer=Words(), calibrator=calibrator), **settings)


# -- LangChain -----------------------------------------------------------------------------------------------------


def test_langchain_writes_relevance_score_as_the_calibrated_relevance():
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from r2r_agent.integrations.langchain import R2RCompressor

    docs = [Document(page_content=t, id=i, metadata={"score": s, "relevance_score": 99.0}) for i, t, s in DOCS]
    out = R2RCompressor(reranker=calibrated_reranker(), top_n=None).compress_documents(docs, QUERY)
    for doc in out:
        relevance = doc.metadata["r2r_relevance"]
        assert doc.metadata["relevance_score"] == relevance and 0.0 < relevance < 1.0  # never the caller's stale 99
        assert doc.metadata["r2r_stage"] == "verdict+first_stage_order"  # the adapters' default: verdict tiers
    assert [d.id for d in out] == ["fleas", "howlong", "eggs", "cats"]
    by_relevance = sorted(out, key=lambda d: -d.metadata["relevance_score"])
    # Within the relevant tier the retriever's order stays, above a passage of more relevance, and it says so.
    assert [d.id for d in by_relevance] == ["howlong", "fleas", "eggs", "cats"]
    assert out[0].metadata["r2r_order_matches_score"] is False
    assert docs[1].metadata["relevance_score"] == 99.0  # the caller's documents are untouched


def test_langchain_relevance_score_is_the_ordering_value_without_a_calibrator():
    pytest.importorskip("langchain_core")
    from integration_fakes import make_reranker
    from langchain_core.documents import Document

    from r2r_agent.integrations.langchain import R2RCompressor

    docs = [Document(page_content=t, id=i) for i, t, _ in DOCS]
    out = R2RCompressor(reranker=make_reranker(), top_n=None, ordering="scorer").compress_documents(docs, QUERY)
    assert all("r2r_relevance" not in d.metadata for d in out)
    assert [d.metadata["relevance_score"] for d in out] == [d.metadata["r2r_score"] for d in out]
    assert out[0].metadata["r2r_order_matches_score"] is True


# -- LlamaIndex ----------------------------------------------------------------------------------------------------


def nodes():
    from llama_index.core.schema import NodeWithScore, TextNode

    return [NodeWithScore(node=TextNode(id_=i, text=t), score=s) for i, t, s in DOCS]


def test_llama_index_score_is_the_relevance_so_a_similarity_cutoff_means_what_it_says():
    pytest.importorskip("llama_index.core")
    from llama_index.core.postprocessor import SimilarityPostprocessor

    from r2r_agent.integrations.llama_index import R2R

    ranked = R2R(reranker=calibrated_reranker(), top_n=None).postprocess_nodes(nodes(), query_str=QUERY)
    assert [n.score for n in ranked] == [n.node.metadata["r2r_relevance"] for n in ranked]
    assert all(0.0 < n.score < 1.0 for n in ranked)
    assert {n.node.metadata["r2r_stage"] for n in ranked} == {"verdict+first_stage_order"}
    kept = SimilarityPostprocessor(similarity_cutoff=0.5).postprocess_nodes(ranked)
    assert [n.node.node_id for n in kept] == [n.node.node_id for n in ranked if n.node.metadata["r2r_relevance"] >= 0.5]
    assert [n.node.node_id for n in kept] == ["fleas", "howlong"]
    assert ranked[0].node.metadata["r2r_order_matches_score"] is False  # fleas (retrieved first) above howlong
    # Under fusion the ordering value is ~0.03 for every node, which is why it is not the reported score.
    fused = R2R(reranker=calibrated_reranker(), top_n=None, ordering="rrf").postprocess_nodes(nodes(), query_str=QUERY)
    assert all(n.node.metadata["r2r_score"] < 0.04 for n in fused)
    assert [n.score for n in fused] == [n.node.metadata["r2r_relevance"] for n in fused]


def test_llama_index_keeps_the_incoming_score_where_its_rerankers_do():
    pytest.importorskip("llama_index.core")
    from r2r_agent.integrations.llama_index import R2R

    ranked = R2R(reranker=calibrated_reranker(), top_n=None).postprocess_nodes(nodes(), query_str=QUERY)
    incoming = {i: s for i, _, s in DOCS}
    for n in ranked:
        metadata = n.node.metadata
        assert metadata["retrieval_score"] == metadata["r2r_first_stage_score"] == incoming[n.node.node_id]
        assert "retrieval_score" in n.node.excluded_embed_metadata_keys
        assert "retrieval_score" in n.node.excluded_llm_metadata_keys
    off = R2R(reranker=calibrated_reranker(), keep_first_stage_score=False).postprocess_nodes(nodes(), query_str=QUERY)
    assert all("retrieval_score" not in n.node.metadata for n in off)


def test_llama_index_in_a_query_engine_before_a_similarity_cutoff():
    pytest.importorskip("llama_index.core")
    from llama_index.core.llms import MockLLM
    from llama_index.core.postprocessor import SimilarityPostprocessor
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.response_synthesizers.no_text import NoText
    from llama_index.core.retrievers import BaseRetriever

    from r2r_agent.integrations.llama_index import R2R

    class Fixed(BaseRetriever):
        def _retrieve(self, query_bundle):
            return nodes()

    engine = RetrieverQueryEngine.from_args(
        Fixed(), llm=MockLLM(), response_synthesizer=NoText(llm=MockLLM()),
        node_postprocessors=[R2R(reranker=calibrated_reranker()), SimilarityPostprocessor(similarity_cutoff=0.2)])
    response = engine.query(QUERY)
    assert [n.node.node_id for n in response.source_nodes] == ["fleas", "howlong", "eggs"]
    assert all(n.score >= 0.2 for n in response.source_nodes)


# -- one rule for settings, and tracing without a reranker ---------------------------------------------------------


@pytest.mark.parametrize("framework", ["langchain", "llama_index"])
def test_trace_without_bringing_a_reranker(framework):
    pytest.importorskip("langchain_core" if framework == "langchain" else "llama_index.core")
    sink = MemoryTraceSink()
    student = calibrated_reranker().student
    if framework == "langchain":
        from langchain_core.documents import Document

        from r2r_agent.integrations.langchain import R2RCompressor

        adapter = R2RCompressor(student=student, trace=sink, top_n=2)
        adapter.compress_documents([Document(page_content=t, id=i) for i, t, _ in DOCS], QUERY)
    else:
        from r2r_agent.integrations.llama_index import R2R

        adapter = R2R(student=student, trace=sink, top_n=2)
        adapter.postprocess_nodes(nodes(), query_str=QUERY)
    (record,) = sink.records
    assert record.query == QUERY
    assert (adapter.config.ordering, adapter.config.explain) == ("tiers", "evidence")  # the adapter's defaults kept
    with pytest.raises(ValueError, match="either reranker= or trace="):
        type(adapter)(reranker=calibrated_reranker(), trace=sink)


# -- the adapters' default ordering: never a not_relevant passage above a relevant or partial one --------------------

#: Short lists (3-8 passages) in retriever orders that put the not-relevant passages high.
EXTRA = [("dogs", "Dogs bark at night.", 0.0), ("lay", "Fleas lay eggs.", 0.0), ("rain", "Rain fell all day.", 0.0),
         ("life", "Fleas live for months.", 0.0)]
SHORT_LISTS = [
    DOCS[:3],
    DOCS,
    [DOCS[0], EXTRA[0], DOCS[3], DOCS[2]],
    [EXTRA[0], EXTRA[2], DOCS[0], DOCS[2], EXTRA[1], DOCS[1]],
    [DOCS[0], EXTRA[0], EXTRA[2], DOCS[2], EXTRA[1], DOCS[3], EXTRA[3], DOCS[1]],
]


def not_relevant_above_a_better_one(verdicts: list[str]) -> bool:
    """Whether a ``not_relevant`` verdict comes before a ``relevant`` or ``partial`` one."""
    first_bad = next((i for i, v in enumerate(verdicts) if v == "not_relevant"), len(verdicts))
    return any(v in ("relevant", "partial") for v in verdicts[first_bad:])


def ranked_verdicts(framework: str, docs: list[tuple[str, str, float]], **settings) -> list[str]:
    if framework == "langchain":
        from langchain_core.documents import Document

        from r2r_agent.integrations.langchain import R2RCompressor

        adapter = R2RCompressor(reranker=calibrated_reranker(), top_n=None, **settings)
        out = adapter.compress_documents([Document(page_content=t, id=i) for i, t, _ in docs], QUERY)
        return [d.metadata["r2r_verdict"] for d in out]
    from llama_index.core.schema import NodeWithScore, TextNode

    from r2r_agent.integrations.llama_index import R2R

    adapter = R2R(reranker=calibrated_reranker(), top_n=None, **settings)
    out = adapter.postprocess_nodes([NodeWithScore(node=TextNode(id_=i, text=t)) for i, t, _ in docs],
                                    query_str=QUERY)
    return [n.node.metadata["r2r_verdict"] for n in out]


@pytest.mark.parametrize("framework", ["langchain", "llama_index"])
def test_the_default_ordering_never_puts_a_not_relevant_passage_above_a_relevant_or_partial_one(framework):
    pytest.importorskip("langchain_core" if framework == "langchain" else "llama_index.core")
    for docs in SHORT_LISTS:
        verdicts = ranked_verdicts(framework, docs)
        assert len(verdicts) == len(docs) and "not_relevant" in verdicts and "relevant" in verdicts
        assert not not_relevant_above_a_better_one(verdicts), ([i for i, _, _ in docs], verdicts)
    # What the rule guards against: fusion keeps the retriever's first passage (not relevant) above a partial one.
    assert not_relevant_above_a_better_one(ranked_verdicts(framework, DOCS, ordering="rrf"))
