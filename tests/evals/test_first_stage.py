"""First stages on a tiny inline corpus: BM25 (bm25s), dense (chromadb with a fake embedding function) and
reason-then-retrieve (a fake writer). No model loads except in the test marked slow."""

from __future__ import annotations

import pytest

from r2r_agent import Passage
from r2r_agent.errors import InvalidInputError
from r2r_agent.evals.first_stage import (
    BM25FirstStage,
    DenseFirstStage,
    FirstStage,
    ReasonThenRetrieve,
    candidate_lists,
    explainer_writer,
    reasoning_messages,
)
from r2r_agent.evals.records import CandidateList, candidate

pytest.importorskip("bm25s")

CORPUS = {
    "d1": "Adult fleas live two to three months on a host animal.",
    "d2": "The Eiffel Tower is in Paris, the capital of France.",
    "d3": "Photosynthesis turns sunlight, water and carbon dioxide into glucose.",
    "d4": "Cats sleep for most of the day.",
}


class RecordingStage:
    """A first stage that records the queries it was asked and returns one fixed candidate."""

    def __init__(self) -> None:
        self.queries: list[tuple[str, int]] = []

    def retrieve(self, query: str, k: int) -> list[Passage]:
        self.queries.append((query, k))
        return [candidate("d1", 1.0, CORPUS["d1"])][:k]


def test_bm25_ranks_the_matching_document_first():
    bm25 = BM25FirstStage(CORPUS)
    assert isinstance(bm25, FirstStage)
    got = bm25.retrieve("how long do fleas live", k=2)
    assert got[0].id == "d1" and got[0].text == CORPUS["d1"] and got[0].first_stage_score > 0
    assert bm25.retrieve("capital of France", k=1)[0].id == "d2"


def test_bm25_orders_ties_by_docid_whatever_the_corpus_order():
    # Identical texts score identically; the order must not depend on the corpus order.
    texts = {"b": "red apple", "c": "red apple", "a": "red apple", "z": "green pear"}
    forward = BM25FirstStage(texts).retrieve("apple", k=3)
    backward = BM25FirstStage(dict(reversed(list(texts.items())))).retrieve("apple", k=3)
    assert [c.id for c in forward] == ["a", "b", "c"] == [c.id for c in backward]
    assert len({c.first_stage_score for c in forward}) == 1
    # A cut inside a tie keeps the smallest docids.
    assert [c.id for c in BM25FirstStage(texts).retrieve("apple", k=2)] == ["a", "b"]


def test_bm25_k_larger_than_the_corpus_returns_only_matching_documents():
    bm25 = BM25FirstStage(CORPUS)
    got = bm25.retrieve("fleas cats", k=100)
    assert sorted(c.id for c in got) == ["d1", "d4"]
    assert [c.first_stage_score for c in got] == sorted((c.first_stage_score for c in got), reverse=True)
    assert bm25.retrieve("zebra xylophone", k=5) == []  # no known term: no candidates, no crash


@pytest.mark.parametrize("query", ["", "   "])
def test_empty_query_is_a_clear_error(query):
    with pytest.raises(InvalidInputError, match="query must be a non-empty str"):
        BM25FirstStage(CORPUS).retrieve(query, k=3)


def test_bad_k_and_bad_corpus_are_clear_errors():
    bm25 = BM25FirstStage(CORPUS)
    with pytest.raises(InvalidInputError, match="k must be an int >= 1"):
        bm25.retrieve("fleas", k=0)
    with pytest.raises(InvalidInputError, match="corpus is empty"):
        BM25FirstStage({})
    with pytest.raises(InvalidInputError, match="non-empty str doc ids"):
        BM25FirstStage({"d1": None})


class FakeChromaFunction:
    """A chromadb embedding function with no model: a bag-of-keywords vector, recording each call."""

    KEYWORDS = ("flea", "paris", "sunlight", "cat")

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, input):  # chromadb's protocol names the argument ``input``
        self.calls.append(list(input))
        return [[float(w in t.lower()) for w in self.KEYWORDS] + [0.01] for t in input]

    def embed_query(self, input):  # chromadb embeds query texts through this method
        return self(input)

    @staticmethod
    def name() -> str:
        return "r2r-test-fake"


pytestmark_chroma = pytest.mark.filterwarnings("ignore:legacy embedding function config:DeprecationWarning")


@pytestmark_chroma
def test_dense_retrieves_by_cosine_similarity_and_reuses_the_collection(tmp_path):
    pytest.importorskip("chromadb")
    function = FakeChromaFunction()
    dense = DenseFirstStage(CORPUS, tmp_path / "db", collection="test_first_stage", embedding_function=function)
    assert isinstance(dense, FirstStage)
    got = dense.retrieve("where do fleas bite", k=2)
    assert got[0].id == "d1" and got[0].text == CORPUS["d1"]
    assert got[0].first_stage_score == pytest.approx(1.0, abs=1e-3)  # same direction: cosine similarity 1
    assert got[0].first_stage_score > got[1].first_stage_score
    # k above the corpus size returns every document; ties (d2, d3, d4 share a vector) ordered by docid.
    everything = dense.retrieve("where do fleas bite", k=10)
    assert [c.id for c in everything] == ["d1", "d2", "d3", "d4"]

    # Reopened with one more document: only that one is embedded.
    function.calls.clear()
    bigger = {**CORPUS, "d5": "Paris has many museums."}
    again = DenseFirstStage(bigger, tmp_path / "db", collection="test_first_stage", embedding_function=function)
    assert function.calls[0] == ["Paris has many museums."]
    assert {c.id for c in again.retrieve("paris", k=2)} == {"d2", "d5"}

    # A smaller corpus on the same (bigger) collection never returns ids outside it.
    small = DenseFirstStage({"d3": CORPUS["d3"], "d4": CORPUS["d4"]}, tmp_path / "db",
                            collection="test_first_stage", embedding_function=function)
    assert [c.id for c in small.retrieve("paris", k=2)] == ["d3", "d4"]


