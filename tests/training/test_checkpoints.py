"""Checkpoints of both trainers: read without running code, damaged ones skipped or named, old ones still read."""

from __future__ import annotations

import json
import logging
import random
import shutil

import pytest
import torch
from accelerate_worker import tiny_dataset

from r2r_agent.errors import R2RError
from r2r_agent.training import (
    DamagedCheckpointError,
    DistillConfig,
    EncoderDistillConfig,
    LoopConfig,
    UnsafeCheckpointError,
    distill,
    distill_encoder,
)
from r2r_agent.training.checkpoints import STATE_FILE, checkpoint_folders, load_trainer_state
from r2r_agent.training.rng import rng_state, set_rng_state

LM = DistillConfig(max_steps=2, checkpoint_every=1, rank_score="head", eval_at_start=False, max_eval_queries=2,
                   max_eval_explanations=4)
ENCODER = EncoderDistillConfig(max_steps=2, checkpoint_every=1, max_eval_queries=2, ranking_batch_size=2)
WEIGHTS = {"lm": "adapter_model.safetensors", "encoder": "encoder.safetensors"}


@pytest.fixture(scope="module")
def dataset():
    return tiny_dataset()


@pytest.fixture(scope="module")
def runs(tiny_lm_dir, encoder_dir, dataset, tmp_path_factory):
    """One finished run of each trainer with checkpoints at steps 1 and 2 (copied by each test)."""
    root = tmp_path_factory.mktemp("checkpointed")
    distill(tiny_lm_dir, dataset, root / "lm", LM)
    distill_encoder(encoder_dir, dataset, root / "encoder", ENCODER)
    return root


