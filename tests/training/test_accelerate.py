"""Both trainers under ``accelerate``: one process matches the plain loop, mixed precision, two DDP processes on CPU."""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from safetensors.torch import load_file

from r2r_agent import Student
from r2r_agent.errors import InvalidInputError
from r2r_agent.training import DistillConfig, DistillError, EncoderDistillConfig, distill, distill_encoder
from r2r_agent.training.runtime import LocalRuntime, make_runtime

WORKER = Path(__file__).with_name("accelerate_worker.py")
sys.path.insert(0, str(WORKER.parent))
from accelerate_worker import tiny_dataset  # noqa: E402
from conftest import assert_same_tensors, train_interrupted_and_resumed  # noqa: E402

LM = {"max_steps": 3, "batch_size": 2, "lora_dropout": 0.0, "learning_rate": 5e-3, "eval_at_start": False,
      "max_eval_queries": 2, "max_eval_explanations": 4}
ENCODER = {"max_steps": 3, "ranking_batch_size": 2, "learning_rate": 1e-3, "max_eval_queries": 2}


@pytest.fixture(scope="module")
def dataset():
    return tiny_dataset()


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """accelerate keeps one process-wide state; each test starts its own runtime from scratch."""
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def _adapter(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "adapter_model.safetensors"))


