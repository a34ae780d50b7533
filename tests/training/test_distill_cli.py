"""`r2r teach` and `r2r distill` through the core CLI's plugin hook, on a scripted teacher and the tiny LM."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import keyword_reply

from r2r_agent import Reranker, Student
from r2r_agent.cli import build_parser, main
from r2r_agent.training import ScriptedTeacher, cli_teach
from r2r_agent.training.teacher_choice import teacher_settings_from_args

DATA = Path(os.environ.get("R2R_DATA_DIR") or Path(__file__).resolve().parents[3] / "shared" / "data")


def write_candidates(path: Path, queries: int = 8) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for q in range(queries):
            row = {"qid": f"q{q}", "query": f"how long do fleas live {q}",
                   "candidates": [{"docid": f"d{q}-{i}", "score": 10.0 - i,
                                   "text": f"fleas live score {(3 * q + 5 * i) % 10} days"} for i in range(4)]}
            handle.write(json.dumps(row) + "\n")
    return path


def r2r_row(qid: str) -> dict:
    return {"query": f"how long do fleas live {qid}", "qid": qid,
            "unsorted_docs": ["fleas live 3 days", "cats", "fleas live score 9 days"], "re_rank_id": [3, 1, 2],
            "sorted_docids": ["c", "a", "b"], "scores": ["0", "0", "1"],
            "reason": {"ranked_passages": [
                {"identifier": i, "direct_reason": f"direct {i}", "listwise_reason": f"listwise {i}"}
                for i in (3, 1, 2)]}}


def test_plugin_modules_import_nothing_heavy():
    code = ("import sys, r2r_agent.training.cli_teach, r2r_agent.training.cli_distill; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'httpx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_both_commands_are_registered_with_config_derived_flags():
    parser = build_parser()
    args = parser.parse_args(["distill", "-o", "out", "--r2r-data", "x.jsonl.gz", "--steps", "5", "--lr", "1e-3",
                              "--lora-r", "4", "--rank-score", "head", "--no-eval-at-start"])
    assert (args.max_steps, args.learning_rate, args.lora_r, args.rank_score, args.eval_at_start) == \
        (5, 1e-3, 4, "head", False)
    assert args.batch_size is None  # unset flags keep the DistillConfig default
    args = parser.parse_args(["teach", "--candidates", "c.jsonl.gz", "--base-url", "http://x/v1", "--model", "m",
                              "--cache", "c.sqlite", "--window-size", "4", "--stride", "2"])
    assert (args.window_size, args.stride, args.api_key_env) == (4, 2, None)  # None: the TeacherSettings default
    assert teacher_settings_from_args(args, legacy_model=args.model).api_key_env == "OPENAI_API_KEY"


def test_teacher_reads_the_key_from_the_named_env_var(monkeypatch):
    monkeypatch.setenv("MY_TEACHER_KEY", "sk-test")
    args = build_parser().parse_args(["teach", "--candidates", "c", "--base-url", "http://h:1/v1", "--model", "m",
                                      "--cache", "c", "--api-key-env", "MY_TEACHER_KEY", "--teacher-name", "m-t0"])
    teacher = cli_teach.build_teacher(args)
    assert teacher.api_key == "sk-test" and teacher.name == "m-t0" and teacher.url == "http://h:1/v1/chat/completions"


def test_teach_then_distill_then_load_and_rerank(tmp_path, tiny_lm_dir, monkeypatch, capsys, no_network):
    teacher = ScriptedTeacher(default=keyword_reply, name="keyword")
    monkeypatch.setattr(cli_teach, "build_teacher", lambda args: teacher)
    candidates = write_candidates(tmp_path / "cands.jsonl.gz")
    teach = ["teach", "--candidates", str(candidates), "--base-url", "http://unused/v1", "--model", "keyword",
             "--cache", str(tmp_path / "teacher.sqlite"), "--window-size", "3", "--stride", "2", "--no-progress"]
    assert main(teach) == 0
    output = tmp_path / "teacher.annotations.jsonl.gz"
    assert output.is_file() and "16 windows (0 from the cache, 0 failed)" in capsys.readouterr().out
    calls = len(teacher.calls)
    assert main(teach) == 0  # a re-run is answered from the cache
    assert len(teacher.calls) == calls and "16 from the cache" in capsys.readouterr().out

    adapter = tmp_path / "adapter"
    distill = ["distill", "--base", str(tiny_lm_dir), "--annotations", str(output), "-o", str(adapter),
               "--steps", "2", "--rank-score", "head", "--validation-fraction", "0.25", "--max-eval-queries", "2",
               "--no-eval-at-start", "--no-progress"]
    assert main(distill) == 0
    out = capsys.readouterr().out
    assert "6 training queries" in out and "trained 2 steps" in out and "validation step 2" in out
    student = Student.from_pretrained(tiny_lm_dir, adapter=adapter, max_new_tokens=4)
    ranking = Reranker(student, explain_top=1, compare_top=0).rerank("how long do fleas live", ["fleas", "cats"])
    assert len(ranking) == 2 and isinstance(ranking[0].explanation, str)


def test_distill_cli_on_r2r_rows_and_resume(tmp_path, tiny_lm_dir, capsys):
    path = tmp_path / "r2r.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for q in range(6):
            handle.write(json.dumps(r2r_row(str(q))) + "\n")
    common = ["distill", "--base", str(tiny_lm_dir), "--r2r-data", str(path), "-o", str(tmp_path / "a"),
              "--lm-weight", "0", "--checkpoint-every", "1", "--no-eval-at-start", "--no-progress"]
    assert main([*common, "--steps", "2"]) == 0
    assert main([*common, "--steps", "3", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "trained 3 steps (1 in this run" in out
    info = json.loads((tmp_path / "a" / "r2r_training.json").read_text())
    assert info["data"]["sources"] == ["r2r-import"] and info["steps"] == 3
    assert "GPT-4" in (tmp_path / "a" / "README.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["distill", "-o", "x"], "no training data"),
    (["distill", "-o", "x", "--r2r-data", "missing.jsonl.gz"], "not found"),
    (["distill", "-o", "x", "--annotations", "missing.jsonl"], "not found"),
])
def test_distill_cli_errors_are_clear(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_teach_cli_rejects_a_bad_candidates_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli_teach, "build_teacher", lambda args: ScriptedTeacher(default=keyword_reply))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"qid": "1", "query": "q"}\n')
    assert main(["teach", "--candidates", str(bad), "--base-url", "u", "--model", "m", "--cache",
                 str(tmp_path / "c.sqlite")]) == 2
    assert "bad.jsonl:1: not a candidate list" in capsys.readouterr().err


@pytest.mark.slow
def test_real_smollm2_distills_a_few_steps_on_the_r2r_data(tmp_path, capsys):
    path = DATA / "r2r-train" / "msmarco_100.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"R2R training data not present ({path})")
    assert main(["distill", "--base", "default", "--r2r-data", str(path), "-o", str(tmp_path / "a"),
                 "--steps", "2", "--max-queries", "20", "--max-eval-queries", "2", "--max-eval-explanations", "4",
                 # small batches: the defaults (20 passages of 256 tokens per ranking step) peaked at 9.4 GB, 4
                 # passages and 2 explanations at 5.0 GB (the suite's peak), 2 and 1 at 2.9 GB (OMP_NUM_THREADS=1)
                 "--max-rank-passages", "2", "--batch-size", "1", "--no-progress"]) == 0
    from r2r_agent.default_models import prepare_smollm2

    student = Student.from_pretrained(prepare_smollm2(), adapter=tmp_path / "a", max_new_tokens=16)
    ranking = Reranker(student, explain_top=1, compare_top=0).rerank("how long do fleas live",
                                                                     ["Fleas live 2-3 months.", "Cats sleep a lot."])
    assert ranking[0].explanation
