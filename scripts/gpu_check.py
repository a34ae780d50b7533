"""GPU check: the in-process student and ``r2r distill`` on a SmolLM2-135M-shaped and a ~1B-shaped Llama, in bf16.

Self-contained and offline: random weights from configs, a byte-level BPE tokenizer trained here on a few hundred
words (the models keep their real vocabulary sizes, so the output layer costs what it costs), a synthetic R2R-like
dataset labelled by a scripted keyword teacher. Needs torch (CUDA build), transformers, peft, accelerate; runs from
a source checkout (it registers ``training/`` as ``r2r_agent.training`` when the package is not installed).

What it measures, per model shape:
  * the in-process student (``LMScorer`` scores 100 passages, ``Explainer`` explains 5), for 1 query and for 16
    queries (``Reranker.rerank_many``: in process they run one after another under the student's lock);
  * ``r2r distill`` optimizer steps/s under accelerate with ``mixed_precision="bf16"``.

Usage:
    python scripts/gpu_check.py                          # on a GPU: both shapes, JSON lines on stdout
    python scripts/gpu_check.py --out gpu_check.json     # ... and all results in one JSON file
    python scripts/gpu_check.py --device cpu --small     # a smoke test on a CPU with a tiny shape (~1 min)

Random weights generate until ``max_new_tokens`` (they rarely emit end-of-text): explanation times are worst cases.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]

#: Model shapes: SmolLM2-135M, Llama-3.2-1B (~1.2B parameters with its 128k vocabulary), and a tiny one for CPUs.
SHAPES: dict[str, dict[str, Any]] = {
    "smollm2-135m": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                     "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152},
    "llama-1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                 "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256},
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "vocab_size": 1024},
}
WORDS = ("the a of to in is are was for on with as by it that this from at how long do does fleas flea live lives "
         "life cycle days weeks months year adult egg larva pupa host cat dog pet season earth sun tilt axis orbit "
         "summer winter light heat cost price floor concrete query passage relevant not yes no answer because gives "
         "says about question order first later score one two three four five six seven eight nine").split()
CHAT_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                 "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                 "{% endif %}")


def import_r2r() -> None:
    """Make ``r2r_agent`` (and ``r2r_agent.training``, which lives in ``training/``) importable from the checkout."""
    if importlib.util.find_spec("r2r_agent") is None:
        sys.path.insert(0, str(ROOT))
    import r2r_agent

    if importlib.util.find_spec("r2r_agent.training") is None:
        spec = importlib.util.spec_from_file_location("r2r_agent.training", ROOT / "training" / "__init__.py",
                                                      submodule_search_locations=[str(ROOT / "training")])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["r2r_agent.training"] = module
        spec.loader.exec_module(module)
        r2r_agent.training = module  # type: ignore[attr-defined]


def build_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<pad>", "<|im_start|>", "<|im_end|>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    raw.train_from_iterator([" ".join(WORDS)] * 20 + [w.capitalize() for w in WORDS] + ["yes no Yes No"] * 20,
                            trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="<|im_end|>",
                                        bos_token="<|im_start|>", unk_token="<unk>")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(shape: str, tokenizer: Any, folder: Path) -> None:
    """Save a random ``LlamaForCausalLM`` of ``shape`` (float32 on disk, as released checkpoints are) and the
    tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(max_position_embeddings=8192, tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id, **SHAPES[shape])
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def passages(n: int, seed: int) -> list[str]:
    """``n`` passages of 60-100 words (a DL19 passage is ~60 words)."""
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(60, 100))) for _ in range(n)]


