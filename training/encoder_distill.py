"""Distillation of the encoder scorer: fine-tune the bi-encoder (bundled all-MiniLM-L6-v2) on the teacher's rankings.

The fast first stage of the cascade (:class:`~r2r_agent.EncoderScorer`) learns from the same teacher orders and
relevance labels as the LM student: every training query's candidates get the encoder's score, ``scale * cosine``
of the mean-pooled, normalised embeddings exactly as :meth:`EncoderScorer.embed` computes them, and a ranking loss
(:data:`~r2r_agent.training.losses.RANKING_LOSSES`: listwise ListNet or pairwise RankNet) pulls that order towards
:func:`~r2r_agent.training.losses.ranking_targets`. The whole encoder is fine-tuned (22M parameters for MiniLM).

The untrained encoder is always validated first: a small bi-encoder fine-tuned on a few hundred queries can easily
get worse, so the output records whether the final model beats the base on the held-out queries (``beats_base`` in
``r2r_training.json`` and in the model card), and a caller keeps it only where it does.

The output folder loads with ``EncoderScorer.from_pretrained(folder)`` (and with sentence-transformers where the base
had its files). Training is resumable exactly, like :mod:`~r2r_agent.training.distill`: checkpoints hold the weights,
optimizer, scheduler, RNG states and step, and the data order is a pure function of the seed and the position.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r2r_agent.errors import InvalidInputError

from .dataset import DistillationDataset, RankingExample
from .distill import TRAINING_FILE
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
    load_trainer_state,
    mixed_precision_field,
    restore_trainer_state,
    save_trainer_checkpoint,
    stream_indices,
    use_accelerate_field,
)

logger = logging.getLogger(__name__)

_WEIGHTS_FILE = "encoder.safetensors"
#: The validation metrics ``select_on`` may name ("mean": the mean of those a validation has).
SELECTION_METRICS = ("mean", "ndcg_teacher", "ndcg_labels")
# sentence-transformers' files copied from the base so the output also loads there (the pooling is the same).
_SENTENCE_TRANSFORMERS_FILES = ("modules.json", "config_sentence_transformers.json", "1_Pooling")


@dataclass(frozen=True)
class EncoderDistillConfig:
    """How the encoder is fine-tuned. Every field has a ``help`` text (the CLI shows it).

    Example:
        >>> EncoderDistillConfig(max_steps=100, ranking_loss="ranknet").scale
        20.0
    """

    max_steps: int | None = field(default=None, metadata={
        "help": "optimizer steps to train (default: derived from epochs)"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the training queries when max_steps is unset"})
    ranking_batch_size: int = field(default=4, metadata={"help": "ranking queries per micro-batch"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step (gradient accumulation)"})
    learning_rate: float = field(default=2e-5, metadata={"help": "peak AdamW learning rate"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps"})
    scheduler: str = field(default="linear", metadata={"help": "learning-rate schedule after warm-up: linear or "
                                                                "constant"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm (0: off)"})
    ranking_loss: str = field(default="listnet", metadata={
        "help": f"ranking loss: {' or '.join(RANKING_LOSSES)} (listwise, or pairwise logistic margin)"})
    scale: float = field(default=20.0, metadata={
        "help": "cosine-similarity scale before the loss (sentence-transformers uses 20: a temperature of 1/20)"})
    target_temperature: float = field(default=0.2, metadata={"help": "ListNet target softmax temperature"})
    label_weight: float = field(default=1.0, metadata={"help": "how much a relevance label adds to the teacher "
                                                                  "order's target"})
    max_rank_passages: int = field(default=20, metadata={
        "help": "candidates per ranking example at most (the first ones in input order)"})
    max_tokens: int | None = field(default=None, metadata={
        "help": "token budget per text (default: the encoder's own, e.g. 256 for MiniLM); saved with the model"})
    seed: int = field(default=0, metadata={"help": "seed of data order and dropout"})
    checkpoint_every: int = field(default=0, metadata={"help": "save a resumable checkpoint every N steps (0: off)"})
    keep_checkpoints: int = field(default=2, metadata={"help": "most recent checkpoints kept (0: keep all)"})
    eval_every: int = field(default=0, metadata={"help": "validate every N steps (0: only at the start and end)"})
    max_eval_queries: int = field(default=50, metadata={"help": "validation ranking queries scored at most"})
    eval_k: int = field(default=5, metadata={"help": "cut-off of the validation nDCG"})
    select_on: str = field(default="mean", metadata={
        "help": "validation metric that decides whether the model beats the base: ndcg_teacher, ndcg_labels or "
                "mean (of the two, where the data has labels)"})
    min_gain: float = field(default=0.0, metadata={
        "help": "the final model beats the base only if select_on rises by more than this"})
    log_every: int = field(default=10, metadata={"help": "log the loss every N steps"})
    device: str = device_field()
    use_accelerate: bool = use_accelerate_field()
    mixed_precision: str = mixed_precision_field()

    def __post_init__(self) -> None:
        check_loop_settings(self)
        if self.max_eval_queries < 1:
            raise InvalidInputError(f"EncoderDistillConfig.max_eval_queries must be >= 1, got {self.max_eval_queries}")
        if self.min_gain < 0:
            raise InvalidInputError(f"EncoderDistillConfig.min_gain must be >= 0, got {self.min_gain}")
        if self.max_tokens is not None and self.max_tokens < 8:
            raise InvalidInputError(f"EncoderDistillConfig.max_tokens must be >= 8 or None, got {self.max_tokens}")
        if self.scale <= 0:
            raise InvalidInputError(f"EncoderDistillConfig.scale must be > 0, got {self.scale}")
        if self.select_on not in SELECTION_METRICS:
            raise InvalidInputError(f"EncoderDistillConfig.select_on must be one of {list(SELECTION_METRICS)}, got "
                                    f"{self.select_on!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EncoderDistillConfig:
        """Build from :meth:`to_dict` output (unknown keys are rejected, naming them)."""
        return config_from_dict(cls, data)


@dataclass(frozen=True)
class BaseComparison:
    """The final model against the untrained base on the validation metric ``metric``.

    Attributes:
        metric: The compared metric (:data:`SELECTION_METRICS`).
        base: Its value for the untrained encoder (step 0); ``None`` when it could not be computed.
        final: Its value after training.
        min_gain: The margin the final model must beat the base by.
    """

    metric: str
    base: float | None
    final: float | None
    min_gain: float = 0.0

    @property
    def beats_base(self) -> bool:
        """Whether the final model is better than the base by more than ``min_gain`` (``False`` when unknown)."""
        return self.base is not None and self.final is not None and self.final - self.base > self.min_gain

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``beats_base`` included)."""
        return {"metric": self.metric, "base": self.base, "final": self.final, "min_gain": self.min_gain,
                "gain": None if self.base is None or self.final is None else self.final - self.base,
                "beats_base": self.beats_base}


