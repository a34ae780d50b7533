"""Retrieve a dataset's candidates from its corpus with a first stage, cached as a TREC run (``r2r eval
--first-stage``).

A dataset with a corpus (:func:`~r2r_agent.evals.registry.load_corpus_dataset`: ``beir:PATH``, ``bright-<subset>``
with a local BRIGHT copy) gets its candidates from one of the first stages of :mod:`.first_stage`, named exactly:

- ``bm25``: :class:`~r2r_agent.evals.first_stage.BM25FirstStage` (bm25s);
- ``dense``: :class:`~r2r_agent.evals.first_stage.DenseFirstStage` (a persistent chromadb collection embedded with
  the bundled all-MiniLM-L6-v2, in ``index_dir``);
- ``reason-then-retrieve``: :class:`~r2r_agent.evals.first_stage.ReasonThenRetrieve`, a reasoner LM (the default
  student's explainer, or a local causal-LM folder) writes about the query and BM25 retrieves with both.

Each query's excluded ids (BRIGHT) are removed before the cut at ``depth``, as BRIGHT's own evaluation does, so a
query keeps ``depth`` candidates. Every query's result is appended to a JSON Lines cache as soon as it is retrieved,
and the whole run is written as a TREC run file next to it; both are keyed by the corpus (its
:attr:`~r2r_agent.evals.dataset.Corpus.fingerprint`), the first stage's settings and the depth. A re-run reads
them back and builds no index and loads no model unless a query is missing.

Example:
    >>> from r2r_agent.evals.registry import load_corpus_dataset                     # doctest: +SKIP
    >>> base, corpus = load_corpus_dataset("beir:data/scifact")                      # doctest: +SKIP
    >>> got = retrieve_dataset(base, corpus, FirstStageOptions("bm25", depth=100), cache_dir="runs/first_stage")
    ...                                                                              # doctest: +SKIP
    >>> got.dataset.evaluate_first_stage()["nDCG@10"], got.run.run_file             # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from r2r_agent.errors import InvalidInputError
from r2r_agent.progress import maybe_progress

from .checks import check_count
from .dataset import Corpus, Dataset
from .first_stage import FirstStage, Writer
from .first_stage_options import (
    BM25_SETTINGS,
    DEFAULT_REASONER,
    FIRST_STAGES,
    LABELS,
    FirstStageOptions,
    build_first_stage,
    reasoner_writer,
    stage_config,
)
from .jsonl import append_row, read_rows
from .records import PathLike, candidate, docid
from .trec import write_trec_run

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FirstStageRun:
    """What a first stage retrieved for one dataset.

    Attributes:
        dataset: The dataset name.
        first_stage: The first stage's name (``"bm25"``, ...).
        depth: Candidates asked per query.
        config: The settings that change the run (part of the cache key).
        queries: Queries retrieved for (cached or not).
        computed: Queries retrieved in this call; the rest came from the cache.
        empty: Queries with no candidate (BM25 returns only documents sharing a term with the query); they are
            left out of the candidates, so reports list them as judged queries missing from the run.
        seconds: Retrieval seconds over all queries (as measured when each was retrieved; indexing excluded).
        index_seconds: Seconds to build the first stage (index the corpus, load the reasoner) in this call;
            ``None`` when everything came from the cache.
        run_file: The TREC run file written (``None`` without a cache folder).
    """

    dataset: str
    first_stage: str
    depth: int
    config: Mapping[str, Any]
    queries: int
    computed: int
    empty: tuple[str, ...] = ()
    seconds: float = 0.0
    index_seconds: float | None = None
    run_file: str | None = None

    @property
    def seconds_per_query(self) -> float:
        """Mean retrieval seconds per query."""
        return self.seconds / self.queries if self.queries else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (with the derived rate)."""
        data = dict(self.__dict__)
        data["config"] = dict(self.config)
        data["empty"] = list(self.empty)
        data["seconds_per_query"] = self.seconds_per_query
        return data


@dataclass(frozen=True)
class RetrievedDataset:
    """A dataset whose candidates a first stage retrieved, and how (see :func:`retrieve_dataset`)."""

    dataset: Dataset
    run: FirstStageRun


# ---------------------------------------------------------------------------------------------------------------
# The run cache
# ---------------------------------------------------------------------------------------------------------------


def _query_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "dataset"


