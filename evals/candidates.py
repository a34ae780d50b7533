"""Reader and writer for the shared candidate-list format (``*.top100.jsonl.gz``).

One JSON object per line, one line per query, gzipped when the file name ends in ``.gz``::

    {"qid": "264014", "query": "how long is life cycle of flea",
     "candidates": [{"docid": "5611210", "score": 15.78, "text": "5. Cancel. A flea can live up to ..."}, ...]}

Candidates are in first-stage rank order.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from r2r_agent.errors import InvalidInputError

from .records import CandidateList, PathLike


def _open(path: Path, mode: str) -> IO[str]:
    if path.name.endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return open(path, mode, encoding="utf-8")


def read_candidates(path: PathLike) -> list[CandidateList]:
    """Read a candidate-list file (``.jsonl`` or ``.jsonl.gz``), one :class:`CandidateList` per query, in file order.

    Raises:
        FileNotFoundError: if the file does not exist.
        InvalidInputError: on a line that is not JSON or lacks ``qid``/``query``/``candidates``, naming the line.
    """
    src = Path(path)
    if not src.is_file():
        raise FileNotFoundError(f"Candidate-list file not found: {src}")
    rows: list[CandidateList] = []
    with _open(src, "r") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                rows.append(CandidateList.from_dict(data))
            except (json.JSONDecodeError, KeyError, TypeError, InvalidInputError) as exc:
                raise InvalidInputError(
                    f"{src}:{number}: expected a JSON object with 'qid', 'query' and 'candidates' (a list of "
                    f"{{'docid', 'score', 'text'}}), but could not read it ({type(exc).__name__}: {exc})."
                ) from exc
    return rows


def write_candidates(path: PathLike, rows: Iterable[CandidateList]) -> Path:
    """Write candidate lists in the shared format (gzipped when ``path`` ends in ``.gz``); returns the path."""
    from r2r_agent.files import atomic_text_writer

    out = Path(path)
    with atomic_text_writer(out) as handle:
        for row in rows:
            handle.write(json.dumps(row.to_dict(), ensure_ascii=False) + "\n")
    return out