def timed(function: Any, device: str) -> float:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    function()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def check_student(folder: Path, device: str, dtype: str, queries: int, candidates: int) -> dict[str, Any]:
    """Score ``candidates`` passages and explain 5, for 1 query and for ``queries`` queries."""
    from r2r_agent import Explainer, LMScorer, Reranker, Student
    from r2r_agent.modeling import load_causal_lm

    model, tokenizer = load_causal_lm(folder, dtype=dtype, device=device)
    scorer = LMScorer(model, tokenizer, batch_size=32)
    explainer = Explainer(model, tokenizer, max_new_tokens=48, batch_size=8)
    texts = passages(candidates, 1)
    query = "how long do fleas live"
    scorer.score(query, texts[:8])  # warm-up: kernels, allocator
    explainer.explain(query, texts[:2])
    score_s = timed(lambda: scorer.score(query, texts), device)
    explained: dict[str, Any] = {}
    explain_s = timed(lambda: explained.update(g=explainer.explain(query, texts[:5])), device)
    reranker = Reranker(Student(scorer=scorer, explainer=explainer, name=folder.name), trace=False, judge=False,
                        explain_top=5, compare_top=0)
    one_s = timed(lambda: reranker.rerank(query, texts), device)
    many = [f"{query} {i}" for i in range(queries)]
    many_s = timed(lambda: reranker.rerank_many(many, [texts] * queries), device)
    result = {"score_passages": candidates, "score_s": round(score_s, 4),
              "score_passages_per_s": round(candidates / score_s, 1), "explain_5_s": round(explain_s, 4),
              "explain_tokens": explained["g"].generated_tokens, "rerank_1_query_s": round(one_s, 4),
              f"rerank_{queries}_queries_s": round(many_s, 4),
              f"rerank_{queries}_queries_passages_per_s": round(queries * candidates / many_s, 1)}
    if device.startswith("cuda"):
        import torch

        result["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return result  # the model goes with this frame


def keyword_reply(messages: list[dict[str, str]]) -> str:
    """A teacher reply ranking the prompt's passages by the number after "score", highest first."""
    texts = [m.group(1) for m in re.finditer(r"^\[\d+\] (.*)$", messages[-1]["content"], re.MULTILINE)]

    def score(text: str) -> int:
        found = re.search(r"score (\d+)", text)
        return int(found.group(1)) if found else 0

    ranking = sorted(range(1, len(texts) + 1), key=lambda i: -score(texts[i - 1]))
    reasons = [{"passage": i, "direct": f"it says score {score(texts[i - 1])}", "comparison": f"rank {r + 1}"}
               for r, i in enumerate(ranking)]
    return json.dumps({"ranking": ranking, "reasons": reasons, "comparison": "higher scores first"})


def check_distill(folder: Path, device: str, steps: int, output: Path) -> dict[str, Any]:
    """``r2r distill`` steps/s under accelerate with bf16 mixed precision on a synthetic R2R-like dataset."""
    from accelerate.state import AcceleratorState

    from r2r_agent.training import (
        AnnotationRequest,
        DatasetConfig,
        DistillConfig,
        ScriptedTeacher,
        annotate,
        build_dataset,
        distill,
    )

    teacher = ScriptedTeacher(default=keyword_reply, name="keyword")
    filler = passages(8, 2)
    requests = [AnnotationRequest(str(q), f"how long do fleas live {q}",
                                  [f"fleas live score {(3 * q + 5 * i) % 10} days {filler[i][:300]}" for i in range(8)])
                for q in range(48)]
    dataset = build_dataset(annotate(teacher, requests).annotations,
                            DatasetConfig(validation_fraction=0.1, explain_top=4))
    AcceleratorState._reset_state(reset_partial_state=True)
    config = DistillConfig(max_steps=steps, batch_size=4, ranking_batch_size=2, use_accelerate=True,
                           mixed_precision="bf16", device=device, eval_at_start=False, max_eval_queries=2,
                           max_eval_explanations=4, log_every=max(1, steps // 4))
    result = distill(folder, dataset, output, config)
    AcceleratorState._reset_state(reset_partial_state=True)
    return {"distill_steps": result.steps, "distill_s": round(result.seconds, 2),
            "distill_steps_per_s": round(result.steps / result.seconds, 3),
            "final_loss": result.history[-1].get("loss") if result.history else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="torch device (default cuda)")
    parser.add_argument("--small", action="store_true", help="the tiny shape only, fewer passages and steps")
    parser.add_argument("--shapes", default=None, help="comma-separated shapes (default: smollm2-135m,llama-1b)")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    parser.add_argument("--out", type=Path, default=None, help="also write every result to this JSON file")
    parser.add_argument("--skip-distill", action="store_true", help="measure the student only")
    args = parser.parse_args()
    import torch

    import_r2r()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no GPU; use --device cpu --small for a smoke test")
    shapes = (args.shapes or ("tiny" if args.small else "smollm2-135m,llama-1b")).split(",")
    queries, candidates, steps = (4, 20, 4) if args.small else (16, 100, 30)
    environment = {"torch": torch.__version__, "device": args.device, "dtype": args.dtype,
                   "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None}
    results: list[dict[str, Any]] = []
    tokenizer = build_tokenizer()
    with tempfile.TemporaryDirectory(prefix="r2r-gpu-check-") as tmp:
        for shape in shapes:
            folder = Path(tmp) / shape
            start = time.perf_counter()
            build_model(shape, tokenizer, folder)
            row: dict[str, Any] = {"shape": shape, **environment, "build_s": round(time.perf_counter() - start, 1)}
            row.update(check_student(folder, args.device, args.dtype, queries, candidates))
            if not args.skip_distill:
                row.update(check_distill(folder, args.device, steps, Path(tmp) / f"{shape}-adapter"))
            results.append(row)
            sys.stdout.write(json.dumps(row) + "\n")
            sys.stdout.flush()
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
    if args.out is not None:
        from r2r_agent.files import atomic_write_text

        atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
