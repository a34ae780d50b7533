"""Run systems over datasets: cached per (system, dataset, query), resumable, never on training queries.

:func:`run_eval` ranks every query of every dataset with every system, appending each result to a JSON Lines cache
(``cache.jsonl`` in the report folder) as soon as it is computed, so an interrupted run resumes where it stopped.
A cached result is reused only when the system's name and config and the query's text and candidate ids are
unchanged. Each system's run is then scored with :meth:`Dataset.evaluate` and compared with the first stage and
with MiniLM by paired significance tests.

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

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from r2r_agent.errors import InvalidInputError
from r2r_agent.progress import maybe_progress
from r2r_agent.training.splits import (
    TrainingQueries,
    TrainingQueryError,
    check_not_training,
    find_training_queries,
    load_training_queries,
    normalize_query,
)
from r2r_agent.types import Ranking

from .explanation_quality import ExplanationQuality, explanation_quality
from .memory import MemorySampler, peak_rss_mb
from .metrics import DEFAULT_MEASURES, Evaluation, PairedTest, paired_test
from .records import Candidate
from .registry import Dataset
from .systems import System, SystemResult, can_explain, can_explain_passages, query_limit, system_key
from .teacher_agreement import AgreementRun, ValidationSplit, adapter_split_note, agreement_quality, score_pair

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

#: Systems every other system is compared with (when they are part of the run), by report name.
BASELINES: tuple[str, ...] = ("first-stage", "minilm")
#: The measure the paired tests are run on.
HEADLINE = "nDCG@10"


# ---------------------------------------------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------------------------------------------


def input_hash(query: str, candidates: Sequence[Candidate]) -> str:
    """A digest of what a system sees for one query (its text and candidate ids, in order)."""
    digest = hashlib.sha256(query.encode("utf-8"))
    for c in candidates:
        digest.update(b"\x00" + c.docid.encode("utf-8"))
    return digest.hexdigest()[:16]


class ResultCache:
    """Append-only JSON Lines cache of per-query results, keyed by (system key, dataset, qid).

    Each line is written and flushed as soon as a query is done, so killing a run loses at most the query in
    progress; a torn last line is skipped with a warning. System-level costs (peak memory, load time) are stored
    as ``"kind": "cost"`` lines, and rankings with explanations (see :func:`explanation_key`) as ``"kind":
    "ranking"`` lines.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        self._results: dict[tuple[str, str, str], tuple[str, SystemResult]] = {}
        self._rankings: dict[tuple[str, str, str], tuple[str, Ranking]] = {}
        self._costs: dict[tuple[str, str], dict[str, Any]] = {}
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        bad = 0
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    if row.get("kind") == "cost":
                        self._costs[(row["system"], row["dataset"])] = dict(row["cost"])
                    elif row.get("kind") == "ranking":
                        key = (row["system"], row["dataset"], row["qid"])
                        self._rankings[key] = (row["input"], Ranking.from_dict(row["ranking"]))
                    else:
                        key = (row["system"], row["dataset"], row["qid"])
                        self._results[key] = (row["input"], SystemResult.from_dict(row["result"]))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    bad += 1
        if bad:
            logger.warning("%s: skipped %d unreadable lines (an interrupted write?)", self.path, bad)

    def __len__(self) -> int:
        return len(self._results)

    def get(self, system: str, dataset: str, qid: str, digest: str) -> SystemResult | None:
        """The cached result, or ``None`` when absent or computed on other input."""
        found = self._results.get((system, dataset, qid))
        if found is None or found[0] != digest:
            return None
        return found[1]

    def put(self, system: str, dataset: str, qid: str, digest: str, result: SystemResult) -> None:
        """Store a result (appended and flushed at once)."""
        self._results[(system, dataset, qid)] = (digest, result)
        self._append({"kind": "result", "system": system, "dataset": dataset, "qid": qid, "input": digest,
                      "result": result.to_dict()})

    def get_ranking(self, key: str, dataset: str, qid: str, digest: str) -> Ranking | None:
        """The cached ranking with explanations, or ``None`` when absent or computed on other input."""
        found = self._rankings.get((key, dataset, qid))
        if found is None or found[0] != digest:
            return None
        return found[1]

    def put_ranking(self, key: str, dataset: str, qid: str, digest: str, ranking: Ranking) -> None:
        """Store a ranking with explanations (appended and flushed at once)."""
        self._rankings[(key, dataset, qid)] = (digest, ranking)
        self._append({"kind": "ranking", "system": key, "dataset": dataset, "qid": qid, "input": digest,
                      "ranking": ranking.to_dict()})

    def cost(self, system: str, dataset: str) -> dict[str, Any] | None:
        """The last stored system-level cost of ``system`` on ``dataset``."""
        return self._costs.get((system, dataset))

    def put_cost(self, system: str, dataset: str, cost: Mapping[str, Any]) -> None:
        """Store system-level cost measurements."""
        self._costs[(system, dataset)] = dict(cost)
        self._append({"kind": "cost", "system": system, "dataset": dataset, "cost": dict(cost)})

    def _append(self, row: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()


# ---------------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemCost:
    """What a system cost on one dataset.

    Attributes:
        queries: Queries ranked.
        seconds: Total ranking seconds (model loading excluded).
        passages: Passages run through a model, all stages together.
        generated_tokens: Tokens generated, all stages together (from each ranking's stage costs).
        load_seconds: Seconds to load the models the first time they were needed (``None``: not measured, e.g.
            already loaded by an earlier system or everything came from the cache).
        peak_rss_mb: The process's peak resident memory (MiB) after the system ran. Systems run in the order given
            and the peak never goes down, so it bounds the memory of this system and those before it.
        computed: Queries computed in this run; the rest came from the cache (their seconds are those measured
            when they were computed).
        rss_peak_mb: The process's highest RSS (MiB) while this system ran over the dataset, model loading
            included (sampled in-process by :class:`~r2r_agent.evals.memory.MemorySampler`); it includes what was
            resident before (the interpreter, models of earlier systems still held).
        rss_increase_mb: ``rss_peak_mb`` minus the RSS when the system started: the memory that loading and running
            this system added (about 0 when an earlier system already loaded the models it shares).
        failures: Units of work that failed and fell back to the input order (see :attr:`SystemResult.failures`).
    """

    queries: int
    seconds: float
    passages: int
    generated_tokens: int = 0
    load_seconds: float | None = None
    peak_rss_mb: float | None = None
    computed: int = 0
    rss_peak_mb: float | None = None
    rss_increase_mb: float | None = None
    failures: int = 0

    @property
    def seconds_per_query(self) -> float:
        """Mean ranking seconds per query."""
        return self.seconds / self.queries if self.queries else 0.0

    @property
    def generated_tokens_per_query(self) -> float:
        """Mean tokens generated per query."""
        return self.generated_tokens / self.queries if self.queries else 0.0

    @property
    def passages_per_second(self) -> float | None:
        """Passages scored per second (``None`` for systems that run no model)."""
        return self.passages / self.seconds if self.passages and self.seconds > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (with the derived rates)."""
        data = dict(self.__dict__)
        data["seconds_per_query"] = self.seconds_per_query
        data["passages_per_second"] = self.passages_per_second
        data["generated_tokens_per_query"] = self.generated_tokens_per_query
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SystemCost:
        """Build from :meth:`to_dict` output."""
        names = ("queries", "seconds", "passages", "generated_tokens", "load_seconds", "peak_rss_mb", "computed",
                 "rss_peak_mb", "rss_increase_mb", "failures")
        return cls(**{k: data[k] for k in names if k in data})


@dataclass(frozen=True)
class SystemRun:
    """One system on one dataset: its rankings, their evaluation and their cost."""

    system: str
    key: str
    dataset: str
    results: Mapping[str, SystemResult]
    evaluation: Evaluation
    cost: SystemCost

    def to_dict(self, *, rankings: bool = False) -> dict[str, Any]:
        """A JSON-serialisable dict; the per-query rankings only when ``rankings``."""
        data: dict[str, Any] = {"system": self.system, "key": self.key, "dataset": self.dataset,
                                "evaluation": self.evaluation.to_dict(), "cost": self.cost.to_dict()}
        if rankings:
            data["results"] = {q: r.to_dict() for q, r in self.results.items()}
        return data


@dataclass(frozen=True)
class Comparison:
    """A paired test of ``system`` against ``baseline`` on one dataset and measure."""

    dataset: str
    measure: str
    baseline: str
    system: str
    randomization: PairedTest
    t_test: PairedTest

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {"dataset": self.dataset, "measure": self.measure, "baseline": self.baseline, "system": self.system,
                "randomization": self.randomization.to_dict(), "t_test": self.t_test.to_dict()}


@dataclass(frozen=True)
class ExplanationRun:
    """One system's explanations on the first queries of one dataset, and their quality.

    Attributes:
        system: The report name.
        key: The cache key (:func:`explanation_key`).
        dataset: The dataset name.
        explain_top: Passages explained per query.
        queries: Queries explained.
        computed: Queries computed in this run (the rest came from the cache).
        seconds: Total seconds of all stages of those rankings (explanation included, model loading excluded).
        generated_tokens: Tokens generated.
        quality: :func:`~r2r_agent.evals.explanation_quality.explanation_quality` of the rankings.
        rankings: ``{qid: Ranking}`` (kept for callers; reports store only the measures).
    """

    system: str
    key: str
    dataset: str
    explain_top: int
    queries: int
    computed: int
    seconds: float
    generated_tokens: int
    quality: ExplanationQuality
    rankings: Mapping[str, Ranking] = field(default_factory=dict)

    @property
    def seconds_per_query(self) -> float:
        """Mean seconds per explained query."""
        return self.seconds / self.queries if self.queries else 0.0

    @property
    def generated_tokens_per_query(self) -> float:
        """Mean tokens generated per explained query."""
        return self.generated_tokens / self.queries if self.queries else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (without the rankings)."""
        return {"system": self.system, "key": self.key, "dataset": self.dataset, "explain_top": self.explain_top,
                "queries": self.queries, "computed": self.computed, "seconds": self.seconds,
                "seconds_per_query": self.seconds_per_query, "generated_tokens": self.generated_tokens,
                "generated_tokens_per_query": self.generated_tokens_per_query,
                "quality": self.quality.to_dict()}


@dataclass(frozen=True)
class DatasetInfo:
    """What was evaluated of a dataset."""

    name: str
    description: str
    queries: int
    total_queries: int
    first_stage_depth: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class EvalResults:
    """Everything :func:`run_eval` measured."""

    datasets: tuple[DatasetInfo, ...]
    systems: tuple[str, ...]
    runs: tuple[SystemRun, ...]
    comparisons: tuple[Comparison, ...] = ()
    measures: tuple[str, ...] = DEFAULT_MEASURES
    settings: Mapping[str, Any] = field(default_factory=dict)
    explanations: tuple[ExplanationRun, ...] = ()
    explanation_skipped: tuple[str, ...] = ()
    agreements: tuple[AgreementRun, ...] = ()
    agreement_skipped: tuple[str, ...] = ()

    def run_for(self, dataset: str, system: str) -> SystemRun:
        """The run of ``system`` (report name) on ``dataset``."""
        for run in self.runs:
            if run.dataset == dataset and run.system == system:
                return run
        raise KeyError(f"no run of {system!r} on {dataset!r}")

    def comparisons_for(self, dataset: str, baseline: str) -> dict[str, Comparison]:
        """``{system: comparison against baseline}`` on ``dataset``."""
        return {c.system: c for c in self.comparisons if c.dataset == dataset and c.baseline == baseline}

    def to_dict(self, *, rankings: bool = False) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "datasets": [d.to_dict() for d in self.datasets],
            "systems": list(self.systems),
            "measures": list(self.measures),
            "settings": dict(self.settings),
            "runs": [r.to_dict(rankings=rankings) for r in self.runs],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "explanation_quality": {"runs": [e.to_dict() for e in self.explanations],
                                    "skipped": list(self.explanation_skipped)},
            "teacher_agreement": {"split": self.settings.get("teacher_agreement"),
                                  "runs": [a.to_dict() for a in self.agreements],
                                  "skipped": list(self.agreement_skipped)},
        }


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


