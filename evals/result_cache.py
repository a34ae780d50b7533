"""The per-query result cache of ``r2r eval`` (``REPORT/cache.jsonl``): what was computed is never computed again.

One JSON Lines file, appended and flushed as soon as a query is done (:mod:`.jsonl`), so killing a run loses at most
the query in progress. Each entry is keyed by its kind, the system's key (:func:`~r2r_agent.evals.systems.system_key`,
its name and config), the dataset and the query id, and holds the digest of the input it was computed on: an entry
is reused only for the same input. Four kinds of rows::

    {"kind": "result", "system": KEY, "dataset": NAME, "qid": QID, "input": DIGEST, "result": {...}}
    {"kind": "ranking", "system": KEY, "dataset": NAME, "qid": QID, "input": DIGEST, "ranking": {...}}
    {"kind": "judged", "system": KEY, "dataset": NAME, "qid": QID, "input": DIGEST, "judged": {...}}
    {"kind": "cost", "system": KEY, "dataset": NAME, "cost": {...}}

``result``: a ranked query without passage texts (:meth:`~r2r_agent.evals.results.SystemResult.to_dict`);
``ranking``: a :class:`r2r_agent.Ranking` with explanations (explanation quality, teacher agreement); ``judged``:
every candidate's id, score, relevance and verdict (:class:`~r2r_agent.evals.judgments.JudgedQuery`); ``cost``: the
memory and load time measured when a system last computed queries of a dataset. The format is the one of every
earlier version, so older caches are read as they are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from r2r_agent import Passage
from r2r_agent.errors import InvalidInputError

from .jsonl import append_row, read_rows
from .records import PathLike, docid
from .results import SystemResult

#: The row kinds that hold one query's output, and the field each keeps it under.
PAYLOADS: Mapping[str, str] = {"result": "result", "ranking": "ranking", "judged": "judged"}


def input_hash(query: str, candidates: Sequence[Passage]) -> str:
    """A digest of what a system sees for one query (its text and candidate ids, in order).

    Example:
        >>> from r2r_agent.evals.records import candidate
        >>> input_hash("q", [candidate("d1", 1.0)]) == input_hash("q", [candidate("d1", 9.0, "other text")])
        True
    """
    digest = hashlib.sha256(query.encode("utf-8"))
    for c in candidates:
        digest.update(b"\x00" + docid(c).encode("utf-8"))
    return digest.hexdigest()[:16]


class ResultCache:
    """Append-only JSON Lines cache of per-query outputs, keyed by (kind, system key, dataset, qid).

    A torn last line is skipped with a warning. Later rows of the same key replace earlier ones.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        self._entries: dict[tuple[str, str, str, str], tuple[str, dict[str, Any]]] = {}
        self._costs: dict[tuple[str, str], dict[str, Any]] = {}
        for _ in read_rows(self.path, self._read):
            pass

    def _read(self, row: dict[str, Any]) -> None:
        kind = row.get("kind", "result")
        if kind == "cost":
            self._costs[(row["system"], row["dataset"])] = dict(row["cost"])
        elif kind in PAYLOADS:
            payload = row[PAYLOADS[kind]]
            if not isinstance(payload, dict):
                raise TypeError(f"a {kind} row holds a {type(payload).__name__}")
            self._entries[(kind, row["system"], row["dataset"], row["qid"])] = (row["input"], payload)
        else:
            raise ValueError(f"unknown row kind {kind!r}")

    def __len__(self) -> int:
        """How many ranked queries (``result`` entries) the cache holds."""
        return sum(1 for key in self._entries if key[0] == "result")

    def lookup(self, kind: str, system: str, dataset: str, qid: str, digest: str) -> dict[str, Any] | None:
        """The stored payload of one query, or ``None`` when absent or computed on other input."""
        found = self._entries.get((kind, system, dataset, qid))
        if found is None or found[0] != digest:
            return None
        return found[1]

    def store(self, kind: str, system: str, dataset: str, qid: str, digest: str, payload: Mapping[str, Any]) -> None:
        """Store one query's payload (appended and flushed at once).

        Raises:
            InvalidInputError: for a kind other than ``"result"``, ``"ranking"`` or ``"judged"``.
        """
        if kind not in PAYLOADS:
            raise InvalidInputError(f"ResultCache.store: kind must be one of {sorted(PAYLOADS)}, got {kind!r}.")
        self._entries[(kind, system, dataset, qid)] = (digest, dict(payload))
        append_row(self.path, {"kind": kind, "system": system, "dataset": dataset, "qid": qid, "input": digest,
                               PAYLOADS[kind]: dict(payload)})

    def get(self, system: str, dataset: str, qid: str, query: str, candidates: Sequence[Passage]
            ) -> SystemResult | None:
        """The cached result of ranking ``candidates`` for ``query``, or ``None`` (absent, or other input)."""
        data = self.lookup("result", system, dataset, qid, input_hash(query, candidates))
        if data is None:
            return None
        try:
            return SystemResult.from_dict(data, query, candidates)
        except (InvalidInputError, KeyError, TypeError, ValueError):
            return None  # an entry that does not fit these candidates is computed again

    def put(self, system: str, dataset: str, qid: str, query: str, candidates: Sequence[Passage],
            result: SystemResult) -> None:
        """Store the result of ranking ``candidates`` for ``query``."""
        self.store("result", system, dataset, qid, input_hash(query, candidates), result.to_dict())

    def cost(self, system: str, dataset: str) -> dict[str, Any] | None:
        """The last stored system-level cost of ``system`` on ``dataset``."""
        return self._costs.get((system, dataset))

    def put_cost(self, system: str, dataset: str, cost: Mapping[str, Any]) -> None:
        """Store system-level cost measurements."""
        self._costs[(system, dataset)] = dict(cost)
        append_row(self.path, {"kind": "cost", "system": system, "dataset": dataset, "cost": dict(cost)})


__all__ = ["ResultCache", "input_hash"]
