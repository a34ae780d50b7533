"""TransformersTeacher on the tiny random LM, and choosing teachers with --teacher KIND:ARG (r2r teach)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from r2r_agent import prompts
from r2r_agent.cli import build_parser, main
from r2r_agent.errors import InvalidInputError
from r2r_agent.training import (
    AnnotationConfig,
    AnnotationRequest,
    OpenAIChatTeacher,
    TeacherError,
    TeacherSettings,
    TransformersTeacher,
    annotate,
    cli_teach,
    parse_teacher_spec,
)

MESSAGES = prompts.teacher_listwise_messages("how long do fleas live", ["fleas live two weeks", "cats"])


@pytest.fixture(scope="module")
def tiny_adapter(tiny_lm_dir, tmp_path_factory) -> Path:
    """A LoRA adapter for the tiny LM (random, but a real PEFT folder)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir, local_files_only=True)
    model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    folder = tmp_path_factory.mktemp("tiny-adapter")
    model.save_pretrained(folder)
    return folder


def test_greedy_answers_are_strings_and_deterministic(tiny_lm_dir):
    teacher = TransformersTeacher(tiny_lm_dir, max_new_tokens=6)
    first = teacher.complete(MESSAGES)
    assert isinstance(first, str) and first == teacher.complete(MESSAGES)
    assert TransformersTeacher(tiny_lm_dir, max_new_tokens=6).complete(MESSAGES) == first  # a fresh load too


def test_sampling_is_reproducible_per_seed_and_leaves_the_global_rng_alone(tiny_lm_dir):
    import torch

    state = torch.random.get_rng_state()
    sampled = TransformersTeacher(tiny_lm_dir, max_new_tokens=8, temperature=1.5, seed=3)
    answer = sampled.complete(MESSAGES)
    assert sampled.complete(MESSAGES) == answer
    assert TransformersTeacher(tiny_lm_dir, max_new_tokens=8, temperature=1.5, seed=3).complete(MESSAGES) == answer
    assert torch.equal(torch.random.get_rng_state(), state)


def test_name_names_the_folder_and_every_setting_that_changes_answers(tiny_lm_dir, tiny_adapter):
    folder = Path(tiny_lm_dir).name
    greedy = TransformersTeacher(tiny_lm_dir, max_new_tokens=6)
    assert greedy.name == f"transformers:{folder}[greedy,max_new_tokens=6,dtype=float32]"
    names = {greedy.name,
             TransformersTeacher(tiny_lm_dir, max_new_tokens=7).name,
             TransformersTeacher(tiny_lm_dir, max_new_tokens=6, temperature=0.7).name,
             TransformersTeacher(tiny_lm_dir, max_new_tokens=6, temperature=0.7, seed=1).name,
             TransformersTeacher(tiny_lm_dir, max_new_tokens=6, dtype="bfloat16").name,
             TransformersTeacher(tiny_lm_dir, max_new_tokens=6, adapter=tiny_adapter).name}
    assert len(names) == 6
    assert f"+{Path(tiny_adapter).name}[" in TransformersTeacher(tiny_lm_dir, adapter=tiny_adapter).name
    assert TransformersTeacher(tiny_lm_dir, name="mine").name == "mine"
    assert TransformersTeacher(tiny_lm_dir, max_new_tokens=4, adapter=tiny_adapter).complete(MESSAGES) is not None


def test_errors_are_clear(tiny_lm_dir, tmp_path):
    with pytest.raises(InvalidInputError, match="local model folder with a config.json"):
        TransformersTeacher(tmp_path / "missing")
    with pytest.raises(InvalidInputError, match="PEFT adapter folder"):
        TransformersTeacher(tiny_lm_dir, adapter=tmp_path)
    with pytest.raises(InvalidInputError, match="max_new_tokens must be an int >= 1"):
        TransformersTeacher(tiny_lm_dir, max_new_tokens=0)
    with pytest.raises(InvalidInputError, match="temperature must be >= 0"):
        TransformersTeacher(tiny_lm_dir, temperature=-1)
    short = TransformersTeacher(tiny_lm_dir, max_new_tokens=4, context_length=16)
    with pytest.raises(TeacherError, match=r"the prompt is \d+ tokens but the model's context is 16 tokens"):
        short.complete(MESSAGES)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with pytest.raises(TeacherError, match="could not load a causal LM"):
        TransformersTeacher(broken).load()


