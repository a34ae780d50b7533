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

import json
import logging
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r2r_agent.files import atomic_write_text

from .checkpoints import read_safetensors
from .dataset import DistillationDataset, RankingExample
from .encoder_config import EncoderDistillConfig
from .encoder_selection import SELECTION_METRICS, BaseComparison, compare_to_base, selection_value
from .errors import DistillError
from .losses import example_ranking_loss, validation_ndcgs
from .trainer_loop import Callback, TrainerLoop, TrainResult

logger = logging.getLogger(__name__)

_WEIGHTS_FILE = "encoder.safetensors"
# sentence-transformers' files copied from the base so the output also loads there (the pooling is the same).
_SENTENCE_TRANSFORMERS_FILES = ("modules.json", "config_sentence_transformers.json", "1_Pooling")


@dataclass
class EncoderDistillResult(TrainResult):
    """What an encoder distillation run produced: :class:`~r2r_agent.training.trainer_loop.TrainResult` with
    ``output_dir`` the encoder folder (loads with ``EncoderScorer.from_pretrained(output_dir)``), ``history`` records
    ``step``, ``loss``, ``lr`` and ``validation`` records ``step``, ``rank_loss``, ``ndcg_teacher``, ``ndcg_labels``
    (step 0 is the untrained base).

    Attributes:
        comparison: The final model against the base on the selection metric.
    """

    comparison: BaseComparison = field(kw_only=True)

    @property
    def beats_base(self) -> bool:
        """Whether the fine-tuned encoder beats the untrained one on validation (keep it only then)."""
        return self.comparison.beats_base

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {**super().to_dict(), "comparison": self.comparison.to_dict(), "beats_base": self.beats_base}