@pytestmark_chroma
def test_dense_in_a_temporary_folder_rejects_an_empty_query():
    pytest.importorskip("chromadb")
    dense = DenseFirstStage(CORPUS, embedding_function=FakeChromaFunction())
    assert dense.retrieve("a cat", k=1)[0].id == "d4"
    with pytest.raises(InvalidInputError, match="query must be a non-empty str"):
        dense.retrieve("", k=1)


def test_reason_then_retrieve_expands_the_bm25_query():
    reasoning = "Fleas are parasites of cats; adult fleas live on a host for months."
    calls: list[str] = []

    def writer(query: str) -> str:
        calls.append(query)
        return reasoning

    plain = BM25FirstStage(CORPUS).retrieve("parasite lifespan", k=5)
    assert plain == []  # no term of the bare query is in the corpus
    stage = ReasonThenRetrieve(BM25FirstStage(CORPUS), writer)
    got = stage.retrieve("parasite lifespan", k=5)
    assert got[0].id == "d1" and {c.id for c in got} == {"d1", "d4"}
    assert stage.reasonings == {"parasite lifespan": reasoning}
    stage.retrieve("parasite lifespan", k=2)
    assert calls == ["parasite lifespan"]  # written once per query


def test_reason_then_retrieve_sends_query_plus_reasoning():
    inner = RecordingStage()
    stage = ReasonThenRetrieve(inner, lambda q: f"  about {q}  ")
    stage.retrieve("fleas", k=3)
    assert inner.queries == [("fleas\nabout fleas", 3)]
    empty = ReasonThenRetrieve(RecordingStage(), lambda q: "")
    assert empty.expand("fleas") == "fleas"
    with pytest.raises(InvalidInputError, match="writer must return a str"):
        ReasonThenRetrieve(RecordingStage(), lambda q: None).retrieve("fleas", k=1)
    with pytest.raises(InvalidInputError, match="query must be a non-empty str"):
        stage.retrieve(" ", k=1)
    with pytest.raises(InvalidInputError, match="writer must be a callable"):
        ReasonThenRetrieve(inner, "not callable")


def test_explainer_writer_generates_with_the_explainer(tiny_lm):
    from r2r_agent.explainer import Explainer

    model, tokenizer = tiny_lm
    writer = explainer_writer(Explainer(model, tokenizer), max_new_tokens=5)
    text = writer("how long do fleas live")
    assert isinstance(text, str)
    assert "how long do fleas live" in reasoning_messages("how long do fleas live")[-1]["content"]
    with pytest.raises(InvalidInputError, match="max_new_tokens must be an int >= 1"):
        explainer_writer(Explainer(model, tokenizer), max_new_tokens=0)
    with pytest.raises(InvalidInputError, match="expected an r2r_agent.explainer.Explainer"):
        explainer_writer(object())


def test_explainer_writer_passes_the_rendered_prompt_and_budget():
    from r2r_agent.explainer import Generation

    class FakeExplainer:
        tokenizer = None  # no chat template: prompts.render writes plain role lines

        def __init__(self) -> None:
            self.calls: list[tuple[list[str], int]] = []

        def generate(self, rendered, *, max_new_tokens=None):
            self.calls.append((list(rendered), max_new_tokens))
            return Generation(texts=["Fleas live on hosts."])

    fake = FakeExplainer()
    assert explainer_writer(fake, max_new_tokens=7)("flea lifespan") == "Fleas live on hosts."
    (prompts_sent, budget), = fake.calls
    assert budget == 7 and len(prompts_sent) == 1 and "flea lifespan" in prompts_sent[0]


def test_candidate_lists_feed_the_runner():
    queries = {"q1": "how long do fleas live", "q2": "capital of France"}
    lists = candidate_lists(BM25FirstStage(CORPUS), queries, k=2)
    assert list(lists) == ["q1", "q2"]
    assert isinstance(lists["q1"], CandidateList) and lists["q1"].query == queries["q1"]
    assert lists["q1"].candidates[0].id == "d1" and lists["q2"].candidates[0].id == "d2"
    assert CandidateList.from_dict(lists["q1"].to_dict()) == lists["q1"]
    with pytest.raises(InvalidInputError, match="qid 'q3'"):
        candidate_lists(RecordingStage(), {"q3": ""}, k=1)
    with pytest.raises(InvalidInputError, match="k must be an int >= 1"):
        candidate_lists(RecordingStage(), queries, k=0)


@pytest.mark.slow
@pytestmark_chroma
def test_dense_with_the_bundled_minilm(tmp_path):
    pytest.importorskip("chromadb")
    dense = DenseFirstStage(CORPUS, tmp_path / "db")
    assert dense.retrieve("How long does a flea live?", k=1)[0].id == "d1"
    assert dense.retrieve("Which city has the Eiffel Tower?", k=1)[0].id == "d2"
