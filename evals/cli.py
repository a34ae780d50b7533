"""``r2r eval``: compare ranking systems on evaluation datasets and write a report.

    r2r eval --dataset dl19 --dataset dl20 --systems first-stage,minilm,student --report runs/dl-bm25
    r2r eval --dataset dl19 --systems first-stage,zero-shot-lm --lm-top 10 --limit-queries 10 --report runs/quick
    r2r eval --dataset dl19 --systems minilm,student --explain-queries 5 --explain-top 5 --report runs/explain
    r2r eval --dataset beir:data/scifact --first-stage bm25 --depth 100 --systems first-stage,minilm --report runs/sf
    r2r eval --dataset bright-biology --bright-dir data/BRIGHT --first-stage reason-then-retrieve --report runs/rtr

``--first-stage NAME`` retrieves each dataset's candidates from its corpus (``beir:PATH``; ``bright-<subset>`` with
``--bright-dir``) instead of reading given ones; the run is cached as a TREC run file in ``REPORT/first_stage/``
(keyed by corpus, first stage and depth), so a re-run neither re-indexes nor re-retrieves.
    r2r eval --dataset dl19 --systems first-stage,minilm,teacher --teacher openai:gpt-4o-mini \
        --teacher-url https://api.openai.com/v1 --teacher-queries 10 --report runs/teacher
    r2r eval --teacher-agreement ../shared/data/r2r-train/msmarco_500.jsonl.gz --systems student,adapter:adapters/a1 \
        --teacher-agreement-queries 20 --report runs/agreement

``--judgments`` also judges every candidate of every query (relevance and verdict) with the systems whose student
has a calibrator for its scorer (``student``, ``minilm``) and adds a "Relevance and verdicts" section (verdict
coverage, balanced accuracy, calibration, abstention, each beside its target; :mod:`r2r_agent.evals.judgments`).

``--explain-queries N`` also reranks the first N queries of each dataset with explanations on (systems with an
explainer: ``student``, ``adapter:PATH``; the others are skipped with a note) and adds an "Explanation quality"
section (verdict accuracy against the qrels, coverage, groundedness, specificity, worst cases) to the report.

The ``teacher`` system reranks the first-stage top ``--teacher-top`` with a teacher LLM chosen as for ``r2r teach``
(``--teacher openai:MODEL --teacher-url URL`` or ``--teacher transformers:PATH``), on the first ``--teacher-queries``
queries only; its means and paired tests are over those queries (the report says so).

``--teacher-agreement FILE`` has the explaining systems explain the passages of the held-out validation queries of
the R2R training data (split as ``r2r distill`` splits it) and scores their agreement with the teacher's reasons
(:mod:`r2r_agent.evals.teacher_agreement`); ``--dataset`` is then optional.

Results are cached per (system, dataset, query) in ``REPORT/cache.jsonl``: run the same command again to resume an
interrupted run (or to re-render the report at no cost). Nothing heavy is imported until :func:`run` runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shlex
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2r_agent.errors import InvalidInputError

if TYPE_CHECKING:
    from r2r_agent import RerankConfig
    from r2r_agent.training.splits import TrainingQueries

    from .systems import SystemOptions

logger = logging.getLogger(__name__)

EPILOG = """\
systems (comma-separated, exact names):
  first-stage       the first-stage order (BM25 for dl19/dl20; the --first-stage run when given)
  minilm            the bundled all-MiniLM-L6-v2 bi-encoder scores every candidate
  student           the default cascade Reranker(Student.default(), rescore_top=--rescore-top), no explanations
  zero-shot-student the same cascade without the shipped adapter (the zero-shot SmolLM2 explains)
  zero-shot-lm      SmolLM2-135M-Instruct re-scores the MiniLM top --lm-top (about 0.2 s per passage on CPU)
  adapter:PATH      a distilled adapter (on --base-model) re-scores the MiniLM top --lm-top
  teacher           a teacher LLM (--teacher) reranks the first-stage top --teacher-top listwise, first
                    --teacher-queries queries only

