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
:attr:`~r2r_agent.evals.registry.Corpus.fingerprint`), the first stage's settings and the depth. A re-run reads
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
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from r2r_agent.errors import InvalidInputError
from r2r_agent.progress import maybe_progress

from .first_stage import REASONING_INSTRUCTION, FirstStage, Writer
from .records import Candidate
from .registry import Corpus, Dataset
from .trec import write_trec_run

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

#: The first stages by exact name, with one line for help texts and reports.
FIRST_STAGES: Mapping[str, str] = {
    "bm25": "BM25 (bm25s, Lucene variant, k1=0.9, b=0.4, English stopwords) over the corpus",
    "dense": "the bundled all-MiniLM-L6-v2 bi-encoder, cosine similarity in a persistent chromadb collection",
    "reason-then-retrieve": "a reasoner LM writes about the query, then BM25 retrieves with the query and that "
                            "reasoning (BRIGHT's reasoning-query setting)",
}
#: How reports name each first stage's candidates.
LABELS: Mapping[str, str] = {"bm25": "BM25", "dense": "dense MiniLM", "reason-then-retrieve": "reason-then-BM25"}
#: The BM25 settings of :class:`~r2r_agent.evals.first_stage.BM25FirstStage`'s defaults (part of the cache key).
BM25_SETTINGS: Mapping[str, Any] = {"k1": 0.9, "b": 0.4, "method": "lucene", "stopwords": "english"}
#: The reasoner used when none is named: the default student's explainer (SmolLM2-135M-Instruct).
DEFAULT_REASONER = "student"


@dataclass(frozen=True)
class FirstStageOptions:
    """Which first stage retrieves the candidates, and how (the ``r2r eval --first-stage`` flags derive from it)."""

    name: str = field(metadata={"help": f"the first stage: {', '.join(FIRST_STAGES)}"})
    depth: int = field(default=100, metadata={"help": "candidates retrieved per query (default 100)"})
    index_dir: str | None = field(
        default=None,
        metadata={"help": "dense: the chromadb folder (reused across runs; default: a folder in the cache dir)"},
    )
    reasoner: str | None = field(
        default=None,
        metadata={"help": "reason-then-retrieve: 'student' (the default student's explainer) or a local causal-LM "
                          "folder"},
    )
    reasoning_tokens: int = field(
        default=128, metadata={"help": "reason-then-retrieve: the reasoning length bound, in tokens (default 128)"}
    )

    def __post_init__(self) -> None:
        if self.name not in FIRST_STAGES:
            raise InvalidInputError(f"FirstStageOptions.name: unknown first stage {self.name!r}; known first stages: "
                                    f"{', '.join(FIRST_STAGES)}.")
        for label, value in (("depth", self.depth), ("reasoning_tokens", self.reasoning_tokens)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"FirstStageOptions.{label} must be an int >= 1, got {value!r}.")
        if self.index_dir is not None and self.name != "dense":
            raise InvalidInputError(f"FirstStageOptions.index_dir is used by the 'dense' first stage only, got it "
                                    f"with {self.name!r}; drop it (--index-dir) or use dense.")
        if self.reasoner is not None and self.name != "reason-then-retrieve":
            raise InvalidInputError(f"FirstStageOptions.reasoner is used by 'reason-then-retrieve' only, got it with "
                                    f"{self.name!r}; drop it (--reasoner) or use reason-then-retrieve.")

    @property
    def description(self) -> str:
        """One line for reports."""
        return FIRST_STAGES[self.name]


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
# Building the first stages
# ---------------------------------------------------------------------------------------------------------------


def _function_name(function: Any) -> str:
    name = getattr(function, "name", None)
    if callable(name):
        try:
            return str(name())
        except TypeError:  # an instance method of another signature: fall back to the type
            pass
    return type(function).__name__