class EncoderDistiller(TrainerLoop[EncoderDistillResult]):
    """Fine-tunes a bi-encoder on the ranking examples of a :class:`~r2r_agent.training.DistillationDataset`.

    Most callers use :func:`distill_encoder`; the class exposes the pieces tests and custom loops need.

    Args:
        base_model: A local sentence-embedding encoder folder (``AutoModel`` + tokenizer).
        dataset: Training and validation examples (only the ranking examples are used).
        output_dir: Where the encoder (and ``checkpoints/``) go.
        config: Training settings.
        base_name: The base's name in the metadata and model card (default: its folder's name).

    The untrained base is always validated first (step 0): it is what the fine-tuned encoder must beat.
    """

    progress_desc = "distill encoder"
    checkpoint_kind = "an encoder distillation"
    config: EncoderDistillConfig

    def __init__(self, base_model: str | os.PathLike[str], dataset: DistillationDataset,
                 output_dir: str | os.PathLike[str], config: EncoderDistillConfig | None = None, *,
                 base_name: str | None = None) -> None:
        super().__init__(base_model, dataset, output_dir, config or EncoderDistillConfig())
        self.base_name = base_name or Path(base_model).name
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

    # ---- set-up -------------------------------------------------------------------------------------------------
    def _micro_batches_per_epoch(self) -> int:
        return math.ceil(len(self.train_rankings) / self.config.ranking_batch_size)

    def _build(self) -> list[Any]:
        from r2r_agent.scorers import EncoderScorer

        c = self.config
        extra: dict[str, Any] = {} if c.max_tokens is None else {"max_tokens": c.max_tokens}
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
        c = self.config
        return [example_ranking_loss(c.ranking_loss, row, example, label_weight=c.label_weight,
                                     temperature=c.target_temperature)
                for example, row in zip(examples, scores, strict=True)]

    # ---- training -----------------------------------------------------------------------------------------------
    def _result(self, seconds: float, resumed_from: int | None) -> EncoderDistillResult:
        return EncoderDistillResult(self.output_dir, self.step, self.history, self.validation, seconds, resumed_from,
                                    comparison=self.comparison())

    def _micro_batch_loss(self, position: int) -> tuple[Any, dict[str, float]]:
        import torch

        loss = torch.stack(self.rank_losses(self._ranking_micro_batch(self.train_rankings, position))).mean()
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
        losses: list[float] = []
        teacher: list[float] = []
        labelled: list[float] = []
        with torch.no_grad():
            for begin in range(0, len(self.validation_rankings), c.ranking_batch_size):
                examples = self.validation_rankings[begin : begin + c.ranking_batch_size]
                candidates = [self._candidates(e) for e in examples]
                rows = self.encoder_scores([e.query for e in examples], candidates)
                losses.extend(float(loss) for loss in self._losses(examples, rows))
                for example, row in zip(examples, rows, strict=True):
                    by_teacher, by_labels = validation_ndcgs(row.float().tolist(), example, c.eval_k)
                    teacher.append(by_teacher)
                    if by_labels is not None:
                        labelled.append(by_labels)
        self.model.train()
        return {"step": self.step, "rank_loss": sum(losses) / len(losses),
                "ndcg_teacher": sum(teacher) / len(teacher),
                "ndcg_labels": sum(labelled) / len(labelled) if labelled else None}

    def comparison(self) -> BaseComparison:
        """The latest validation against the untrained base's on ``config.select_on``."""
        return compare_to_base(self.validation, self.config.select_on, self.config.min_gain)

    # ---- checkpoints and output ---------------------------------------------------------------------------------
    def _weight_files(self) -> tuple[str, ...]:
        return (_WEIGHTS_FILE,)

    def _write_weights(self, folder: Path) -> None:
        from safetensors.torch import save_model

        save_model(self.model, str(folder / _WEIGHTS_FILE))  # save_model handles tied weights, unlike save_file

    def _read_weights(self, folder: Path) -> dict[str, Any]:
        return read_safetensors(folder / _WEIGHTS_FILE)

    def _apply_weights(self, folder: Path, weights: Any, state: dict[str, Any]) -> None:
        from safetensors.torch import load_model

        # load_model (the counterpart of save_model) restores tied weights; the file was read whole just before.
        try:
            load_model(self.model, str(folder / _WEIGHTS_FILE), strict=True, device=str(self.device))
        except RuntimeError as exc:
            raise DistillError(f"checkpoint {folder} does not match the encoder {self.base_model} "
                               f"(it was trained from {state.get('base_model')!r}): {exc}") from exc

    def _write_model(self, folder: Path) -> None:
        """The weights, tokenizer and sentence-transformers files of the base (and the token budget trained with)."""
        self.model.save_pretrained(str(folder))
        self.scorer.tokenizer.save_pretrained(str(folder))
        base = Path(self.base_model)
        for name in _SENTENCE_TRANSFORMERS_FILES:
            source = base / name
            if source.is_dir():
                shutil.copytree(source, folder / name, dirs_exist_ok=True)
            elif source.is_file():
                shutil.copy2(source, folder / name)
        # EncoderScorer.from_pretrained reads the token budget from here: the output scores as it was trained.
        sbert = base / "sentence_bert_config.json"
        settings = json.loads(sbert.read_text(encoding="utf-8")) if sbert.is_file() else {}
        settings["max_seq_length"] = self.scorer.max_tokens
        atomic_write_text(folder / "sentence_bert_config.json", json.dumps(settings, indent=2) + "\n")

    def _model_card(self, info: dict[str, Any]) -> str:
        from .model_card import render_encoder_model_card

        return render_encoder_model_card(info)

    def training_info(self) -> dict[str, Any]:
        """The metadata written to ``r2r_training.json`` (``beats_base`` at the top level)."""
        import torch
        import transformers

        train, validation = self.dataset.train, self.dataset.validation
        sources = sorted({e.source for e in [*train.rankings, *validation.rankings] if e.source})
        comparison = self.comparison()
        return {
            "format": "r2r-agent-encoder", "format_version": 1,
            "base_model": self.base_model,
            "base_model_name": self.base_name,
            "max_tokens": self.scorer.max_tokens,
            **self._run_info(),
            "data": {"sources": sources, "train_queries": len(train.query_ids),
                     "validation_queries": len(validation.query_ids), "train_rankings": len(train.rankings),
                     "validation_rankings": len(validation.rankings),
                     "validation_rankings_scored": len(self.validation_rankings)},
            "comparison": comparison.to_dict(),
            "beats_base": comparison.beats_base,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        }


def distill_encoder(base_model: str | os.PathLike[str], dataset: DistillationDataset,
                    output_dir: str | os.PathLike[str], config: EncoderDistillConfig | None = None, *,
                    resume: bool | str | os.PathLike[str] = False, progress: bool = False,
                    callback: Callback | None = None,
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
