"""The settings of the LM student's LoRA distillation: :class:`DistillConfig` (shared loop settings in LoopConfig)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar

from r2r_agent.errors import InvalidInputError

from .loop_config import LoopConfig


def _default_of(cls: Any, parameter: str) -> int:
    # The passage budgets follow the inference classes' defaults so the student trains on what it will see.
    return int(inspect.signature(cls.__init__).parameters[parameter].default)


def _explainer_default(parameter: str) -> int:
    from r2r_agent.explainer import Explainer

    return _default_of(Explainer, parameter)


def _scorer_default(parameter: str) -> int:
    from r2r_agent.scorers import LMScorer

    return _default_of(LMScorer, parameter)


@dataclass(frozen=True, kw_only=True)
class DistillConfig(LoopConfig):
    """How the student is fine-tuned: the shared :class:`~r2r_agent.training.loop_config.LoopConfig` fields (steps,
    optimizer, ranking targets, validation, checkpoints, runtime) and the LM's own. Every field has a ``help`` text
    (the CLI shows it).

    Example:
        >>> DistillConfig(max_steps=100, lora_r=8, rank_weight=0.5).rank_weight
        0.5
    """

    batch_size: int = field(default=4, metadata={"help": "explanation examples per micro-batch"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input"})
    init_adapter: str | None = field(default=None, metadata={
        "help": "start from this LoRA adapter folder (its rank, alpha and modules) instead of a fresh one: continue "
                "training a shipped adapter on new targets"})
    target_modules: tuple[str, ...] = field(default=(), metadata={
        "help": "module names to adapt (default: every linear layer but the output head)"})
    lm_weight: float = field(default=1.0, metadata={"help": "weight of the explanation language-model loss"})
    rank_weight: float = field(default=1.0, metadata={"help": "weight of the ranking loss"})
    rank_score: str = field(default="yes_no", metadata={
        "help": "score the ranking loss trains: yes_no (log-odds, no extra weights) or head (linear rank head)"})
    max_passage_tokens: int = field(default_factory=lambda: _explainer_default("max_passage_tokens"), metadata={
        "help": "passage token budget in direct-explanation prompts (the Explainer's default)"})
    max_comparison_passage_tokens: int = field(
        default_factory=lambda: _explainer_default("max_comparison_passage_tokens"),
        metadata={"help": "per-passage token budget in comparison prompts (the Explainer's default)"})
    max_rank_passage_tokens: int = field(default_factory=lambda: _scorer_default("max_passage_tokens"), metadata={
        "help": "passage token budget in relevance prompts (the LMScorer's default)"})
    max_target_tokens: int = field(default=128, metadata={"help": "explanation target tokens kept at most"})
    eval_at_start: bool = field(default=True, metadata={"help": "validate the untrained student first (baseline)"})
    max_eval_explanations: int = field(default=64, metadata={"help": "validation explanations scored at most"})

    FREE_ON_RESUME: ClassVar[frozenset[str]] = LoopConfig.FREE_ON_RESUME | {"eval_at_start", "max_eval_explanations"}

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_modules", tuple(self.target_modules))  # a JSON list comes back as a tuple
        super().__post_init__()
        for name in ("batch_size", "lora_r", "lora_alpha", "max_passage_tokens", "max_comparison_passage_tokens",
                     "max_rank_passage_tokens", "max_target_tokens"):
            self._require(name, getattr(self, name) >= 1, ">= 1")
        for name in ("lm_weight", "rank_weight", "max_eval_explanations"):
            self._require(name, getattr(self, name) >= 0, ">= 0")
        self._require("lora_dropout", 0.0 <= self.lora_dropout < 1.0, "in [0, 1)")
        if self.lm_weight == 0 and self.rank_weight == 0:
            raise InvalidInputError("DistillConfig.lm_weight and DistillConfig.rank_weight are both 0: nothing to "
                                    "train; give at least one a positive weight")
        self._require("rank_score", self.rank_score in ("yes_no", "head"), "'yes_no' or 'head'")


__all__ = ["DistillConfig"]
