"""The settings both trainers share, declared and checked once: :class:`LoopConfig`.

:class:`~r2r_agent.training.DistillConfig` (the LM's LoRA adapter) and
:class:`~r2r_agent.training.EncoderDistillConfig` (the bi-encoder) derive from it and add only their own fields and
checks. A trainer whose default differs (the encoder's learning rate) restates the default with :func:`retuned`, which
keeps the help text declared here. The ``r2r distill`` flags derive from these fields.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from r2r_agent.errors import InvalidInputError

from .errors import DistillError
from .losses import RANKING_LOSSES

#: Values of the configs' ``mixed_precision`` field.
MIXED_PRECISION = ("no", "fp16", "bf16")

ConfigT = TypeVar("ConfigT", bound="LoopConfig")


@dataclass(frozen=True, kw_only=True)
class LoopConfig:
    """The step loop, the ranking targets, validation, checkpoints and the runtime: what both trainers configure.

    Every field has a ``help`` text (the CLI shows it). Errors name the subclass and the field.

    Example:
        >>> from r2r_agent.training import DistillConfig
        >>> DistillConfig(max_steps=10).to_dict()["max_steps"]
        10
    """

    # ---- steps and the optimizer --------------------------------------------------------------------------------
    max_steps: int | None = field(default=None, metadata={
        "help": "optimizer steps to train (default: derived from epochs)"})
    epochs: float = field(default=1.0, metadata={
        "help": "passes over the training data when max_steps is unset (the LM: over the larger task's data)"})
    ranking_batch_size: int = field(default=1, metadata={"help": "ranking queries per micro-batch"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step (gradient accumulation)"})
    learning_rate: float = field(default=2e-4, metadata={"help": "peak AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps"})
    scheduler: str = field(default="linear", metadata={"help": "learning-rate schedule after warm-up: linear or "
                                                                "constant"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm (0: off)"})
    seed: int = field(default=0, metadata={"help": "seed of initialisation, data order and dropout"})
    # ---- the ranking targets ------------------------------------------------------------------------------------
    ranking_loss: str = field(default="listnet", metadata={
        "help": f"ranking loss: {' or '.join(RANKING_LOSSES)} (listwise, or pairwise logistic)"})
    target_temperature: float = field(default=0.2, metadata={"help": "ListNet target softmax temperature"})
    label_weight: float = field(default=1.0, metadata={"help": "how much a relevance label adds to the teacher "
                                                                  "order's target"})
    max_rank_passages: int = field(default=20, metadata={
        "help": "candidates per ranking example at most (the first ones in input order)"})
    # ---- validation, logs and checkpoints -----------------------------------------------------------------------
    eval_every: int = field(default=0, metadata={
        "help": "validate every N steps (0: only at the end, and at the start where the trainer does)"})
    max_eval_queries: int = field(default=50, metadata={"help": "validation ranking queries scored at most"})
    eval_k: int = field(default=5, metadata={"help": "cut-off of the validation nDCG"})
    log_every: int = field(default=10, metadata={"help": "log the losses every N steps"})
    checkpoint_every: int = field(default=0, metadata={"help": "save a resumable checkpoint every N steps (0: off)"})
    keep_checkpoints: int = field(default=2, metadata={"help": "most recent checkpoints kept (0: keep all)"})
    # ---- runtime --------------------------------------------------------------------------------------------------
    device: str = field(default="cpu", metadata={
        "help": "torch device (cpu, cuda, cuda:1, mps); under accelerate: cpu, or cuda for one GPU per process"})
    use_accelerate: bool = field(default=False, metadata={
        "help": "run under accelerate (on by itself with --mixed-precision or under `accelerate launch` with "
                "several processes)"})
    mixed_precision: str = field(default="no", metadata={"help": "no, fp16 or bf16 (through accelerate)"})

    #: Fields a resumed run may change: they do not alter the training trajectory (a subclass adds its own).
    FREE_ON_RESUME: ClassVar[frozenset[str]] = frozenset({
        "max_steps", "epochs", "checkpoint_every", "keep_checkpoints", "eval_every", "log_every", "device",
        "use_accelerate", "max_eval_queries", "eval_k"})

    def __post_init__(self) -> None:
        for name in ("ranking_batch_size", "grad_accum", "max_rank_passages", "eval_k", "log_every"):
            self._require(name, getattr(self, name) >= 1, ">= 1")
        for name in ("weight_decay", "warmup_steps", "max_grad_norm", "label_weight", "checkpoint_every",
                     "keep_checkpoints", "eval_every", "max_eval_queries"):
            self._require(name, getattr(self, name) >= 0, ">= 0")
        self._require("max_steps", self.max_steps is None or self.max_steps >= 1, ">= 1 or None")
        for name in ("epochs", "learning_rate", "target_temperature"):
            self._require(name, getattr(self, name) > 0, "> 0")
        self._require("scheduler", self.scheduler in ("linear", "constant"), "'linear' or 'constant'")
        self._require("ranking_loss", self.ranking_loss in RANKING_LOSSES, f"one of {sorted(RANKING_LOSSES)}")
        self._require("mixed_precision", self.mixed_precision in MIXED_PRECISION, f"one of {list(MIXED_PRECISION)}")

    def _require(self, name: str, ok: bool, expected: str) -> None:
        """Raise :class:`InvalidInputError` naming ``Class.field``, what it must be and what it is, unless ``ok``."""
        if not ok:
            raise InvalidInputError(f"{type(self).__name__}.{name} must be {expected}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls: type[ConfigT], data: Mapping[str, Any]) -> ConfigT:
        """Build from :meth:`to_dict` output (``r2r_training.json``, checkpoints); unknown keys are rejected by name."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidInputError(f"{cls.__name__}: unknown fields {unknown}; expected some of {sorted(names)}")
        return cls(**data)

    def check_resumable_from(self, saved: LoopConfig, folder: str | os.PathLike[str]) -> None:
        """Raise :class:`DistillError` when the ``saved`` settings of checkpoint ``folder`` differ from these outside
        :attr:`FREE_ON_RESUME`: only settings that change the training trajectory must match."""
        differing = sorted(f.name for f in dataclasses.fields(self)
                           if f.name not in self.FREE_ON_RESUME and getattr(saved, f.name) != getattr(self, f.name))
        if differing:
            raise DistillError(f"checkpoint {folder} was written with other settings for {differing}; resume with "
                               "the same configuration (or start a fresh run in another output folder)")


def retuned(name: str, default: Any) -> Any:
    """The :class:`LoopConfig` field ``name`` with another default for one trainer; its help text stays the shared one.

    Example:
        >>> retuned("learning_rate", 2e-5).default
        2e-05
    """
    shared = {f.name: f for f in dataclasses.fields(LoopConfig)}[name]
    return field(default=default, metadata=shared.metadata)


__all__ = ["MIXED_PRECISION", "LoopConfig", "retuned"]
