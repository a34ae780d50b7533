"""Named evaluation datasets: one :class:`r2r_agent.registry.Registry` entry per name (no pattern matching on names).

Built-in names (files from the shared data folder, see its README):

- ``dl19``, ``dl20``: TREC DL passage, BM25 top-100 candidates with texts, NIST qrels;
- ``dl19-splade``, ``dl20-splade``: the same queries, SPLADE++ ED top-100 candidates;
- ``bright-<subset>`` for the 12 BRIGHT subsets (e.g. ``bright-biology``): ReasonIR top-100 runs, official
  ``gold_ids`` qrels, ``excluded_ids`` removed; texts come from a local copy of ``xlangai/BRIGHT`` when
  ``bright_dir`` is given (the shared folder has none);
- ``beir:PATH``: a BEIR-format folder (corpus, queries, ``qrels/test.tsv``). It has a corpus but no candidates.

Datasets with a corpus (``beir:PATH``, and ``bright-<subset>`` given ``bright_dir``) can also be loaded without
candidates, with their corpus, by :func:`load_corpus_dataset`, for a first stage to retrieve from
(:func:`r2r_agent.evals.retrieval.retrieve_dataset`, ``r2r eval --first-stage``). TREC DL has no corpus here: its
files hold the candidates only.

Example:
    >>> ds = load_dataset("dl19", "../shared/data")            # doctest: +SKIP
    >>> len(ds.queries), ds.evaluate_first_stage()["nDCG@10"]   # doctest: +SKIP
    (43, 0.5058...)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from r2r_agent.errors import InvalidInputError
from r2r_agent.registry import Entry, Registry

from .beir import load_beir_folder
from .bright import (
    SUBSETS,
    SharedBrightPaths,
    excluded_from_examples,
    load_bright_documents,
    load_bright_examples,
    qrels_from_examples,
    read_bright_queries,
)
from .candidates import read_candidates
from .dataset import Corpus, Dataset
from .records import PathLike, candidate, qrels_from_records
from .trec import read_trec_qrels, read_trec_run

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "R2R_DATA_DIR"

#: ``loader(data_dir, bright_dir) -> Dataset`` with candidates.
Loader = Callable[[Path, "Path | None"], Dataset]
#: ``corpus_loader(argument, data_dir, bright_dir) -> (dataset without candidates, corpus)``; ``data_dir`` is
#: ``None`` when no shared data folder was given.
CorpusLoader = Callable[["str | None", "Path | None", "Path | None"], "tuple[Dataset, Corpus]"]


@dataclass(frozen=True)
class DatasetLoaders:
    """What a dataset name stands for in :data:`DATASETS`.

    Attributes:
        loader: Loads the dataset with its candidates (see :data:`Loader`); ``None`` for a dataset that has only a
            corpus (its candidates come from a first stage).
        corpus_loader: Loads the dataset without candidates and its corpus (see :data:`CorpusLoader`); ``None``
            when the dataset has no corpus (candidates only, as TREC DL here).
    """

    loader: Loader | None = None
    corpus_loader: CorpusLoader | None = None

    def __post_init__(self) -> None:
        if self.loader is None and self.corpus_loader is None:
            raise InvalidInputError("A dataset needs a loader, a corpus_loader or both; got neither.")


#: One registry entry: the name, its argument (``PATH`` for ``beir:PATH``), a description and the loaders.
DatasetSpec = Entry[DatasetLoaders]

#: Every dataset by exact name.
DATASETS: Registry[DatasetLoaders] = Registry(
    "dataset", hint="For your own data, pass a BEIR folder as beir:PATH (r2r_agent.evals.beir.load_beir_folder "
    "reads one).")


class NoCorpusError(InvalidInputError):
    """A first stage was asked to retrieve for a dataset that has no corpus (only candidates)."""


class NoCandidatesError(InvalidInputError):
    """A dataset with a corpus but no candidates was loaded for reranking without a first stage."""


def register_dataset(name: str, loader: Loader | None = None, *, corpus_loader: CorpusLoader | None = None,
                     argument: str | None = None, description: str = "") -> DatasetSpec:
    """Add a dataset to :data:`DATASETS`.

    Args:
        name: The exact name users pass (before ``:`` when it takes an argument).
        loader: Loads it with candidates (see :class:`DatasetLoaders`).
        corpus_loader: Loads it without candidates, with its corpus.
        argument: The name of the argument after ``name:`` (``"PATH"``), or ``None``.
        description: One line for listings and reports.

    Raises:
        InvalidInputError: if the name is taken or contains ``':'``, or neither loader is given.
    """
    return DATASETS.register(name, DatasetLoaders(loader, corpus_loader), argument=argument, description=description)


def known_datasets() -> list[str]:
    """The registered dataset names as users write them (``"beir:PATH"`` for those taking an argument)."""
    return DATASETS.usages()


def corpus_datasets() -> list[str]:
    """The registered datasets that have a corpus (a first stage can retrieve for them)."""
    return [spec.usage for spec in DATASETS if spec.value.corpus_loader is not None]


def parse_dataset(name: str) -> tuple[DatasetSpec, str | None]:
    """Split ``"name"`` or ``"name:ARG"`` and look the name up exactly (:meth:`Registry.parse`).

    Raises:
        InvalidInputError: for an unknown name (listing the known ones), a missing or unexpected argument.

    Example:
        >>> spec, arg = parse_dataset("beir:data/scifact")
        >>> spec.name, arg
        ('beir', 'data/scifact')
    """
    return DATASETS.parse(name)


def dataset_spec(name: str) -> DatasetSpec:
    """The registry entry of ``name`` (``"dl19"``, ``"beir:PATH"``); see :func:`parse_dataset`."""
    return parse_dataset(name)[0]


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


def _optional_path(path: PathLike | None) -> Path | None:
    return Path(path) if path is not None else None


def load_dataset(name: str, data_dir: PathLike | None = None, *, bright_dir: PathLike | None = None) -> Dataset:
    """Load a registered dataset.

    Args:
        name: A name from :func:`known_datasets` (e.g. ``"dl19"``, ``"bright-biology"``).
        data_dir: The shared data folder (holding ``trec-dl/`` and ``bright/``); defaults to ``$R2R_DATA_DIR``.
        bright_dir: A local copy of ``xlangai/BRIGHT`` providing the BRIGHT document texts (BRIGHT only).

    Raises:
        InvalidInputError: for an unknown name (listing the known ones) or a missing data folder.
        NoCandidatesError: for a dataset that has a corpus but no candidates (``beir:PATH``): load it with
            :func:`load_corpus_dataset` and retrieve its candidates with a first stage.
    """
    loader = dataset_spec(name).value.loader
    if loader is None:
        raise NoCandidatesError(
            f"Dataset {name!r} has a corpus but no candidates to rerank; retrieve them with a first stage: "
            f"`r2r eval --dataset {name} --first-stage bm25` (or dense, reason-then-retrieve), or in Python "
            "load_corpus_dataset() then r2r_agent.evals.retrieval.retrieve_dataset()."
        )
    return loader(resolve_data_dir(data_dir), _optional_path(bright_dir))


def load_corpus_dataset(name: str, data_dir: PathLike | None = None, *,
                        bright_dir: PathLike | None = None) -> tuple[Dataset, Corpus]:
    """Load a dataset without candidates, and its corpus, for a first stage to retrieve from.

    Args:
        name: A dataset with a corpus (:func:`corpus_datasets`): ``"beir:PATH"``, or ``"bright-<subset>"`` with
            ``bright_dir``.
        data_dir: The shared data folder (not needed by the built-in corpus datasets).
        bright_dir: A local copy of ``xlangai/BRIGHT`` (BRIGHT: its queries, gold ids, excluded ids and documents
            are read from there).

    Returns:
        The dataset (queries, qrels, excluded ids; ``candidates`` empty) and its :class:`Corpus`.

    Raises:
        NoCorpusError: for a dataset without a corpus (TREC DL here), naming those that have one.
    """
    spec, argument = parse_dataset(name)
    corpus_loader = spec.value.corpus_loader
    if corpus_loader is None:
        raise NoCorpusError(
            f"Dataset {name!r} has no corpus (its files hold first-stage candidates only), so a first stage cannot "
            f"retrieve for it. Datasets with a corpus: {_corpus_help()}. To rerank {name!r}'s own candidates, "
            "drop the first stage (--first-stage)."
        )
    return corpus_loader(argument, _optional_path(data_dir), _optional_path(bright_dir))


def _corpus_help() -> str:
    names = corpus_datasets()
    bright = [n for n in names if n in {f"bright-{s}" for s in SUBSETS}]
    others = [n for n in names if n not in bright]
    parts = [f"{n} (a BEIR folder)" if n == "beir:PATH" else n for n in others]
    if bright:
        parts.append("bright-<subset> with --bright-dir (a local copy of xlangai/BRIGHT)")
    return ", ".join(parts)


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
        missing_texts=frozenset().union(*(r.missing_texts for r in rows)),
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
    wanted = {d for docs in run.values() for d, _ in docs}
    texts: Mapping[str, str] = {}
    if bright_dir is not None:
        texts = load_bright_documents(bright_dir, subset, ids=wanted)
        absent = len(wanted - set(texts))
        if absent:
            logger.warning("%s: %d run doc ids are missing from the corpus in %s (no text: systems that read texts "
                           "refuse their queries)", name, absent, bright_dir)
    candidates = {
        q: tuple(candidate(d, s, texts.get(d, "")) for d, s in sorted(docs, key=lambda x: (x[1], x[0]), reverse=True))
        for q, docs in run.items()
    }
    return Dataset(
        name=name,
        queries={ex.qid: ex.query for ex in examples},
        candidates=candidates,
        qrels=qrels_from_records(read_trec_qrels(paths.qrels)),
        excluded=excluded,
        description=f"BRIGHT {subset}, ReasonIR top-100" + ("" if bright_dir else " (no texts)"),
        missing_texts=frozenset(wanted - set(texts)),
    )


def _load_bright_corpus(argument: str | None, data_dir: Path | None, bright_dir: Path | None, *, name: str,
                        subset: str) -> tuple[Dataset, Corpus]:
    if bright_dir is None:
        raise InvalidInputError(
            f"{name}: a first stage retrieves from the BRIGHT documents, which the shared data folder does not hold; "
            "pass a local copy of xlangai/BRIGHT (--bright-dir, bright_dir=)."
        )
    examples = load_bright_examples(bright_dir, subset)
    documents = load_bright_documents(bright_dir, subset)
    dataset = Dataset(
        name=name,
        queries={ex.qid: ex.query for ex in examples},
        candidates={},
        qrels=qrels_from_examples(examples),
        excluded=excluded_from_examples(examples),
        description=f"BRIGHT {subset} ({len(documents)} documents from {bright_dir})",
    )
    return dataset, Corpus(documents, source=f"{bright_dir} (BRIGHT {subset} documents)")


def _load_beir_corpus(argument: str | None, data_dir: Path | None, bright_dir: Path | None
                      ) -> tuple[Dataset, Corpus]:
    folder = Path(str(argument))
    data = load_beir_folder(folder)
    documents = {d: doc.full_text for d, doc in data.corpus.items()}
    dataset = Dataset(
        name=f"beir:{argument}",
        queries=data.queries,
        candidates={},
        qrels=data.qrels,
        description=f"BEIR folder {folder.name or folder} ({data.split} split, {len(documents)} documents)",
    )
    return dataset, Corpus(documents, source=str(folder))


def _register_builtins() -> None:
    for year in ("dl19", "dl20"):
        register_dataset(year, partial(_load_trec_dl, name=year, year=year, first_stage="bm25"),
                         description=f"TREC DL{year[2:]} passage, BM25 top-100 with texts")
        register_dataset(f"{year}-splade", partial(_load_trec_dl, name=f"{year}-splade", year=year,
                                                   first_stage="splade"),
                         description=f"TREC DL{year[2:]} passage, SPLADE++ ED top-100 with texts")
    for subset in SUBSETS:
        name = f"bright-{subset}"
        register_dataset(name, partial(_load_bright, name=name, subset=subset),
                         corpus_loader=partial(_load_bright_corpus, name=name, subset=subset),
                         description=f"BRIGHT {subset}, ReasonIR top-100 (texts from a local xlangai/BRIGHT copy)")
    register_dataset("beir", corpus_loader=_load_beir_corpus, argument="PATH",
                     description="a BEIR-format folder (corpus, queries, qrels/test.tsv); candidates from a first "
                     "stage")


_register_builtins()

__all__ = ["DATASETS", "DATA_DIR_ENV", "Corpus", "CorpusLoader", "Dataset", "DatasetLoaders", "DatasetSpec", "Loader",
           "NoCandidatesError", "NoCorpusError", "corpus_datasets", "dataset_spec", "known_datasets",
           "load_corpus_dataset", "load_dataset", "parse_dataset", "register_dataset", "resolve_data_dir"]
