"""CrossEncoderScorer on tiny random reranker folders built here: the scores are the model's own logits (or the
positive class's probability), pairs are cut keeping the query, and the framework adapters run on it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from r2r_agent import Explainer, Reranker, Student
from r2r_agent.cross_encoder import CrossEncoderScorer, _max_tokens
from r2r_agent.errors import InvalidInputError, ModelPreparationError

QUERY = "how long do fleas live"
PASSAGES = ["adult fleas live two to three months on a cat", "the sun gives heat and light in summer",
            "fleas", "a flea egg becomes a larva then a pupa in weeks " * 3, "the cost of a concrete floor"]


def save_reranker(folder: Path, tokenizer, *, labels: int = 1, kind: str = "bert", seed: int = 0) -> Path:
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        XLMRobertaConfig,
        XLMRobertaForSequenceClassification,
    )

    torch.manual_seed(seed)
    shape = {"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_labels": labels}
    if kind == "bert":
        model = BertForSequenceClassification(BertConfig(max_position_embeddings=128, **shape))
    else:  # bge-reranker's architecture: no token types, positions offset by the padding index
        model = XLMRobertaForSequenceClassification(XLMRobertaConfig(max_position_embeddings=130, type_vocab_size=1,
                                                                     pad_token_id=1, **shape))
    model.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


#: More words than any budget here holds (all in the tiny encoder's vocabulary).
WORDS = ("how long do fleas live adult egg larva pupa host cat dog pet season earth sun tilt axis orbit summer "
         "winter light heat cost price floor concrete the a of to in is are was for on with as by it that").split()


@pytest.fixture(scope="module")
def tokenizer(_tiny_encoder):
    """The tiny encoder's WordPiece tokenizer (a copy: the session's is shared) with a 64-token budget."""
    tok = copy.deepcopy(_tiny_encoder[1])
    tok.model_max_length = 64
    return tok


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tokenizer) -> Path:
    return save_reranker(tmp_path_factory.mktemp("ce-bert"), tokenizer)


def logits(model, tokenizer, query, passages):
    with torch.inference_mode():
        encoded = tokenizer([query] * len(passages), list(passages), padding=True, return_tensors="pt")
        return model(**encoded).logits


def test_scores_are_the_models_logits_and_order_passages_exactly_by_them(folder):
    scorer = CrossEncoderScorer.from_pretrained(folder, batch_size=2)
    short = [p for p in PASSAGES if len(p) < 60]
    expected = logits(scorer.model, scorer.tokenizer, QUERY, short)[:, 0].tolist()
    got = scorer.score(QUERY, short)
    assert got.values == pytest.approx(expected, abs=1e-5)
    by_logit = sorted(range(len(short)), key=lambda i: -expected[i])
    assert sorted(range(len(short)), key=lambda i: -got.values[i]) == by_logit
    assert got.truncated == [False] * len(short) and not got.query_truncated
    ranking = Reranker(Student(scorer=scorer), trace=False, explain_top=0, judge=False).rerank(QUERY, short)
    assert [j.input_rank - 1 for j in ranking] == by_logit
    assert scorer.name == folder.name and scorer.max_tokens == 64  # the tokenizer's model_max_length


def test_batched_equals_one_at_a_time(folder):
    one = CrossEncoderScorer.from_pretrained(folder, batch_size=1).score(QUERY, PASSAGES).values
    assert CrossEncoderScorer.from_pretrained(folder, batch_size=16).score(QUERY, PASSAGES).values == \
        pytest.approx(one, abs=1e-5)


def test_two_labels_score_the_positive_class_probability(tmp_path, tokenizer):
    scorer = CrossEncoderScorer.from_pretrained(save_reranker(tmp_path, tokenizer, labels=2))
    expected = torch.softmax(logits(scorer.model, tokenizer, QUERY, PASSAGES[:3]).double(), -1)[:, 1].tolist()
    assert scorer.score(QUERY, PASSAGES[:3]).values == pytest.approx(expected, abs=1e-6)


def test_other_label_counts_are_refused(tmp_path, tokenizer):
    with pytest.raises(InvalidInputError, match="has 3 labels; a reranker has 1 .* or 2"):
        CrossEncoderScorer.from_pretrained(save_reranker(tmp_path, tokenizer, labels=3))


def test_pairs_keep_the_query_and_cut_the_passage(folder):
    # The first window only (no windows): the passage is cut to what is left of the pair's budget.
    scorer = CrossEncoderScorer.from_pretrained(folder, max_tokens=24, max_query_tokens=8, max_tokens_per_passage=None)
    long = " ".join(WORDS)
    got = scorer.score(QUERY, [long, "fleas"])
    assert got.truncated == [True, False] and not got.query_truncated
    # The cut passage is exactly what the model read next to the whole query.
    query_tokens = len(scorer.tokenizer(QUERY, add_special_tokens=False)["input_ids"])
    from r2r_agent.modeling import fit_tokens

    cut, _ = fit_tokens(scorer.tokenizer, long, 24 - scorer.special_tokens - query_tokens)
    assert got.values[0] == pytest.approx(logits(scorer.model, scorer.tokenizer, QUERY, [cut])[0, 0].item(), abs=1e-5)
    assert 0 < scorer.visible_chars(long) <= len(cut) and scorer.visible_chars("fleas") == 5
    cut_query = scorer.score(" ".join(WORDS[:30]), ["fleas"])
    assert cut_query.query_truncated and cut_query.truncated == [False]


def test_an_xlm_roberta_reranker_without_token_types_loads_with_its_budget(tmp_path, tokenizer):
    folder = save_reranker(tmp_path, tokenizer, kind="xlm-roberta")
    scorer = CrossEncoderScorer.from_pretrained(folder)
    assert len(scorer.score(QUERY, PASSAGES).values) == len(PASSAGES)
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    tokenizer_config.pop("model_max_length", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    reloaded = CrossEncoderScorer.from_pretrained(folder)
    assert reloaded.max_tokens == _max_tokens(folder, reloaded.tokenizer, reloaded.model.config) == 128  # 130 - 2


def test_a_sentence_transformers_cross_encoder_folder_gives_its_logits(tmp_path, folder):
    st = pytest.importorskip("sentence_transformers")
    model = st.CrossEncoder(str(folder), local_files_only=True, max_length=48,
                            activation_fn=torch.nn.Identity())
    model.save(str(tmp_path / "st"))
    scorer = CrossEncoderScorer.from_pretrained(tmp_path / "st")
    short = PASSAGES[:3]
    assert scorer.max_tokens == 48
    assert scorer.score(QUERY, short).values == pytest.approx(
        model.predict([(QUERY, p) for p in short]).tolist(), abs=1e-5)


def test_missing_folders_fail_offline_with_a_clear_error(no_network, tmp_path):
    with pytest.raises(ModelPreparationError):
        CrossEncoderScorer.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelPreparationError):
        CrossEncoderScorer.from_pretrained(tmp_path / "empty")


def test_exported_from_scorers_and_the_package():
    from r2r_agent import CrossEncoderScorer as FromPackage
    from r2r_agent.scorers import CrossEncoderScorer as FromScorers

    assert FromPackage is FromScorers is CrossEncoderScorer


@pytest.fixture
def cross_student(folder, tiny_lm):
    model, tokenizer = tiny_lm
    return Student(scorer=CrossEncoderScorer.from_pretrained(folder), name="ce-student",
                   explainer=Explainer(model, tokenizer, max_new_tokens=6, max_passage_tokens=32))


def test_the_llama_index_adapter_runs_on_a_cross_encoder_student(cross_student):
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import NodeWithScore, TextNode

    from r2r_agent.integrations.llama_index import R2R

    nodes = [NodeWithScore(node=TextNode(text=p, id_=f"d{i}"), score=1.0 - i / 10) for i, p in enumerate(PASSAGES)]
    postprocessor = R2R(student=cross_student, top_n=3, explain_top=2, ordering="scorer")
    out = postprocessor.postprocess_nodes(nodes, query_str=QUERY)
    expected = Reranker(cross_student, trace=False, top_n=3, explain_top=2).rerank(QUERY, PASSAGES)
    assert [n.node.node_id for n in out] == [f"d{j.input_rank - 1}" for j in expected]
    assert [n.score for n in out] == pytest.approx([j.score for j in expected])
    assert "r2r_explanation" in out[0].node.metadata and "r2r_explanation" not in nodes[0].node.metadata


def test_the_langchain_compressor_runs_on_a_cross_encoder_student(cross_student):
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from r2r_agent.integrations.langchain import R2RCompressor

    docs = [Document(page_content=p, id=f"d{i}") for i, p in enumerate(PASSAGES)]
    compressor = R2RCompressor(student=cross_student, top_n=3, explain_top=1, ordering="scorer")
    out = compressor.compress_documents(docs, QUERY)
    expected = Reranker(cross_student, trace=False, top_n=3, explain_top=1).rerank(QUERY, PASSAGES)
    assert [d.id for d in out] == [f"d{j.input_rank - 1}" for j in expected]
    assert out[0].metadata["r2r_explanation"] and all(not d.metadata for d in docs)
