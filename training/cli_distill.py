"""``r2r distill``: fine-tune the student (LoRA) on teacher annotations and write an adapter folder.

    r2r distill --base default --r2r-data ../shared/data/r2r-train/msmarco_500.jsonl.gz -o adapters/smollm2-r2r \\
        --steps 300 --lr 2e-4 --lora-r 16 --progress
    r2r distill --base path/to/model --annotations runs/teach.annotations.jsonl.gz -o adapters/mine --resume

With ``--encoder`` it fine-tunes the encoder scorer (default: the bundled all-MiniLM-L6-v2) on the same rankings:

    r2r distill --encoder --r2r-data ../shared/data/r2r-train/msmarco_500.jsonl.gz -o encoders/minilm-r2r --steps 200

Imports nothing heavy at module level (the ``r2r`` parser imports this module to list the command).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2r_agent.cli_flags import DefaultsHelpFormatter, add_config_arguments, config_from_args

if TYPE_CHECKING:
    from .records import QueryAnnotation

logger = logging.getLogger(__name__)

_ALIASES = {"max_steps": ["--steps"], "learning_rate": ["--lr"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``r2r distill`` flags to ``parser``."""
    from .distill import DistillConfig
    from .encoder_distill import EncoderDistillConfig

    parser.formatter_class = DefaultsHelpFormatter
    parser.add_argument("--base", default="default", metavar="MODEL",
                        help="base causal-LM folder, or 'default' for the embedded SmolLM2-135M-Instruct (with "
                             "--encoder: an encoder folder, or 'default' for the bundled all-MiniLM-L6-v2)")
    parser.add_argument("-o", "--output", required=True, type=Path, help="adapter (or encoder) folder to write")
    parser.add_argument("--encoder", action="store_true",
                        help="fine-tune the encoder scorer (fully, on the ranking targets) instead of the LM's LoRA "
                             "adapter; the output records whether it beats the untrained encoder on validation")
    data = parser.add_argument_group("training data (at least one)")
    data.add_argument("--r2r-data", action="append", default=[], type=Path, metavar="FILE",
                      help="R2R annotations (msmarco_*.jsonl.gz from ../shared/data/r2r-train); repeatable")
    data.add_argument("--annotations", action="append", default=[], type=Path, metavar="FILE",
                      help="annotations written by `r2r teach --output` (.jsonl or .jsonl.gz); repeatable")
    data.add_argument("--max-queries", type=int, default=None, metavar="N", help="use only the first N queries")
    data.add_argument("--validation-fraction", type=float, default=0.1, help="share of queries held out")
    data.add_argument("--split-seed", type=int, default=0, help="seed of the split by query")
    data.add_argument("--explain-top", type=int, default=None, metavar="N",
                      help="direct-explanation targets for the teacher's top N passages only (default: all)")
    data.add_argument("--compare-top", type=int, default=3, metavar="N", help="passages in each comparison target")
    data.add_argument("--comparison-target", choices=("listwise", "teacher"), default="listwise",
                      help="comparison targets from per-passage listwise reasons or the teacher's overall comparison")
    from .dataset import DatasetConfig

    add_config_arguments(data, DatasetConfig, skip=("explain_top", "compare_top", "comparison_target",
                                                    "validation_fraction", "seed"))
    train = parser.add_argument_group("training (see DistillConfig)")
    add_config_arguments(train, DistillConfig, aliases=_ALIASES)
    encoder = parser.add_argument_group(
        "encoder training (with --encoder; see EncoderDistillConfig)",
        "the shared flags above (--steps, --lr, --ranking-batch-size, --grad-accum, --ranking-loss, --seed, "
        "--eval-every, ...) apply too, with EncoderDistillConfig's defaults (e.g. lr 2e-5); the LM-only ones are "
        "rejected")
    add_config_arguments(encoder, EncoderDistillConfig, skip=[f.name for f in dataclasses.fields(DistillConfig)])
    parser.add_argument("--resume", action="store_true",
                        help="continue from the latest checkpoint in OUTPUT/checkpoints")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="show a progress bar")


def read_annotations(path: Path) -> list[QueryAnnotation]:
    """Query annotations from a ``.jsonl`` / ``.jsonl.gz`` file of :meth:`QueryAnnotation.to_dict` lines."""
    from r2r_agent.errors import R2RError

    from .jsonl import read_json_lines
    from .records import QueryAnnotation

    if not path.is_file():
        raise R2RError(f"annotations file {str(path)!r} not found; write one with `r2r teach --output FILE`")
    return read_json_lines(path, QueryAnnotation.from_dict, what="a query annotation",
                           expected="the lines `r2r teach --output` writes")


def load_training_annotations(args: argparse.Namespace) -> list[QueryAnnotation]:
    """Every annotation named by ``--r2r-data`` and ``--annotations`` (first ``--max-queries`` only)."""
    from r2r_agent.errors import R2RError

    from .r2r_import import load_r2r_annotations

    if not args.r2r_data and not args.annotations:
        raise R2RError("no training data: pass --r2r-data FILE (the R2R annotations) and/or --annotations FILE "
                       "(from `r2r teach`)")
    annotations: list[QueryAnnotation] = []
    for path in args.r2r_data:
        if not Path(path).is_file():
            raise R2RError(f"R2R data file {str(path)!r} not found (expected e.g. "
                           "../shared/data/r2r-train/msmarco_500.jsonl.gz)")
        annotations.extend(load_r2r_annotations(path))
    for path in args.annotations:
        annotations.extend(read_annotations(Path(path)))
    duplicates = sorted(qid for qid, count in Counter(a.query_id for a in annotations).items() if count > 1)
    if duplicates:
        logger.warning("%d query ids appear more than once across the data files (e.g. %s); all are kept, and the "
                       "split by query keeps each id on one side", len(duplicates), duplicates[:3])
    if args.max_queries is not None:
        annotations = annotations[: args.max_queries]
    return annotations


