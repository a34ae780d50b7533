"""Named evaluation datasets: an explicit registry, one entry per name (no pattern matching on names).

Built-in names (files from the shared data folder, see its README):

- ``dl19``, ``dl20``: TREC DL passage, BM25 top-100 candidates with texts, NIST qrels;
- ``dl19-splade``, ``dl20-splade``: the same queries, SPLADE++ ED top-100 candidates;
- ``bright-<subset>`` for the 12 BRIGHT subsets (e.g. ``bright-biology``): ReasonIR top-100 runs, official
  ``gold_ids`` qrels, ``excluded_ids`` removed; texts come from a local copy of ``xlangai/BRIGHT`` when
  ``bright_dir`` is given (the shared folder has none).

Example:
    >>> ds = load_dataset("dl19", "../shared/data")            # doctest: +SKIP
    >>> len(ds.queries), ds.evaluate_first_stage()["nDCG@10"]   # doctest: +SKIP
    (43, 0.5058...)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from r2r_agent.errors import InvalidInputError

from .bright import SUBSETS, SharedBrightPaths, excluded_from_examples, load_bright_documents, read_bright_queries
from .candidates import read_candidates
from .metrics import DEFAULT_MEASURES, Evaluation, Measure, evaluate
from .records import Candidate, CandidateList, Qrels, Run, qrels_from_records
from .trec import read_trec_qrels, read_trec_run

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

DATA_DIR_ENV = "R2R_DATA_DIR"


@dataclass(frozen=True)
class Dataset:
    """A loaded evaluation dataset: what a runner reranks and what it is scored against.

    Attributes:
        name: The registry name.
        queries: ``{qid: query text}``.
        candidates: ``{qid: first-stage candidates in rank order}``; ``Candidate.text`` is ``None`` where the
            texts are not available.
        qrels: ``{qid: {docid: label}}``.
        excluded: ``{qid: doc ids to drop before scoring}`` (BRIGHT); pass to :func:`evaluate`.
        description: One line for reports.
    """

    name: str
    queries: Mapping[str, str]
    candidates: Mapping[str, tuple[Candidate, ...]]
    qrels: Qrels
    excluded: Mapping[str, frozenset[str]] = field(default_factory=dict)
    description: str = ""

    @property
    def has_texts(self) -> bool:
        """Whether every candidate has its text (needed to rerank)."""
        return all(c.text is not None for cands in self.candidates.values() for c in cands)

    def first_stage_run(self) -> Run:
        """The first-stage run ``{qid: {docid: score}}``."""
        return {q: {c.docid: c.score for c in cands} for q, cands in self.candidates.items()}

    def candidate_lists(self) -> list[CandidateList]:
        """The candidates in the shared candidate-list form, one per query."""
        return [CandidateList(q, self.queries[q], cands) for q, cands in self.candidates.items()]

    def evaluate(
        self,
        run: Mapping[str, Mapping[str, float]] | Mapping[str, Sequence[str]],
        measures: Sequence[str | Measure] = DEFAULT_MEASURES,
        **kwargs: object,
    ) -> Evaluation:
        """Score ``run`` against this dataset's qrels, removing its excluded ids first."""
        return evaluate(self.qrels, run, measures, excluded=self.excluded or None, **kwargs)  # type: ignore[arg-type]

    def evaluate_first_stage(
        self, measures: Sequence[str | Measure] = DEFAULT_MEASURES, **kwargs: object
    ) -> Evaluation:
        """Score the first-stage order itself (the baseline every reranker is compared with)."""
        return self.evaluate(self.first_stage_run(), measures, **kwargs)


Loader = Callable[[Path, "Path | None"], Dataset]


@dataclass(frozen=True)
class DatasetSpec:
    """One registry entry.

    Attributes:
        name: The dataset name users pass.
        description: One line shown in listings and reports.
        loader: ``loader(data_dir, bright_dir) -> Dataset``.
    """

    name: str
    description: str
    loader: Loader


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> None:
    """Add a dataset to the registry.

    Raises:
        InvalidInputError: if the name is already registered.
    """
    if spec.name in _REGISTRY:
        raise InvalidInputError(f"Dataset {spec.name!r} is already registered; pick another name.")
    _REGISTRY[spec.name] = spec


def known_datasets() -> list[str]:
    """The registered dataset names, in registration order."""
    return list(_REGISTRY)


