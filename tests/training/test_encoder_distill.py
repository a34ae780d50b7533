"""Encoder distillation on a tiny in-process BERT: losses, validation vs the base, exact resume, output, CLI."""

from __future__ import annotations

import gzip
import json
import math

import pytest
import torch
from conftest import assert_same_tensors, keyword_reply, train_interrupted_and_resumed
from safetensors.torch import load_file
from test_distill_cli import r2r_row

from r2r_agent import EncoderScorer
from r2r_agent.cli import build_parser, main
from r2r_agent.errors import InvalidInputError
from r2r_agent.training import (
    AnnotationRequest,
    DatasetConfig,
    DistillError,
    EncoderDistillConfig,
    EncoderDistiller,
    ScriptedTeacher,
    annotate,
    build_dataset,
    distill_encoder,
)
from r2r_agent.training.dataset import DatasetSplit, DistillationDataset
from r2r_agent.training.encoder_distill import BaseComparison, compare_to_base, selection_value
from r2r_agent.training.model_card import render_encoder_model_card

FAST = {"max_eval_queries": 4, "ranking_batch_size": 2}


@pytest.fixture(scope="module")
def dataset():
    """The keyword teacher ranks by the "score N" in each passage; the best passage is also labelled relevant."""
    teacher = ScriptedTeacher(default=keyword_reply, name="keyword")
    requests = []
    for q in range(16):
        values = [(3 * q + 5 * i) % 10 for i in range(4)]
        requests.append(AnnotationRequest(str(q), f"how long do fleas live {q}",
                                          [f"fleas live score {v} days on a cat" for v in values],
                                          labels=[int(v == max(values)) for v in values]))
    run = annotate(teacher, requests)
    return build_dataset(run.annotations, DatasetConfig(validation_fraction=0.25, explain_top=1))


def _weights(folder):
    return load_file(str(folder / "model.safetensors"))


# ---- config and comparison -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, field", [
    ({"ranking_batch_size": 0}, "ranking_batch_size"), ({"learning_rate": 0.0}, "learning_rate"),
    ({"max_steps": 0}, "max_steps"), ({"scale": -1.0}, "scale"), ({"ranking_loss": "lambda"}, "ranking_loss"),
    ({"scheduler": "cosine"}, "scheduler"), ({"select_on": "mrr"}, "select_on"), ({"max_tokens": 4}, "max_tokens"),
    ({"min_gain": -0.1}, "min_gain"), ({"max_eval_queries": 0}, "max_eval_queries"), ({"grad_accum": 0}, "grad_accum"),
])
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(InvalidInputError, match=f"EncoderDistillConfig.{field}"):
        EncoderDistillConfig(**kwargs)


def test_config_round_trips():
    config = EncoderDistillConfig(max_steps=3, max_tokens=64, ranking_loss="ranknet")
    assert EncoderDistillConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(InvalidInputError, match="unknown fields \\['lora_r'\\]"):
        EncoderDistillConfig.from_dict({"lora_r": 4})


def test_comparison_with_the_base():
    validation = [{"step": 0, "ndcg_teacher": 0.6, "ndcg_labels": 0.4},
                  {"step": 5, "ndcg_teacher": 0.7, "ndcg_labels": 0.35}]
    assert selection_value(validation[1], "mean") == pytest.approx(0.525)
    assert compare_to_base(validation, "ndcg_teacher").beats_base
    assert not compare_to_base(validation, "ndcg_labels").beats_base
    assert compare_to_base(validation, "mean").beats_base  # 0.525 > 0.5
    assert not compare_to_base(validation, "mean", min_gain=0.05).beats_base
    assert not compare_to_base(validation[1:], "mean").beats_base  # no base measured: never "better"
    assert not compare_to_base(validation[:1], "mean").beats_base  # nothing trained
    assert compare_to_base(validation, "mean").to_dict()["gain"] == pytest.approx(0.025)
    assert not BaseComparison("ndcg_labels", None, 0.9).beats_base


def test_nothing_to_train_or_validate_is_a_clear_error(encoder_dir, tmp_path, dataset):
    with pytest.raises(DistillError, match="nothing to train"):
        EncoderDistiller(encoder_dir, DistillationDataset(DatasetSplit(), DatasetSplit()), tmp_path)
    no_validation = DistillationDataset(dataset.train, DatasetSplit())
    with pytest.raises(DistillError, match="validation_fraction"):
        EncoderDistiller(encoder_dir, no_validation, tmp_path)