def selection_value(record: Mapping[str, Any], metric: str) -> float | None:
    """The value of ``metric`` in a validation record ("mean": the mean of the nDCGs it has; ``None``: none).

    Example:
        >>> selection_value({"ndcg_teacher": 0.5, "ndcg_labels": None}, "mean")
        0.5
    """
    if metric == "mean":
        values = [record[k] for k in ("ndcg_teacher", "ndcg_labels") if record.get(k) is not None]
        return sum(values) / len(values) if values else None
    value = record.get(metric)
    return None if value is None else float(value)


def compare_to_base(validation: Sequence[Mapping[str, Any]], metric: str, min_gain: float = 0.0) -> BaseComparison:
    """Compare the last validation record with the step-0 one (the untrained base)."""
    base = next((r for r in validation if r["step"] == 0), None)
    final = validation[-1] if validation else None
    return BaseComparison(metric, None if base is None else selection_value(base, metric),
                          None if final is None or final is base else selection_value(final, metric), min_gain)


@dataclass
class EncoderDistillResult:
    """What an encoder distillation run produced.

    Attributes:
        output_dir: The encoder folder (loads with ``EncoderScorer.from_pretrained(output_dir)``).
        steps: Optimizer steps done in total (including those before a resume).
        history: One record per step: ``step``, ``loss``, ``lr``.
        validation: One record per validation: ``step``, ``rank_loss``, ``ndcg_teacher``, ``ndcg_labels``; step 0 is
            the untrained base.
        comparison: The final model against the base on the selection metric.
        seconds: Wall-clock seconds of this call (not counting earlier runs before a resume).
        resumed_from: The step of the checkpoint the run resumed from (``None``: started fresh).
    """

    output_dir: Path
    steps: int
    history: list[dict[str, float]]
    validation: list[dict[str, float | None]]
    comparison: BaseComparison
    seconds: float
    resumed_from: int | None = None

    @property
    def beats_base(self) -> bool:
        """Whether the fine-tuned encoder beats the untrained one on validation (keep it only then)."""
        return self.comparison.beats_base

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {"output_dir": str(self.output_dir), "steps": self.steps, "history": self.history,
                "validation": self.validation, "comparison": self.comparison.to_dict(),
                "beats_base": self.beats_base, "seconds": self.seconds, "resumed_from": self.resumed_from}