def dataset_spec(name: str) -> DatasetSpec:
    """The registry entry of ``name``.

    Raises:
        InvalidInputError: for an unknown name, listing the known ones.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidInputError(
            f"Unknown dataset {name!r}. Known datasets: {', '.join(known_datasets())}. "
            "For your own data, load a BEIR folder with r2r_agent.evals.beir.load_beir_folder."
        ) from None


def resolve_data_dir(data_dir: PathLike | None = None) -> Path:
    """The shared data folder: ``data_dir``, else the ``R2R_DATA_DIR`` environment variable.

    Raises:
        InvalidInputError: when neither is set or the folder does not exist.
    """
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    if chosen is None:
        raise InvalidInputError(
            f"No data folder given. Pass data_dir (the folder holding trec-dl/ and bright/) or set {DATA_DIR_ENV}."
        )
    path = Path(chosen)
    if not path.is_dir():
        raise InvalidInputError(f"Data folder not found: {path}. Expected the folder holding trec-dl/ and bright/.")
    return path


def load_dataset(name: str, data_dir: PathLike | None = None, *, bright_dir: PathLike | None = None) -> Dataset:
    """Load a registered dataset.

    Args:
        name: A name from :func:`known_datasets` (e.g. ``"dl19"``, ``"bright-biology"``).
        data_dir: The shared data folder (holding ``trec-dl/`` and ``bright/``); defaults to ``$R2R_DATA_DIR``.
        bright_dir: A local copy of ``xlangai/BRIGHT`` providing the BRIGHT document texts (BRIGHT only).

    Raises:
        InvalidInputError: for an unknown name (listing the known ones) or a missing data folder.
    """
    spec = dataset_spec(name)
    return spec.loader(resolve_data_dir(data_dir), Path(bright_dir) if bright_dir is not None else None)


# ---------------------------------------------------------------------------------------------------------------
# Built-in loaders
# ---------------------------------------------------------------------------------------------------------------


def _require_file(path: Path, dataset: str) -> Path:
    if not path.is_file():
        raise InvalidInputError(f"Dataset {dataset!r} needs {path}, which does not exist. Check data_dir.")
    return path


def _load_trec_dl(data_dir: Path, bright_dir: Path | None, *, name: str, year: str, first_stage: str) -> Dataset:
    root = data_dir / "trec-dl"
    rows = read_candidates(_require_file(root / f"{year}.{first_stage}.top100.jsonl.gz", name))
    qrels = qrels_from_records(read_trec_qrels(_require_file(root / f"qrels.{year}-passage.txt", name)))
    return Dataset(
        name=name,
        queries={r.qid: r.query for r in rows},
        candidates={r.qid: r.candidates for r in rows},
        qrels=qrels,
        description=f"TREC DL{year[2:]} passage, {first_stage.upper()} top-100",
    )


def _load_bright(data_dir: Path, bright_dir: Path | None, *, name: str, subset: str) -> Dataset:
    paths = SharedBrightPaths.for_subset(data_dir, subset)
    examples = read_bright_queries(paths.queries)
    excluded = excluded_from_examples(examples)
    run: dict[str, list[tuple[str, float]]] = {}
    dropped = 0
    for sd in read_trec_run(paths.run):
        if sd.doc_id in excluded.get(sd.query_id, ()):
            dropped += 1
            continue
        run.setdefault(sd.query_id, []).append((sd.doc_id, sd.score))
    if dropped:
        logger.info("%s: removed %d excluded ids from the first-stage run", name, dropped)
    texts: Mapping[str, str] = {}
    if bright_dir is not None:
        wanted = {d for docs in run.values() for d, _ in docs}
        texts = load_bright_documents(bright_dir, subset, ids=wanted)
        absent = len(wanted - set(texts))
        if absent:
            logger.warning(
                "%s: %d run doc ids are missing from the corpus in %s (their text is None)", name, absent, bright_dir
            )
    candidates = {
        q: tuple(Candidate(d, s, texts.get(d)) for d, s in sorted(docs, key=lambda x: (x[1], x[0]), reverse=True))
        for q, docs in run.items()
    }
    return Dataset(
        name=name,
        queries={ex.qid: ex.query for ex in examples},
        candidates=candidates,
        qrels=qrels_from_records(read_trec_qrels(paths.qrels)),
        excluded=excluded,
        description=f"BRIGHT {subset}, ReasonIR top-100" + ("" if bright_dir else " (no texts)"),
    )


def _builtin_specs() -> Iterable[DatasetSpec]:
    for year in ("dl19", "dl20"):
        yield DatasetSpec(
            year,
            f"TREC DL{year[2:]} passage, BM25 top-100 with texts",
            partial(_load_trec_dl, name=year, year=year, first_stage="bm25"),
        )
        yield DatasetSpec(
            f"{year}-splade",
            f"TREC DL{year[2:]} passage, SPLADE++ ED top-100 with texts",
            partial(_load_trec_dl, name=f"{year}-splade", year=year, first_stage="splade"),
        )
    for subset in SUBSETS:
        yield DatasetSpec(
            f"bright-{subset}",
            f"BRIGHT {subset}, ReasonIR top-100 (texts from a local xlangai/BRIGHT copy)",
            partial(_load_bright, name=f"bright-{subset}", subset=subset),
        )


for _spec in _builtin_specs():
    register_dataset(_spec)
