"""The ``README.md`` model card written into every distilled adapter folder (pure text from ``r2r_training.json``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
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
    lora = info.get("lora", {})
    for key in ("max_steps", "batch_size", "ranking_batch_size", "grad_accum", "learning_rate", "lora_r", "lora_alpha",
                "lm_weight", "rank_weight", "ranking_loss", "rank_score", "seed"):
        value = lora.get(key.removeprefix("lora_"), config.get(key)) if key.startswith("lora_") else config.get(key)
        lines.append(f"| {key} | {_fmt(value)} |")
    if config.get("init_adapter"):
        # the folder's name only: the full path is often a private cache location
        lines.append(f"| init_adapter | {Path(str(config['init_adapter'])).name} |")
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
    start = f"the adapter it started from ({Path(str(config['init_adapter'])).name})" if config.get("init_adapter") \
        else "the untrained base model"
    lines += ["", f"Step 0 is {start}. Full retrieval metrics (TREC DL nDCG@10) come from `r2r eval`.",
              ""]
    return "\n".join(lines)


def _setting(value: Any) -> str:
    # Settings as given (2e-05, 20), not rounded to 4 decimals like the metrics.
    return f"{value:g}" if isinstance(value, float) else _fmt(value)


def _data_lines(sources: Sequence[str]) -> list[str]:
    lines: list[str] = []
    if R2R_SOURCE in sources:
        lines += [R2R_DATA_NOTICE, ""]
    if any(s != R2R_SOURCE for s in sources):
        lines += ["Other annotations come from a teacher LLM run with `r2r teach`; their terms are those of that "
                  "teacher and of the annotated corpus.", ""]
    return lines


def render_encoder_model_card(info: Mapping[str, Any]) -> str:
    """A Markdown model card for a distilled encoder: the verdict against the base first, then data, license,
    settings, loss curve and validation metrics."""
    data = info.get("data", {})
    sources = list(data.get("sources", []))
    config = info.get("config", {})
    comparison = info.get("comparison", {})
    name = info.get("base_model_name", "")
    k = config.get("eval_k", 5)
    metric = comparison.get("metric", "mean")
    metric_text = {"mean": f"the mean of nDCG@{k} vs the teacher order and vs the labels",
                   "ndcg_teacher": f"nDCG@{k} vs the teacher order",
                   "ndcg_labels": f"nDCG@{k} vs the labels"}.get(metric, metric)
    if info.get("beats_base"):
        verdict = (f"**It beats the untrained {name} on validation**: {metric_text} went from "
                   f"{_fmt(comparison.get('base'))} to {_fmt(comparison.get('final'))}. Use it in place of the base.")
    else:
        verdict = (f"**It does not beat the untrained {name} on validation** ({metric_text}: base "
                   f"{_fmt(comparison.get('base'))}, fine-tuned {_fmt(comparison.get('final'))}"
                   f"{', required gain > ' + _fmt(comparison.get('min_gain')) if comparison.get('min_gain') else ''}"
                   "). Keep using the base encoder.")
    lines = [
        "---",
        "library_name: sentence-transformers",
        f"base_model: {name}",
        "license: other",
        "license_name: research-only",
        "tags: [r2r-agent, reranking, sentence-similarity, distillation]",
        "---",
        "",
        f"# r2r-agent distilled encoder scorer from {name or 'a bi-encoder'}",
        "",
        f"The bi-encoder {name} fully fine-tuned by `r2r distill --encoder` on the teacher's rankings and relevance "
        f"labels: a {config.get('ranking_loss')} ranking loss on {_setting(config.get('scale'))} x the cosine "
        "similarity of mean-pooled, normalised embeddings, so the fast first stage of the cascade learns from the "
        "teacher too.",
        "",
        verdict,
        "",
        "```python",
        "from r2r_agent import EncoderScorer",
        "scorer = EncoderScorer.from_pretrained(THIS_FOLDER)",
        'scores = scorer.score("how long do fleas live", passages)',
        "```",
        "",
        "## Training data",
        "",
        f"Sources: {', '.join(f'`{s}`' for s in sources) or 'unknown'}. Train: {data.get('train_queries')} queries "
        f"({data.get('train_rankings')} ranking lists); validation (held-out queries): "
        f"{data.get('validation_queries')} queries, {data.get('validation_rankings_scored')} scored.",
        "",
        *_data_lines(sources),
        "No TREC DL or BRIGHT test query was used for training or tuning.", "",
        "## License", "",
        LICENSE_NOTICE.replace("this adapter", "this encoder"), "",
        "## Settings", "", "| setting | value |", "|---|---|",
    ]
    for key in ("max_steps", "ranking_batch_size", "grad_accum", "learning_rate", "weight_decay", "warmup_steps",
                "scheduler", "ranking_loss", "scale", "target_temperature", "label_weight", "max_rank_passages",
                "seed"):
        lines.append(f"| {key} | {_setting(config.get(key))} |")
    lines += [f"| max_tokens | {info.get('max_tokens')} |", f"| steps done | {info.get('steps')} |", "",
              "## Loss curve (training)", "", "| step | loss | lr |", "|---:|---:|---:|"]
    for record in _curve(info.get("loss_curve", [])):
        lines.append(f"| {record['step']} | {_fmt(record['loss'])} | {record['lr']:.2e} |")
    lines += ["", "## Validation (held-out queries)", "",
              f"| step | ranking loss | nDCG@{k} vs teacher order | nDCG@{k} vs labels |", "|---:|---:|---:|---:|"]
    for record in info.get("validation", []):
        lines.append(f"| {record['step']} | {_fmt(record.get('rank_loss'))} | {_fmt(record['ndcg_teacher'])} | "
                     f"{_fmt(record['ndcg_labels'])} |")
    lines += ["", "Step 0 is the untrained base encoder. Full retrieval metrics (TREC DL nDCG@10) come from "
              "`r2r eval`.", ""]
    return "\n".join(lines)


__all__ = ["LICENSE_NOTICE", "R2R_DATA_NOTICE", "render_encoder_model_card", "render_model_card"]
