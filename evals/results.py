"""What an evaluation measures: one query ranked by one system (:class:`SystemResult`), a system's run over a
dataset (:class:`SystemRun` with its :class:`SystemCost`), paired comparisons, explanation runs, and everything
together (:class:`EvalResults`, what :func:`~r2r_agent.evals.runner.run_eval` returns and reports render).

A :class:`SystemResult` is the system's :class:`r2r_agent.Ranking` plus only what the evaluation adds (seconds,
whether its scores define its order, failures). The result cache keeps it without passage texts
(:meth:`SystemResult.to_dict`: doc ids, scores, stage costs); :meth:`SystemResult.from_dict` rebuilds the ranking
from the candidates it was computed on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from r2r_agent import Passage, Ranking, StageCost
from r2r_agent.errors import InvalidInputError

from .evaluation import Evaluation
from .explanation_quality import ExplanationQuality
from .judgments import JudgmentRun
from .measures import DEFAULT_MEASURES
from .records import PerQueryMeans, docid
from .significance import PairedTest
from .teacher_agreement import AgreementRun

#: The :attr:`r2r_agent.Judgment.stage` of judgments rebuilt from the cache, which keeps each passage's id and score
#: but not which cascade stage scored it (the stage costs are kept).
CACHED_STAGE = "cached"


@dataclass(frozen=True)
class SystemResult:
    """One query ranked by one system: its :class:`r2r_agent.Ranking` plus what the evaluation adds.

    Attributes:
        ranking: Every candidate exactly once, best first, as :meth:`r2r_agent.Reranker.rerank` returns it (an order
            made elsewhere: :meth:`r2r_agent.Ranking.from_order`). Its judgments' scores are the system's own:
            scores of different cascade stages are not comparable (a re-scored head and the tail use different
            models), so metrics use the order unless ``by_score``. Its stage costs are what the query cost.
        seconds: Wall-clock seconds spent ranking this query (model loading excluded).
        by_score: The scores alone define the order (one model scored every candidate, as in a first stage):
            metrics then sort by score with trec_eval's tie-breaking. Otherwise the order of the judgments counts.
        failures: Units of work that failed and fell back to the input order (e.g. teacher windows whose answer
            could not be parsed); 0 when everything worked.
    """

    ranking: Ranking
    seconds: float
    by_score: bool = False
    failures: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.ranking, Ranking):
            raise InvalidInputError(
                f"SystemResult.ranking must be an r2r_agent.Ranking, got {type(self.ranking).__name__}; for an order "
                "made outside a Reranker, build it with Ranking.from_order(query, candidates, order)."
            )
        object.__setattr__(self, "seconds", float(self.seconds))

    @property
    def doc_ids(self) -> tuple[str, ...]:
        """Every candidate's doc id, best first."""
        return tuple(j.id or "" for j in self.ranking)

    @property
    def scores(self) -> tuple[float, ...]:
        """The system's score of each, in the same order."""
        return tuple(j.score for j in self.ranking)

    @property
    def stages(self) -> tuple[StageCost, ...]:
        """The cost of each stage that ran (none for the first-stage order)."""
        return self.ranking.stages

    @property
    def passages(self) -> int:
        """Passages run through a model, all stages together (0 for the first-stage order)."""
        return sum(s.items for s in self.stages)

    @property
    def generated_tokens(self) -> int:
        """Tokens generated, all stages together (0 for ranking-only systems)."""
        return sum(s.generated_tokens for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        """The cached form: doc ids and scores best first, costs and flags; no passage texts."""
        return {
            "doc_ids": list(self.doc_ids),
            "scores": list(self.scores),
            "seconds": self.seconds,
            "passages": self.passages,
            "generated_tokens": self.generated_tokens,
            "stages": [s.to_dict() for s in self.stages],
            "by_score": self.by_score,
            "failures": self.failures,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], query: str, candidates: Sequence[Passage]) -> SystemResult:
        """Rebuild from :meth:`to_dict` output and the candidates it was computed on (in their input order).

        Texts, first-stage scores and input ranks come from ``candidates``; each judgment's stage is
        :data:`CACHED_STAGE`. An entry of a system that gave totals without stage costs (older caches) keeps them
        as one ``"total"`` stage.

        Raises:
            InvalidInputError: when the stored ids and scores differ in number, or are not the candidates' ids.
        """
        ids, scores = [str(d) for d in data["doc_ids"]], [float(s) for s in data["scores"]]
        if len(ids) != len(scores):
            raise InvalidInputError(f"SystemResult: {len(ids)} doc ids but {len(scores)} scores; give one score per "
                                    "id.")
        places: dict[str, list[int]] = {}
        for index, passage in enumerate(candidates):
            places.setdefault(docid(passage), []).append(index)
        try:
            order = [places[d].pop(0) for d in ids]
        except (KeyError, IndexError):
            raise InvalidInputError(f"SystemResult: the stored ranking of {len(ids)} doc ids is not an order of the "
                                    f"{len(candidates)} candidates given; pass the candidates it was computed "
                                    "on.") from None
        given = [0.0] * len(candidates)
        for place, index in enumerate(order):
            given[index] = scores[place]
        stages = tuple(StageCost.from_dict(s) for s in data.get("stages", ()))
        passages, tokens = int(data.get("passages", 0)), int(data.get("generated_tokens", 0))
        if not stages and (passages or tokens):
            stages = (StageCost("total", "", passages, float(data["seconds"]), tokens),)
        ranking = Ranking.from_order(query, candidates, order, given, stage=CACHED_STAGE, stages=stages)
        return cls(ranking, data["seconds"], by_score=bool(data.get("by_score", False)),
                   failures=int(data.get("failures", 0)))


@dataclass(frozen=True)
class SystemCost(PerQueryMeans):
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
class ExplanationRun(PerQueryMeans):
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
    judgments: tuple[JudgmentRun, ...] = ()
    judgment_skipped: tuple[str, ...] = ()

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
            "judgments": {"runs": [j.to_dict() for j in self.judgments], "skipped": list(self.judgment_skipped)},
        }


__all__ = ["CACHED_STAGE", "Comparison", "DatasetInfo", "EvalResults", "ExplanationRun", "SystemCost", "SystemResult",
           "SystemRun"]