--first-stage-weight W (0 < W <= 1) mixes each candidate's first-stage score into MiniLM's in the systems that
  rerank (all but first-stage and teacher); they are then reported as NAME+first-stage@W, e.g. minilm+first-stage@0.5

--ordering scorer,rrf,first_stage,scorer@0.5 runs those systems under each ordering policy (NAME, NAME+rrf,
  NAME+first-stage-order, NAME+first-stage@0.5) and adds each policy's worst case against the better of first-stage
  and minilm to the report

explanations (--explain-queries N, --teacher-agreement FILE): student, zero-shot-student and adapter:PATH explain;
the others are skipped

judgments (--judgments): student, zero-shot-student and minilm judge every candidate with the calibrator shipped
for MiniLM; the others are skipped

datasets: dl19, dl20, dl19-splade, dl20-splade, bright-<subset> (texts from --bright-dir),
  beir:PATH (a BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv; needs --first-stage)

first stages (--first-stage, for datasets with a corpus: beir:PATH, bright-<subset> with --bright-dir):
  bm25                  BM25 (bm25s) over the corpus
  dense                 the bundled all-MiniLM-L6-v2 in a persistent chromadb collection (--index-dir)
  reason-then-retrieve  a reasoner (--reasoner, default the student's SmolLM2) writes about the query, then BM25
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``r2r eval`` options to ``parser``."""
    from .retrieval import FIRST_STAGES, FirstStageOptions
    from .systems import SystemOptions

    defaults = SystemOptions()
    stage_fields = {f.name: f for f in fields(FirstStageOptions)}

    def _help(name: str) -> str:
        return str(stage_fields[name].metadata["help"])

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--dataset", action="append", default=[], metavar="NAME",
                        help="a dataset to evaluate on (repeat for several), e.g. dl19; required unless "
                        "--teacher-agreement is given")
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
    _add_rerank_arguments(parser, defaults)
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
    parser.add_argument("--judgments", action="store_true",
                        help="also judge every candidate (relevance, verdict) with the systems whose student has a "
                        "calibrator (student, minilm) and report verdict accuracy, calibration and abstention against "
                        "the qrels")
    first = parser.add_argument_group("first stage (retrieve the candidates from the dataset's corpus)")
    first.add_argument("--first-stage", default=None, choices=tuple(FIRST_STAGES), metavar="NAME",
                       help=_help("name") + " (default: rerank the dataset's given candidates)")
    first.add_argument("--depth", type=int, default=None, metavar="K", help=_help("depth"))
    first.add_argument("--index-dir", type=Path, default=None, metavar="DIR",
                       help="dense: the chromadb folder, reused across runs (default REPORT/first_stage/dense-index)")
    first.add_argument("--reasoner", default=None, metavar="MODEL", help=_help("reasoner") + " (default student)")
    first.add_argument("--reasoning-tokens", type=int, default=None, metavar="N", help=_help("reasoning_tokens"))
    _add_teacher_arguments(parser, defaults)
    agreement = parser.add_argument_group("teacher agreement on held-out training queries")
    agreement.add_argument("--teacher-agreement", action="append", default=[], type=Path, metavar="FILE",
                           help="R2R training file(s) the student was distilled on (repeatable): explain the passages "
                           "of their validation queries and score agreement with the teacher's reasons")
    agreement.add_argument("--teacher-agreement-queries", type=int, default=20, metavar="N",
                           help="the first N validation queries (default 20)")
    agreement.add_argument("--teacher-agreement-top", type=int, default=None, metavar="K",
                           help="the teacher's top K passages of each query (default: every passage)")
    agreement.add_argument("--validation-fraction", type=float, default=0.1,
                           help="as `r2r distill --validation-fraction` (default 0.1)")
    agreement.add_argument("--split-seed", type=int, default=0, help="as `r2r distill --split-seed` (default 0)")
    parser.add_argument("--no-plots", action="store_true", help="write markdown and JSON only")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


#: The :class:`r2r_agent.RerankConfig` settings ``r2r eval`` takes as flags; the others do not apply to a ranking run
#: (every candidate is ranked, explanations off; ``--explain-top`` is the explanation runs' own).
RERANK_FLAGS: tuple[str, ...] = ("rescore_top", "rescore_weight", "first_stage_weight")


def _add_rerank_arguments(parser: argparse.ArgumentParser, defaults: SystemOptions) -> None:
    # The flags, their help and their defaults come from RerankConfig, the one declaration of rerank settings.
    from r2r_agent import RerankConfig
    from r2r_agent.cli_flags import add_config_arguments

    group = parser.add_argument_group(
        "rerank settings (r2r_agent.RerankConfig) of the systems that run a Reranker: minilm, student, "
        "zero-shot-student, zero-shot-lm, adapter:PATH",
        "--rescore-top is the student's and zero-shot-student's (zero-shot-lm and adapter:PATH re-score the top "
        "--lm-top); --rescore-weight applies to every re-scored top; --first-stage-weight W to all of them, which are "
        "then reported as NAME+first-stage@W (W > 0)")
    add_config_arguments(group, RerankConfig, skip=set(RerankConfig.names()) - set(RERANK_FLAGS))
    group.add_argument("--ordering", default=None, metavar="POLICY[,POLICY...]",
                       help=f"{RerankConfig.help('ordering')}; several, comma-separated, build each system that runs "
                       "a Reranker once per policy (named NAME+rrf, NAME+first-stage-order), and POLICY@W sets its "
                       "first-stage weight (scorer@0.5: z-score fusion at 0.5, named NAME+first-stage@0.5); the report "
                       "then has an 'Ordering policies' section with each policy's worst case")
    group.add_argument("--lm-top", type=int, default=defaults.lm_top, metavar="K",
                       help=f"zero-shot-lm and adapter:PATH re-score the MiniLM top K (default {defaults.lm_top})")


def rerank_config(args: argparse.Namespace) -> RerankConfig:
    """The :class:`r2r_agent.RerankConfig` of the rerank flags given (the others keep its defaults)."""
    from r2r_agent import RerankConfig

    return RerankConfig().replace(**{name: getattr(args, name) for name in RERANK_FLAGS
                                     if getattr(args, name, None) is not None})


def _add_teacher_arguments(parser: argparse.ArgumentParser, defaults: SystemOptions) -> None:
    # The teacher flags are r2r teach's (one parser of --teacher KIND:ARG for both commands); training is imported
    # here, when the parser is built, never when r2r_agent.evals is imported.
    from r2r_agent.training.teacher_choice import add_teacher_arguments

    group = parser.add_argument_group("teacher system (--systems ...,teacher; flags as for `r2r teach`)")
    add_teacher_arguments(group)
    group.add_argument("--teacher-top", type=int, default=defaults.teacher_top, metavar="K",
                       help="candidates the teacher reranks per query (default %(default)s)")
    group.add_argument("--teacher-queries", type=int, default=defaults.teacher_queries, metavar="N",
                       help="rank only the first N queries of each dataset with the teacher (default %(default)s)")
    group.add_argument("--teacher-window", type=int, default=defaults.teacher_window_size, metavar="N",
                       help="passages per teacher call (default %(default)s)")
    group.add_argument("--teacher-stride", type=int, default=defaults.teacher_stride, metavar="N",
                       help="how far each window moves towards the top (default: half the window)")


def _teacher(args: argparse.Namespace, names: list[str]) -> object | None:
    """The teacher the flags describe, when the ``teacher`` system is asked for (else ``None``)."""
    from r2r_agent.training.teacher_choice import teacher_settings_from_args

    if "teacher" not in names:
        if args.teacher:
            logger.warning("--teacher %s is ignored: add 'teacher' to --systems to run it", args.teacher)
        return None
    if not args.teacher:
        return None  # the 'teacher' system then says which flags it needs
    return teacher_settings_from_args(args).build()


def _training(args: argparse.Namespace, data_dir: Path | None) -> TrainingQueries | None:
    from r2r_agent.training.splits import load_training_queries

    if args.train_data is not None:
        if not args.train_data.exists():
            raise InvalidInputError(f"--train-data {args.train_data} does not exist; pass the r2r-train folder.")
        return load_training_queries(args.train_data)
    if data_dir is None:
        logger.warning("no data folder (--data-dir, $R2R_DATA_DIR) and no --train-data: cannot check that no "
                       "training query is evaluated on")
        return None
    default = data_dir / "r2r-train"
    if not default.is_dir():
        logger.warning("no training data at %s: cannot check that no training query is evaluated on", default)
        return None
    return load_training_queries(default)


def _retrieve(args: argparse.Namespace, names: list[str], pool: Any
              ) -> tuple[list[Any], TrainingQueries | None, dict[str, Any]]:
    """``--first-stage``: load each dataset with its corpus, check it holds no training query, retrieve (cached)."""
    from r2r_agent.training.splits import check_not_training

    from .registry import load_corpus_dataset, resolve_data_dir
    from .retrieval import FirstStageOptions, retrieve_dataset

    given_options = {"depth": args.depth, "reasoning_tokens": args.reasoning_tokens, "reasoner": args.reasoner,
                     "index_dir": str(args.index_dir) if args.index_dir is not None else None}
    stage = FirstStageOptions(args.first_stage, **{k: v for k, v in given_options.items() if v is not None})
    # The built-in corpus datasets need no shared data folder; use one when given (training-query check).
    given = args.data_dir is not None or os.environ.get("R2R_DATA_DIR")
    data_dir = resolve_data_dir(args.data_dir) if given else None
    loaded = [load_corpus_dataset(name, data_dir, bright_dir=args.bright_dir) for name in names]
    training = _training(args, data_dir)
    if training is not None:  # before retrieving: a reasoner writes for minutes
        for base, _ in loaded:
            check_not_training(base.name, base.queries, training)
    runs = [retrieve_dataset(base, corpus, stage, cache_dir=args.report / "first_stage",
                             limit_queries=args.limit_queries, progress=not args.no_progress, pool=pool)
            for base, corpus in loaded]
    for got in runs:
        if got.run.run_file is not None:
            logger.info("%s: %s run in %s", got.dataset.name, stage.name, got.run.run_file)
    info = {"name": stage.name, "depth": stage.depth, "description": stage.description,
            "runs": [got.run.to_dict() for got in runs]}
    return [got.dataset for got in runs], training, info


def _command(args: argparse.Namespace, options: SystemOptions) -> str:
    """The command line that reproduces this run (recorded in the report), with the rerank settings in effect."""
    parts = ["r2r", "eval"]
    for name in dict.fromkeys(args.dataset):
        parts += ["--dataset", name]
    parts += ["--systems", args.systems]
    first = args.first_stage
    for flag, value in (("--first-stage", first), ("--depth", args.depth), ("--index-dir", args.index_dir),
                        ("--reasoner", args.reasoner), ("--reasoning-tokens", args.reasoning_tokens),
                        ("--limit-queries", args.limit_queries), ("--rescore-top", options.rerank.rescore_top),
                        ("--lm-top", options.lm_top), ("--rescore-weight", options.rerank.rescore_weight),
                        ("--first-stage-weight", options.rerank.first_stage_weight),
                        ("--ordering", args.ordering),
                        ("--base-model", args.base_model),
                        ("--bright-dir", args.bright_dir),
                        ("--explain-queries", args.explain_queries or None),
                        ("--judgments", "" if args.judgments else None),
                        ("--explain-top", args.explain_top if args.explain_queries else None)):
        if value is not None:
            parts += [flag, str(value)] if value != "" else [flag]
    if "teacher" in [n.strip() for n in args.systems.split(",")]:
        parts += ["--teacher-top", str(args.teacher_top), "--teacher-queries", str(args.teacher_queries),
                  "--teacher-window", str(args.teacher_window)]
        if args.teacher_stride is not None:
            parts += ["--teacher-stride", str(args.teacher_stride)]
        from r2r_agent.training.teacher_choice import TeacherSettings

        for item in dataclasses.fields(TeacherSettings):  # the teacher flags given (a key stays in its env var)
            value = getattr(args, item.name, None)
            if value is not None:
                parts += ["--" + item.name.replace("_", "-"), str(value)]
    for path in args.teacher_agreement:
        parts += ["--teacher-agreement", str(path)]
    if args.teacher_agreement:
        parts += ["--teacher-agreement-queries", str(args.teacher_agreement_queries),
                  "--validation-fraction", str(args.validation_fraction), "--split-seed", str(args.split_seed)]
        if args.teacher_agreement_top is not None:
            parts += ["--teacher-agreement-top", str(args.teacher_agreement_top)]
    parts += ["--report", str(args.report)]
    return " ".join(shlex.quote(p) for p in parts)


def run(args: argparse.Namespace) -> int:
    """Run ``r2r eval``; returns the exit status."""
    from .registry import load_dataset, resolve_data_dir
    from .report import write_report
    from .runner import run_eval
    from .systems import ModelPool, SystemOptions, build_systems

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
    if not args.dataset and not args.teacher_agreement:
        raise InvalidInputError("nothing to evaluate: pass --dataset NAME (e.g. dl19) and/or --teacher-agreement "
                                "FILE (the R2R training data the student was distilled on).")
    if args.teacher_agreement_queries < 1:
        raise InvalidInputError(f"--teacher-agreement-queries must be >= 1, got {args.teacher_agreement_queries}.")
    system_names = [n.strip() for n in args.systems.split(",") if n.strip()]
    options = SystemOptions(rerank=rerank_config(args), lm_top=args.lm_top, base_model=args.base_model,
                            teacher=_teacher(args, system_names), teacher_top=args.teacher_top,
                            teacher_queries=args.teacher_queries, teacher_window_size=args.teacher_window,
                            teacher_stride=args.teacher_stride)
    pool = ModelPool()
    recorded: dict[str, Any] = {}  # which system runs which ordering policy (--ordering)
    if args.ordering is None:
        systems = build_systems(system_names, options, pool)
    else:
        from .policies import SETTINGS_KEY, build_policy_systems, parse_policies

        policies = parse_policies(args.ordering, options.rerank.first_stage_weight)
        systems, origin = build_policy_systems(system_names, options, pool, policies)
        recorded[SETTINGS_KEY] = {"policies": [p.label for p in policies], "systems": origin}
    agreement = None
    if args.teacher_agreement:
        from .teacher_agreement import load_validation_split

        agreement = load_validation_split(args.teacher_agreement, validation_fraction=args.validation_fraction,
                                          seed=args.split_seed, max_queries=args.teacher_agreement_queries,
                                          top=args.teacher_agreement_top)
    names = list(dict.fromkeys(args.dataset))
    command = _command(args, options)
    settings: dict[str, Any] = {"systems": [s.name for s in systems],
                                "system_config": {s.name: dict(s.config) for s in systems}, "datasets": names,
                                **recorded}
    if args.first_stage is None:
        for flag, value in (("--depth", args.depth), ("--index-dir", args.index_dir), ("--reasoner", args.reasoner),
                            ("--reasoning-tokens", args.reasoning_tokens)):
            if value is not None:
                raise InvalidInputError(f"{flag} is a first-stage option; pass --first-stage too, or drop it.")
        # load_dataset checks the name before the data folder: beir:PATH gets "needs a first stage", not "no folder".
        datasets = [load_dataset(name, args.data_dir, bright_dir=args.bright_dir) for name in names]
        training = _training(args, resolve_data_dir(args.data_dir)) if names else None
    else:
        datasets, training, settings["first_stage"] = _retrieve(args, names, pool)
    results = run_eval(datasets, systems, cache_path=args.report / "cache.jsonl", limit_queries=args.limit_queries,
                       training=training, progress=not args.no_progress, settings=settings,
                       explain_queries=args.explain_queries, explain_top=args.explain_top, agreement=agreement,
                       judgments=args.judgments)
    files = write_report(results, args.report, plots=not args.no_plots, command=command)
    lines = []
    for got in settings.get("first_stage", {}).get("runs", ()):
        lines.append(f"\n{got['dataset']}: {got['first_stage']} top-{got['depth']} for {got['queries']} queries "
                     f"({got['computed']} retrieved now), run: {got['run_file']}")
    for info in results.datasets:
        lines += [f"\n{info.name}: {info.description} ({info.queries} queries)",
                  f"{'system':<28} {'nDCG@10':>8} {'MRR@10':>8} {'R@100':>8} {'s/query':>8}"]
        for name in results.systems:
            r = results.run_for(info.name, name)
            agg = r.evaluation.aggregates
            subset = f"  (first {r.cost.queries} queries only)" if r.cost.queries < info.queries else ""
            lines.append(f"{name:<28} {agg.get('nDCG@10', 0):>8.4f} {agg.get('RR@10', 0):>8.4f} "
                         f"{agg.get('R@100', 0):>8.4f} {r.cost.seconds_per_query:>8.3f}{subset}")
    lines += _judgment_lines(results) if args.judgments else []
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
    if agreement is not None:
        lines.append(f"\nteacher agreement ({len(agreement.queries)} of {agreement.validation_queries} validation "
                     f"queries, {agreement.n_passages} passages):")
        for a in results.agreements:
            agreed = a.quality
            va = "–" if agreed.verdict_agreement is None else f"{agreed.verdict_agreement:.3f}"
            rl = "–" if agreed.rouge_l_f1 is None else f"{agreed.rouge_l_f1:.3f}"
            uf = "–" if agreed.unigram_f1 is None else f"{agreed.unigram_f1:.3f}"
            lines.append(f"{a.system}: verdict agreement {va} ({agreed.n_verdict_agree}/{agreed.n_both_known}), "
                         f"ROUGE-L F1 {rl}, unigram F1 {uf}, {agreed.n} pairs, {a.seconds_per_query:.2f} s/query")
            if a.note:
                lines.append(f"  caution: {a.note}")
        if results.agreement_skipped:
            lines.append(f"skipped (no explainer): {', '.join(results.agreement_skipped)}")
    lines.append(f"\nreport: {files.markdown}  (json: {files.json.name}; plots: {len(files.plots)})")
    print("\n".join(lines))  # noqa: T201 (a CLI module: its output is the point)
    return 0


def _judgment_lines(results: Any) -> list[str]:
    """The summary of ``--judgments`` printed at the end (the report has the rest)."""
    lines = ["\nrelevance and verdicts over all candidates (answers: TREC label >= 2):"]
    for run in results.judgments:
        q = run.quality
        values = [("coverage", q.verdict_coverage), ("bal. acc. relevant", q.balanced_accuracy_relevant),
                  ("bal. acc. on topic", q.balanced_accuracy_on_topic), ("ECE", q.ece), ("Brier", q.brier),
                  ("abstention AUC", q.abstention.auc)]
        shown = ", ".join(f"{name} {'–' if value is None else f'{value:.3f}'}" for name, value in values)
        lines.append(f"{run.dataset} {run.system}: {shown} ({q.n_judgments} judgments)")
    if results.judgment_skipped:
        lines.append(f"skipped (no calibrator): {', '.join(results.judgment_skipped)}")
    return lines