def stage_config(options: FirstStageOptions, *, embedding_function: Any | None = None,
                 writer: Writer | None = None) -> dict[str, Any]:
    """The settings that change a first stage's run (the cache key's part besides the corpus).

    Example:
        >>> stage_config(FirstStageOptions("bm25", depth=50))
        {'first_stage': 'bm25', 'depth': 50, 'k1': 0.9, 'b': 0.4, 'method': 'lucene', 'stopwords': 'english'}
    """
    config: dict[str, Any] = {"first_stage": options.name, "depth": options.depth}
    if options.name in ("bm25", "reason-then-retrieve"):
        config.update(BM25_SETTINGS)
    if options.name == "dense":
        config["model"] = "all-MiniLM-L6-v2" if embedding_function is None else _function_name(embedding_function)
    if options.name == "reason-then-retrieve":
        reasoner = options.reasoner or DEFAULT_REASONER
        if writer is None and reasoner == DEFAULT_REASONER:
            from r2r_agent.modeling import resolve_dtype

            # The default student's dtype is "auto": different weights (and reasoning) on different CPUs.
            reasoner = f"{DEFAULT_REASONER} ({str(resolve_dtype('auto')).removeprefix('torch.')})"
        elif reasoner != DEFAULT_REASONER and writer is None:
            reasoner = str(Path(reasoner).resolve())
        config.update(reasoner=reasoner, reasoning_tokens=options.reasoning_tokens,
                      instruction=hashlib.sha256(REASONING_INSTRUCTION.encode("utf-8")).hexdigest()[:8])
    return config


def reasoner_writer(reasoner: str | None, max_new_tokens: int, *, pool: Any | None = None) -> Writer:
    """The writer of ``reason-then-retrieve``: the default student's explainer, or a local causal LM's.

    Args:
        reasoner: ``"student"`` / ``None`` (the default student's explainer, shared through ``pool``), or a local
            causal-LM folder (loaded with :meth:`r2r_agent.explainer.Explainer.from_pretrained`).
        max_new_tokens: The reasoning length bound, in tokens.
        pool: A :class:`~r2r_agent.evals.systems.ModelPool`, so a ``student`` system of the same run shares the
            loaded student.

    Raises:
        InvalidInputError: when ``reasoner`` is neither ``"student"`` nor a folder.
    """
    from .first_stage import explainer_writer

    if reasoner in (None, DEFAULT_REASONER):
        if pool is not None:
            student = pool.default_student()
        else:
            from r2r_agent.student import Student

            student = Student.default()
        return explainer_writer(student.explainer, max_new_tokens)
    path = Path(str(reasoner))
    if not path.is_dir():
        raise InvalidInputError(f"The reasoner must be {DEFAULT_REASONER!r} (the default student's explainer) or a "
                                f"local causal-LM folder, got {reasoner!r}, which is not a folder.")
    from r2r_agent.explainer import Explainer

    return explainer_writer(Explainer.from_pretrained(path), max_new_tokens)


def build_first_stage(options: FirstStageOptions, corpus: Corpus, *, index_dir: PathLike | None = None,
                      embedding_function: Any | None = None, writer: Writer | None = None,
                      pool: Any | None = None, progress: bool = False) -> FirstStage:
    """Build the first stage ``options`` names over ``corpus`` (indexing it; loading the reasoner).

    Args:
        options: Which first stage.
        corpus: The documents.
        index_dir: ``dense``: the chromadb folder (``options.index_dir`` wins; ``None`` for both: a temporary
            folder). The collection is named after the corpus fingerprint and the model, so one folder holds the
            indexes of several corpora.
        embedding_function: ``dense``: a chromadb embedding function (default the bundled MiniLM).
        writer: ``reason-then-retrieve``: ``writer(query) -> reasoning`` (default :func:`reasoner_writer`).
        pool: Shares the default student with the systems of the same run.
        progress: Show a bar while a dense index embeds the corpus.
    """
    from .first_stage import BM25FirstStage, DenseFirstStage, ReasonThenRetrieve

    documents = corpus.documents
    if options.name == "bm25":
        return BM25FirstStage(documents)
    if options.name == "dense":
        folder = options.index_dir if options.index_dir is not None else index_dir
        model = stage_config(options, embedding_function=embedding_function)["model"]
        collection = "r2r-" + hashlib.sha256(f"{corpus.fingerprint} {model}".encode()).hexdigest()[:24]
        return DenseFirstStage(documents, folder, collection=collection, embedding_function=embedding_function,
                               progress=progress)
    chosen = writer if writer is not None else reasoner_writer(options.reasoner, options.reasoning_tokens, pool=pool)
    return ReasonThenRetrieve(BM25FirstStage(documents), chosen)


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