# ---- training --------------------------------------------------------------------------------------------------
def test_training_lowers_the_loss_and_validates_at_start_and_end(encoder_dir, tmp_path, dataset):
    config = EncoderDistillConfig(max_steps=12, learning_rate=1e-3, ranking_batch_size=4, eval_every=6,
                                  max_eval_queries=4)
    result = distill_encoder(encoder_dir, dataset, tmp_path, config)
    assert [r["step"] for r in result.validation] == [0, 6, 12] and result.steps == 12
    first, last = result.validation[0], result.validation[-1]
    assert last["rank_loss"] < first["rank_loss"]
    losses = [r["loss"] for r in result.history]
    assert all(math.isfinite(x) for x in losses) and sum(losses[-4:]) < sum(losses[:4])
    for record in result.validation:
        assert 0.0 <= record["ndcg_teacher"] <= 1.0 and 0.0 <= record["ndcg_labels"] <= 1.0
    assert result.comparison.base == pytest.approx(selection_value(first, "mean"))


@pytest.mark.parametrize("loss", ["listnet", "ranknet"])
def test_the_output_loads_with_the_encoder_scorer_and_scores_as_trained(encoder_dir, tmp_path, dataset, loss):
    config = EncoderDistillConfig(max_steps=2, learning_rate=1e-3, ranking_loss=loss, max_tokens=32, **FAST)
    distiller = EncoderDistiller(encoder_dir, dataset, tmp_path / "out", config)
    distiller.train()
    example = dataset.validation.rankings[0]
    distiller.model.eval()
    with torch.no_grad():
        trained = distiller.encoder_scores([example.query], [list(example.passages)])[0] / config.scale
    loaded = EncoderScorer.from_pretrained(tmp_path / "out")
    assert loaded.max_tokens == 32  # the budget it was trained with comes back from sentence_bert_config.json
    assert loaded.score(example.query, example.passages).values == pytest.approx(trained.tolist(), abs=1e-5)
    base = EncoderScorer.from_pretrained(encoder_dir, max_tokens=32).score(example.query, example.passages).values
    assert base != pytest.approx(trained.tolist(), abs=1e-5)  # it did train


def test_interrupted_and_resumed_run_ends_with_the_same_weights(encoder_dir, tmp_path, dataset):
    config = EncoderDistillConfig(max_steps=4, grad_accum=2, checkpoint_every=2, eval_every=2, learning_rate=1e-3,
                                  warmup_steps=1, seed=7, **FAST)
    straight, resumed = train_interrupted_and_resumed(
        lambda folder, **kwargs: distill_encoder(encoder_dir, dataset, folder, config, **kwargs), tmp_path)
    assert_same_tensors(_weights(tmp_path / "straight"), _weights(tmp_path / "resumed"))
    assert resumed.history == straight.history
    assert resumed.validation == straight.validation
    assert resumed.comparison == straight.comparison


def test_a_different_seed_gives_different_weights(encoder_dir, tmp_path, dataset):
    config = EncoderDistillConfig(max_steps=1, learning_rate=1e-3, **FAST)
    distill_encoder(encoder_dir, dataset, tmp_path / "a", config)
    distill_encoder(encoder_dir, dataset, tmp_path / "a2", config)
    distill_encoder(encoder_dir, dataset, tmp_path / "b", EncoderDistillConfig(**{**config.to_dict(), "seed": 1}))
    a, a2, b = _weights(tmp_path / "a"), _weights(tmp_path / "a2"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], a2[k]) for k in a)  # same seed, same weights
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_resume_with_other_training_settings_is_rejected(encoder_dir, tmp_path, dataset):
    config = EncoderDistillConfig(max_steps=2, checkpoint_every=1, **FAST)
    distill_encoder(encoder_dir, dataset, tmp_path, config)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["checkpoint-0000001",
                                                                             "checkpoint-0000002"]
    changed = EncoderDistillConfig(**{**config.to_dict(), "scale": 10.0, "max_steps": 3})
    with pytest.raises(DistillError, match="scale"):
        distill_encoder(encoder_dir, dataset, tmp_path, changed, resume=True)
    with pytest.raises(DistillError, match="not an encoder distillation checkpoint"):
        distill_encoder(encoder_dir, dataset, tmp_path, config, resume=tmp_path / "nowhere")