def run(args: argparse.Namespace) -> int:
    """Build the dataset, distill, and print where the adapter went and its validation metrics."""
    from r2r_agent.default_models import SMOLLM2_ID, prepare_smollm2

    from .distill import DistillConfig, distill

    if args.encoder:
        return run_encoder(args)
    config = config_from_args(DistillConfig, args)
    dataset = _dataset(args)
    say = _reporter()
    say(f"data: {len(dataset.train.query_ids)} training queries ({len(dataset.train.explanations)} explanations, "
          f"{len(dataset.train.rankings)} rankings), {len(dataset.validation.query_ids)} validation queries")
    base = str(prepare_smollm2(progress=args.progress)) if args.base == "default" else args.base
    base_id = f"HuggingFaceTB/{SMOLLM2_ID}" if args.base == "default" else None
    result = distill(base, dataset, args.output, config, resume=args.resume, progress=args.progress,
                     base_model_id=base_id)
    if result.history:
        done = [r for r in result.history if result.resumed_from is None or r["step"] > result.resumed_from]
        speed = f", {result.seconds / len(done):.2f} s/step incl. validation" if done else ""
        say(f"trained {result.steps} steps ({len(done)} in this run{speed}); "
              f"final loss {result.history[-1]['loss']:.4f}")
    for record in result.validation:
        say("validation step {step}: lm_loss={lm} ndcg_teacher={t} ndcg_labels={labels}".format(
            step=record["step"], lm=_fmt(record["lm_loss"]), t=_fmt(record["ndcg_teacher"]),
            labels=_fmt(record["ndcg_labels"])))
    say(f"adapter written to {result.output_dir}; load it with "
          f"Student.from_pretrained({base!r}, adapter={str(result.output_dir)!r})")
    return 0


def _dataset(args: argparse.Namespace) -> Any:
    from .dataset import DatasetConfig, build_dataset

    dataset_config = config_from_args(DatasetConfig, args, explain_top=args.explain_top, compare_top=args.compare_top,
                                      comparison_target=args.comparison_target,
                                      validation_fraction=args.validation_fraction, seed=args.split_seed)
    return build_dataset(load_training_annotations(args), dataset_config)


def encoder_config(args: argparse.Namespace) -> Any:
    """The :class:`EncoderDistillConfig` from the flags given; an LM-only flag is an error naming it."""
    from r2r_agent.cli_flags import flag_name
    from r2r_agent.errors import R2RError

    from .distill import DistillConfig
    from .encoder_distill import EncoderDistillConfig

    encoder_fields = {f.name for f in dataclasses.fields(EncoderDistillConfig)}
    lm_only = [flag_name(f.name) for f in dataclasses.fields(DistillConfig)
               if f.name not in encoder_fields and getattr(args, f.name, None) is not None]
    if lm_only:
        raise R2RError(f"{', '.join(lm_only)} configure the LM adapter and do not apply with --encoder; drop them "
                       f"(encoder settings: see `r2r distill --help`, EncoderDistillConfig)")
    return config_from_args(EncoderDistillConfig, args)


def run_encoder(args: argparse.Namespace) -> int:
    """``r2r distill --encoder``: fine-tune the encoder scorer and print the validation baseline vs final."""
    from r2r_agent.default_models import minilm_path

    from .encoder_distill import distill_encoder

    config = encoder_config(args)
    dataset = _dataset(args)
    say = _reporter()
    say(f"data: {len(dataset.train.query_ids)} training queries ({len(dataset.train.rankings)} rankings), "
          f"{len(dataset.validation.query_ids)} validation queries")
    # The bundled weights sit in a folder called "model": name the base for the metadata and model card.
    base, name = (str(minilm_path()), "all-MiniLM-L6-v2") if args.base == "default" else (args.base, None)
    result = distill_encoder(base, dataset, args.output, config, resume=args.resume, progress=args.progress,
                             base_name=name)
    if result.history:
        done = [r for r in result.history if result.resumed_from is None or r["step"] > result.resumed_from]
        per_step = result.seconds / max(len(done), 1)
        say(f"trained {result.steps} steps ({len(done)} in this run, {per_step:.2f} s/step incl. validation); "
              f"final loss {result.history[-1]['loss']:.4f}")
    for record in result.validation:
        label = " (untrained base)" if record["step"] == 0 else ""
        say(f"validation step {record['step']}{label}: rank_loss={_fmt(record['rank_loss'])} "
              f"ndcg_teacher={_fmt(record['ndcg_teacher'])} ndcg_labels={_fmt(record['ndcg_labels'])}")
    comparison = result.comparison
    verdict = "beats the base" if result.beats_base else "does NOT beat the base"
    say(f"the fine-tuned encoder {verdict} on validation ({comparison.metric}: base {_fmt(comparison.base)}, "
          f"final {_fmt(comparison.final)})")
    advice = ("use it with" if result.beats_base else "keep the base encoder; it still loads with")
    say(f"encoder written to {result.output_dir}; {advice} EncoderScorer.from_pretrained({str(result.output_dir)!r})")
    return 0


def _reporter() -> Any:
    """``print``, or a no-op in the non-first processes of ``accelerate launch`` / ``torchrun`` (one report per run)."""
    from .runtime import is_main_launched_process

    return print if is_main_launched_process() else (lambda *args, **kwargs: None)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


__all__ = ["add_arguments", "encoder_config", "load_training_annotations", "read_annotations", "run", "run_encoder"]
