"""LoRA multi-task distillation of the student: explain like the teacher and rank like the teacher.

One causal LM (any Hugging Face ``AutoModelForCausalLM`` folder) gets a PEFT LoRA adapter trained on

* a language-model loss on the teacher's explanations (:class:`~r2r_agent.training.ExplanationExample`): the prompt
  is rendered exactly as the :class:`~r2r_agent.Explainer` renders it at inference (same messages, chat template
  and passage token budgets) and only the target tokens (the explanation and the end-of-turn token) count;
* a listwise ranking loss (:data:`~r2r_agent.training.losses.RANKING_LOSSES`) on the score the
  :class:`~r2r_agent.LMScorer` computes at inference: the yes/no log-odds at the last position of
  :func:`r2r_agent.prompts.relevance_messages`, or a linear rank head on the last hidden state (R2R's setting), saved
  as ``rank_head.safetensors`` next to the adapter.

The output folder loads with ``Student.from_pretrained(base, adapter=folder)``. Training is resumable exactly: a
checkpoint holds the adapter, the rank head, the optimizer, the scheduler, the RNG states and the step, and the data
order is a pure function of the seed and the step, so an interrupted run resumed from a checkpoint ends with the same
weights as an uninterrupted one.

Runs on CPU for small models. On one GPU set ``device="cuda"``; for several GPUs or mixed precision set
``use_accelerate`` / ``mixed_precision`` and start the run with ``accelerate launch`` (see
:mod:`~r2r_agent.training.trainer_loop`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from r2r_agent import prompts

from .checkpoints import CHECKPOINTS_DIR, find_latest_checkpoint, read_safetensors
from .dataset import DistillationDataset, ExplanationExample, RankingExample
from .distill_config import DistillConfig
from .errors import DistillError
from .losses import example_ranking_loss, validation_ndcgs
from .rng import stream_indices
from .trainer_loop import TRAINING_FILE, Callback, TrainerLoop, TrainResult

logger = logging.getLogger(__name__)

_ADAPTER_FILE = "adapter_model.safetensors"


class DistillResult(TrainResult):
    """What a distillation run produced: :class:`~r2r_agent.training.trainer_loop.TrainResult` with ``output_dir``
    the adapter folder (loads with ``Student.from_pretrained(base, adapter=output_dir)``), ``history`` records
    ``step``, ``loss``, ``lm_loss``, ``rank_loss``, ``lr`` and ``validation`` records ``step``, ``lm_loss``,
    ``ndcg_teacher``, ``ndcg_labels``."""


class Distiller(TrainerLoop[DistillResult]):
    """Fine-tunes one causal LM with LoRA on a :class:`~r2r_agent.training.DistillationDataset`.

    Most callers use :func:`distill`; the class exposes the pieces tests and custom loops need.

    Args:
        base_model: A local causal-LM folder.
        dataset: Training and validation examples.
        output_dir: Where the adapter (and ``checkpoints/``) go.
        config: Training settings.
        base_model_id: How the adapter's metadata, model card and ``adapter_config.json`` name the base (e.g. a hub
            id); default: the folder, which is often a private cache path.
    """

    progress_desc = "distill"
    checkpoint_kind = "a distillation"
    config: DistillConfig

    def __init__(self, base_model: str | os.PathLike[str], dataset: DistillationDataset,
                 output_dir: str | os.PathLike[str], config: DistillConfig | None = None, *,
                 base_model_id: str | None = None) -> None:
        super().__init__(base_model, dataset, output_dir, config or DistillConfig())
        self.base_model_id = base_model_id
        self.train_explanations = list(dataset.train.explanations) if self.config.lm_weight > 0 else []
        self.train_rankings = list(dataset.train.rankings) if self.config.rank_weight > 0 else []
        if not self.train_explanations and not self.train_rankings:
            raise DistillError(
                f"nothing to train on: the training split has {len(dataset.train.explanations)} explanation and "
                f"{len(dataset.train.rankings)} ranking examples with lm_weight={self.config.lm_weight} and "
                f"rank_weight={self.config.rank_weight}; build a dataset with examples for a weighted task")
        self.model: Any = None
        self.tokenizer: Any = None
        self.rank_head: Any = None
        # What forward passes run through: the plain modules, or accelerate's wrappers during a training step.
        self._forward_model: Any = None
        self._forward_head: Any = None

    # ---- set-up -------------------------------------------------------------------------------------------------
    def _micro_batches_per_epoch(self) -> int:
        c = self.config
        return max(math.ceil(len(self.train_explanations) / c.batch_size) if self.train_explanations else 0,
                   math.ceil(len(self.train_rankings) / c.ranking_batch_size) if self.train_rankings else 0)

    def _build(self) -> list[Any]:
        from peft import LoraConfig, get_peft_model

        from r2r_agent.modeling import load_causal_lm
        from r2r_agent.scorers import LMScorer

        c = self.config
        base, tokenizer = load_causal_lm(self.base_model)
        if c.init_adapter is not None:
            self.model = self._load_initial_adapter(base, c.init_adapter).to(self.device)
        else:
            lora = LoraConfig(r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
                              task_type="CAUSAL_LM", target_modules=list(c.target_modules) or "all-linear")
            self.model = get_peft_model(base, lora).to(self.device)
        if self.base_model_id is not None:
            self.model.peft_config["default"].base_model_name_or_path = self.base_model_id
        self.tokenizer = tokenizer
        # Prompts and answer ids come from the inference scorer itself, so training scores what inference scores.
        self._scorer = LMScorer(self.model, tokenizer, max_passage_tokens=c.max_rank_passage_tokens)
        self.rank_head = None
        if c.rank_score == "head":
            self.rank_head = self._initial_rank_head().to(self.device)
        self._use_modules(None)
        return [self.model] if self.rank_head is None else [self.model, self.rank_head]

    @staticmethod
    def _load_initial_adapter(base: Any, folder: str) -> Any:
        from peft import PeftModel

        if not (Path(folder) / _ADAPTER_FILE).is_file():
            raise DistillError(f"init_adapter {folder!r} has no {_ADAPTER_FILE}; pass an adapter folder that "
                               "r2r distill (or peft's save_pretrained) wrote")
        # The adapter's own rank, alpha and modules apply: lora_r / lora_alpha / target_modules are not used.
        return PeftModel.from_pretrained(base, folder, is_trainable=True)

    def _use_modules(self, modules: Sequence[Any] | None) -> None:
        self._forward_model = self.model if modules is None else modules[0]
        self._forward_head = self.rank_head if modules is None or self.rank_head is None else modules[1]

    def _initial_rank_head(self) -> Any:
        """A ``Linear(hidden, 1)`` that starts as the yes-minus-no direction of the LM head: the zero-shot score."""
        import torch

        output = self.model.get_output_embeddings().weight.detach().float()
        yes = output[self._scorer.yes_token_ids].mean(0)
        no = output[self._scorer.no_token_ids].mean(0)
        head = torch.nn.Linear(output.shape[1], 1)
        with torch.no_grad():
            head.weight.copy_((yes - no)[None, :])
            head.bias.zero_()
        return head

    # ---- batches and losses -------------------------------------------------------------------------------------
    def explanation_prompt(self, example: ExplanationExample) -> str:
        """The rendered prompt the explainer would send for ``example`` (passages cut to its token budgets)."""
        from r2r_agent.modeling import fit_tokens

        if example.kind == "direct":
            cut = [fit_tokens(self.tokenizer, example.passages[0], self.config.max_passage_tokens)[0]]
            return prompts.render(self.tokenizer, example.messages(cut))
        budget = self.config.max_comparison_passage_tokens
        if example.verdicts:  # as Explainer.compare_grounded: the best sentences, each cut to the comparison budget
            evidence = [fit_tokens(self.tokenizer, e, budget)[0] if e else None for e in example.evidence]
            messages = prompts.grounded_comparison_messages(example.query, evidence, example.verdicts)
            return prompts.render(self.tokenizer, messages)
        cut = [fit_tokens(self.tokenizer, text, budget)[0] for text in example.passages]
        return prompts.render(self.tokenizer, example.messages(cut))

    def encode_explanation(self, example: ExplanationExample) -> tuple[list[int], list[int]]:
        """``(input_ids, labels)``: prompt then target and end-of-turn; prompt positions labelled ``-100``."""
        tokenizer = self.tokenizer
        prompt_ids = tokenizer(self.explanation_prompt(example), add_special_tokens=False)["input_ids"]
        target_ids = tokenizer(" ".join(example.target.split()), add_special_tokens=False)["input_ids"]
        target_ids = target_ids[: self.config.max_target_tokens - 1]
        if tokenizer.eos_token_id is not None:
            target_ids = [*target_ids, tokenizer.eos_token_id]  # the explainer stops at end-of-turn
        return prompt_ids + target_ids, [-100] * len(prompt_ids) + target_ids

    def lm_loss(self, examples: Sequence[ExplanationExample]) -> tuple[Any, int]:
        """Mean token cross-entropy over the targets of ``examples`` and the number of target tokens.

        Left-padded like the explainer at inference; the output head runs only on the last positions that hold
        targets (``logits_to_keep``): on prompts of ~300 tokens and targets of ~60 that skips most of the
        49k-vocabulary projection, about a fifth of the step's compute and most of its memory.
        """
        import torch

        from r2r_agent.modeling import left_pad, left_padding_positions

        encoded = [self.encode_explanation(e) for e in examples]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        ids, mask = left_pad([seq for seq, _ in encoded], pad or 0)
        width = ids.shape[1]
        labels = torch.full_like(ids, -100)
        for row, (_, lab) in enumerate(encoded):
            labels[row, width - len(lab):] = torch.tensor(lab, dtype=torch.long)
        target_span = max(sum(1 for label in lab if label != -100) for _, lab in encoded)
        keep = min(target_span + 1, width)  # the position before the first target predicts it
        device = self.device
        mask = mask.to(device)
        out = self._forward_model(input_ids=ids.to(device), attention_mask=mask,
                                  position_ids=left_padding_positions(mask), logits_to_keep=keep)
        logits = out.logits[:, :-1].float()
        targets = labels[:, width - keep + 1:].to(device)
        count = int((targets != -100).sum())
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                 ignore_index=-100, reduction="sum") / max(count, 1)
        return loss, count

    def lm_scores(self, query: str, passages: Sequence[str]) -> Any:
        """The LM scorer's scores (a tensor with gradients in training), exactly as :class:`LMScorer` computes them."""

        from r2r_agent.modeling import left_pad, left_padding_positions

        texts, _ = self._scorer.prompts_for(query, passages)
        encoded = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids, mask = left_pad(encoded, pad)
        device = self.device
        mask = mask.to(device)
        out = self._forward_model(input_ids=ids.to(device), attention_mask=mask,
                                  position_ids=left_padding_positions(mask), logits_to_keep=1,
                                  output_hidden_states=self.rank_head is not None)
        if self.rank_head is not None:
            return self._forward_head(out.hidden_states[-1][:, -1].float()).squeeze(-1)
        return self._scorer.log_odds_from_logits(out.logits[:, -1])

    def rank_loss(self, example: RankingExample) -> Any:
        """The configured ranking loss of one query (candidates capped at ``max_rank_passages``)."""
        c = self.config
        scores = self.lm_scores(example.query, example.passages[: c.max_rank_passages])
        return example_ranking_loss(c.ranking_loss, scores, example, label_weight=c.label_weight,
                                    temperature=c.target_temperature)

    # ---- training -----------------------------------------------------------------------------------------------
    def _result(self, seconds: float, resumed_from: int | None) -> DistillResult:
        return DistillResult(self.output_dir, self.step, self.history, self.validation, seconds, resumed_from)

    def _validate_at_start(self) -> bool:
        return self.config.eval_at_start

    def _micro_batch_loss(self, position: int) -> tuple[Any, dict[str, float]]:
        import torch

        c = self.config
        loss = torch.zeros((), device=self.device)
        lm_value = rank_value = 0.0
        if self.train_explanations:
            picks = stream_indices(len(self.train_explanations), position * c.batch_size, c.batch_size, c.seed, 1)
            lm, _ = self.lm_loss([self.train_explanations[i] for i in picks])
            loss = loss + c.lm_weight * lm
            lm_value = float(lm.detach())
        if self.train_rankings:
            examples = self._ranking_micro_batch(self.train_rankings, position)
            rank = torch.stack([self.rank_loss(example) for example in examples]).mean()
            loss = loss + c.rank_weight * rank
            rank_value = float(rank.detach())
        return loss, {"loss": c.lm_weight * lm_value + c.rank_weight * rank_value, "lm_loss": lm_value,
                      "rank_loss": rank_value}

    # ---- validation ---------------------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float | None]:
        """Validation LM loss (token-weighted) and nDCG@k of the LM score vs the teacher's order and vs the labels.

        Uses the first ``max_eval_explanations`` / ``max_eval_queries`` validation examples; a metric with no data is
        ``None``.
        """
        import torch

        c = self.config
        validation = self.dataset.validation
        self.model.eval()
        result: dict[str, float | None] = {"step": self.step, "lm_loss": None, "ndcg_teacher": None,
                                           "ndcg_labels": None}
        with torch.no_grad():
            explanations = list(validation.explanations[: c.max_eval_explanations])
            if explanations:
                weighted, tokens = 0.0, 0
                for begin in range(0, len(explanations), c.batch_size):
                    loss, count = self.lm_loss(explanations[begin : begin + c.batch_size])
                    weighted += float(loss) * count
                    tokens += count
                result["lm_loss"] = weighted / max(tokens, 1)
            teacher: list[float] = []
            labelled: list[float] = []
            for example in validation.rankings[: c.max_eval_queries]:
                n = min(len(example.passages), c.max_rank_passages)
                scores = self.lm_scores(example.query, example.passages[:n]).float().tolist()
                by_teacher, by_labels = validation_ndcgs(scores, example, c.eval_k)
                teacher.append(by_teacher)
                if by_labels is not None:
                    labelled.append(by_labels)
            if teacher:
                result["ndcg_teacher"] = sum(teacher) / len(teacher)
            if labelled:
                result["ndcg_labels"] = sum(labelled) / len(labelled)
        self.model.train()
        return result

    # ---- checkpoints and output ---------------------------------------------------------------------------------
    def _weight_files(self) -> tuple[str, ...]:
        from r2r_agent.student import RANK_HEAD_FILE

        return (_ADAPTER_FILE,) if self.rank_head is None else (_ADAPTER_FILE, RANK_HEAD_FILE)

    def _write_weights(self, folder: Path) -> None:
        from safetensors.torch import save_file

        from r2r_agent.student import RANK_HEAD_FILE

        # The embeddings are never adapted; saying so keeps peft from asking the hub about the base's config.
        self.model.save_pretrained(str(folder), save_embedding_layers=False)
        if self.rank_head is not None:
            state = {k: v.detach().cpu().contiguous() for k, v in self.rank_head.state_dict().items()}
            save_file(state, str(folder / RANK_HEAD_FILE))

    def _read_weights(self, folder: Path) -> list[dict[str, Any]]:
        return [read_safetensors(folder / name) for name in self._weight_files()]

    def _apply_weights(self, folder: Path, weights: Any, state: dict[str, Any]) -> None:
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(self.model, weights[0])
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise DistillError(f"checkpoint {folder} does not match the model {self.base_model}: unexpected adapter "
                               f"keys {unexpected[:3]}")
        if self.rank_head is not None:
            self.rank_head.load_state_dict(weights[1])

    def _write_model(self, folder: Path) -> None:
        self._write_weights(folder)
        self.tokenizer.save_pretrained(str(folder))

    def _model_card(self, info: dict[str, Any]) -> str:
        from .model_card import render_model_card

        return render_model_card(info)

    def _lora_info(self) -> dict[str, Any]:
        """The adapter's own rank and alpha (an ``init_adapter`` brings its own; the config's are then unused)."""
        lora = self.model.peft_config["default"] if self.model is not None else None
        if lora is None:
            return {"r": self.config.lora_r, "alpha": self.config.lora_alpha}
        return {"r": int(lora.r), "alpha": int(lora.lora_alpha)}

    def training_info(self) -> dict[str, Any]:
        """The metadata written to ``r2r_training.json``."""
        import peft
        import torch
        import transformers

        train, validation = self.dataset.train, self.dataset.validation
        sources = {e.source for e in train.explanations} | {e.source for e in train.rankings}
        return {
            "format": "r2r-agent-adapter", "format_version": 1,
            "prompt_version": prompts.PROMPT_VERSION,
            "base_model": self.base_model_id or self.base_model,
            "base_model_name": (self.base_model_id or self.base_model).rstrip("/").split("/")[-1],
            "rank_score": self.config.rank_score,
            "has_rank_head": self.rank_head is not None,
            **self._run_info(),
            "lora": self._lora_info(),
            "data": {"sources": sorted(s for s in sources if s), "train_queries": len(train.query_ids),
                     "validation_queries": len(validation.query_ids),
                     "train_explanations": len(train.explanations), "train_rankings": len(train.rankings),
                     "validation_explanations": len(validation.explanations),
                     "validation_rankings": len(validation.rankings)},
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "peft": peft.__version__},
        }