class _RowCache:
    """Append-only JSON Lines rows ``{qid, query, docids, scores, seconds[, reasoning]}``; the last row of a qid
    wins, and a torn last line is skipped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {}
        if path.is_file():
            bad = 0
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                        if len(row["docids"]) != len(row["scores"]):
                            raise ValueError("docids and scores differ in length")
                        self.rows[str(row["qid"])] = row
                    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                        bad += 1
            if bad:
                logger.warning("%s: skipped %d unreadable lines (an interrupted write?)", path, bad)

    def get(self, qid: str, digest: str) -> dict[str, Any] | None:
        row = self.rows.get(qid)
        return row if row is not None and row.get("query") == digest else None

    def put(self, row: dict[str, Any]) -> None:
        self.rows[row["qid"]] = row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()


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
    if limit_queries is not None and (isinstance(limit_queries, bool) or not isinstance(limit_queries, int)
                                      or limit_queries < 1):
        raise InvalidInputError(f"retrieve_dataset: limit_queries must be an int >= 1 or None, got {limit_queries!r}.")
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
    candidates = {qid: tuple(Candidate(d, s, documents.get(d)) for d, s in zip(row["docids"], row["scores"]))
                  for qid, row in rows.items() if row["docids"]}
    empty = tuple(qid for qid, row in rows.items() if not row["docids"])
    if empty:
        logger.warning("%s: %d queries got no candidate from %s (e.g. %s); they count as missing from the run",
                       dataset.name, len(empty), options.name, list(empty[:3]))
    if run_file is not None:
        run_file.parent.mkdir(parents=True, exist_ok=True)
        write_trec_run(run_file, {q: dict(zip(r["docids"], r["scores"])) for q, r in rows.items()},
                       tag=f"r2r-{options.name}")
    run = FirstStageRun(
        dataset=dataset.name, first_stage=options.name, depth=options.depth, config=config, queries=len(rows),
        computed=computed, empty=empty, seconds=math.fsum(float(r.get("seconds", 0.0)) for r in rows.values()),
        index_seconds=index_seconds, run_file=str(run_file) if run_file is not None else None,
    )
    logger.info("%s: %s top-%d for %d queries (%d retrieved now)", dataset.name, options.name, options.depth,
                len(rows), computed)
    described = replace(dataset, candidates=candidates, description=f"{dataset.description}, "
                        f"{LABELS[options.name]} top-{options.depth} (retrieved)")
    return RetrievedDataset(described, run)


def _retrieve_one(stage: FirstStage, qid: str, text: str, digest: str, depth: int,
                  excluded: frozenset[str]) -> dict[str, Any]:
    # Ask for the excluded ids' worth more, then drop them: the query keeps `depth` candidates (BRIGHT's rule).
    start = time.perf_counter()
    found = stage.retrieve(text, depth + len(excluded))
    seconds = time.perf_counter() - start
    kept = [c for c in found if c.docid not in excluded][:depth]
    row: dict[str, Any] = {"qid": qid, "query": digest, "docids": [c.docid for c in kept],
                           "scores": [c.score for c in kept], "seconds": seconds}
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
    "DEFAULT_REASONER",
    "FIRST_STAGES",
    "FirstStageOptions",
    "FirstStageRun",
    "RetrievedDataset",
    "build_first_stage",
    "reasoner_writer",
    "reasonings",
    "retrieve_dataset",
    "run_paths",
    "stage_config",
]
