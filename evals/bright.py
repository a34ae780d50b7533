"""BRIGHT (reasoning-intensive retrieval): queries, qrels, runs, excluded ids and a user's local copy of the corpus.

Two sources:

1. The shared offline copy (``../shared/data/bright/``): ``<subset>.queries.jsonl`` (queries with gold reasoning,
   ``gold_ids`` and ``excluded_ids``), ``qrels.<subset>.txt`` and ``<subset>.reasonir.top100.trec``. It has no
   document texts.
2. A user's local copy of the Hugging Face ``xlangai/BRIGHT`` dataset in its published layout, one folder per config
   and one file (or a few shards) per subset::

       BRIGHT/
         documents/biology-00000-of-00001.parquet        # columns: id, content
         examples/biology-00000-of-00001.parquet         # columns: query, reasoning, id, excluded_ids,
         long_documents/biology-00000-of-00001.parquet   #          gold_ids_long, gold_ids (, gold_answer)

   Each subset file may also be ``<subset>.parquet``, ``<subset>/*.parquet`` (the hub's parquet-converter layout),
   ``<subset>.jsonl``, ``<subset>.jsonl.gz`` or ``<subset>-*.jsonl`` with the same fields. Reading parquet needs
   ``pyarrow`` (or ``pandas``), part of the ``evals`` extra.

BRIGHT's evaluation rule: each query's ``excluded_ids`` are removed from its ranking before scoring
(:func:`remove_excluded`).
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from r2r_agent._optional import is_available, missing_extra_error
from r2r_agent.errors import InvalidInputError

from .records import PathLike, Qrels, Run, ScoredDoc

logger = logging.getLogger(__name__)

#: The 12 BRIGHT subsets, in the order of the BRIGHT paper.
SUBSETS: tuple[str, ...] = (
    "biology",
    "earth_science",
    "economics",
    "psychology",
    "robotics",
    "stackoverflow",
    "sustainable_living",
    "leetcode",
    "pony",
    "aops",
    "theoremqa_questions",
    "theoremqa_theorems",
)

#: The configs (folders) of the published dataset that this module reads.
CONFIGS: tuple[str, ...] = ("examples", "documents", "long_documents")


class BrightLayoutError(InvalidInputError, FileNotFoundError):
    """A BRIGHT folder lacks a subset or a file; the message lists what is expected and what is there."""


@dataclass(frozen=True)
class BrightExample:
    """One BRIGHT query.

    Args:
        qid: The query id (``id`` in the published dataset).
        query: The query text that rerankers see.
        reasoning: BRIGHT's gold reasoning (why a relevant document helps).
        gold_ids: Relevant ids in the short-document corpus (``documents``).
        gold_ids_long: Relevant ids in the long-document corpus (``long_documents``).
        excluded_ids: Ids to drop from the ranking before scoring (``["N/A"]`` in the source means none).
        gold_answer: The reference answer, when the copy has it.
    """

    qid: str
    query: str
    reasoning: str = ""
    gold_ids: tuple[str, ...] = ()
    gold_ids_long: tuple[str, ...] = ()
    excluded_ids: frozenset[str] = field(default_factory=frozenset)
    gold_answer: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "qid", str(self.qid))
        object.__setattr__(self, "gold_ids", tuple(self.gold_ids))
        object.__setattr__(self, "gold_ids_long", tuple(self.gold_ids_long))
        # The published dataset writes "no excluded ids" as ["N/A"].
        object.__setattr__(self, "excluded_ids", frozenset(i for i in self.excluded_ids if i != "N/A"))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict in the shared ``<subset>.queries.jsonl`` schema."""
        return {
            "qid": self.qid,
            "query": self.query,
            "reasoning": self.reasoning,
            "gold_ids": list(self.gold_ids),
            "gold_ids_long": list(self.gold_ids_long),
            "excluded_ids": sorted(self.excluded_ids),
            "gold_answer": self.gold_answer,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BrightExample:
        """Build from the shared schema (``qid``) or a published ``examples`` row (``id``)."""
        qid = data["qid"] if "qid" in data else data["id"]
        return cls(
            qid=qid,
            query=data["query"],
            reasoning=data.get("reasoning") or "",
            gold_ids=tuple(data.get("gold_ids") or ()),
            gold_ids_long=tuple(data.get("gold_ids_long") or ()),
            excluded_ids=frozenset(data.get("excluded_ids") or ()),
            gold_answer=data.get("gold_answer"),
        )


def check_subset(subset: str) -> str:
    """Return ``subset`` if it is one of :data:`SUBSETS`, else raise an error listing them."""
    if subset not in SUBSETS:
        hint = " (BRIGHT names use underscores)" if subset.replace("-", "_") in SUBSETS else ""
        raise InvalidInputError(f"Unknown BRIGHT subset {subset!r}{hint}. Known subsets: {', '.join(SUBSETS)}.")
    return subset


def qrels_from_examples(examples: Iterable[BrightExample], long_documents: bool = False) -> Qrels:
    """BRIGHT's qrels: every gold id has relevance 1 (repeated gold ids count once)."""
    return {ex.qid: dict.fromkeys(ex.gold_ids_long if long_documents else ex.gold_ids, 1) for ex in examples}


def excluded_from_examples(examples: Iterable[BrightExample]) -> dict[str, frozenset[str]]:
    """``{qid: excluded_ids}`` for the queries that have any."""
    return {ex.qid: ex.excluded_ids for ex in examples if ex.excluded_ids}


@overload
def remove_excluded(run: Mapping[str, Mapping[str, float]], excluded: Mapping[str, Collection[str]]) -> Run: ...
@overload
def remove_excluded(run: Iterable[ScoredDoc], excluded: Mapping[str, Collection[str]]) -> list[ScoredDoc]: ...
def remove_excluded(run: Any, excluded: Mapping[str, Collection[str]]) -> Any:
    """BRIGHT's rule: drop each query's excluded ids from its ranking. Returns a new run; the input is unchanged.

    Args:
        run: ``{qid: {docid: score}}`` or an iterable of :class:`ScoredDoc`.
        excluded: ``{qid: ids to drop}``.

    Example:
        >>> remove_excluded({"q": {"a": 2.0, "b": 1.0}}, {"q": {"a"}})
        {'q': {'b': 1.0}}
    """
    if isinstance(run, Mapping):
        return {qid: {d: s for d, s in docs.items() if d not in excluded.get(qid, ())} for qid, docs in run.items()}
    return [sd for sd in run if sd.doc_id not in excluded.get(sd.query_id, ())]


# ---------------------------------------------------------------------------------------------------------------
# The shared offline copy
# ---------------------------------------------------------------------------------------------------------------


def read_bright_queries(path: PathLike) -> list[BrightExample]:
    """Read a shared ``<subset>.queries.jsonl`` file (or any jsonl of published ``examples`` rows)."""
    return [BrightExample.from_dict(row) for row in _iter_jsonl(Path(path))]


@dataclass(frozen=True)
class SharedBrightPaths:
    """Where one subset's files are in the shared data folder."""

    queries: Path
    qrels: Path
    run: Path

    @classmethod
    def for_subset(cls, data_dir: PathLike, subset: str) -> SharedBrightPaths:
        """The paths under ``data_dir`` (the folder that holds ``bright/``); checks that they exist."""
        check_subset(subset)
        root = Path(data_dir) / "bright"
        paths = cls(
            queries=root / f"{subset}.queries.jsonl",
            qrels=root / f"qrels.{subset}.txt",
            run=root / f"{subset}.reasonir.top100.trec",
        )
        missing = [str(p) for p in (paths.queries, paths.qrels, paths.run) if not p.is_file()]
        if missing:
            raise BrightLayoutError(
                f"BRIGHT subset {subset!r} is incomplete in {root}: missing {', '.join(missing)}. Expected "
                f"'<subset>.queries.jsonl', 'qrels.<subset>.txt' and '<subset>.reasonir.top100.trec' there."
            )
        return paths


# ---------------------------------------------------------------------------------------------------------------
# A user's local copy of the published dataset
# ---------------------------------------------------------------------------------------------------------------


def _expected_names(config: str, subset: str) -> list[str]:
    return [
        f"{config}/{subset}-00000-of-00001.parquet",
        f"{config}/{subset}.parquet",
        f"{config}/{subset}/*.parquet",
        f"{config}/{subset}.jsonl",
        f"{config}/{subset}.jsonl.gz",
    ]


def find_subset_files(folder: PathLike, config: str, subset: str) -> list[Path]:
    """The file(s) holding one subset of one config in a local BRIGHT folder, shards in order.

    Parquet files are preferred when both parquet and jsonl copies are present.

    Raises:
        BrightLayoutError: when the folder, the config folder or the subset's files are missing; the message lists
            the accepted file names and the subsets that are there.
    """
    check_subset(subset)
    if config not in CONFIGS:
        raise InvalidInputError(f"Unknown BRIGHT config {config!r}. Known configs: {', '.join(CONFIGS)}.")
    root = Path(folder)
    if not root.is_dir():
        raise BrightLayoutError(
            f"BRIGHT folder not found: {root}. Expected a local copy of the xlangai/BRIGHT dataset with the "
            f"folders {', '.join(CONFIGS[:2])} (and optionally long_documents) inside."
        )
    cdir = root / config
    parquet = sorted(cdir.glob(f"{subset}-*.parquet")) + sorted(cdir.glob(f"{subset}.parquet"))
    parquet += sorted((cdir / subset).glob("*.parquet")) if (cdir / subset).is_dir() else []
    if parquet:
        return parquet
    jsonl = sorted(cdir.glob(f"{subset}.jsonl")) + sorted(cdir.glob(f"{subset}.jsonl.gz"))
    jsonl += sorted(cdir.glob(f"{subset}-*.jsonl")) + sorted(cdir.glob(f"{subset}-*.jsonl.gz"))
    if jsonl:
        return jsonl
    present = available_subsets(root, config)
    raise BrightLayoutError(
        f"BRIGHT folder {root} has no {config!r} file for subset {subset!r}. Expected one of: "
        f"{', '.join(_expected_names(config, subset))} (relative to {root}). "
        + (
            f"Subsets present in {cdir}: {', '.join(present)}."
            if present
            else f"The folder {cdir} {'is empty or holds no subset files' if cdir.is_dir() else 'does not exist'}."
        )
        + " Download it with: huggingface-cli download xlangai/BRIGHT --repo-type dataset --local-dir <folder>"
    )


def available_subsets(folder: PathLike, config: str = "documents") -> list[str]:
    """The BRIGHT subsets that have a file for ``config`` in a local folder, in :data:`SUBSETS` order."""
    cdir = Path(folder) / config
    if not cdir.is_dir():
        return []
    names = {p.name for p in cdir.iterdir()}
    found = []
    for subset in SUBSETS:
        prefixes = (f"{subset}-", f"{subset}.")
        suffixes = (".parquet", ".jsonl", ".jsonl.gz")
        if subset in names or any(n.startswith(prefixes) and n.endswith(suffixes) for n in names):
            found.append(subset)
    return found


def _iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{path}:{number}: not a JSON object ({exc}).") from exc


def _iter_parquet(path: Path, columns: list[str] | None) -> Iterator[dict[str, Any]]:
    if is_available("pyarrow"):
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        names = set(pf.schema_arrow.names)
        cols = [c for c in columns if c in names] if columns else None
        for batch in pf.iter_batches(columns=cols, batch_size=8192):
            yield from batch.to_pylist()
        return
    if is_available("pandas"):
        import pandas as pd

        frame = pd.read_parquet(path)
        for row in frame.to_dict(orient="records"):
            yield {k: (list(v) if hasattr(v, "tolist") and not isinstance(v, str) else v) for k, v in row.items()}
        return
    raise missing_extra_error("pyarrow", "evals", f"Reading the BRIGHT parquet file {path}")


def _iter_rows(paths: Iterable[Path], columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    for path in paths:
        if path.name.endswith(".parquet"):
            yield from _iter_parquet(path, columns)
        else:
            yield from _iter_jsonl(path)


def _require_fields(row: Mapping[str, Any], fields: tuple[str, ...], where: Path | list[Path]) -> None:
    missing = [f for f in fields if f not in row]
    if missing:
        raise BrightLayoutError(
            f"{where}: rows lack the field(s) {', '.join(missing)}; expected {', '.join(fields)}, "
            f"got {', '.join(sorted(row))}."
        )


def load_bright_examples(folder: PathLike, subset: str) -> list[BrightExample]:
    """The queries of one subset from a local BRIGHT folder (``examples`` config), in file order."""
    paths = find_subset_files(folder, "examples", subset)
    out = []
    for i, row in enumerate(_iter_rows(paths)):
        if i == 0:
            _require_fields(row, ("id", "query", "gold_ids"), paths)
        out.append(BrightExample.from_dict(row))
    return out


def load_bright_documents(
    folder: PathLike, subset: str, *, long_documents: bool = False, ids: Collection[str] | None = None
) -> dict[str, str]:
    """The documents ``{id: content}`` of one subset from a local BRIGHT folder.

    Args:
        folder: The local copy of ``xlangai/BRIGHT``.
        subset: One of :data:`SUBSETS`.
        long_documents: Read ``long_documents`` instead of ``documents``.
        ids: Keep only these ids (e.g. the candidates of a run); saves memory on the large subsets.
    """
    config = "long_documents" if long_documents else "documents"
    paths = find_subset_files(folder, config, subset)
    wanted = set(ids) if ids is not None else None
    docs: dict[str, str] = {}
    for i, row in enumerate(_iter_rows(paths, columns=["id", "content"])):
        if i == 0:
            _require_fields(row, ("id", "content"), paths)
        doc_id = str(row["id"])
        if wanted is None or doc_id in wanted:
            docs[doc_id] = row["content"]
    return docs


@dataclass(frozen=True)
class BrightSubset:
    """One subset of a local BRIGHT folder: its queries and (short or long) documents."""

    subset: str
    examples: tuple[BrightExample, ...]
    documents: Mapping[str, str]
    long_documents: bool = False

    @property
    def queries(self) -> dict[str, str]:
        """``{qid: query}``."""
        return {ex.qid: ex.query for ex in self.examples}

    @property
    def qrels(self) -> Qrels:
        """Gold ids as qrels (relevance 1) for the document kind loaded."""
        return qrels_from_examples(self.examples, self.long_documents)

    @property
    def excluded(self) -> dict[str, frozenset[str]]:
        """``{qid: excluded ids}`` for the queries that have any."""
        return excluded_from_examples(self.examples)


def load_bright_folder(
    folder: PathLike, subset: str, *, long_documents: bool = False, doc_ids: Collection[str] | None = None
) -> BrightSubset:
    """Load one subset (queries and documents) from a local copy of ``xlangai/BRIGHT`` in its published layout.

    Args:
        folder: The dataset folder (holding ``examples/`` and ``documents/``).
        subset: One of :data:`SUBSETS`.
        long_documents: Use the long-document corpus and ``gold_ids_long``.
        doc_ids: Keep only these documents (all when ``None``).

    Raises:
        BrightLayoutError: when a folder, subset or file is missing, listing what is expected.
        MissingExtraError: when the files are parquet and neither pyarrow nor pandas is installed.

    Example:
        >>> sub = load_bright_folder("data/BRIGHT", "biology")  # doctest: +SKIP
        >>> len(sub.examples), len(sub.documents)              # doctest: +SKIP
        (103, 57359)
    """
    examples = load_bright_examples(folder, subset)
    documents = load_bright_documents(folder, subset, long_documents=long_documents, ids=doc_ids)
    logger.info("BRIGHT %s: %d queries, %d documents from %s", subset, len(examples), len(documents), folder)
    return BrightSubset(subset, tuple(examples), documents, long_documents)
