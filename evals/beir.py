"""Reader for a BEIR-format folder, the usual way to bring one's own retrieval data.

Layout::

    my-data/
      corpus.jsonl      # {"_id": "d1", "title": "...", "text": "..."}   (title optional)
      queries.jsonl     # {"_id": "q1", "text": "..."}
      qrels/test.tsv    # header "query-id<TAB>corpus-id<TAB>score", then one judgment per line

``corpus.jsonl`` and ``queries.jsonl`` may also be gzipped (``.jsonl.gz``).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r2r_agent.errors import InvalidInputError

from .records import PathLike, Qrels


class BeirLayoutError(InvalidInputError, FileNotFoundError):
    """A BEIR folder lacks a file; the message lists what is expected and what is there."""


@dataclass(frozen=True)
class BeirDocument:
    """One corpus entry."""

    doc_id: str
    text: str
    title: str = ""

    @property
    def full_text(self) -> str:
        """``title`` and ``text`` joined the way BEIR's own models see them (title first, when present)."""
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass(frozen=True)
class BeirData:
    """A BEIR folder: ``corpus`` ``{doc_id: BeirDocument}``, ``queries`` ``{qid: text}`` and ``qrels``."""

    corpus: dict[str, BeirDocument]
    queries: dict[str, str]
    qrels: Qrels
    split: str


def _find(root: Path, stem: str) -> Path:
    for name in (f"{stem}.jsonl", f"{stem}.jsonl.gz"):
        if (root / name).is_file():
            return root / name
    present = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    raise BeirLayoutError(
        f"BEIR folder {root} has no {stem}.jsonl (or {stem}.jsonl.gz). Expected corpus.jsonl, queries.jsonl and "
        f"qrels/<split>.tsv; found: {', '.join(present) or 'nothing'}."
    )


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InvalidInputError(f"{path}:{number}: not a JSON object ({exc}).") from exc


def _get(row: dict[str, Any], key: str, path: Path, number: int) -> Any:
    if key not in row:
        raise InvalidInputError(f"{path}:{number}: missing field {key!r}; got fields {', '.join(sorted(row))}.")
    return row[key]


def read_beir_qrels(path: PathLike) -> Qrels:
    """Read a BEIR qrels ``.tsv`` (header line optional; columns query-id, corpus-id, score)."""
    src = Path(path)
    qrels: Qrels = {}
    with open(src, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.rstrip("\r\n").split("\t")
            if not line.strip():
                continue
            if number == 1 and parts[0] == "query-id":
                continue
            if len(parts) != 3:
                raise InvalidInputError(
                    f"{src}:{number}: a BEIR qrels line needs 3 tab-separated fields 'query-id corpus-id score', "
                    f"got {len(parts)}: {line.strip()[:120]!r}."
                )
            try:
                rel = int(parts[2])
            except ValueError:
                raise InvalidInputError(f"{src}:{number}: score must be an integer, got {parts[2]!r}.") from None
            qrels.setdefault(parts[0], {})[parts[1]] = rel
    return qrels


def load_beir_folder(folder: PathLike, split: str = "test") -> BeirData:
    """Load a BEIR-format folder.

    Args:
        folder: Folder with ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.
        split: Which qrels file to read.

    Returns:
        The corpus, the queries that have judgments in ``split`` (BEIR keeps all splits' queries in one file),
        and the qrels.

    Raises:
        BeirLayoutError: when a file is missing, listing what is expected and what is there.
    """
    root = Path(folder)
    if not root.is_dir():
        raise BeirLayoutError(f"BEIR folder not found: {root}. Expected corpus.jsonl, queries.jsonl and qrels/.")
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        splits = sorted(p.stem for p in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
        raise BeirLayoutError(
            f"BEIR folder {root} has no qrels/{split}.tsv. Splits present: {', '.join(splits) or 'none'}."
        )
    corpus_path, queries_path = _find(root, "corpus"), _find(root, "queries")
    qrels = read_beir_qrels(qrels_path)
    corpus = {}
    for number, row in _rows(corpus_path):
        doc_id = str(_get(row, "_id", corpus_path, number))
        corpus[doc_id] = BeirDocument(doc_id, str(_get(row, "text", corpus_path, number)), row.get("title") or "")
    queries = {}
    for number, row in _rows(queries_path):
        qid = str(_get(row, "_id", queries_path, number))
        if qid in qrels:
            queries[qid] = str(_get(row, "text", queries_path, number))
    return BeirData(corpus=corpus, queries=queries, qrels=qrels, split=split)
