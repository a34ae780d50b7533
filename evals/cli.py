"""``r2r eval``: compare ranking systems on evaluation datasets and write a report.

    r2r eval --dataset dl19 --dataset dl20 --systems first-stage,minilm,student --report runs/dl-bm25
    r2r eval --dataset dl19 --systems first-stage,zero-shot-lm --lm-top 10 --limit-queries 10 --report runs/quick
    r2r eval --dataset dl19 --systems minilm,student --explain-queries 5 --explain-top 5 --report runs/explain

``--explain-queries N`` also reranks the first N queries of each dataset with explanations on (systems with an
explainer: ``student``, ``adapter:PATH``; the others are skipped with a note) and adds an "Explanation quality"
section (verdict accuracy against the qrels, coverage, groundedness, specificity, worst cases) to the report.

Results are cached per (system, dataset, query) in ``REPORT/cache.jsonl``: run the same command again to resume an
interrupted run (or to re-render the report at no cost). Nothing heavy is imported until :func:`run` runs.
"""

from __future__ import annotations

import argparse
import logging
import shlex
from pathlib import Path

from r2r_agent.errors import InvalidInputError

logger = logging.getLogger(__name__)

EPILOG = """\
systems (comma-separated, exact names):
  first-stage       the first-stage order as given (BM25 for dl19/dl20)
  minilm            the bundled all-MiniLM-L6-v2 bi-encoder scores every candidate
  student           the default cascade Reranker(Student.default(), rescore_top=--rescore-top), no explanations
  zero-shot-student the same cascade without the shipped adapter (the zero-shot SmolLM2 explains)
  zero-shot-lm      SmolLM2-135M-Instruct re-scores the MiniLM top --lm-top (about 0.2 s per passage on CPU)
  adapter:PATH      a distilled adapter (on --base-model) re-scores the MiniLM top --lm-top

explanations (--explain-queries N): student, zero-shot-student and adapter:PATH explain; the others are skipped

datasets: dl19, dl20, dl19-splade, dl20-splade, bright-<subset> (texts from --bright-dir)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``r2r eval`` options to ``parser``."""
    from .systems import SystemOptions

    defaults = SystemOptions()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--dataset", action="append", required=True, metavar="NAME",
                        help="a dataset to evaluate on (repeat for several), e.g. dl19")
    parser.add_argument("--systems", default="first-stage,minilm",
                        help="comma-separated systems (default first-stage,minilm); see below")
    parser.add_argument("--report", required=True, type=Path, metavar="DIR",
                        help="folder for report.md, report.json, the PNG plots and the result cache")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the shared data folder holding trec-dl/ and bright/ (default $R2R_DATA_DIR)")
    parser.add_argument("--bright-dir", type=Path, default=None,
                        help="a local copy of xlangai/BRIGHT (the document texts needed to rerank BRIGHT)")
    parser.add_argument("--limit-queries", type=int, default=None, metavar="N",
                        help="only the first N queries of each dataset (quick runs)")
    parser.add_argument("--rescore-top", type=int, default=defaults.student_rescore_top, metavar="K",
                        help=f"student: SmolLM2 re-scores the top K (default {defaults.student_rescore_top}, "
                        "the library default)")
    parser.add_argument("--rescore-weight", type=float, default=defaults.rescore_weight, metavar="W",
                        help="weight of the LM score in the re-scored top, mixed with MiniLM's (default "
                             f"{defaults.rescore_weight}: the LM score alone)")
    parser.add_argument("--lm-top", type=int, default=defaults.lm_top, metavar="K",
                        help=f"zero-shot-lm and adapter:PATH re-score the MiniLM top K (default {defaults.lm_top})")
    parser.add_argument("--base-model", default=None, metavar="DIR",
                        help="adapter:PATH: the base model folder (default: the embedded SmolLM2 copy)")
    parser.add_argument("--train-data", type=Path, default=None, metavar="PATH",
                        help="R2R training data whose training-split queries must not be evaluated on "
                        "(default DATA_DIR/r2r-train)")
    parser.add_argument("--explain-queries", type=int, default=0, metavar="N",
                        help="also rerank the first N queries of each dataset with explanations on (systems with "
                        "an explainer: student, adapter:PATH) and report their quality (default 0: off)")
    parser.add_argument("--explain-top", type=int, default=5, metavar="K",
                        help="with --explain-queries: passages explained per query (default 5)")
    parser.add_argument("--no-plots", action="store_true", help="write markdown and JSON only")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def _training(args: argparse.Namespace, data_dir: Path) -> object | None:
    from .runner import load_training_queries

    if args.train_data is not None:
        if not args.train_data.exists():
            raise InvalidInputError(f"--train-data {args.train_data} does not exist; pass the r2r-train folder.")
        return load_training_queries(args.train_data)
    default = data_dir / "r2r-train"
    if not default.is_dir():
        logger.warning("no training data at %s: cannot check that no training query is evaluated on", default)
        return None
    return load_training_queries(default)


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run (recorded in the report)."""
    parts = ["r2r", "eval"]
    for name in dict.fromkeys(args.dataset):
        parts += ["--dataset", name]
    parts += ["--systems", args.systems]
    for flag, value in (("--limit-queries", args.limit_queries), ("--rescore-top", args.rescore_top),
                        ("--lm-top", args.lm_top), ("--rescore-weight", args.rescore_weight),
                        ("--base-model", args.base_model),
                        ("--bright-dir", args.bright_dir),
                        ("--explain-queries", args.explain_queries or None),
                        ("--explain-top", args.explain_top if args.explain_queries else None)):
        if value is not None:
            parts += [flag, str(value)]
    parts += ["--report", str(args.report)]
    return " ".join(shlex.quote(p) for p in parts)


def run(args: argparse.Namespace) -> int:
    """Run ``r2r eval``; returns the exit status."""
    from .registry import load_dataset, resolve_data_dir
    from .report import write_report
    from .runner import run_eval
    from .systems import SystemOptions, build_systems

    try:  # transformers' per-load bars would bury ours
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    if args.limit_queries is not None and args.limit_queries < 1:
        raise InvalidInputError(f"--limit-queries must be >= 1, got {args.limit_queries}.")
    if args.explain_queries < 0:
        raise InvalidInputError(f"--explain-queries must be >= 0 (0: off), got {args.explain_queries}.")
    if args.explain_top < 1:
        raise InvalidInputError(f"--explain-top must be >= 1, got {args.explain_top}.")
    options = SystemOptions(student_rescore_top=args.rescore_top, lm_top=args.lm_top,
                            rescore_weight=args.rescore_weight, base_model=args.base_model)
    systems = build_systems(args.systems.split(","), options)
    data_dir = resolve_data_dir(args.data_dir)
    names = list(dict.fromkeys(args.dataset))
    datasets = [load_dataset(name, data_dir, bright_dir=args.bright_dir) for name in names]
    training = _training(args, data_dir)
    command = _command(args)
    settings = {"systems": [s.name for s in systems], "system_config": {s.name: dict(s.config) for s in systems},
                "datasets": names}
    results = run_eval(datasets, systems, cache_path=args.report / "cache.jsonl", limit_queries=args.limit_queries,
                       training=training, progress=not args.no_progress, settings=settings,  # type: ignore[arg-type]
                       explain_queries=args.explain_queries, explain_top=args.explain_top)
    files = write_report(results, args.report, plots=not args.no_plots, command=command)
    lines = []
    for info in results.datasets:
        lines += [f"\n{info.name}: {info.description} ({info.queries} queries)",
                  f"{'system':<28} {'nDCG@10':>8} {'MRR@10':>8} {'R@100':>8} {'s/query':>8}"]
        for name in results.systems:
            r = results.run_for(info.name, name)
            agg = r.evaluation.aggregates
            lines.append(f"{name:<28} {agg.get('nDCG@10', 0):>8.4f} {agg.get('RR@10', 0):>8.4f} "
                         f"{agg.get('R@100', 0):>8.4f} {r.cost.seconds_per_query:>8.3f}")
    if args.explain_queries:
        lines.append(f"\nexplanation quality (first {args.explain_queries} queries, top {args.explain_top}):")
        for e in results.explanations:
            q = e.quality
            acc = "–" if q.verdict.accuracy is None else f"{q.verdict.accuracy:.3f}"
            grounded = "–" if q.groundedness is None else f"{q.groundedness:.3f}"
            lines.append(f"{e.dataset} {e.system}: verdict accuracy {acc}, groundedness {grounded}, "
                         f"{q.n_explained} explanations")
        if results.explanation_skipped:
            lines.append(f"skipped (no explainer): {', '.join(results.explanation_skipped)}")
    lines.append(f"\nreport: {files.markdown}  (json: {files.json.name}; plots: {len(files.plots)})")
    print("\n".join(lines))  # noqa: T201 (a CLI module: its output is the point)
    return 0
