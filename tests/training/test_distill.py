"""Distillation on the tiny in-process causal LM: losses, prompts, score parity with inference, exact resume, output."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from conftest import assert_same_tensors, keyword_reply, train_interrupted_and_resumed
from safetensors.torch import load_file

from r2r_agent import Explainer, Reranker, Student, prompts
from r2r_agent.errors import InvalidInputError
from r2r_agent.modeling import fit_tokens
from r2r_agent.training import (
    AnnotationRequest,
    DatasetConfig,
    DistillConfig,
    Distiller,
    DistillError,
    ScriptedTeacher,
    annotate,
    build_dataset,
    distill,
    listnet_loss,
    ranking_targets,
    ranknet_loss,
)
from r2r_agent.training.dataset import DatasetSplit, DistillationDataset, ExplanationExample, RankingExample
from r2r_agent.training.distill import stream_indices

FAST = {"eval_at_start": False, "max_eval_queries": 4, "max_eval_explanations": 8}


@pytest.fixture(scope="module")
def dataset():
    """A small dataset from a scripted teacher: the keyword teacher ranks by the "score N" in each passage."""
    teacher = ScriptedTeacher(default=keyword_reply, name="keyword")
    requests = [AnnotationRequest(str(q), f"how long do fleas live {q}",
                                  [f"fleas live score {(3 * q + 5 * i) % 10} days on a cat" for i in range(4)])
                for q in range(12)]
    run = annotate(teacher, requests)
    return build_dataset(run.annotations, DatasetConfig(validation_fraction=0.25, explain_top=2))


HEAD = DistillConfig(max_steps=2, rank_score="head", learning_rate=5e-3, **FAST)


@pytest.fixture(scope="module")
def head_run(tiny_lm_dir, dataset, tmp_path_factory):
    """One trained adapter with a rank head (``HEAD``), shared by the tests that only read it: its Distiller (after
    training) and its folder."""
    distiller = Distiller(tiny_lm_dir, dataset, tmp_path_factory.mktemp("head-adapter"), HEAD)
    distiller.train()
    return distiller, distiller.output_dir


# ---- losses and targets ----------------------------------------------------------------------------------------
def test_ranking_targets_follow_teacher_order_and_labels():
    example = RankingExample("q", "query", ("a", "b", "c"), teacher_order=(2, 0, 1), labels=(0, 1, 0))
    assert ranking_targets(example, label_weight=0.0) == pytest.approx([2 / 3, 1 / 3, 1.0])
    assert ranking_targets(example, label_weight=1.0) == pytest.approx([2 / 3, 4 / 3, 1.0])


@pytest.mark.parametrize("loss", [listnet_loss, ranknet_loss])
def test_ranking_losses_prefer_the_teacher_order_and_check_shapes(loss):
    targets = torch.tensor([1.0, 0.5, 0.2])
    assert loss(torch.tensor([2.0, 1.0, 0.0]), targets) < loss(torch.tensor([0.0, 1.0, 2.0]), targets)
    scores = torch.zeros(3, requires_grad=True)
    loss(scores, targets).backward()
    assert scores.grad[0] < 0 < scores.grad[2]  # gradient descent raises the best passage, lowers the worst
    with pytest.raises(InvalidInputError, match="same shape"):
        loss(torch.zeros(3), torch.zeros(2))


def test_ranknet_without_ordered_pairs_is_zero_and_keeps_the_graph():
    scores = torch.zeros(2, requires_grad=True)
    value = ranknet_loss(scores, torch.ones(2))
    value.backward()
    assert float(value.detach()) == 0.0


def test_stream_indices_are_permutations_per_epoch_and_position_addressable():
    stream = stream_indices(5, 0, 15, seed=3, salt=1)
    for epoch in range(3):
        assert sorted(stream[epoch * 5 : epoch * 5 + 5]) == list(range(5))
    assert stream_indices(5, 7, 4, seed=3, salt=1) == stream[7:11]
    assert stream_indices(5, 0, 5, seed=4, salt=1) != stream[:5] or stream_indices(5, 5, 5, 4, 1) != stream[5:10]


# ---- config ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, field", [
    ({"batch_size": 0}, "batch_size"), ({"learning_rate": 0.0}, "learning_rate"), ({"max_steps": 0}, "max_steps"),
    ({"lora_dropout": 1.0}, "lora_dropout"), ({"ranking_loss": "lambda"}, "ranking_loss"),
    ({"rank_score": "logit"}, "rank_score"), ({"lm_weight": 0.0, "rank_weight": 0.0}, "rank_weight"),
    ({"scheduler": "cosine"}, "scheduler"), ({"rank_weight": -1.0}, "rank_weight"),
])
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(InvalidInputError, match=f"DistillConfig.{field}"):
        DistillConfig(**kwargs)


def test_config_round_trips_and_budgets_follow_the_inference_defaults():
    config = DistillConfig(target_modules=("q_proj",), max_steps=3)
    assert DistillConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    explainer = Explainer(None, None)
    assert config.max_passage_tokens == explainer.max_passage_tokens
    assert config.max_comparison_passage_tokens == explainer.max_comparison_passage_tokens
    with pytest.raises(InvalidInputError, match="unknown fields \\['nope'\\]"):
        DistillConfig.from_dict({"nope": 1})


def test_nothing_to_train_is_a_clear_error(tiny_lm_dir, tmp_path):
    empty = DistillationDataset(DatasetSplit(), DatasetSplit())
    with pytest.raises(DistillError, match="nothing to train on"):
        Distiller(tiny_lm_dir, empty, tmp_path)


# ---- what the student is trained on ----------------------------------------------------------------------------
class _Recorder(Explainer):
    def generate(self, rendered_prompts, *, max_new_tokens=None):
        self.seen = list(rendered_prompts)
        return super().generate(rendered_prompts, max_new_tokens=1)


def test_explanation_prompts_are_the_explainers_and_only_targets_count(tiny_lm_dir, tmp_path, dataset):
    distiller = Distiller(tiny_lm_dir, dataset, tmp_path, DistillConfig(max_passage_tokens=12,
                                                                        max_comparison_passage_tokens=6))
    distiller._setup()
    tokenizer = distiller.tokenizer
    long_passage = "fleas live score 9 days on a cat " * 20
    direct = ExplanationExample("direct", "q", "how long do fleas live", (long_passage,), "it gives the days.")
    recorder = _Recorder(distiller.model, tokenizer, max_passage_tokens=12, max_comparison_passage_tokens=6)
    recorder.explain(direct.query, direct.passages)
    assert distiller.explanation_prompt(direct) == recorder.seen[0]
    assert fit_tokens(tokenizer, long_passage, 12)[1]  # the passage really was cut
    judged = ExplanationExample("direct", "q", "how long do fleas live", (long_passage,), "it gives the days.",
                                verdicts=("relevant",), evidence=("fleas live 9 days",))
    recorder.explain(judged.query, judged.passages, verdicts=judged.verdicts, evidence=judged.evidence)
    assert distiller.explanation_prompt(judged) == recorder.seen[0]
    # the comparison inference writes: from verdicts and best sentences, each cut to the comparison budget
    comparison = ExplanationExample("comparison", "q", "fleas", (long_passage, "cat dog"), "[1] first.",
                                    verdicts=("relevant", "not_relevant"), evidence=(long_passage, "cat dog"))
    recorder.compare_grounded(comparison.query, comparison.evidence, comparison.verdicts)
    assert distiller.explanation_prompt(comparison) == recorder.seen[0]
    assert long_passage not in recorder.seen[0]  # the long sentence really was cut

    ids, labels = distiller.encode_explanation(direct)
    prompt_len = len(tokenizer(distiller.explanation_prompt(direct), add_special_tokens=False)["input_ids"])
    assert labels[:prompt_len] == [-100] * prompt_len
    assert labels[prompt_len:] == ids[prompt_len:] and labels[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(labels[prompt_len:-1]).strip() == "it gives the days."


def test_batched_lm_loss_equals_the_models_own_loss_on_each_example_alone(tiny_lm_dir, tmp_path, dataset):
    distiller = Distiller(tiny_lm_dir, dataset, tmp_path, DistillConfig(lora_dropout=0.0))
    distiller._setup()
    distiller.model.eval()
    examples = list(dataset.train.explanations[:3])
    assert len({len(distiller.encode_explanation(e)[0]) for e in examples}) > 1  # padding is exercised
    weighted, tokens = 0.0, 0
    with torch.no_grad():
        batched, count = distiller.lm_loss(examples)
        for example in examples:
            ids, labels = distiller.encode_explanation(example)
            alone = distiller.model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss
            n = sum(1 for label in labels[1:] if label != -100)
            weighted += float(alone) * n
            tokens += n
    assert count == tokens
    assert float(batched) == pytest.approx(weighted / tokens, rel=1e-4)


@pytest.mark.parametrize("rank_score", ["yes_no", "head"])
def test_trained_scores_equal_the_loaded_students_scores(tiny_lm_dir, tmp_path, dataset, rank_score, head_run):
    if rank_score == "head":
        distiller, folder = head_run
    else:
        folder = tmp_path / "adapter"
        distiller = Distiller(tiny_lm_dir, dataset, folder, dataclasses.replace(HEAD, rank_score=rank_score))
        distiller.train()
    example = dataset.validation.rankings[0]
    distiller.model.eval()
    with torch.no_grad():
        trained = distiller.lm_scores(example.query, example.passages).tolist()
    student = Student.from_pretrained(tiny_lm_dir, adapter=folder)
    assert (student.scorer.rank_head is not None) == (rank_score == "head")
    loaded = student.scorer.score(example.query, example.passages).values
    assert loaded == pytest.approx(trained, abs=1e-4)


def test_head_starts_as_the_zero_shot_yes_no_direction(tiny_lm_dir, tmp_path, dataset):
    distiller = Distiller(tiny_lm_dir, dataset, tmp_path, DistillConfig(rank_score="head", lora_dropout=0.0))
    distiller._setup()
    distiller.model.eval()
    example = dataset.train.rankings[0]
    with torch.no_grad():
        head_scores = distiller.lm_scores(example.query, example.passages)
        distiller.rank_head = None
        yes_no = distiller.lm_scores(example.query, example.passages)
    # a random tiny LM has flat logits, so the log-odds and the head are close and strongly correlated
    assert torch.corrcoef(torch.stack([head_scores, yes_no]))[0, 1] > 0.9


# ---- training, resume and output -------------------------------------------------------------------------------
def test_training_lowers_the_validation_lm_loss(tiny_lm_dir, tmp_path, dataset):
    config = DistillConfig(max_steps=8, learning_rate=1e-2, eval_at_start=True, lora_dropout=0.0, rank_weight=0.5)
    result = distill(tiny_lm_dir, dataset, tmp_path, config)
    first, last = result.validation[0], result.validation[-1]
    assert first["step"] == 0 and last["step"] == 8 and result.steps == 8
    assert last["lm_loss"] < first["lm_loss"]
    assert all(math.isfinite(r["loss"]) for r in result.history) and len(result.history) == 8
    assert 0.0 <= last["ndcg_teacher"] <= 1.0


def _weights(folder):
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    head = folder / "rank_head.safetensors"
    if head.exists():
        tensors.update({f"head.{k}": v for k, v in load_file(str(head)).items()})
    return tensors


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tiny_lm_dir, tmp_path, dataset):
    config = DistillConfig(max_steps=4, grad_accum=2, batch_size=2, checkpoint_every=2, eval_every=2,
                           lora_dropout=0.2, rank_score="head", learning_rate=5e-3, warmup_steps=1, seed=7, **FAST)
    straight, resumed = train_interrupted_and_resumed(
        lambda folder, **kwargs: distill(tiny_lm_dir, dataset, folder, config, **kwargs), tmp_path)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert any(k.startswith("head.") for k in a)
    assert_same_tensors(a, b)
    assert resumed.history == straight.history
    assert resumed.validation == straight.validation


def test_a_different_seed_gives_different_weights(tiny_lm_dir, tmp_path, dataset):
    config = DistillConfig(max_steps=1, learning_rate=5e-3, lm_weight=0.0, **FAST)
    distill(tiny_lm_dir, dataset, tmp_path / "a", config)
    distill(tiny_lm_dir, dataset, tmp_path / "b", DistillConfig(**{**config.to_dict(), "seed": 1}))
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_resume_with_other_training_settings_is_rejected(tiny_lm_dir, tmp_path, dataset):
    config = DistillConfig(max_steps=3, checkpoint_every=1, **FAST)
    distill(tiny_lm_dir, dataset, tmp_path, config)
    changed = DistillConfig(**{**config.to_dict(), "learning_rate": 1e-3, "max_steps": 4})
    with pytest.raises(DistillError, match="learning_rate"):
        distill(tiny_lm_dir, dataset, tmp_path, changed, resume=True)
    with pytest.raises(DistillError, match="not a distillation checkpoint"):
        distill(tiny_lm_dir, dataset, tmp_path, config, resume=tmp_path / "nowhere")


def test_checkpoints_are_pruned(tiny_lm_dir, tmp_path, dataset):
    config = DistillConfig(max_steps=4, checkpoint_every=1, keep_checkpoints=2, lm_weight=0.0, **FAST)
    distill(tiny_lm_dir, dataset, tmp_path, config)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["checkpoint-0000003", "checkpoint-0000004"]


def test_output_folder_has_adapter_tokenizer_metadata_and_card(tiny_lm_dir, head_run):
    folder = head_run[1]
    for name in ("adapter_config.json", "adapter_model.safetensors", "rank_head.safetensors", "tokenizer_config.json",
                 "r2r_training.json", "README.md"):
        assert (folder / name).is_file(), name
    assert set(load_file(str(folder / "rank_head.safetensors"))) == {"weight", "bias"}
    info = json.loads((folder / "r2r_training.json").read_text())
    assert info["prompt_version"] == prompts.PROMPT_VERSION
    assert info["base_model"] == str(tiny_lm_dir) and info["steps"] == 2
    assert DistillConfig.from_dict(info["config"]) == HEAD
    assert [r["step"] for r in info["loss_curve"]] == [1, 2] and info["validation"][-1]["step"] == 2
    assert info["data"]["sources"] == ["teacher"]
    card = (folder / "README.md").read_text()
    assert "Research use only" in card and "| 2 |" in card and "r2r teach" in card


def test_base_model_id_names_the_base_instead_of_its_cache_folder(tiny_lm_dir, tmp_path, dataset, recwarn):
    distill(tiny_lm_dir, dataset, tmp_path, DistillConfig(max_steps=1, **FAST), base_model_id="org/tiny-base")
    # saving never asks the hub whether "org/tiny-base" has a config (peft does unless told the embeddings stay)
    assert not [w for w in recwarn if "Could not find a config file" in str(w.message)]
    assert json.loads((tmp_path / "adapter_config.json").read_text())["base_model_name_or_path"] == "org/tiny-base"
    info = json.loads((tmp_path / "r2r_training.json").read_text())
    assert info["base_model"] == "org/tiny-base" and info["base_model_name"] == "tiny-base"
    assert str(tiny_lm_dir) not in (tmp_path / "README.md").read_text()
    assert Student.from_pretrained(tiny_lm_dir, adapter=tmp_path).scorer.score("q", ["a"]).values


def test_card_states_the_r2r_provenance(tiny_lm_dir, tmp_path):
    from r2r_agent.training.model_card import render_model_card

    card = render_model_card({"data": {"sources": ["r2r-import"]}, "config": {}, "loss_curve": [], "validation": []})
    assert "GPT-4" in card and "MS MARCO" in card and "no license" in card and "Research use only" in card


def test_teach_distill_load_rerank_end_to_end(tiny_lm_dir, head_run):
    folder = head_run[1]
    student = Student.from_pretrained(tiny_lm_dir, adapter=folder, max_new_tokens=6)
    assert student.adapter == str(folder)
    passages = ["fleas live score 9 days on a cat", "the earth orbit and the sun", "fleas live score 1 days"]
    ranking = Reranker(student, explain_top=2, compare_top=2).rerank("how long do fleas live", passages)
    assert sorted(j.text for j in ranking) == sorted(passages)
    assert all(isinstance(j.explanation, str) for j in ranking.judgments[:2])
    assert ranking.adapter == str(folder)


def test_a_run_started_from_an_adapter_begins_with_its_weights(tiny_lm_dir, tmp_path, dataset):
    first = DistillConfig(max_steps=2, learning_rate=5e-3, lora_r=4, lora_alpha=8, rank_weight=0.0, **FAST)
    distill(tiny_lm_dir, dataset, tmp_path / "first", first)
    config = DistillConfig(max_steps=1, rank_weight=0.0, init_adapter=str(tmp_path / "first"), **FAST)
    distiller = Distiller(tiny_lm_dir, dataset, tmp_path / "second", config)
    distiller._build()
    started = {k.replace(".default", ""): v for k, v in distiller.model.state_dict().items() if "lora_" in k}
    saved = _weights(tmp_path / "first")
    assert_same_tensors({k: started[k] for k in saved}, saved)  # the adapter's own rank 4, not the default 16
    distill(tiny_lm_dir, dataset, tmp_path / "second", config)
    card = (tmp_path / "second" / "README.md").read_text()
    assert "| init_adapter | first |" in card and "| lora_r | 4 |" in card and "| lora_alpha | 8 |" in card
    assert "Step 0 is the adapter it started from (first)." in card
    with pytest.raises(DistillError, match="no adapter_model.safetensors"):
        Distiller(tiny_lm_dir, dataset, tmp_path / "third",
                  DistillConfig(max_steps=1, init_adapter=str(tmp_path), **FAST))._build()
