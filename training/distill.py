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

import dataclasses
import inspect
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r2r_agent import prompts
from r2r_agent.errors import InvalidInputError

from .dataset import DistillationDataset, ExplanationExample, RankingExample
from .errors import DistillError
from .losses import RANKING_LOSSES, ndcg_from_scores, ranking_targets
from .trainer_loop import (
    CHECKPOINTS_DIR,
    RUNTIME_FIELDS,
    TrainerLoop,
    check_loop_settings,
    check_resumable_settings,
    config_from_dict,
    device_field,
    find_latest_checkpoint,
    load_trainer_state,
    mixed_precision_field,
    restore_trainer_state,
    save_trainer_checkpoint,
    stream_indices,
    use_accelerate_field,
)

logger = logging.getLogger(__name__)

#: Training metadata written next to the adapter.
TRAINING_FILE = "r2r_training.json"


def _default_of(cls: Any, parameter: str) -> int:
    # The passage budgets follow the inference classes' defaults so the student trains on what it will see.
    return int(inspect.signature(cls.__init__).parameters[parameter].default)


def _explainer_default(parameter: str) -> int:
    from r2r_agent.explainer import Explainer

    return _default_of(Explainer, parameter)


def _scorer_default(parameter: str) -> int:
    from r2r_agent.scorers import LMScorer

    return _default_of(LMScorer, parameter)


