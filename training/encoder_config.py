"""The settings of the encoder scorer's distillation: :class:`EncoderDistillConfig` (shared ones in LoopConfig)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .encoder_selection import SELECTION_METRICS
from .loop_config import LoopConfig, retuned


@dataclass(frozen=True, kw_only=True)
class EncoderDistillConfig(LoopConfig):
    """How the encoder is fine-tuned: the shared :class:`~r2r_agent.training.loop_config.LoopConfig` fields (with a
    larger batch, a smaller learning rate and some weight decay: the whole encoder trains) and the encoder's own.
    Every field has a ``help`` text (the CLI shows it).

    Example:
        >>> EncoderDistillConfig(max_steps=100, ranking_loss="ranknet").scale
        20.0
    """

    ranking_batch_size: int = retuned("ranking_batch_size", 4)
    learning_rate: float = retuned("learning_rate", 2e-5)
    weight_decay: float = retuned("weight_decay", 0.01)
    scale: float = field(default=20.0, metadata={
        "help": "cosine-similarity scale before the loss (sentence-transformers uses 20: a temperature of 1/20)"})
    max_tokens: int | None = field(default=None, metadata={
        "help": "token budget per text (default: the encoder's own, e.g. 256 for MiniLM); saved with the model"})
    select_on: str = field(default="mean", metadata={
        "help": "validation metric that decides whether the model beats the base: ndcg_teacher, ndcg_labels or "
                "mean (of the two, where the data has labels)"})
    min_gain: float = field(default=0.0, metadata={
        "help": "the final model beats the base only if select_on rises by more than this"})

    FREE_ON_RESUME: ClassVar[frozenset[str]] = LoopConfig.FREE_ON_RESUME | {"select_on", "min_gain"}

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require("max_eval_queries", self.max_eval_queries >= 1, ">= 1")  # the comparison with the base needs one
        self._require("min_gain", self.min_gain >= 0, ">= 0")
        self._require("max_tokens", self.max_tokens is None or self.max_tokens >= 8, ">= 8 or None")
        self._require("scale", self.scale > 0, "> 0")
        self._require("select_on", self.select_on in SELECTION_METRICS, f"one of {list(SELECTION_METRICS)}")


__all__ = ["EncoderDistillConfig"]