@pytest.fixture(params=["lm", "encoder"])
def trainer(request, runs, tmp_path, tiny_lm_dir, encoder_dir, dataset):
    """``(kind, output folder (a fresh copy), resume(**kwargs))`` for each trainer."""
    kind = request.param
    folder = tmp_path / kind
    shutil.copytree(runs / kind, folder)

    def resume(**kwargs):
        if kind == "lm":
            return distill(tiny_lm_dir, dataset, folder, LM, **kwargs)
        return distill_encoder(encoder_dir, dataset, folder, ENCODER, **kwargs)

    return kind, folder, resume


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return data[: len(data) // 2]


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling this creates the marker file: what a planted checkpoint could do
        return open, (str(self.marker), "w")


# ---- no code runs on resume --------------------------------------------------------------------------------------
def test_resume_refuses_a_state_file_that_would_run_code(trainer, tmp_path):
    kind, folder, resume = trainer
    latest = checkpoint_folders(folder)[0]
    state = torch.load(latest / STATE_FILE, weights_only=True)
    marker = tmp_path / "marker"
    torch.save({**state, "history": [_RunsCode(marker)]}, latest / STATE_FILE)
    with pytest.raises(UnsafeCheckpointError, match=f"{STATE_FILE}.*could run code") as refused:
        resume(resume=True)
    assert str(latest / STATE_FILE) in str(refused.value) and "delete" in str(refused.value)
    assert not marker.exists()


def test_generator_states_are_plain_data_and_older_tuple_states_still_restore():
    state = rng_state()
    assert set(state) >= {"python", "torch", "numpy"}
    assert isinstance(state["python"], list) and isinstance(state["numpy"], list)
    first = random.random()
    older = {**state, "python": (3, tuple(state["python"][1]), None), "numpy": tuple(state["numpy"])}
    set_rng_state(older)  # checkpoints written before kept Python's and numpy's states as tuples
    assert random.random() == first


def test_load_trainer_state_names_a_state_file_that_is_not_one(tmp_path):
    torch.save({"step": 1}, tmp_path / STATE_FILE)
    with pytest.raises(DamagedCheckpointError, match="is not a trainer state"):
        load_trainer_state(tmp_path, "a distillation", "hint")


# ---- damaged checkpoints ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("broken", ["weights", "state"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(trainer, broken, caplog):
    kind, folder, resume = trainer
    latest = checkpoint_folders(folder)[0]
    damaged = latest / (WEIGHTS[kind] if broken == "weights" else STATE_FILE)
    left = _truncate(damaged)
    with caplog.at_level(logging.WARNING):
        result = resume(resume=True)
    assert result.resumed_from == 1 and result.steps == 2
    assert str(damaged) in caplog.text and "checkpoint-0000001" in caplog.text
    kept = folder / "checkpoints" / f"damaged-{latest.name}" / damaged.name  # moved aside, never deleted
    assert kept.read_bytes() == left
    assert [p.name for p in checkpoint_folders(folder)] == ["checkpoint-0000002", "checkpoint-0000001"]


def test_no_usable_checkpoint_left_is_a_clear_error(trainer):
    kind, folder, resume = trainer
    for checkpoint in checkpoint_folders(folder):
        _truncate(checkpoint / WEIGHTS[kind])
    with pytest.raises(DamagedCheckpointError, match="every checkpoint is damaged") as failed:
        resume(resume=True)
    message = str(failed.value)
    assert isinstance(failed.value, R2RError) and "without --resume" in message and "delete" in message
    assert str(folder / "checkpoints" / "checkpoint-0000002" / WEIGHTS[kind]) in message
    assert all((p / WEIGHTS[kind]).is_file() for p in checkpoint_folders(folder))  # nothing deleted


def test_a_damaged_checkpoint_named_explicitly_is_a_clear_error(trainer):
    kind, folder, resume = trainer
    named = checkpoint_folders(folder)[0]
    _truncate(named / WEIGHTS[kind])
    with pytest.raises(DamagedCheckpointError, match=f"cannot resume from {named}.*resume=True"):
        resume(resume=named)


def test_r2r_distill_resume_names_the_damaged_file(runs, tmp_path, tiny_lm_dir, capsys):
    from test_distill_cli import r2r_row

    from r2r_agent.cli import main

    data = tmp_path / "r2r.jsonl"
    data.write_text("".join(json.dumps(r2r_row(str(q))) + "\n" for q in range(6)))
    common = ["distill", "--base", str(tiny_lm_dir), "--r2r-data", str(data), "-o", str(tmp_path / "a"),
              "--lm-weight", "0", "--checkpoint-every", "1", "--keep-checkpoints", "1", "--no-eval-at-start",
              "--no-progress", "--steps", "1"]
    assert main(common) == 0
    _truncate(tmp_path / "a" / "checkpoints" / "checkpoint-0000001" / "adapter_model.safetensors")
    assert main([*common, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "adapter_model.safetensors" in err and "without --resume" in err and "Traceback" not in err


# ---- one settings type -----------------------------------------------------------------------------------------
def test_configs_written_before_the_shared_base_still_read():
    # The config dicts of r2r_training.json / trainer_state.pt as written before LoopConfig (key order included).
    lm = {"max_steps": 2, "epochs": 1.0, "batch_size": 4, "ranking_batch_size": 1, "grad_accum": 1,
          "learning_rate": 0.0002, "weight_decay": 0.0, "warmup_steps": 0, "scheduler": "linear", "max_grad_norm": 1.0,
          "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": [], "lm_weight": 1.0,
          "rank_weight": 1.0, "ranking_loss": "listnet", "rank_score": "head", "target_temperature": 0.2,
          "label_weight": 1.0, "max_passage_tokens": 160, "max_comparison_passage_tokens": 96,
          "max_rank_passage_tokens": 256, "max_target_tokens": 128, "max_rank_passages": 20, "seed": 0,
          "checkpoint_every": 1, "keep_checkpoints": 2, "eval_every": 0, "eval_at_start": False,
          "max_eval_explanations": 4, "max_eval_queries": 2, "eval_k": 5, "log_every": 10, "device": "cpu",
          "use_accelerate": False, "mixed_precision": "no"}
    encoder = {"max_steps": 2, "epochs": 1.0, "ranking_batch_size": 4, "grad_accum": 1, "learning_rate": 2e-05,
               "weight_decay": 0.01, "warmup_steps": 0, "scheduler": "linear", "max_grad_norm": 1.0,
               "ranking_loss": "listnet", "scale": 20.0, "target_temperature": 0.2, "label_weight": 1.0,
               "max_rank_passages": 20, "max_tokens": None, "seed": 0, "checkpoint_every": 1, "keep_checkpoints": 2,
               "eval_every": 0, "max_eval_queries": 2, "eval_k": 5, "select_on": "mean", "min_gain": 0.0,
               "log_every": 10, "device": "cpu", "use_accelerate": False, "mixed_precision": "no"}
    assert DistillConfig.from_dict(lm) == DistillConfig(max_steps=2, rank_score="head", checkpoint_every=1,
                                                        eval_at_start=False, max_eval_explanations=4,
                                                        max_eval_queries=2)
    assert EncoderDistillConfig.from_dict(encoder) == EncoderDistillConfig(max_steps=2, checkpoint_every=1,
                                                                           max_eval_queries=2)
    # fields added since (init_adapter) read as their defaults and are written back as such
    assert DistillConfig.from_dict(lm).to_dict() == {**lm, "init_adapter": None}
    assert EncoderDistillConfig.from_dict(encoder).to_dict() == encoder


def test_shared_settings_are_declared_once_in_loop_config():
    import dataclasses

    shared = {f.name: f for f in dataclasses.fields(LoopConfig)}
    for config in (DistillConfig, EncoderDistillConfig):
        fields = {f.name: f for f in dataclasses.fields(config)}
        for name, base in shared.items():
            assert fields[name].metadata["help"] == base.metadata["help"], (config.__name__, name)
    own = {f.name for f in dataclasses.fields(DistillConfig)} & {f.name for f in dataclasses.fields(
        EncoderDistillConfig)}
    assert own == set(shared)  # every field both trainers have lives in the base
    assert (EncoderDistillConfig().learning_rate, DistillConfig().learning_rate) == (2e-5, 2e-4)
