"""The ``README.md`` model card written into every distilled adapter folder (pure text from ``r2r_training.json``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .r2r_import import R2R_SOURCE

R2R_DATA_NOTICE = (
    "The R2R training data are the Reason-to-Rank annotations (JoyDajunSpaceCraft/Reason-to-Rank, "
    "`msmarco_{100,500}.jsonl`): MS MARCO *train* queries, 5 MS MARCO passages each, with a ranking and a direct and "
    "a listwise reason per passage written by a GPT-4 teacher. The repository states **no license**; the MS MARCO "
    "passages are for non-commercial research use only and the GPT-4 outputs are subject to OpenAI's terms of use."
)

LICENSE_NOTICE = (
    "**Research use only.** Because of its training data (see above), this adapter may be used for research and "
    "internal evaluation only; do not use it commercially and do not redistribute it outside your project. The base "
    "model's own license also applies."
)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _curve(history: Sequence[Mapping[str, Any]], points: int = 10) -> list[Mapping[str, Any]]:
    if len(history) <= points:
        return list(history)
    stride = (len(history) - 1) / (points - 1)
    return [history[round(i * stride)] for i in range(points)]


def render_model_card(info: Mapping[str, Any]) -> str:
    """A Markdown model card: base model, data provenance and license, settings, loss curve, validation metrics."""
    data = info.get("data", {})
    sources = list(data.get("sources", []))
    config = info.get("config", {})
    lines = [
        "---",
        "library_name: peft",
        f"base_model: {info.get('base_model_name', '')}",
        "license: other",
        "license_name: research-only",
        "tags: [r2r-agent, reranking, explanations, lora]",
        "---",
        "",
        f"# r2r-agent distilled student adapter for {info.get('base_model_name', 'a causal LM')}",
        "",
        "A LoRA adapter (PEFT) trained by `r2r distill` so that the base model both **ranks** passages for a query and "
        "**explains** why (Reason-to-Rank): a language-model loss on teacher explanations and a listwise ranking loss "
        f"on the student's relevance score (`{info.get('rank_score')}`"
        f"{', with rank_head.safetensors' if info.get('has_rank_head') else ''}).",
        "",
        "```python",
        "from r2r_agent import Reranker, Student",
        "student = Student.from_pretrained(BASE_MODEL_FOLDER, adapter=THIS_FOLDER)",
        'ranking = Reranker(student).rerank("how long do fleas live", passages)',
        "```",
        "",
        f"Prompt version: `{info.get('prompt_version')}` (the student must be run with the same prompts).",
        "",
        "## Training data",
        "",
        f"Sources: {', '.join(f'`{s}`' for s in sources) or 'unknown'}. Train: {data.get('train_queries')} queries "
        f"({data.get('train_explanations')} explanation targets, {data.get('train_rankings')} ranking lists); "
        f"validation (held-out queries): {data.get('validation_queries')} queries.",
        "",
    ]
    if R2R_SOURCE in sources:
        lines += [R2R_DATA_NOTICE, ""]
    if any(s != R2R_SOURCE for s in sources):
        lines += ["Other annotations come from a teacher LLM run with `r2r teach`; their terms are those of that "
                  "teacher and of the annotated corpus.", ""]
    lines += ["No TREC DL or BRIGHT test query was used for training or tuning.", "", "## License", "",
              LICENSE_NOTICE, "", "## Settings", "", "| setting | value |", "|---|---|"]
    for key in ("max_steps", "batch_size", "ranking_batch_size", "grad_accum", "learning_rate", "lora_r", "lora_alpha",
                "lm_weight", "rank_weight", "ranking_loss", "rank_score", "seed"):
        lines.append(f"| {key} | {_fmt(config.get(key))} |")
    lines += [f"| steps done | {info.get('steps')} |", "", "## Loss curve (training)", "",
              "| step | loss | lm_loss | rank_loss | lr |", "|---:|---:|---:|---:|---:|"]
    for record in _curve(info.get("loss_curve", [])):
        lines.append(f"| {record['step']} | {_fmt(record['loss'])} | {_fmt(record['lm_loss'])} | "
                     f"{_fmt(record['rank_loss'])} | {record['lr']:.2e} |")
    k = config.get("eval_k", 5)
    lines += ["", "## Validation (held-out queries)", "",
              f"| step | LM loss | nDCG@{k} vs teacher order | nDCG@{k} vs labels |", "|---:|---:|---:|---:|"]
    for record in info.get("validation", []):
        lines.append(f"| {record['step']} | {_fmt(record['lm_loss'])} | {_fmt(record['ndcg_teacher'])} | "
                     f"{_fmt(record['ndcg_labels'])} |")
    lines += ["", "Step 0 is the untrained base model. Full retrieval metrics (TREC DL nDCG@10) come from `r2r eval`.",
              ""]
    return "\n".join(lines)


__all__ = ["LICENSE_NOTICE", "R2R_DATA_NOTICE", "render_model_card"]
