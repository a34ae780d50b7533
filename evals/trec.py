"""Readers and writers for TREC run and qrels files.

Formats (fields separated by any whitespace):

- run: ``qid Q0 docid rank score tag`` (6 fields);
- qrels: ``qid iteration docid relevance`` (4 fields).

Doc ids that contain spaces (a few BRIGHT ids, e.g. ``Memory Management_1_0.txt``) cannot be written as one
whitespace-separated field, so they are stored with ``%20`` in place of each space. Readers turn exactly ``%20`` back
into a space and nothing else: other ``%xx`` sequences are part of real ids (``Newton%27s_laws_of_motion5.txt``) and
are never URL-decoded. A qrels line with exactly four tab-separated fields is split on tabs, so a tab-separated
qrels file may also hold raw spaces inside ids.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from r2r_agent.errors import InvalidInputError
from r2r_agent.files import atomic_write_text

from .records import PathLike, Qrel, ScoredDoc

logger = logging.getLogger(__name__)

SPACE_ESCAPE = "%20"


def encode_doc_id(doc_id: str) -> str:
    """The doc id as one TREC field: each space becomes ``%20``.

    Raises:
        InvalidInputError: if the id is empty, holds other whitespace (tab, newline), or already holds a literal
            ``%20`` (it would not read back as itself).

    Example:
        >>> encode_doc_id("pytorch/Memory Management_1_0.txt")
        'pytorch/Memory%20Management_1_0.txt'
    """
    if not doc_id:
        raise InvalidInputError("A doc id must be a non-empty string to be written to a TREC file, got ''.")
    if SPACE_ESCAPE in doc_id:
        raise InvalidInputError(
            f"Doc id {doc_id!r} contains a literal {SPACE_ESCAPE!r}, which TREC readers here decode to a space, so "
            "it would not read back as itself. Rename the document or write the file with another tool."
        )
    encoded = doc_id.replace(" ", SPACE_ESCAPE)
    if any(ch.isspace() for ch in encoded):
        raise InvalidInputError(
            f"Doc id {doc_id!r} contains whitespace other than spaces (tab or newline); a TREC field cannot hold it."
        )
    return encoded


def decode_doc_id(field: str) -> str:
    """Undo :func:`encode_doc_id`: exactly ``%20`` becomes a space; no other URL-decoding.

    Example:
        >>> decode_doc_id("Newton%27s_laws%20of_motion5.txt")
        'Newton%27s_laws of_motion5.txt'
    """
    return field.replace(SPACE_ESCAPE, " ")


def _lines(source: PathLike | Iterable[str]) -> tuple[Iterator[str], str]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"TREC file not found: {path}")
        return iter(path.read_text(encoding="utf-8").splitlines()), str(path)
    return iter(source), "<lines>"


def parse_trec_run(lines: Iterable[str], source: str = "<lines>") -> list[ScoredDoc]:
    """Parse TREC run lines (``qid Q0 docid rank score tag``), keeping file order.

    Blank lines are skipped. The rank field is ignored: order comes from the score (trec_eval semantics).

    Raises:
        InvalidInputError: on a line without 6 fields or with a score that is not a number, naming the line.
    """
    out: list[ScoredDoc] = []
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise InvalidInputError(
                f"{source}:{number}: a TREC run line needs 6 whitespace-separated fields "
                f"'qid Q0 docid rank score tag', got {len(parts)}: {line.strip()[:120]!r}. "
                f"Doc ids with spaces must be written with {SPACE_ESCAPE!r} (see write_trec_run)."
            )
        qid, _q0, docid, _rank, score, _tag = parts
        try:
            value = float(score)
        except ValueError:
            raise InvalidInputError(f"{source}:{number}: the score field must be a number, got {score!r}.") from None
        out.append(ScoredDoc(qid, decode_doc_id(docid), value))
    return out


def read_trec_run(source: PathLike | Iterable[str]) -> list[ScoredDoc]:
    """Read a TREC run from a path (or an iterable of lines); see :func:`parse_trec_run`.

    Example:
        >>> read_trec_run(["q1 Q0 d1 1 2.5 bm25", "q1 Q0 d%202 2 1.0 bm25"])
        [ScoredDoc(query_id='q1', doc_id='d1', score=2.5), ScoredDoc(query_id='q1', doc_id='d 2', score=1.0)]
    """
    lines, name = _lines(source)
    return parse_trec_run(lines, name)


def parse_trec_qrels(lines: Iterable[str], source: str = "<lines>") -> list[Qrel]:
    """Parse TREC qrels lines (``qid iteration docid relevance``), keeping file order.

    Raises:
        InvalidInputError: on a line without 4 fields or with a non-integer relevance, naming the line.
    """
    out: list[Qrel] = []
    for number, line in enumerate(lines, start=1):
        stripped = line.rstrip("\r\n")
        if not stripped.strip():
            continue
        tabbed = stripped.split("\t")
        parts = [p.strip() for p in tabbed] if len(tabbed) == 4 else stripped.split()
        if len(parts) != 4:
            raise InvalidInputError(
                f"{source}:{number}: a qrels line needs 4 fields 'qid iteration docid relevance', "
                f"got {len(parts)}: {stripped[:120]!r}."
            )
        qid, iteration, docid, rel = parts
        try:
            relevance = int(rel)
        except ValueError:
            raise InvalidInputError(
                f"{source}:{number}: the relevance field must be an integer, got {rel!r}."
            ) from None
        out.append(Qrel(qid, decode_doc_id(docid), relevance, iteration))
    return out


def read_trec_qrels(source: PathLike | Iterable[str]) -> list[Qrel]:
    """Read TREC qrels from a path (or an iterable of lines); see :func:`parse_trec_qrels`.

    Example:
        >>> read_trec_qrels(["q1 0 d1 2"])
        [Qrel(query_id='q1', doc_id='d1', relevance=2, iteration='0')]
    """
    lines, name = _lines(source)
    return parse_trec_qrels(lines, name)


def _run_items(run: Mapping[str, Mapping[str, float]] | Iterable[ScoredDoc]) -> dict[str, list[tuple[str, float]]]:
    grouped: dict[str, list[tuple[str, float]]] = {}
    if isinstance(run, Mapping):
        for qid, docs in run.items():
            grouped.setdefault(str(qid), []).extend((str(d), float(s)) for d, s in docs.items())
    else:
        for sd in run:
            grouped.setdefault(str(sd.query_id), []).append((str(sd.doc_id), float(sd.score)))
    return grouped


def format_trec_run(run: Mapping[str, Mapping[str, float]] | Iterable[ScoredDoc], tag: str = "r2r") -> str:
    """The run as TREC run text, each query's documents in trec_eval order (score desc, then doc id desc).

    Ranks are rewritten 1..n in that order, so the file reads back with the same ranking under any tool.
    """
    if not tag or any(ch.isspace() for ch in tag):
        raise InvalidInputError(f"The run tag must be a non-empty string without whitespace, got {tag!r}.")
    buf = io.StringIO()
    for qid, docs in _run_items(run).items():
        ordered = sorted(docs, key=lambda item: (item[1], item[0]), reverse=True)
        for rank, (docid, score) in enumerate(ordered, start=1):
            buf.write(f"{qid} Q0 {encode_doc_id(docid)} {rank} {score!r} {tag}\n")
    return buf.getvalue()


def write_trec_run(
    path: PathLike, run: Mapping[str, Mapping[str, float]] | Iterable[ScoredDoc], tag: str = "r2r"
) -> Path:
    """Write a run as a TREC run file (see :func:`format_trec_run`); returns the path."""
    out = Path(path)
    atomic_write_text(out, format_trec_run(run, tag))
    return out


def format_trec_qrels(qrels: Mapping[str, Mapping[str, int]] | Iterable[Qrel]) -> str:
    """Qrels as TREC qrels text (``qid 0 docid relevance``, space separated, spaces in ids as ``%20``)."""
    buf = io.StringIO()
    if isinstance(qrels, Mapping):
        for qid, docs in qrels.items():
            for docid, rel in docs.items():
                buf.write(f"{qid} 0 {encode_doc_id(docid)} {int(rel)}\n")
    else:
        for q in qrels:
            buf.write(f"{q.query_id} {q.iteration} {encode_doc_id(q.doc_id)} {int(q.relevance)}\n")
    return buf.getvalue()


def write_trec_qrels(path: PathLike, qrels: Mapping[str, Mapping[str, int]] | Iterable[Qrel]) -> Path:
    """Write qrels as a TREC qrels file (see :func:`format_trec_qrels`); returns the path."""
    out = Path(path)
    atomic_write_text(out, format_trec_qrels(qrels))
    return out
