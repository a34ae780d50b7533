"""Checkpoints and settings of both trainers: configs written before the shared base still read."""

from __future__ import annotations

import dataclasses

from r2r_agent.training import DistillConfig, EncoderDistillConfig, LoopConfig


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
    assert DistillConfig.from_dict(lm).to_dict() == lm and EncoderDistillConfig.from_dict(encoder).to_dict() == encoder


def test_shared_settings_are_declared_once_in_loop_config():
    shared = {f.name: f for f in dataclasses.fields(LoopConfig)}
    for config in (DistillConfig, EncoderDistillConfig):
        fields = {f.name: f for f in dataclasses.fields(config)}
        for name, base in shared.items():
            assert fields[name].metadata["help"] == base.metadata["help"], (config.__name__, name)
    own = {f.name for f in dataclasses.fields(DistillConfig)} & {f.name for f in dataclasses.fields(
        EncoderDistillConfig)}
    assert own == set(shared)  # every field both trainers have lives in the base
    assert (EncoderDistillConfig().learning_rate, DistillConfig().learning_rate) == (2e-5, 2e-4)