def test_output_folder_metadata_and_card_state_whether_it_beats_the_base(encoder_dir, tmp_path, dataset):
    config = EncoderDistillConfig(max_steps=2, **FAST)
    result = distill_encoder(encoder_dir, dataset, tmp_path, config, base_name="tiny-bert")
    for name in ("model.safetensors", "config.json", "tokenizer_config.json", "sentence_bert_config.json",
                 "r2r_training.json", "README.md"):
        assert (tmp_path / name).is_file(), name
    info = json.loads((tmp_path / "r2r_training.json").read_text())
    assert info["format"] == "r2r-agent-encoder" and info["base_model"] == str(encoder_dir) and info["steps"] == 2
    assert info["base_model_name"] == "tiny-bert"
    assert EncoderDistillConfig.from_dict(info["config"]) == config
    assert info["beats_base"] is result.beats_base and info["comparison"]["beats_base"] is result.beats_base
    assert [r["step"] for r in info["validation"]] == [0, 2] and [r["step"] for r in info["loss_curve"]] == [1, 2]
    assert info["data"]["sources"] == ["teacher"] and info["data"]["validation_rankings_scored"] == 4
    card = (tmp_path / "README.md").read_text()
    assert "Research use only" in card and "| 2 |" in card and "r2r teach" in card and "from tiny-bert" in card
    assert ("It beats the untrained" in card) is result.beats_base
    assert ("does not beat the untrained" in card) is (not result.beats_base)


@pytest.mark.parametrize("beats", [True, False])
def test_card_verdict_and_r2r_provenance(beats):
    info = {"base_model_name": "all-MiniLM-L6-v2", "beats_base": beats, "data": {"sources": ["r2r-import"]},
            "config": {"eval_k": 5, "ranking_loss": "listnet", "scale": 20.0},
            "comparison": {"metric": "ndcg_teacher", "base": 0.61, "final": 0.65 if beats else 0.6},
            "loss_curve": [{"step": 1, "loss": 1.2, "lr": 2e-5}],
            "validation": [{"step": 0, "rank_loss": 1.3, "ndcg_teacher": 0.61, "ndcg_labels": None}]}
    card = render_encoder_model_card(info)
    assert "GPT-4" in card and "no license" in card and "Research use only" in card and "this encoder" in card
    if beats:
        assert "It beats the untrained all-MiniLM-L6-v2 on validation" in card and "0.6100 to 0.6500" in card
    else:
        assert "does not beat the untrained all-MiniLM-L6-v2" in card and "Keep using the base" in card


# ---- CLI -------------------------------------------------------------------------------------------------------
def _r2r_file(tmp_path, queries=8):
    path = tmp_path / "r2r.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for q in range(queries):
            handle.write(json.dumps(r2r_row(str(q))) + "\n")
    return path


def test_encoder_flags_are_derived_from_the_config():
    args = build_parser().parse_args(["distill", "--encoder", "-o", "out", "--r2r-data", "x", "--steps", "5",
                                      "--lr", "1e-4", "--scale", "10", "--max-tokens", "64", "--select-on",
                                      "ndcg_labels"])
    from r2r_agent.training.cli_distill import encoder_config

    config = encoder_config(args)
    assert (config.max_steps, config.learning_rate, config.scale, config.max_tokens, config.select_on) == \
        (5, 1e-4, 10.0, 64, "ndcg_labels")
    assert config.weight_decay == EncoderDistillConfig().weight_decay  # unset flags keep the encoder defaults


def test_distill_encoder_cli_on_r2r_rows_and_resume(tmp_path, encoder_dir, capsys, no_network):
    data = _r2r_file(tmp_path)
    out = tmp_path / "enc"
    common = ["distill", "--encoder", "--base", str(encoder_dir), "--r2r-data", str(data), "-o", str(out),
              "--validation-fraction", "0.25", "--lr", "1e-3", "--checkpoint-every", "1", "--no-progress"]
    assert main([*common, "--steps", "2"]) == 0
    printed = capsys.readouterr().out
    assert "6 training queries (6 rankings), 2 validation queries" in printed
    assert "validation step 0 (untrained base)" in printed and "validation step 2:" in printed
    assert "the base on validation (mean: base " in printed and "EncoderScorer.from_pretrained" in printed
    assert main([*common, "--steps", "3", "--resume"]) == 0
    assert "trained 3 steps (1 in this run" in capsys.readouterr().out
    info = json.loads((out / "r2r_training.json").read_text())
    assert info["data"]["sources"] == ["r2r-import"] and info["steps"] == 3 and isinstance(info["beats_base"], bool)
    assert info["validation"][0]["ndcg_labels"] is not None  # the R2R rows carry labels
    assert "GPT-4" in (out / "README.md").read_text()
    scorer = EncoderScorer.from_pretrained(out)
    assert len(scorer.score("how long do fleas live", ["fleas live 3 days", "cats"]).values) == 2


def test_lm_only_flags_are_rejected_with_encoder(tmp_path, encoder_dir, capsys):
    data = _r2r_file(tmp_path)
    assert main(["distill", "--encoder", "--base", str(encoder_dir), "--r2r-data", str(data), "-o",
                 str(tmp_path / "x"), "--lora-r", "4", "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "--lora-r" in error and "--encoder" in error
    assert not (tmp_path / "x").exists()