def distill(base_model: str | os.PathLike[str], dataset: DistillationDataset, output_dir: str | os.PathLike[str],
            config: DistillConfig | None = None, *, resume: bool | str | os.PathLike[str] = False,
            progress: bool = False, callback: Callback | None = None,
            base_model_id: str | None = None) -> DistillResult:
    """Fine-tune ``base_model`` with LoRA on ``dataset`` and write an adapter folder to ``output_dir``.

    Args:
        base_model: A local causal-LM folder (e.g. ``r2r_agent.default_models.prepare_smollm2()``).
        dataset: From :func:`~r2r_agent.training.build_dataset`.
        output_dir: The adapter folder to write (checkpoints go to ``output_dir/checkpoints``).
        config: Training settings.
        resume: See :meth:`Distiller.train`.
        progress: Show a tqdm bar.
        callback: Called as ``callback(step, record)`` after every optimizer step.
        base_model_id: How the output names the base (see :class:`Distiller`).

    Returns:
        The run's losses and validation metrics.

    Example:
        >>> data = build_dataset(load_r2r_annotations("msmarco_500.jsonl.gz"))                  # doctest: +SKIP
        >>> distill(prepare_smollm2(), data, "adapters/smollm2-r2r", DistillConfig(max_steps=200))  # doctest: +SKIP
        >>> Student.from_pretrained(prepare_smollm2(), adapter="adapters/smollm2-r2r")            # doctest: +SKIP
    """
    return Distiller(base_model, dataset, output_dir, config, base_model_id=base_model_id).train(
        resume=resume, progress=progress, callback=callback)


__all__ = ["CHECKPOINTS_DIR", "TRAINING_FILE", "DistillConfig", "DistillError", "DistillResult", "Distiller",
           "distill", "find_latest_checkpoint", "stream_indices"]
