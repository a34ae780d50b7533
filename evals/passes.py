"""The passes of ``r2r eval`` besides ranking, each one cached loop (:func:`~r2r_agent.evals.tasks.run_cached`):
explaining the first queries of a dataset (:func:`explanation_run`), judging every candidate (:func:`judgment_run`)
and explaining held-out training passages for teacher agreement (:func:`agreement_run`), with their cache keys.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from r2r_agent import Passage, Ranking
from r2r_agent.errors import InvalidInputError

from .dataset import Dataset
from .evidence_agreement import evidence_agreement
from .explanation_quality import explanation_quality
from .judgments import JudgedQuery, JudgmentRun, judgment_quality
from .protocol import System, needs_texts, system_key
from .result_cache import ResultCache
from .results import ExplanationRun
from .tasks import Job, Task, dataset_tasks, run_cached
from .teacher_agreement import AgreementRun, ValidationSplit, adapter_split_note, agreement_quality, score_pair

logger = logging.getLogger(__name__)

#: The "dataset" under which explanations of held-out training passages are cached.
AGREEMENT_DATASET = "r2r-validation"


def explanation_key(system: System, explain_top: int) -> str:
    """The cache key of a system's rankings with explanations: its :func:`system_key` plus ``explain_top``.

    Example:
        >>> from r2r_agent.evals.systems import FirstStageSystem
        >>> explanation_key(FirstStageSystem(), 5)
        'first-stage {} explain_top=5'
    """
    return f"{system_key(system)} explain_top={explain_top}"


def agreement_key(system: System) -> str:
    """The cache key of a system's explanations of validation passages: its :func:`system_key` plus a tag.

    Example:
        >>> from r2r_agent.evals.systems import FirstStageSystem
        >>> agreement_key(FirstStageSystem())
        'first-stage {} teacher_agreement'
    """
    return f"{system_key(system)} teacher_agreement"


def judgment_key(system: System) -> str:
    """The cache key of a system's judgments of every candidate: its :func:`system_key`, a tag and its
    ``judge_config`` (what changes its judgments but not its ranking, e.g. its calibrator).

    Example:
        >>> from r2r_agent.evals.systems import FirstStageSystem
        >>> judgment_key(FirstStageSystem())
        'first-stage {} judgments {}'
    """
    extra = json.dumps(dict(getattr(system, "judge_config", None) or {}), sort_keys=True)
    return f"{system_key(system)} judgments {extra}"


def check_texts(system: System, dataset: Dataset, task: Task) -> None:
    """Refuse a query whose candidates lack texts when ``system`` reads texts, naming the fix."""
    missing = dataset.without_text(task.passages) if needs_texts(system) else []
    if missing:
        raise InvalidInputError(
            f"System {system.name!r} needs passage texts, but {len(missing)} candidates of query {task.qid!r} in "
            f"{dataset.name!r} have none (e.g. {missing[:3]}). For BRIGHT pass a local copy of xlangai/BRIGHT "
            "(--bright-dir); only 'first-stage' runs without texts."
        )


def _ranking_job(name: str, key: str, dataset: str, compute: Callable[[Task], Ranking]) -> Job[Ranking]:
    return Job(name, "ranking", key, dataset, compute, Ranking.to_dict, lambda data, task: Ranking.from_dict(data))


def _costs(rankings: Mapping[str, Ranking]) -> tuple[float, int]:
    """Seconds and generated tokens of ``rankings``, all stages together."""
    return (math.fsum(r.seconds for r in rankings.values()),
            sum(s.generated_tokens for r in rankings.values() for s in r.stages))


def explanation_run(system: Any, dataset: Dataset, cache: ResultCache | None, n_queries: int, explain_top: int,
             progress: bool) -> ExplanationRun:
    key = explanation_key(system, explain_top)

    def compute(task: Task) -> Ranking:
        check_texts(system, dataset, task)
        ranking = system.explain(task.query, task.passages, explain_top)
        if not isinstance(ranking, Ranking):
            raise InvalidInputError(f"System {system.name!r}: explain() must return an r2r_agent.Ranking, got "
                                    f"{type(ranking).__name__}.")
        return ranking

    job = _ranking_job(f"{system.name} explaining {dataset.name}", key, dataset.name, compute)
    rankings, computed = run_cached(job, dataset_tasks(dataset, n_queries), cache, progress)
    quality = explanation_quality(rankings, dataset.qrels)
    logger.info("%s on %s: %d explanations over %d queries (%d computed)", system.name, dataset.name,
                quality.n_explained, len(rankings), computed)
    seconds, tokens = _costs(rankings)
    return ExplanationRun(system=system.name, key=key, dataset=dataset.name, explain_top=explain_top,
                          queries=len(rankings), computed=computed, seconds=seconds, generated_tokens=tokens,
                          quality=quality, rankings=rankings)


def judgment_run(system: Any, dataset: Dataset, cache: ResultCache | None, progress: bool) -> JudgmentRun:
    key = judgment_key(system)

    def compute(task: Task) -> JudgedQuery:
        check_texts(system, dataset, task)
        return JudgedQuery.from_ranking(system.judge(task.query, task.passages), task.passages)

    job = Job(f"{system.name} judging {dataset.name}", "judged", key, dataset.name, compute, JudgedQuery.to_dict,
              lambda data, task: JudgedQuery.from_dict(data, task.passages))
    judged, computed = run_cached(job, dataset_tasks(dataset), cache, progress)
    quality = judgment_quality(judged, dataset.qrels)
    logger.info("%s on %s: %d judgments over %d queries (%d computed)", system.name, dataset.name,
                quality.n_judgments, len(judged), computed)
    return JudgmentRun(system=system.name, key=key, dataset=dataset.name, queries=len(judged), computed=computed,
                       seconds=math.fsum(j.seconds for j in judged.values()), quality=quality, judged=judged)


def agreement_run(system: Any, split: ValidationSplit, cache: ResultCache | None, progress: bool) -> AgreementRun:
    key = agreement_key(system)

    def compute(task: Task) -> Ranking:
        ranking = system.explain_passages(task.query, list(task.passages))
        if not isinstance(ranking, Ranking) or len(ranking.judgments) != len(task.passages):
            raise InvalidInputError(
                f"System {system.name!r}: explain_passages() must return an r2r_agent.Ranking with one judgment per "
                f"passage ({len(task.passages)}), got {type(ranking).__name__}."
            )
        return ranking

    tasks = [Task(q.qid, q.query, tuple(Passage(text, id=pid) for pid, text in zip(q.passage_ids, q.passages)),
                  q.input_hash()) for q in split.queries]
    job = _ranking_job(f"{system.name} explaining validation passages", key, AGREEMENT_DATASET, compute)
    rankings, computed = run_cached(job, tasks, cache, progress)
    pairs = tuple(score_pair(item.qid, item.query, judgment.id, judgment.explanation, reason)
                  for item in split.queries for judgment, reason in zip(rankings[item.qid].judgments, item.teacher))
    note = adapter_split_note(system.config.get("adapter"), split)
    if note:
        logger.warning("%s: %s", system.name, note)
    quality = agreement_quality(pairs)
    evidence = evidence_agreement(
        (item.qid, item.query, judgment.id, text, judgment.evidence, sentence) for item in split.queries
        for judgment, text, sentence in zip(rankings[item.qid].judgments, item.passages, item.teacher_evidence))
    logger.info("%s: teacher agreement over %d validation passages (%d queries, %d computed)", system.name,
                quality.n, len(rankings), computed)
    seconds, tokens = _costs(rankings)
    return AgreementRun(system=system.name, key=key, queries=len(rankings), computed=computed, seconds=seconds,
                        generated_tokens=tokens, quality=quality, note=note, pairs=pairs,
                        evidence=evidence)


__all__ = ["AGREEMENT_DATASET", "agreement_key", "agreement_run", "check_texts", "explanation_key", "explanation_run",
           "judgment_key", "judgment_run"]