@dataclass(frozen=True)
class DistillConfig:
    """How the student is fine-tuned. Every field has a ``help`` text (the CLI shows it).

    Example:
        >>> DistillConfig(max_steps=100, lora_r=8, rank_weight=0.5).rank_weight
        0.5
    """

    max_steps: int | None = field(default=None, metadata={
        "help": "optimizer steps to train (default: derived from epochs)"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the larger task's data when max_steps is unset"})
    batch_size: int = field(default=4, metadata={"help": "explanation examples per micro-batch"})
    ranking_batch_size: int = field(default=1, metadata={"help": "ranking queries per micro-batch"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step (gradient accumulation)"})
    learning_rate: float = field(default=2e-4, metadata={"help": "peak AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps"})
    scheduler: str = field(default="linear", metadata={"help": "learning-rate schedule after warm-up: linear or "
                                                                "constant"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm (0: off)"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input"})
    target_modules: tuple[str, ...] = field(default=(), metadata={
        "help": "module names to adapt (default: every linear layer but the output head)"})
    lm_weight: float = field(default=1.0, metadata={"help": "weight of the explanation language-model loss"})
    rank_weight: float = field(default=1.0, metadata={"help": "weight of the ranking loss"})
    ranking_loss: str = field(default="listnet", metadata={"help": f"ranking loss: {' or '.join(RANKING_LOSSES)}"})
    rank_score: str = field(default="yes_no", metadata={
        "help": "score the ranking loss trains: yes_no (log-odds, no extra weights) or head (linear rank head)"})
    target_temperature: float = field(default=0.2, metadata={"help": "ListNet target softmax temperature"})
    label_weight: float = field(default=1.0, metadata={"help": "how much a relevance label adds to the teacher "
                                                                  "order's target"})
    max_passage_tokens: int = field(default_factory=lambda: _explainer_default("max_passage_tokens"), metadata={
        "help": "passage token budget in direct-explanation prompts (the Explainer's default)"})
    max_comparison_passage_tokens: int = field(
        default_factory=lambda: _explainer_default("max_comparison_passage_tokens"),
        metadata={"help": "per-passage token budget in comparison prompts (the Explainer's default)"})
    max_rank_passage_tokens: int = field(default_factory=lambda: _scorer_default("max_passage_tokens"), metadata={
        "help": "passage token budget in relevance prompts (the LMScorer's default)"})
    max_target_tokens: int = field(default=128, metadata={"help": "explanation target tokens kept at most"})
    max_rank_passages: int = field(default=20, metadata={
        "help": "candidates per ranking example at most (the first ones in input order)"})
    seed: int = field(default=0, metadata={"help": "seed of initialisation, data order and dropout"})
    checkpoint_every: int = field(default=0, metadata={"help": "save a resumable checkpoint every N steps (0: off)"})
    keep_checkpoints: int = field(default=2, metadata={"help": "most recent checkpoints kept (0: keep all)"})
    eval_every: int = field(default=0, metadata={"help": "validate every N steps (0: only at the end)"})
    eval_at_start: bool = field(default=True, metadata={"help": "validate the untrained student first (baseline)"})
    max_eval_explanations: int = field(default=64, metadata={"help": "validation explanations scored at most"})
    max_eval_queries: int = field(default=50, metadata={"help": "validation ranking queries scored at most"})
    eval_k: int = field(default=5, metadata={"help": "cut-off of the validation nDCG"})
    log_every: int = field(default=10, metadata={"help": "log the losses every N steps"})
    device: str = device_field()
    use_accelerate: bool = use_accelerate_field()
    mixed_precision: str = mixed_precision_field()

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        check_loop_settings(self)
        for name in ("batch_size", "lora_r", "lora_alpha", "max_passage_tokens", "max_comparison_passage_tokens",
                     "max_rank_passage_tokens", "max_target_tokens"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"DistillConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lm_weight", "rank_weight", "max_eval_explanations", "max_eval_queries"):
            if getattr(self, name) < 0:
                raise InvalidInputError(f"DistillConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise InvalidInputError(f"DistillConfig.lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.lm_weight == 0 and self.rank_weight == 0:
            raise InvalidInputError("DistillConfig.lm_weight and DistillConfig.rank_weight are both 0: nothing to "
                                    "train; give at least one a positive weight")
        if self.rank_score not in ("yes_no", "head"):
            raise InvalidInputError(f"DistillConfig.rank_score must be 'yes_no' or 'head', got {self.rank_score!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        data = dataclasses.asdict(self)
        data["target_modules"] = list(self.target_modules)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DistillConfig:
        """Build from :meth:`to_dict` output (unknown keys are rejected, naming them)."""
        return config_from_dict(cls, data)  # __post_init__ turns the JSON list back into a tuple


@dataclass
class DistillResult:
    """What a distillation run produced.

    Attributes:
        output_dir: The adapter folder (loads with ``Student.from_pretrained(base, adapter=output_dir)``).
        steps: Optimizer steps done in total (including those before a resume).
        history: One record per step: ``step``, ``loss``, ``lm_loss``, ``rank_loss``, ``lr``.
        validation: One record per validation: ``step``, ``lm_loss``, ``ndcg_teacher``, ``ndcg_labels``.
        seconds: Wall-clock seconds of this call (not counting earlier runs before a resume).
        resumed_from: The step of the checkpoint the run resumed from (``None``: started fresh).
    """

    output_dir: Path
    steps: int
    history: list[dict[str, float]]
    validation: list[dict[str, float | None]]
    seconds: float
    resumed_from: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {"output_dir": str(self.output_dir), "steps": self.steps, "history": self.history,
                "validation": self.validation, "seconds": self.seconds, "resumed_from": self.resumed_from}


class Distiller(TrainerLoop):
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

    def __init__(self, base_model: str | os.PathLike[str], dataset: DistillationDataset,
                 output_dir: str | os.PathLike[str], config: DistillConfig | None = None, *,
                 base_model_id: str | None = None) -> None:
        self.base_model = str(base_model)
        self.base_model_id = base_model_id
        self.dataset = dataset
        self.output_dir = Path(output_dir)
        self.config = config or DistillConfig()
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
        self._init_loop()

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
        lora = LoraConfig(r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout, task_type="CAUSAL_LM",
                          target_modules=list(c.target_modules) or "all-linear")
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

        budget = (self.config.max_passage_tokens if example.kind == "direct"
                  else self.config.max_comparison_passage_tokens)
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
        return self._scorer.relevance_from_logits(out.logits[:, -1])

    def rank_loss(self, example: RankingExample) -> Any:
        """The configured ranking loss of one query (candidates capped at ``max_rank_passages``)."""
        import torch

        keep = list(range(min(len(example.passages), self.config.max_rank_passages)))
        targets = ranking_targets(example, label_weight=self.config.label_weight)
        scores = self.lm_scores(example.query, [example.passages[i] for i in keep])
        target = torch.tensor([targets[i] for i in keep], dtype=torch.float32, device=scores.device)
        if self.config.ranking_loss == "listnet":
            return RANKING_LOSSES["listnet"](scores, target, temperature=self.config.target_temperature)
        return RANKING_LOSSES[self.config.ranking_loss](scores, target)

    # ---- training -----------------------------------------------------------------------------------------------
    def train(self, *, resume: bool | str | os.PathLike[str] = False, progress: bool = False,
              callback: Callable[[int, dict[str, float]], None] | None = None) -> DistillResult:
        """Run (or continue) training and write the adapter folder.

        Args:
            resume: ``True``: continue from the latest checkpoint in ``output_dir/checkpoints`` (start fresh if there
                is none); a path: continue from that checkpoint folder; ``False``: start fresh.
            progress: Show a tqdm bar.
            callback: Called as ``callback(step, record)`` after every optimizer step (e.g. to stop early by raising).
        """
        seconds, resumed_from = self._run(resume, progress, callback)
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
            picks = stream_indices(len(self.train_rankings), position * c.ranking_batch_size, c.ranking_batch_size,
                                   c.seed, 2)
            rank = torch.stack([self.rank_loss(self.train_rankings[i]) for i in picks]).mean()
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
            teacher, labelled = [], []
            for example in validation.rankings[: c.max_eval_queries]:
                n = min(len(example.passages), c.max_rank_passages)
                scores = self.lm_scores(example.query, example.passages[:n]).float().tolist()
                ranks = example.teacher_ranks()[:n]
                teacher.append(ndcg_from_scores(scores, [float(len(ranks) - r) for r in ranks], c.eval_k))
                labels = [float(label or 0) for label in example.labels[:n]]
                if any(label > 0 for label in labels):
                    labelled.append(ndcg_from_scores(scores, labels, c.eval_k))
            if teacher:
                result["ndcg_teacher"] = sum(teacher) / len(teacher)
            if labelled:
                result["ndcg_labels"] = sum(labelled) / len(labelled)
        self.model.train()
        return result

    # ---- checkpoints and output ---------------------------------------------------------------------------------
    def _write_weights(self, folder: Path) -> None:
        from safetensors.torch import save_file

        from r2r_agent.student import RANK_HEAD_FILE

        self.model.save_pretrained(str(folder))
        if self.rank_head is not None:
            state = {k: v.detach().cpu().contiguous() for k, v in self.rank_head.state_dict().items()}
            save_file(state, str(folder / RANK_HEAD_FILE))

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/checkpoint-<step>`` atomically (temporary folder, then rename) and prune old ones."""
        return save_trainer_checkpoint(self, self._write_weights)

    def load_checkpoint(self, folder: str | os.PathLike[str]) -> None:
        """Restore the adapter, rank head, optimizer, scheduler, RNG states and history from a checkpoint folder."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        from r2r_agent.student import RANK_HEAD_FILE

        folder = Path(folder)
        state = load_trainer_state(folder, "a distillation", f"pass a folder under {self.output_dir / CHECKPOINTS_DIR}"
                                   " or resume=True to find the latest")
        free = RUNTIME_FIELDS | {"eval_at_start", "max_eval_explanations", "max_eval_queries", "eval_k"}
        check_resumable_settings(DistillConfig.from_dict(state["config"]), self.config, free, folder)
        weights = load_file(str(folder / "adapter_model.safetensors"))
        result = set_peft_model_state_dict(self.model, weights)
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise DistillError(f"checkpoint {folder} does not match the model {self.base_model}: unexpected adapter "
                               f"keys {unexpected[:3]}")
        if self.rank_head is not None:
            self.rank_head.load_state_dict(load_file(str(folder / RANK_HEAD_FILE)))
        restore_trainer_state(self, state)

    def save_final(self) -> Path:
        """Write the adapter folder: adapter, rank head, tokenizer, ``r2r_training.json`` and ``README.md``."""
        out = self.output_dir
        out.mkdir(parents=True, exist_ok=True)
        self._write_weights(out)
        self.tokenizer.save_pretrained(str(out))
        info = self.training_info()
        (out / TRAINING_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        from .model_card import render_model_card

        (out / "README.md").write_text(render_model_card(info), encoding="utf-8")
        return out

    def training_info(self) -> dict[str, Any]:
        """The metadata written to ``r2r_training.json``."""
        import peft
        import torch
        import transformers

        train, validation = self.dataset.train, self.dataset.validation
        sources = sorted({e.source for e in (*train.explanations, *train.rankings) if e.source})
        return {
            "format": "r2r-agent-adapter", "format_version": 1,
            "prompt_version": prompts.PROMPT_VERSION,
            "base_model": self.base_model_id or self.base_model,
            "base_model_name": (self.base_model_id or self.base_model).rstrip("/").split("/")[-1],
            "rank_score": self.config.rank_score,
            "has_rank_head": self.rank_head is not None,
            "config": self.config.to_dict(),
            "steps": self.step,
            "runtime": self.runtime_info(),
            "data": {"sources": sources, "train_queries": len(train.query_ids),
                     "validation_queries": len(validation.query_ids),
                     "train_explanations": len(train.explanations), "train_rankings": len(train.rankings),
                     "validation_explanations": len(validation.explanations),
                     "validation_rankings": len(validation.rankings)},
            "loss_curve": self.history,
            "validation": self.validation,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "peft": peft.__version__},
        }


def distill(base_model: str | os.PathLike[str], dataset: DistillationDataset, output_dir: str | os.PathLike[str],
            config: DistillConfig | None = None, *, resume: bool | str | os.PathLike[str] = False,
            progress: bool = False, callback: Callable[[int, dict[str, float]], None] | None = None,
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