class EncoderDistiller(TrainerLoop):
    """Fine-tunes a bi-encoder on the ranking examples of a :class:`~r2r_agent.training.DistillationDataset`.

    Most callers use :func:`distill_encoder`; the class exposes the pieces tests and custom loops need.

    Args:
        base_model: A local sentence-embedding encoder folder (``AutoModel`` + tokenizer).
        dataset: Training and validation examples (only the ranking examples are used).
        output_dir: Where the encoder (and ``checkpoints/``) go.
        config: Training settings.
        base_name: The base's name in the metadata and model card (default: its folder's name).
    """

    progress_desc = "distill encoder"

    def __init__(self, base_model: str | os.PathLike[str], dataset: DistillationDataset,
                 output_dir: str | os.PathLike[str], config: EncoderDistillConfig | None = None, *,
                 base_name: str | None = None) -> None:
        self.base_model = str(base_model)
        self.base_name = base_name or Path(base_model).name
        self.dataset = dataset
        self.output_dir = Path(output_dir)
        self.config = config or EncoderDistillConfig()
        self.train_rankings = list(dataset.train.rankings)
        self.validation_rankings = list(dataset.validation.rankings[: self.config.max_eval_queries])
        if not self.train_rankings:
            raise DistillError("nothing to train the encoder on: the training split has no ranking examples; build "
                               "the dataset from annotations with teacher rankings")
        if not self.validation_rankings:
            # Without held-out queries there is no way to tell whether training helped, and it often does not.
            raise DistillError("the validation split has no ranking examples, so the fine-tuned encoder cannot be "
                               "compared with the base; build the dataset with validation_fraction > 0")
        self.scorer: Any = None
        self._encoder: Any = None
        self._init_loop()

    # ---- set-up -------------------------------------------------------------------------------------------------
    def _micro_batches_per_epoch(self) -> int:
        return math.ceil(len(self.train_rankings) / self.config.ranking_batch_size)

    def _build(self) -> list[Any]:
        from r2r_agent.scorers import EncoderScorer

        c = self.config
        extra = {} if c.max_tokens is None else {"max_tokens": c.max_tokens}
        # The inference class loads the model, so training sees its tokenizer, token budget and pooling.
        self.scorer = EncoderScorer.from_pretrained(self.base_model, **extra)
        self._encoder = self.scorer.model.to(self.device).train()
        self.scorer.model = self._encoder
        # Mean pooling never reads BERT's pooler: frozen, so DDP does not wait for gradients that never come (plain
        # AdamW skipped it anyway, its gradient being None).
        for name, parameter in self._encoder.named_parameters():
            if name.startswith("pooler."):
                parameter.requires_grad_(False)
        return [self._encoder]

    def _use_modules(self, modules: Sequence[Any] | None) -> None:
        # The scorer's own pooling runs the forward pass, so it is pointed at the module to run.
        self.scorer.model = self._encoder if modules is None else modules[0]

    @property
    def model(self) -> Any:
        """The encoder being trained."""
        return self._encoder

    # ---- scores and losses --------------------------------------------------------------------------------------
    def encoder_scores(self, queries: Sequence[str], passage_lists: Sequence[Sequence[str]]) -> list[Any]:
        """``scale * cosine`` per query's passages (tensors with gradients in training), as the scorer computes them.

        One forward pass for the queries and one for all passages of the batch.
        """
        c = self.config
        query_vectors = self.scorer.pooled(self.scorer.fit(queries)[0])
        flat = [p for passages in passage_lists for p in passages]
        passage_vectors = self.scorer.pooled(self.scorer.fit(flat)[0])
        out, begin = [], 0
        for row, passages in enumerate(passage_lists):
            block = passage_vectors[begin : begin + len(passages)]
            out.append(c.scale * (block @ query_vectors[row]))
            begin += len(passages)
        return out

    def _candidates(self, example: RankingExample) -> list[str]:
        return list(example.passages[: self.config.max_rank_passages])

    def rank_losses(self, examples: Sequence[RankingExample]) -> list[Any]:
        """The configured ranking loss of each query (candidates capped at ``max_rank_passages``)."""
        candidates = [self._candidates(e) for e in examples]
        return self._losses(examples, self.encoder_scores([e.query for e in examples], candidates))

    def _losses(self, examples: Sequence[RankingExample], scores: Sequence[Any]) -> list[Any]:
        import torch

        c = self.config
        losses = []
        for example, row in zip(examples, scores, strict=True):
            targets = ranking_targets(example, label_weight=c.label_weight)[: len(row)]
            target = torch.tensor(targets, dtype=torch.float32, device=row.device)
            if c.ranking_loss == "listnet":
                losses.append(RANKING_LOSSES["listnet"](row, target, temperature=c.target_temperature))
            else:
                losses.append(RANKING_LOSSES[c.ranking_loss](row, target))
        return losses

    # ---- training -----------------------------------------------------------------------------------------------
    def train(self, *, resume: bool | str | os.PathLike[str] = False, progress: bool = False,
              callback: Callable[[int, dict[str, float]], None] | None = None) -> EncoderDistillResult:
        """Run (or continue) training and write the encoder folder.

        The untrained base is always validated first: it is what the fine-tuned encoder must beat.

        Args:
            resume: ``True``: continue from the latest checkpoint in ``output_dir/checkpoints`` (start fresh if there
                is none); a path: continue from that checkpoint folder; ``False``: start fresh.
            progress: Show a tqdm bar.
            callback: Called as ``callback(step, record)`` after every optimizer step (e.g. to stop early by raising).
        """
        seconds, resumed_from = self._run(resume, progress, callback)
        return EncoderDistillResult(self.output_dir, self.step, self.history, self.validation, self.comparison(),
                                    seconds, resumed_from)

    def _micro_batch_loss(self, position: int) -> tuple[Any, dict[str, float]]:
        import torch

        c = self.config
        picks = stream_indices(len(self.train_rankings), position * c.ranking_batch_size, c.ranking_batch_size,
                               c.seed, 2)
        loss = torch.stack(self.rank_losses([self.train_rankings[i] for i in picks])).mean()
        return loss, {"loss": float(loss.detach())}

    # ---- validation ---------------------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float | None]:
        """Validation ranking loss and nDCG@k of the encoder's order vs the teacher's order and vs the labels.

        Uses the first ``max_eval_queries`` validation queries; ``ndcg_labels`` averages over the queries with a
        positive label (``None`` when none has one).
        """
        import torch

        c = self.config
        self.model.eval()
        losses, teacher, labelled = [], [], []
        with torch.no_grad():
            for begin in range(0, len(self.validation_rankings), c.ranking_batch_size):
                examples = self.validation_rankings[begin : begin + c.ranking_batch_size]
                candidates = [self._candidates(e) for e in examples]
                rows = self.encoder_scores([e.query for e in examples], candidates)
                losses.extend(float(loss) for loss in self._losses(examples, rows))
                for example, kept, row in zip(examples, candidates, rows, strict=True):
                    scores = row.float().tolist()
                    ranks = example.teacher_ranks()[: len(kept)]
                    teacher.append(ndcg_from_scores(scores, [float(len(ranks) - r) for r in ranks], c.eval_k))
                    labels = [float(label or 0) for label in example.labels[: len(kept)]]
                    if any(label > 0 for label in labels):
                        labelled.append(ndcg_from_scores(scores, labels, c.eval_k))
        self.model.train()
        return {"step": self.step, "rank_loss": sum(losses) / len(losses),
                "ndcg_teacher": sum(teacher) / len(teacher),
                "ndcg_labels": sum(labelled) / len(labelled) if labelled else None}

    def comparison(self) -> BaseComparison:
        """The latest validation against the untrained base's on ``config.select_on``."""
        return compare_to_base(self.validation, self.config.select_on, self.config.min_gain)

    # ---- checkpoints and output ---------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/checkpoint-<step>`` atomically (temporary folder, then rename) and prune old ones."""
        from safetensors.torch import save_model

        # save_model handles tied weights, unlike save_file
        return save_trainer_checkpoint(self, lambda folder: save_model(self.model, str(folder / _WEIGHTS_FILE)))

    def load_checkpoint(self, folder: str | os.PathLike[str]) -> None:
        """Restore the weights, optimizer, scheduler, RNG states and history from a checkpoint folder."""
        from safetensors.torch import load_model

        folder = Path(folder)
        state = load_trainer_state(folder, "an encoder distillation", f"pass a folder under "
                                   f"{self.output_dir / CHECKPOINTS_DIR} or resume=True to find the latest",
                                   required=(_WEIGHTS_FILE,))
        free = RUNTIME_FIELDS | {"max_eval_queries", "eval_k", "select_on", "min_gain"}
        check_resumable_settings(EncoderDistillConfig.from_dict(state["config"]), self.config, free, folder)
        try:
            load_model(self.model, str(folder / _WEIGHTS_FILE), strict=True, device=str(self.device))
        except RuntimeError as exc:
            raise DistillError(f"checkpoint {folder} does not match the encoder {self.base_model} "
                               f"(it was trained from {state.get('base_model')!r}): {exc}") from exc
        restore_trainer_state(self, state)

    def save_final(self) -> Path:
        """Write the encoder folder: weights, tokenizer, sentence-transformers files, metadata and model card."""
        out = self.output_dir
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(out))
        self.scorer.tokenizer.save_pretrained(str(out))
        base = Path(self.base_model)
        for name in _SENTENCE_TRANSFORMERS_FILES:
            source = base / name
            if source.is_dir():
                shutil.copytree(source, out / name, dirs_exist_ok=True)
            elif source.is_file():
                shutil.copy2(source, out / name)
        # EncoderScorer.from_pretrained reads the token budget from here: the output scores as it was trained.
        sbert = base / "sentence_bert_config.json"
        settings = json.loads(sbert.read_text(encoding="utf-8")) if sbert.is_file() else {}
        settings["max_seq_length"] = self.scorer.max_tokens
        (out / "sentence_bert_config.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        info = self.training_info()
        (out / TRAINING_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        from .model_card import render_encoder_model_card

        (out / "README.md").write_text(render_encoder_model_card(info), encoding="utf-8")
        return out

    def training_info(self) -> dict[str, Any]:
        """The metadata written to ``r2r_training.json`` (``beats_base`` at the top level)."""
        import torch
        import transformers

        train, validation = self.dataset.train, self.dataset.validation
        sources = sorted({e.source for e in (*train.rankings, *validation.rankings) if e.source})
        comparison = self.comparison()
        return {
            "format": "r2r-agent-encoder", "format_version": 1,
            "base_model": self.base_model,
            "base_model_name": self.base_name,
            "max_tokens": self.scorer.max_tokens,
            "config": self.config.to_dict(),
            "steps": self.step,
            "runtime": self.runtime_info(),
            "data": {"sources": sources, "train_queries": len(train.query_ids),
                     "validation_queries": len(validation.query_ids), "train_rankings": len(train.rankings),
                     "validation_rankings": len(validation.rankings),
                     "validation_rankings_scored": len(self.validation_rankings)},
            "loss_curve": self.history,
            "validation": self.validation,
            "comparison": comparison.to_dict(),
            "beats_base": comparison.beats_base,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        }


def distill_encoder(base_model: str | os.PathLike[str], dataset: DistillationDataset,
                    output_dir: str | os.PathLike[str], config: EncoderDistillConfig | None = None, *,
                    resume: bool | str | os.PathLike[str] = False, progress: bool = False,
                    callback: Callable[[int, dict[str, float]], None] | None = None,
                    base_name: str | None = None) -> EncoderDistillResult:
    """Fine-tune the encoder ``base_model`` on ``dataset``'s rankings and write an encoder folder to ``output_dir``.

    Args:
        base_model: A local encoder folder (e.g. ``r2r_agent.default_models.minilm_path()``).
        dataset: From :func:`~r2r_agent.training.build_dataset`.
        output_dir: The encoder folder to write (checkpoints go to ``output_dir/checkpoints``).
        config: Training settings.
        resume: See :meth:`EncoderDistiller.train`.
        progress: Show a tqdm bar.
        callback: Called as ``callback(step, record)`` after every optimizer step.
        base_name: The base's name in the metadata and model card (default: its folder's name).

    Returns:
        The run's losses, validation metrics and whether it beats the base (keep the encoder only where it does).

    Example:
        >>> data = build_dataset(load_r2r_annotations("msmarco_500.jsonl.gz"))       # doctest: +SKIP
        >>> result = distill_encoder(minilm_path(), data, "encoders/minilm-r2r")     # doctest: +SKIP
        >>> folder = "encoders/minilm-r2r" if result.beats_base else minilm_path()  # doctest: +SKIP
        >>> scorer = EncoderScorer.from_pretrained(folder)                           # doctest: +SKIP
    """
    distiller = EncoderDistiller(base_model, dataset, output_dir, config, base_name=base_name)
    return distiller.train(resume=resume, progress=progress, callback=callback)


__all__ = ["SELECTION_METRICS", "BaseComparison", "EncoderDistillConfig", "EncoderDistillResult", "EncoderDistiller",
           "compare_to_base", "distill_encoder", "selection_value"]
