"""Run systems over datasets: cached per (system, dataset, query), resumable, never on training queries.

:func:`run_eval` ranks every query of every dataset with every system, appending each result to a JSON Lines cache
(``cache.jsonl`` in the report folder, :mod:`.cache`) as soon as it is computed, so an interrupted run resumes where
it stopped. A cached result is reused only when the system's name and config and the query's text and candidate ids
are unchanged. Each system's run is then scored with :meth:`Dataset.evaluate` and compared with the first stage and
with MiniLM by paired significance tests. Explanation quality, judgments of every candidate and teacher agreement
are passes of their own (:mod:`.passes`) through the same loop (:func:`~r2r_agent.evals.tasks.run_cached`), each
cached under its own keys.

Before anything runs, each dataset's queries are checked against the R2R training queries
(:mod:`r2r_agent.training.splits`, shared with ``r2r distill``'s split): evaluating on a query the student was
trained on would inflate every figure.

Example:
    >>> from r2r_agent.evals import load_dataset                                       # doctest: +SKIP
    >>> from r2r_agent.evals.systems import build_systems                              # doctest: +SKIP
    >>> results = run_eval([load_dataset("dl19")], build_systems(["first-stage", "minilm"]),
    ...                    cache_path="runs/dl/cache.jsonl")                           # doctest: +SKIP
    >>> results.run_for("dl19", "minilm").evaluation["nDCG@10"]                         # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from r2r_agent.errors import InvalidInputError
from r2r_agent.training.splits import (
    TrainingQueries,
    TrainingQueryError,
    check_not_training,
    find_training_queries,
    load_training_queries,
    normalize_query,
)

from .checks import check_count
from .dataset import Dataset
from .judgments import JudgmentRun
from .measures import DEFAULT_MEASURES
from .memory import MemorySampler, peak_rss_mb
from .passes import (
    AGREEMENT_DATASET,
    agreement_key,
    agreement_run,
    check_texts,
    explanation_key,
    explanation_run,
    judgment_key,
    judgment_run,
)
from .protocol import System, can_explain, can_explain_passages, can_judge, query_limit, system_key
from .records import PathLike, docid
from .result_cache import ResultCache, input_hash
from .results import (
    Comparison,
    DatasetInfo,
    EvalResults,
    ExplanationRun,
    SystemCost,
    SystemResult,
    SystemRun,
)
from .significance import paired_test
from .tasks import Job, Task, dataset_tasks, ranked_queries, run_cached
from .teacher_agreement import AgreementRun, ValidationSplit

logger = logging.getLogger(__name__)

#: Systems every other system is compared with (when they are part of the run), by report name.
BASELINES: tuple[str, ...] = ("first-stage", "minilm")
#: The measure the paired tests are run on.
HEADLINE = "nDCG@10"


def _rank(system: System, dataset: Dataset, cache: ResultCache | None, progress: bool,
          measures: Sequence[str]) -> SystemRun:
    limit = query_limit(system)
    if limit is not None:  # evaluated on its own queries only, so the qrels of the others raise no warnings
        dataset = limit_dataset(dataset, limit)
    key = system_key(system)

    def compute(task: Task) -> SystemResult:
        check_texts(system, dataset, task)
        result = system.rank(task.query, task.passages)
        _check_result(system.name, task, result)
        return result

    def decode(data: Mapping[str, Any], task: Task) -> SystemResult:
        return SystemResult.from_dict(data, task.query, task.passages)

    job = Job(f"{system.name} on {dataset.name}", "result", key, dataset.name, compute, SystemResult.to_dict, decode)
    load_before = getattr(system, "load_seconds", None)
    # The sampler covers the lazy model loading on the first computed query too: that is memory the system needs.
    with MemorySampler() as memory:
        results, computed = run_cached(job, dataset_tasks(dataset), cache, progress)
    load_after = getattr(system, "load_seconds", None)
    if computed:
        measured = {"load_seconds": load_after if load_after is not None and load_before is None else None,
                    "peak_rss_mb": peak_rss_mb(), "rss_peak_mb": memory.use.peak_mb,
                    "rss_increase_mb": memory.use.increase_mb}
        if cache is not None:
            cache.put_cost(key, dataset.name, measured)
    else:  # nothing ran now: the memory measured when the results were computed (None in older caches)
        measured = (cache.cost(key, dataset.name) if cache is not None else None) or {}
    cost = SystemCost(
        queries=len(results),
        seconds=math.fsum(r.seconds for r in results.values()),
        passages=sum(r.passages for r in results.values()),
        generated_tokens=sum(r.generated_tokens for r in results.values()),
        load_seconds=measured.get("load_seconds"),
        peak_rss_mb=measured.get("peak_rss_mb"),
        computed=computed,
        rss_peak_mb=measured.get("rss_peak_mb"),
        rss_increase_mb=measured.get("rss_increase_mb"),
        failures=sum(r.failures for r in results.values()),
    )
    evaluation = dataset.evaluate(_as_run(results), measures)
    logger.info("%s on %s: %s = %.4f (%d queries, %d computed)", system.name, dataset.name, measures[0],
                evaluation.aggregates.get(evaluation.measures[0], 0.0), len(results), computed)
    return SystemRun(system.name, key, dataset.name, results, evaluation, cost)


# ---------------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------------


def limit_dataset(dataset: Dataset, limit: int | None) -> Dataset:
    """The dataset restricted to its first ``limit`` queries that have candidates (all when ``None``).

    The qrels and excluded ids are restricted too, so the means are over exactly those queries.
    """
    if limit is None:
        return dataset
    if limit < 1:
        raise InvalidInputError(f"limit_queries must be >= 1 or None, got {limit}.")
    keep = [q for q in dataset.candidates if q in dataset.queries][:limit]
    chosen = set(keep)
    return replace(
        dataset,
        queries={q: t for q, t in dataset.queries.items() if q in chosen},
        candidates={q: dataset.candidates[q] for q in keep},
        qrels={q: d for q, d in dataset.qrels.items() if q in chosen},
        excluded={q: e for q, e in dataset.excluded.items() if q in chosen},
    )


def _check_arguments(datasets: Sequence[Dataset], systems: Sequence[System], agreement: ValidationSplit | None,
                     explain_queries: int, explain_top: int) -> None:
    if not datasets and agreement is None:
        raise InvalidInputError("run_eval needs at least one dataset (or a teacher-agreement split).")
    if not systems:
        raise InvalidInputError("run_eval needs at least one system.")
    names = [s.name for s in systems]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"Two systems share a name in {names}; report names must be unique.")
    check_count("run_eval: explain_queries", explain_queries, 0)
    check_count("run_eval: explain_top", explain_top)


def _comparisons(datasets: Sequence[Dataset], runs: Sequence[SystemRun], names: Sequence[str],
                 headline: str) -> list[Comparison]:
    comparisons = []
    for dataset in datasets:
        for baseline in BASELINES:
            if baseline not in names:
                continue
            base = next(r for r in runs if r.dataset == dataset.name and r.system == baseline)
            for run in runs:
                if run.dataset != dataset.name or run.system in BASELINES[: BASELINES.index(baseline) + 1]:
                    continue  # each pair of baselines is compared once (minilm vs first-stage)
                a, b = base.evaluation.values(headline), run.evaluation.values(headline)
                # A system limited to the first N queries (query_limit) is compared on those queries only.
                common = set(a) & set(b)
                if len(common) < 2:
                    logger.warning("%s: fewer than 2 paired queries for %s vs %s; no test", dataset.name,
                                   run.system, baseline)
                    continue
                a = {q: v for q, v in a.items() if q in common}
                b = {q: v for q, v in b.items() if q in common}
                comparisons.append(Comparison(dataset.name, headline, baseline, run.system,
                                              paired_test(a, b, method="randomization"),
                                              paired_test(a, b, method="t")))
    return comparisons


def _split_by(systems: Sequence[System], able: Callable[[System], bool], what: str, lacking: str = "no explainer"
              ) -> tuple[list[Any], list[str]]:
    """The systems that can do ``what`` and the names of those skipped (logged)."""
    chosen = [s for s in systems if able(s)]
    skipped = [s.name for s in systems if not able(s)]
    if skipped:
        logger.info("%s: skipped %s (%s)", what, ", ".join(skipped), lacking)
    return chosen, skipped


def run_eval(
    datasets: Sequence[Dataset],
    systems: Sequence[System],
    *,
    cache_path: PathLike | None = None,
    limit_queries: int | None = None,
    training: TrainingQueries | None = None,
    progress: bool = False,
    measures: Sequence[str] = DEFAULT_MEASURES,
    settings: Mapping[str, Any] | None = None,
    explain_queries: int = 0,
    explain_top: int = 5,
    agreement: ValidationSplit | None = None,
    judgments: bool = False,
) -> EvalResults:
    """Rank every dataset's queries with every system, evaluate, and compare with the baselines.

    Args:
        datasets: Loaded datasets (see :func:`r2r_agent.evals.load_dataset`).
        systems: The systems, in report order (see :mod:`r2r_agent.evals.systems`).
        cache_path: The JSON Lines result cache; ``None`` keeps results in memory only.
        limit_queries: Only the first N queries of each dataset (quick runs).
        training: The training queries; a dataset containing any is refused before anything runs. ``None``
            skips the check (logged).
        progress: Show a progress bar per (system, dataset).
        measures: Measures to compute (the first is the headline of the paired tests when ``nDCG@10`` is absent).
        settings: Recorded as-is in the results (e.g. the command line).
        explain_queries: Also rerank the first N queries of each dataset with explanations on, with every system
            that can explain (:func:`~r2r_agent.evals.protocol.can_explain`), and measure the explanations
            (:attr:`EvalResults.explanations`); 0 (default) turns this off. Other systems are listed in
            :attr:`EvalResults.explanation_skipped`.
        explain_top: Passages explained per query (``compare_top`` is 0).
        agreement: Held-out training queries (:func:`~r2r_agent.evals.teacher_agreement.load_validation_split`):
            every system that can explain passages (:func:`~r2r_agent.evals.protocol.can_explain_passages`)
            explains them and is scored against the teacher's reasons (:attr:`EvalResults.agreements`); the others
            are listed in :attr:`EvalResults.agreement_skipped`. With it, ``datasets`` may be empty.
        judgments: Also judge every candidate of every query with every system that can judge
            (:func:`~r2r_agent.evals.protocol.can_judge`) and measure relevance and verdicts against the qrels
            (:attr:`EvalResults.judgments`, :mod:`~r2r_agent.evals.judgments`); the others are listed in
            :attr:`EvalResults.judgment_skipped`.

    Raises:
        TrainingQueryError: when a dataset holds training queries.
        InvalidInputError: no datasets (and no ``agreement``) or no systems, two systems with the same name, a
            negative ``explain_queries`` or ``explain_top < 1``, or a system that needs texts given candidates
            without them.
    """
    _check_arguments(datasets, systems, agreement, explain_queries, explain_top)
    chosen = [limit_dataset(d, limit_queries) for d in datasets]
    if training is not None:
        for dataset in chosen:
            check_not_training(dataset.name, dataset.queries, training)
    elif chosen:
        logger.warning("no training queries given: the check against evaluating on training queries is skipped")
    cache = ResultCache(cache_path) if cache_path is not None else None

    names = [s.name for s in systems]
    runs = [_rank(system, dataset, cache, progress, measures) for system in systems for dataset in chosen]
    comparisons = _comparisons(chosen, runs, names, HEADLINE if HEADLINE in measures else measures[0])
    infos = tuple(
        DatasetInfo(d.name, d.description, len(ranked_queries(d)), len(original.candidates),
                    max((len(c) for c in d.candidates.values()), default=0))
        for d, original in zip(chosen, datasets)
    )
    extra: dict[str, Any] = {}
    explanations: list[ExplanationRun] = []
    skipped: list[str] = []
    if explain_queries:
        extra.update(explain_queries=explain_queries, explain_top=explain_top)
        explainers, skipped = _split_by(systems, can_explain, "explanation quality")
        explanations = [explanation_run(system, dataset, cache, explain_queries, explain_top, progress)
                        for system in explainers for dataset in chosen]
    judged: list[JudgmentRun] = []
    judgment_skipped: list[str] = []
    if judgments:
        extra["judgments"] = True
        judges, judgment_skipped = _split_by(systems, can_judge, "judgments", "no calibrator")
        judged = [judgment_run(system, dataset, cache, progress) for system in judges for dataset in chosen]
    limits = {s.name: query_limit(s) for s in systems if query_limit(s) is not None}
    if limits:
        extra["query_limits"] = limits
    agreements: list[AgreementRun] = []
    agreement_skipped: list[str] = []
    if agreement is not None:
        extra["teacher_agreement"] = agreement.describe()
        explainers, agreement_skipped = _split_by(systems, can_explain_passages, "teacher agreement")
        agreements = [agreement_run(system, agreement, cache, progress) for system in explainers]
    return EvalResults(infos, tuple(names), tuple(runs), tuple(comparisons), tuple(measures),
                       dict(settings or {}, limit_queries=limit_queries, **extra), tuple(explanations),
                       tuple(skipped), tuple(agreements), tuple(agreement_skipped), tuple(judged),
                       tuple(judgment_skipped))


def _as_run(results: Mapping[str, SystemResult]) -> dict[str, Any]:
    # A first stage's scores define its order: evaluate them with trec_eval's tie-breaking so the anchors are
    # reproduced exactly. A cascade's scores mix stages, so its order is what counts.
    return {q: dict(zip(r.doc_ids, r.scores)) if r.by_score else list(r.doc_ids) for q, r in results.items()}


def _check_result(name: str, task: Task, result: SystemResult) -> None:
    if not isinstance(result, SystemResult):
        raise InvalidInputError(f"System {name!r}: rank() must return an r2r_agent.evals.SystemResult, got "
                                f"{type(result).__name__}.")
    given = sorted(docid(c) for c in task.passages)
    if sorted(result.doc_ids) != given:
        raise InvalidInputError(
            f"System {name!r} returned {len(result.doc_ids)} doc ids for query {task.qid!r}, which has {len(given)} "
            "candidates; a system must return every candidate exactly once."
        )


def now() -> str:
    """The local time as ``YYYY-MM-DD HH:MM`` (for reports)."""
    return time.strftime("%Y-%m-%d %H:%M")


#: Moved to :mod:`r2r_agent.training.splits` (one place for the split and the guard), :mod:`.cache` and
#: :mod:`.results`; importable from here as before.
__all__ = ["AGREEMENT_DATASET", "BASELINES", "HEADLINE", "Comparison", "DatasetInfo", "EvalResults", "ExplanationRun",
           "Job", "ResultCache", "SystemCost", "SystemRun", "Task", "TrainingQueries", "TrainingQueryError",
           "agreement_key", "check_not_training", "dataset_tasks", "explanation_key", "find_training_queries",
           "input_hash", "judgment_key", "limit_dataset", "load_training_queries", "normalize_query", "now",
           "ranked_queries", "run_cached", "run_eval"]