def _encoder(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _runtime(folder: Path) -> dict:
    return json.loads((folder / "r2r_training.json").read_text())["runtime"]


def test_the_plain_loop_needs_no_accelerate():
    assert isinstance(make_runtime(DistillConfig()), LocalRuntime)
    assert type(make_runtime(DistillConfig(use_accelerate=True))).__name__ == "Accelerator"


def test_bad_runtime_settings_are_clear_errors(monkeypatch):
    with pytest.raises(InvalidInputError, match="mixed_precision must be one of"):
        DistillConfig(mixed_precision="fp8")
    with pytest.raises(InvalidInputError, match="mixed_precision must be one of"):
        EncoderDistillConfig(mixed_precision="half")
    with pytest.raises(DistillError, match="unknown torch device 'gpu'"):
        make_runtime(DistillConfig(device="gpu"))
    monkeypatch.setitem(sys.modules, "accelerate", None)  # as if the training extra were not installed
    with pytest.raises(DistillError, match=r"pip install 'r2r-agent\[training\]'"):
        make_runtime(DistillConfig(use_accelerate=True))


def test_one_accelerate_process_trains_the_lm_exactly_like_the_plain_loop(tiny_lm_dir, tmp_path, dataset):
    plain = distill(tiny_lm_dir, dataset, tmp_path / "plain", DistillConfig(**LM, grad_accum=2))
    accelerated = distill(tiny_lm_dir, dataset, tmp_path / "accelerate",
                          DistillConfig(**LM, grad_accum=2, use_accelerate=True))
    a, b = _adapter(tmp_path / "plain"), _adapter(tmp_path / "accelerate")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert accelerated.history == plain.history
    assert _runtime(tmp_path / "plain")["runtime"] == "LocalRuntime"
    assert _runtime(tmp_path / "accelerate") == {"runtime": "Accelerator", "processes": 1, "mixed_precision": "no",
                                                 "device": "cpu"}


def test_one_accelerate_process_trains_the_encoder_exactly_like_the_plain_loop(encoder_dir, tmp_path, dataset):
    distill_encoder(encoder_dir, dataset, tmp_path / "plain", EncoderDistillConfig(**ENCODER, grad_accum=2))
    distill_encoder(encoder_dir, dataset, tmp_path / "accelerate",
                    EncoderDistillConfig(**ENCODER, grad_accum=2, use_accelerate=True))
    a, b = _encoder(tmp_path / "plain"), _encoder(tmp_path / "accelerate")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_plain_checkpoint_resumes_under_accelerate_to_the_same_weights(tiny_lm_dir, tmp_path, dataset):
    config = DistillConfig(**{**LM, "max_steps": 4}, checkpoint_every=2)

    def train(folder, **kwargs):  # the resumed part runs under accelerate
        chosen = dataclasses.replace(config, use_accelerate=True) if kwargs.get("resume") else config
        return distill(tiny_lm_dir, dataset, folder, chosen, **kwargs)

    train_interrupted_and_resumed(train, tmp_path)
    assert_same_tensors(_adapter(tmp_path / "straight"), _adapter(tmp_path / "resumed"))


def test_bf16_mixed_precision_trains_and_the_adapter_loads(tiny_lm_dir, tmp_path, dataset):
    result = distill(tiny_lm_dir, dataset, tmp_path / "bf16", DistillConfig(**LM, mixed_precision="bf16"))
    assert all(math.isfinite(r["loss"]) for r in result.history)
    assert _runtime(tmp_path / "bf16")["mixed_precision"] == "bf16"
    plain = _adapter(tmp_path / "bf16")
    assert all(t.dtype == torch.float32 for t in plain.values())  # weights stay fp32; only the compute is bf16
    student = Student.from_pretrained(tiny_lm_dir, adapter=tmp_path / "bf16")
    scores = student.scorer.score("how long do fleas live", ["fleas live score 9 days", "the sun"]).values
    assert student.adapter == str(tmp_path / "bf16") and len(scores) == 2 and all(map(math.isfinite, scores))


def _launch_two_processes(trainer: str, base: Path, output: Path, settings: dict) -> None:
    # torchrun starts the DDP processes (gloo on CPU); accelerate inside the trainer joins them.
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(WORKER), trainer, str(base), str(output), json.dumps(settings)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow  # two torchrun processes: ~13 s each; `make test` runs them
@pytest.mark.parametrize("trainer", ["lm", "encoder"])
def test_two_ddp_processes_equal_one_process_with_twice_the_accumulation(trainer, tiny_lm_dir, encoder_dir, tmp_path,
                                                                         dataset):
    # Process p takes micro-batch 2k + p of the stream; one process with grad_accum=2 takes 2k and 2k + 1. DDP
    # averages the two gradients, accumulation sums the halves: the same step up to float rounding.
    if trainer == "lm":
        base, settings, read = tiny_lm_dir, LM, _adapter
        distill(base, dataset, tmp_path / "one", DistillConfig(**settings, grad_accum=2))
    else:
        # dropout off: each process draws its own masks, one process draws them in sequence
        base, settings, read = tmp_path / "encoder", ENCODER, _encoder
        shutil.copytree(encoder_dir, base)
        config = json.loads((base / "config.json").read_text())
        config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        (base / "config.json").write_text(json.dumps(config))
        distill_encoder(base, dataset, tmp_path / "one", EncoderDistillConfig(**settings, grad_accum=2))
    _launch_two_processes(trainer, base, tmp_path / "two", settings)
    one, two = read(tmp_path / "one"), read(tmp_path / "two")
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-4)
    if trainer == "lm":  # LoRA's B starts at zero
        assert any(one[k].abs().max() > 0 for k in one if "lora_B" in k)
    else:
        start = _encoder(base)
        assert any(not torch.equal(start[k], one[k]) for k in one)
    assert _runtime(tmp_path / "two")["processes"] == 2
    assert not (tmp_path / "two" / "checkpoints").exists()


@pytest.mark.slow  # a torchrun launch: ~12 s
def test_r2r_distill_under_torchrun_reports_once_with_the_mean_loss(tiny_lm_dir, tmp_path):
    from test_distill_cli import r2r_row

    data = tmp_path / "r2r.jsonl.gz"
    with gzip.open(data, "wt", encoding="utf-8") as handle:
        for q in range(8):
            handle.write(json.dumps(r2r_row(str(q))) + "\n")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
               "r2r_agent.cli", "distill", "--base", str(tiny_lm_dir), "--r2r-data", str(data), "-o",
               str(tmp_path / "out"), "--steps", "2", "--no-eval-at-start", "--no-progress"]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("adapter written to") == 1 and done.stdout.count("data: 7 training queries") == 1
    info = json.loads((tmp_path / "out" / "r2r_training.json").read_text())
    assert info["runtime"]["processes"] == 2 and info["steps"] == 2