def test_annotate_records_unparseable_answers_without_crashing(tiny_lm_dir):
    teacher = TransformersTeacher(tiny_lm_dir, max_new_tokens=6)
    requests = [AnnotationRequest(f"q{q}", "how long do fleas live", [f"fleas live {i} days" for i in range(4)])
                for q in range(2)]
    run = annotate(teacher, requests, config=AnnotationConfig(window_size=3, stride=2, max_attempts=1))
    assert (run.windows, run.failed) == (4, 4)  # a random LM writes no JSON ranking
    for annotation in run.annotations:
        assert annotation.order == (0, 1, 2, 3)  # failed windows leave the first-stage order
        assert all(w.error and w.error.startswith("ParseError") and isinstance(w.response, str)
                   and w.teacher == teacher.name for w in annotation.windows)


# --- choosing a teacher -----------------------------------------------------------------------------------------


def test_teacher_specs_are_an_explicit_registry():
    assert parse_teacher_spec("transformers:/m/q:7b") == ("transformers", "/m/q:7b")
    for bad in ("gpt-4o", "openai:", "huggingface:x", "Openai:x"):
        with pytest.raises(InvalidInputError, match="openai:MODEL, transformers:PATH"):
            parse_teacher_spec(bad)
    with pytest.raises(InvalidInputError, match="needs --teacher-url"):
        TeacherSettings(teacher="openai:m").build()
    with pytest.raises(InvalidInputError, match="no teacher given"):
        TeacherSettings().build()


def _teach_args(*flags: str):
    return build_parser().parse_args(["teach", "--candidates", "c", "--cache", "c", *flags])


def test_teach_flags_build_either_kind(tiny_lm_dir, monkeypatch):
    teacher = cli_teach.build_teacher(_teach_args("--teacher", f"transformers:{tiny_lm_dir}",
                                                  "--teacher-max-tokens", "5", "--temperature", "0.5"))
    assert isinstance(teacher, TransformersTeacher)
    assert (teacher.max_new_tokens, teacher.temperature, teacher._model) == (5, 0.5, None)  # loaded lazily
    monkeypatch.setenv("K", "sk-1")
    for flags in (("--teacher", "openai:m", "--teacher-url", "http://h/v1"), ("--base-url", "http://h/v1", "--model",
                                                                               "m")):
        remote = cli_teach.build_teacher(_teach_args(*flags, "--api-key-env", "K", "--timeout", "5"))
        assert isinstance(remote, OpenAIChatTeacher)
        assert (remote.model, remote.base_url, remote.api_key, remote.timeout) == ("m", "http://h/v1", "sk-1", 5.0)
    with pytest.raises(InvalidInputError, match="pass one of them, not both"):
        cli_teach.build_teacher(_teach_args("--teacher", "openai:a", "--model", "b", "--base-url", "u"))


def test_r2r_teach_with_a_local_model(tmp_path, tiny_lm_dir, capsys, no_network):
    candidates = tmp_path / "c.jsonl.gz"
    with gzip.open(candidates, "wt", encoding="utf-8") as handle:
        for q in range(2):
            row = {"qid": f"q{q}", "query": "how long do fleas live",
                   "candidates": [{"docid": f"d{i}", "text": f"fleas live {i} days", "score": 1.0} for i in range(3)]}
            handle.write(json.dumps(row) + "\n")
    argv = ["teach", "--candidates", str(candidates), "--teacher", f"transformers:{tiny_lm_dir}",
            "--teacher-max-tokens", "4", "--cache", str(tmp_path / "t.sqlite"), "--max-attempts", "1",
            "--no-progress"]
    assert main(argv) == 1  # a random LM writes no JSON ranking: every window fails, so the run fails
    captured = capsys.readouterr()
    assert f"annotated 2 queries with transformers:{Path(tiny_lm_dir).name}[greedy,max_new_tokens=4" in captured.out
    assert "2 windows (0 from the cache, 2 failed)" in captured.out
    assert "2 of 2 windows failed" in captured.err and "ParseError" in captured.err
    assert not (tmp_path / "t.annotations.jsonl.gz").exists()
    assert main(["teach", "--candidates", str(candidates), "--teacher", "transformers:/no/such/folder",
                 "--cache", str(tmp_path / "t.sqlite")]) == 2
    assert "local model folder with a config.json" in capsys.readouterr().err