def _ranked_queries(dataset: Dataset) -> list[str]:
    missing = [q for q in dataset.candidates if q not in dataset.queries]
    if missing:
        logger.warning("%s: %d queries have candidates but no query text and are skipped (e.g. %s)",
                       dataset.name, len(missing), missing[:3])
    return [q for q in dataset.candidates if q in dataset.queries]


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
            that can explain (:func:`~r2r_agent.evals.systems.can_explain`), and measure the explanations
            (:attr:`EvalResults.explanations`); 0 (default) turns this off. Other systems are listed in
            :attr:`EvalResults.explanation_skipped`.
        explain_top: Passages explained per query (``compare_top`` is 0).
        agreement: Held-out training queries (:func:`~r2r_agent.evals.teacher_agreement.load_validation_split`):
            every system that can explain passages (:func:`~r2r_agent.evals.systems.can_explain_passages`) explains
            them and is scored against the teacher's reasons (:attr:`EvalResults.agreements`); the others are listed
            in :attr:`EvalResults.agreement_skipped`. With it, ``datasets`` may be empty.

    Raises:
        TrainingQueryError: when a dataset holds training queries.
        InvalidInputError: no datasets (and no ``agreement``) or no systems, two systems with the same name, or a
            negative ``explain_queries`` or ``explain_top < 1``.
    """
    if not datasets and agreement is None:
        raise InvalidInputError("run_eval needs at least one dataset (or a teacher-agreement split).")
    if not systems:
        raise InvalidInputError("run_eval needs at least one system.")
    names = [s.name for s in systems]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"Two systems share a name in {names}; report names must be unique.")
    for flag, value, least in (("explain_queries", explain_queries, 0), ("explain_top", explain_top, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise InvalidInputError(f"run_eval: {flag} must be an int >= {least}, got {value!r}.")
    chosen = [limit_dataset(d, limit_queries) for d in datasets]
    if training is None and chosen:
        logger.warning("no training queries given: the check against evaluating on training queries is skipped")
    else:
        for dataset in chosen:
            check_not_training(dataset.name, dataset.queries, training)
    cache = ResultCache(cache_path) if cache_path is not None else None

    runs: list[SystemRun] = []
    for system in systems:
        key = system_key(system)
        for dataset in chosen:
            runs.append(_run_one(system, key, dataset, cache, progress, measures))

    headline = HEADLINE if HEADLINE in measures else measures[0]
    comparisons = []
    for dataset in chosen:
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
                a = {q: v for q, v in a.items() if q in common}
                b = {q: v for q, v in b.items() if q in common}
                if len(common) < 2:
                    logger.warning("%s: fewer than 2 paired queries for %s vs %s; no test", dataset.name,
                                   run.system, baseline)
                    continue
                comparisons.append(Comparison(dataset.name, headline, baseline, run.system,
                                              paired_test(a, b, method="randomization"),
                                              paired_test(a, b, method="t")))
    infos = tuple(
        DatasetInfo(d.name, d.description, len(_ranked_queries(d)), len(original.candidates),
                    max((len(c) for c in d.candidates.values()), default=0))
        for d, original in zip(chosen, datasets)
    )
    explanations: list[ExplanationRun] = []
    skipped: list[str] = []
    if explain_queries:
        for system in systems:
            if not can_explain(system):
                skipped.append(system.name)
                continue
            for dataset in chosen:
                explanations.append(_explain_one(system, dataset, cache, explain_queries, explain_top, progress))
        if skipped:
            logger.info("explanation quality: skipped %s (no explainer)", ", ".join(skipped))
    extra: dict[str, Any] = {"explain_queries": explain_queries, "explain_top": explain_top} if explain_queries else {}
    limits = {s.name: query_limit(s) for s in systems if query_limit(s) is not None}
    if limits:
        extra["query_limits"] = limits
    agreements: list[AgreementRun] = []
    agreement_skipped: list[str] = []
    if agreement is not None:
        extra["teacher_agreement"] = agreement.describe()
        for system in systems:
            if can_explain_passages(system):
                agreements.append(_agree_one(system, agreement, cache, progress))
            else:
                agreement_skipped.append(system.name)
        if agreement_skipped:
            logger.info("teacher agreement: skipped %s (no explainer)", ", ".join(agreement_skipped))
    return EvalResults(infos, tuple(names), tuple(runs), tuple(comparisons), tuple(measures),
                       dict(settings or {}, limit_queries=limit_queries, **extra), tuple(explanations),
                       tuple(skipped), tuple(agreements), tuple(agreement_skipped))


#: The "dataset" under which explanations of held-out training passages are cached.
AGREEMENT_DATASET = "r2r-validation"


def agreement_key(system: System) -> str:
    """The cache key of a system's explanations of validation passages: its :func:`system_key` plus a tag.

    Example:
        >>> from r2r_agent.evals.systems import FirstStageSystem
        >>> agreement_key(FirstStageSystem())
        'first-stage {} teacher_agreement'
    """
    return f"{system_key(system)} teacher_agreement"


def _agree_one(system: Any, split: ValidationSplit, cache: ResultCache | None, progress: bool) -> AgreementRun:
    from r2r_agent.types import Passage

    key = agreement_key(system)
    rankings: dict[str, Ranking] = {}
    computed = 0
    with maybe_progress(progress, total=len(split.queries), desc=f"{system.name} explaining validation passages",
                        unit="query") as bar:
        for item in split.queries:
            digest = item.input_hash()
            ranking = cache.get_ranking(key, AGREEMENT_DATASET, item.qid, digest) if cache is not None else None
            if ranking is None:
                passages = [Passage(text, id=pid) for pid, text in zip(item.passage_ids, item.passages)]
                ranking = system.explain_passages(item.query, passages)
                if not isinstance(ranking, Ranking) or len(ranking.judgments) != len(passages):
                    raise InvalidInputError(
                        f"System {system.name!r}: explain_passages() must return an r2r_agent.Ranking with one "
                        f"judgment per passage ({len(passages)}), got {type(ranking).__name__}."
                    )
                computed += 1
                if cache is not None:
                    cache.put_ranking(key, AGREEMENT_DATASET, item.qid, digest, ranking)
            rankings[item.qid] = ranking
            bar.update(1)
    pairs = tuple(
        score_pair(item.qid, item.query, judgment.id, judgment.explanation, reason)
        for item in split.queries
        for judgment, reason in zip(rankings[item.qid].judgments, item.teacher)
    )
    note = adapter_split_note(system.config.get("adapter"), split)
    if note:
        logger.warning("%s: %s", system.name, note)
    quality = agreement_quality(pairs)
    logger.info("%s: teacher agreement over %d validation passages (%d queries, %d computed)", system.name,
                quality.n, len(rankings), computed)
    return AgreementRun(
        system=system.name, key=key, queries=len(rankings), computed=computed,
        seconds=math.fsum(s.seconds for r in rankings.values() for s in r.stages),
        generated_tokens=sum(s.generated_tokens for r in rankings.values() for s in r.stages),
        quality=quality, note=note, pairs=pairs,
    )


def explanation_key(system: System, explain_top: int) -> str:
    """The cache key of a system's rankings with explanations: its :func:`system_key` plus ``explain_top``.

    Example:
        >>> from r2r_agent.evals.systems import FirstStageSystem
        >>> explanation_key(FirstStageSystem(), 5)
        'first-stage {} explain_top=5'
    """
    return f"{system_key(system)} explain_top={explain_top}"


def _explain_one(system: Any, dataset: Dataset, cache: ResultCache | None, n_queries: int, explain_top: int,
                 progress: bool) -> ExplanationRun:
    key = explanation_key(system, explain_top)
    qids = _ranked_queries(dataset)[:n_queries]
    rankings: dict[str, Ranking] = {}
    computed = 0
    with maybe_progress(progress, total=len(qids), desc=f"{system.name} explaining {dataset.name}",
                        unit="query") as bar:
        for qid in qids:
            candidates = dataset.candidates[qid]
            query = dataset.queries[qid]
            digest = input_hash(query, candidates)
            ranking = cache.get_ranking(key, dataset.name, qid, digest) if cache is not None else None
            if ranking is None:
                ranking = system.explain(query, candidates, explain_top)
                if not isinstance(ranking, Ranking):
                    raise InvalidInputError(
                        f"System {system.name!r}: explain() must return an r2r_agent.Ranking, got "
                        f"{type(ranking).__name__}."
                    )
                computed += 1
                if cache is not None:
                    cache.put_ranking(key, dataset.name, qid, digest, ranking)
            rankings[qid] = ranking
            bar.update(1)
    quality = explanation_quality(rankings, dataset.qrels)
    logger.info("%s on %s: %d explanations over %d queries (%d computed)", system.name, dataset.name,
                quality.n_explained, len(rankings), computed)
    return ExplanationRun(
        system=system.name, key=key, dataset=dataset.name, explain_top=explain_top, queries=len(rankings),
        computed=computed, seconds=math.fsum(r.seconds for r in rankings.values()),
        generated_tokens=sum(s.generated_tokens for r in rankings.values() for s in r.stages),
        quality=quality, rankings=rankings,
    )


def _run_one(system: System, key: str, dataset: Dataset, cache: ResultCache | None, progress: bool,
             measures: Sequence[str]) -> SystemRun:
    limit = query_limit(system)
    if limit is not None:  # evaluated on its own queries only, so the qrels of the others raise no warnings
        dataset = limit_dataset(dataset, limit)
    qids = _ranked_queries(dataset)
    results: dict[str, SystemResult] = {}
    computed = 0
    load_before = getattr(system, "load_seconds", None)
    # The sampler covers the lazy model loading on the first computed query too: that is memory the system needs.
    with MemorySampler() as memory, maybe_progress(progress, total=len(qids), desc=f"{system.name} on {dataset.name}",
                                                   unit="query") as bar:
        for qid in qids:
            candidates = dataset.candidates[qid]
            query = dataset.queries[qid]
            digest = input_hash(query, candidates)
            cached = cache.get(key, dataset.name, qid, digest) if cache is not None else None
            if cached is None:
                result = system.rank(query, candidates)
                _check_result(system.name, qid, candidates, result)
                computed += 1
                if cache is not None:
                    cache.put(key, dataset.name, qid, digest, result)
            else:
                result = cached
            results[qid] = result
            bar.update(1)
    load_after = getattr(system, "load_seconds", None)
    load_seconds = load_after if load_after is not None and load_before is None else None
    previous = cache.cost(key, dataset.name) if cache is not None else None
    if computed:
        measured = {"load_seconds": load_seconds, "peak_rss_mb": peak_rss_mb(), "rss_peak_mb": memory.use.peak_mb,
                    "rss_increase_mb": memory.use.increase_mb}
        if cache is not None:
            cache.put_cost(key, dataset.name, measured)
    else:  # nothing ran now: the memory measured when the results were computed (None in older caches)
        measured = previous or {}
    cost = SystemCost(
        queries=len(results),
        seconds=math.fsum(r.seconds for r in results.values()),
        passages=sum(r.passages for r in results.values()),
        generated_tokens=sum(_generated_tokens(r) for r in results.values()),
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


def _generated_tokens(result: SystemResult) -> int:
    # The stage costs are the record of what each cascade stage did; systems that report no stages give a total.
    return sum(s.generated_tokens for s in result.stages) if result.stages else result.generated_tokens


def _as_run(results: Mapping[str, SystemResult]) -> dict[str, Any]:
    # A first stage's scores define its order: evaluate them with trec_eval's tie-breaking so the anchors are
    # reproduced exactly. A cascade's scores mix stages, so its order is what counts.
    return {q: dict(zip(r.doc_ids, r.scores)) if r.by_score else list(r.doc_ids) for q, r in results.items()}


def _check_result(name: str, qid: str, candidates: Iterable[Candidate], result: SystemResult) -> None:
    given = sorted(c.docid for c in candidates)
    if sorted(result.doc_ids) != given:
        raise InvalidInputError(
            f"System {name!r} returned {len(result.doc_ids)} doc ids for query {qid!r}, which has {len(given)} "
            "candidates; a system must return every candidate exactly once."
        )


def now() -> str:
    """The local time as ``YYYY-MM-DD HH:MM`` (for reports)."""
    return time.strftime("%Y-%m-%d %H:%M")


#: Moved to :mod:`r2r_agent.training.splits` (one place for the split and the guard); importable here as before.
__all__ = ["AGREEMENT_DATASET", "BASELINES", "HEADLINE", "TrainingQueries", "TrainingQueryError", "check_not_training",
           "find_training_queries", "load_training_queries", "normalize_query", "run_eval"]
