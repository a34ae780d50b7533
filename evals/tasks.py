"""The one loop of ``r2r eval``: each query put to a system is computed once, stored at once, then served from the
cache (:func:`run_cached`).

Ranking a dataset, explaining its first queries and explaining held-out training passages all go through it: a
:class:`Job` says what to compute and how the output is cached, a :class:`Task` is one query.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from r2r_agent import Passage
from r2r_agent.errors import InvalidInputError
from r2r_agent.progress import maybe_progress

from .dataset import Dataset
from .result_cache import ResultCache, input_hash

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Task:
    """One query put to a system: what it is shown, and the digest its cache entry is keyed by."""

    qid: str
    query: str
    passages: tuple[Passage, ...]
    digest: str


@dataclass(frozen=True)
class Job(Generic[T]):
    """One pass of one system over some queries, cached as ``kind`` rows under ``(key, dataset)``.

    Attributes:
        name: What the progress bar says (``"minilm on dl19"``).
        kind: The cache row kind (``"result"`` or ``"ranking"``, see
            :class:`~r2r_agent.evals.result_cache.ResultCache`).
        key: The system's cache key for this pass.
        dataset: The dataset name in the cache.
        compute: Runs the system on one query (and checks its output).
        encode: The output as the cached payload.
        decode: The output back from its payload and its task.
    """

    name: str
    kind: str
    key: str
    dataset: str
    compute: Callable[[Task], T]
    encode: Callable[[T], Mapping[str, Any]]
    decode: Callable[[Mapping[str, Any], Task], T]


def run_cached(job: Job[T], tasks: Sequence[Task], cache: ResultCache | None, progress: bool
               ) -> tuple[dict[str, T], int]:
    """``{qid: output}`` of every task, each from the cache when it holds it for the same input, else computed and
    stored at once; and how many were computed."""
    outputs: dict[str, T] = {}
    computed = 0
    with maybe_progress(progress, total=len(tasks), desc=job.name, unit="query") as bar:
        for task in tasks:
            stored = cache.lookup(job.kind, job.key, job.dataset, task.qid, task.digest) if cache is not None else None
            output = _decoded(job, stored, task) if stored is not None else None
            if output is None:
                output = job.compute(task)
                computed += 1
                if cache is not None:
                    cache.store(job.kind, job.key, job.dataset, task.qid, task.digest, job.encode(output))
            outputs[task.qid] = output
            bar.update(1)
    return outputs, computed


def _decoded(job: Job[T], stored: Mapping[str, Any], task: Task) -> T | None:
    try:
        return job.decode(stored, task)
    except (InvalidInputError, KeyError, TypeError, ValueError) as exc:  # computed again, and stored anew
        logger.debug("%s: cached %s of query %s not readable (%s); computing it again", job.key, job.kind, task.qid,
                     exc)
        return None


def dataset_tasks(dataset: Dataset, limit: int | None = None) -> list[Task]:
    """The queries of ``dataset`` that have candidates and a text (the first ``limit``), as tasks."""
    qids = ranked_queries(dataset)[:limit]
    return [Task(q, dataset.queries[q], tuple(dataset.candidates[q]),
                 input_hash(dataset.queries[q], dataset.candidates[q])) for q in qids]


def ranked_queries(dataset: Dataset) -> list[str]:
    """The ids of the queries of ``dataset`` that have candidates and a text (those without a text are logged)."""
    missing = [q for q in dataset.candidates if q not in dataset.queries]
    if missing:
        logger.warning("%s: %d queries have candidates but no query text and are skipped (e.g. %s)",
                       dataset.name, len(missing), missing[:3])
    return [q for q in dataset.candidates if q in dataset.queries]


__all__ = ["Job", "Task", "dataset_tasks", "ranked_queries", "run_cached"]