def run_paths(cache_dir: PathLike, dataset: str, corpus: Corpus, config: Mapping[str, Any]) -> tuple[Path, Path]:
    """The ``(cache, run)`` files of a dataset's first-stage run: ``.jsonl`` rows and the ``.trec`` run.

    Named ``<dataset>.<first stage>.top<depth>.<key>`` where ``key`` digests the corpus fingerprint and ``config``.
    """
    key = hashlib.sha256(json.dumps({"corpus": corpus.fingerprint, **config}, sort_keys=True).encode()).hexdigest()
    stem = f"{_safe(dataset)}.{config['first_stage']}.top{config['depth']}.{key[:12]}"
    folder = Path(cache_dir)
    return folder / f"{stem}.jsonl", folder / f"{stem}.trec"


def _read_row(row: dict[str, Any]) -> dict[str, Any]:
    # Rows written before the rename keep the first-stage scores under "scores".
    if "first_stage_scores" not in row:
        row["first_stage_scores"] = row.pop("scores")
    if len(row["docids"]) != len(row["first_stage_scores"]):
        raise ValueError("docids and first-stage scores differ in length")
    row["qid"] = str(row["qid"])
    return row


class _RowCache:
    """Append-only JSON Lines rows ``{qid, query, docids, first_stage_scores, seconds[, reasoning]}`` (``query`` is
    the query's digest); the last row of a qid wins, and a torn last line is skipped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {row["qid"]: row for row in read_rows(path, _read_row)}

    def get(self, qid: str, digest: str) -> dict[str, Any] | None:
        row = self.rows.get(qid)
        return row if row is not None and row.get("query") == digest else None

    def put(self, row: dict[str, Any]) -> None:
        self.rows[row["qid"]] = row
        append_row(self.path, row)


# ---------------------------------------------------------------------------------------------------------------
# Retrieving a dataset
# ---------------------------------------------------------------------------------------------------------------


def retrieve_dataset(
    dataset: Dataset,
    corpus: Corpus,
    options: FirstStageOptions,
    *,
    cache_dir: PathLike | None = None,
    limit_queries: int | None = None,
    progress: bool = False,
    embedding_function: Any | None = None,
    writer: Writer | None = None,
    pool: Any | None = None,
) -> RetrievedDataset:
    """Retrieve the candidates of ``dataset``'s queries from ``corpus``: a new dataset with them as candidates.

    Args:
        dataset: The dataset (its ``candidates`` are replaced; the object itself is not changed).
        corpus: Its documents (see :func:`~r2r_agent.evals.registry.load_corpus_dataset`).
        options: Which first stage, and how deep.
        cache_dir: Where the run's cache (``.jsonl``) and TREC run (``.trec``) go, and the default dense index
            (``cache_dir/dense-index``); ``None`` keeps everything in memory.
        limit_queries: Retrieve only for the first N queries with text (quick runs).
        progress: Show a progress bar over the queries (and while a dense index embeds the corpus).
        embedding_function: ``dense``: a chromadb embedding function instead of the bundled MiniLM.
        writer: ``reason-then-retrieve``: ``writer(query) -> reasoning`` instead of the one ``options.reasoner``
            names (name it in ``options.reasoner``: that name is what the cache is keyed by).
        pool: A :class:`~r2r_agent.evals.systems.ModelPool` shared with the systems (the default student loads once).

    Returns:
        The dataset with the retrieved candidates (texts from the corpus; excluded ids removed before the cut;
        queries without any candidate left out) and the :class:`FirstStageRun`.

    Raises:
        InvalidInputError: for a bad ``limit_queries``, or a dataset without queries.
    """
    check_count("retrieve_dataset: limit_queries", limit_queries, optional=True)
    blank = [q for q, t in dataset.queries.items() if not isinstance(t, str) or not t.strip()]
    if blank:
        logger.warning("%s: %d queries have no text and are not retrieved for (e.g. %s)", dataset.name, len(blank),
                       blank[:3])
    skipped = set(blank)
    queries = [(q, t) for q, t in dataset.queries.items() if q not in skipped]
    if limit_queries is not None:
        queries = queries[:limit_queries]
    if not queries:
        raise InvalidInputError(f"Dataset {dataset.name!r} has no query with text to retrieve for.")
    config = stage_config(options, embedding_function=embedding_function, writer=writer)
    cache: _RowCache | None = None
    run_file: Path | None = None
    if cache_dir is not None:
        cache_path, run_file = run_paths(cache_dir, dataset.name, corpus, config)
        cache = _RowCache(cache_path)

    stage: FirstStage | None = None
    index_seconds: float | None = None

    def first_stage() -> FirstStage:
        nonlocal stage, index_seconds
        if stage is None:
            start = time.perf_counter()
            index_dir = Path(cache_dir) / "dense-index" if cache_dir is not None else None
            stage = build_first_stage(options, corpus, index_dir=index_dir, embedding_function=embedding_function,
                                      writer=writer, pool=pool, progress=progress)
            index_seconds = time.perf_counter() - start
            logger.info("%s: %s first stage ready in %.1f s (%d documents)", dataset.name, options.name,
                        index_seconds, len(corpus))
        return stage

    rows: dict[str, dict[str, Any]] = {}
    computed = 0
    with maybe_progress(progress, total=len(queries), desc=f"{options.name} retrieving {dataset.name}",
                        unit="query") as bar:
        for qid, text in queries:
            digest = _query_digest(text)
            row = cache.get(qid, digest) if cache is not None else None
            if row is None:
                row = _retrieve_one(first_stage(), qid, text, digest, options.depth,
                                    dataset.excluded.get(qid, frozenset()))
                computed += 1
                if cache is not None:
                    cache.put(row)
            rows[qid] = row
            bar.update(1)

    documents = corpus.documents
    candidates = {qid: tuple(candidate(d, s, documents.get(d, "")) for d, s in zip(row["docids"],
                                                                                   row["first_stage_scores"]))
                  for qid, row in rows.items() if row["docids"]}
    empty = tuple(qid for qid, row in rows.items() if not row["docids"])
    if empty:
        logger.warning("%s: %d queries got no candidate from %s (e.g. %s); they count as missing from the run",
                       dataset.name, len(empty), options.name, list(empty[:3]))
    if run_file is not None:
        run_file.parent.mkdir(parents=True, exist_ok=True)
        write_trec_run(run_file, {q: dict(zip(r["docids"], r["first_stage_scores"])) for q, r in rows.items()},
                       tag=f"r2r-{options.name}")
    run = FirstStageRun(
        dataset=dataset.name, first_stage=options.name, depth=options.depth, config=config, queries=len(rows),
        computed=computed, empty=empty, seconds=math.fsum(float(r.get("seconds", 0.0)) for r in rows.values()),
        index_seconds=index_seconds, run_file=str(run_file) if run_file is not None else None,
    )
    logger.info("%s: %s top-%d for %d queries (%d retrieved now)", dataset.name, options.name, options.depth,
                len(rows), computed)
    # Every id comes from the corpus; one it lacks (only in a cache edited by hand) is recorded as without text.
    missing = frozenset(d for row in rows.values() for d in row["docids"] if d not in documents)
    described = replace(dataset, candidates=candidates, missing_texts=missing, description=f"{dataset.description}, "
                        f"{LABELS[options.name]} top-{options.depth} (retrieved)")
    return RetrievedDataset(described, run)


def _retrieve_one(stage: FirstStage, qid: str, text: str, digest: str, depth: int,
                  excluded: frozenset[str]) -> dict[str, Any]:
    # Ask for the excluded ids' worth more, then drop them: the query keeps `depth` candidates (BRIGHT's rule).
    start = time.perf_counter()
    found = stage.retrieve(text, depth + len(excluded))
    seconds = time.perf_counter() - start
    kept = [c for c in found if c.id not in excluded][:depth]
    row: dict[str, Any] = {"qid": qid, "query": digest, "docids": [docid(c) for c in kept],
                           "first_stage_scores": [c.first_stage_score for c in kept], "seconds": seconds}
    reasonings = getattr(stage, "reasonings", None)
    if isinstance(reasonings, Mapping) and text in reasonings:
        row["reasoning"] = reasonings[text]
    return row


def reasonings(run: FirstStageRun) -> dict[str, str]:
    """The reasoning written per query by a ``reason-then-retrieve`` run, read back from its cache.

    Raises:
        InvalidInputError: when the run was not cached (no ``run_file``).
    """
    if run.run_file is None:
        raise InvalidInputError("reasonings: this run was retrieved without a cache_dir; nothing was kept on disk.")
    rows = _RowCache(Path(run.run_file).with_suffix(".jsonl")).rows
    return {q: r["reasoning"] for q, r in rows.items() if "reasoning" in r}


__all__ = [
    "BM25_SETTINGS",
    "DEFAULT_REASONER",
    "FIRST_STAGES",
    "FirstStageOptions",
    "FirstStageRun",
    "LABELS",
    "RetrievedDataset",
    "build_first_stage",
    "reasoner_writer",
    "reasonings",
    "retrieve_dataset",
    "run_paths",
    "stage_config",
]
