"""Typed annotation records: what a teacher (or the imported R2R data) said about a query's candidates.

Teacher runs (:mod:`r2r_agent.training.annotate`) and the R2R importer (:mod:`r2r_agent.training.r2r_import`)
produce the same records, so the dataset builder does not care where the annotations came from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from r2r_agent.types import Passage

from .teacher import TeacherAnswer


@dataclass(frozen=True)
class WindowAnnotation:
    """The teacher's answer (or failure) for one window of a query's candidates.

    Attributes:
        positions: The candidates shown, as 0-based indices into :attr:`QueryAnnotation.candidates`, in the order
            shown to the teacher (window position ``i`` is prompt passage ``i + 1``).
        window_hash: :func:`~r2r_agent.training.windows.window_hash` of the query and the shown texts.
        teacher: The teacher's name.
        prompt_version: The version of the prompt the teacher saw.
        answer: The parsed answer, or ``None`` when the window failed.
        response: The teacher's last raw reply, if any (kept for auditing and re-parsing).
        error: Why the window failed (``None`` when it succeeded).
        attempts: Teacher calls made for this window.
        seconds: Wall-clock seconds spent on it.
    """

    positions: tuple[int, ...]
    window_hash: str
    teacher: str
    prompt_version: str
    answer: TeacherAnswer | None = None
    response: str | None = None
    error: str | None = None
    attempts: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", tuple(int(p) for p in self.positions))

    @property
    def ok(self) -> bool:
        """Whether the teacher answered usably."""
        return self.answer is not None

    def ranked_positions(self) -> tuple[int, ...]:
        """The window's candidate indices in the teacher's order, best first (shown order when it failed)."""
        if self.answer is None:
            return self.positions
        return tuple(self.positions[i] for i in self.answer.ranking)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "positions": list(self.positions),
            "window_hash": self.window_hash,
            "teacher": self.teacher,
            "prompt_version": self.prompt_version,
            "answer": self.answer.to_dict() if self.answer is not None else None,
            "response": self.response,
            "error": self.error,
            "attempts": self.attempts,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowAnnotation:
        """Build from :meth:`to_dict` output."""
        answer = data.get("answer")
        return cls(
            positions=tuple(data["positions"]),
            window_hash=data["window_hash"],
            teacher=data["teacher"],
            prompt_version=data["prompt_version"],
            answer=TeacherAnswer.from_dict(answer) if answer is not None else None,
            response=data.get("response"),
            error=data.get("error"),
            attempts=int(data.get("attempts", 0)),
            seconds=float(data.get("seconds", 0.0)),
        )


@dataclass(frozen=True)
class QueryAnnotation:
    """Everything the teacher said about one query's candidates.

    Attributes:
        query_id: The query's id (splits are made by it).
        query: The query text.
        candidates: The candidates in their input (first-stage) order.
        windows: The windows in the order they were processed (back to front).
        order: The teacher's final order, best first, as 0-based indices into ``candidates`` (the input order where
            every window failed).
        labels: Optional relevance labels (e.g. MS MARCO's 0/1), one per candidate in input order; empty when unknown.
        source: Where the annotations came from (``"teacher"`` or ``"r2r-import"``).
    """

    query_id: str
    query: str
    candidates: tuple[Passage, ...]
    windows: tuple[WindowAnnotation, ...]
    order: tuple[int, ...]
    labels: tuple[int | None, ...] = ()
    source: str = "teacher"

    def __post_init__(self) -> None:
        for name in ("candidates", "windows", "order", "labels"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        n = len(self.candidates)
        if sorted(self.order) != list(range(n)):
            raise ValueError(f"QueryAnnotation {self.query_id!r}: order must be a permutation of 0..{n - 1}, "
                             f"got {self.order}")
        if self.labels and len(self.labels) != n:
            raise ValueError(f"QueryAnnotation {self.query_id!r}: {len(self.labels)} labels for {n} candidates")

    @property
    def failures(self) -> tuple[WindowAnnotation, ...]:
        """The windows the teacher failed on."""
        return tuple(w for w in self.windows if not w.ok)

    def direct_reasons(self) -> dict[int, str]:
        """One direct reason per candidate index that has one; later windows (nearer the top) win."""
        return self._reasons(lambda answer: answer.direct_reasons)

    def comparison_reasons(self) -> dict[int, str]:
        """One comparison (listwise) reason per candidate index that has one; later windows win."""
        return self._reasons(lambda answer: answer.comparison_reasons)

    def verdicts(self) -> dict[int, str]:
        """The teacher's verdict per candidate index that has one; later windows win."""
        return self._reasons(lambda answer: answer.verdicts or (None,) * len(answer))

    def evidence(self) -> dict[int, str]:
        """The teacher's best-answering sentence per candidate index that has one; later windows win."""
        return self._reasons(lambda answer: answer.evidence or (None,) * len(answer))

    def _reasons(self, kind: Callable[[TeacherAnswer], tuple[str | None, ...]]) -> dict[int, str]:
        reasons: dict[int, str] = {}
        for window in self.windows:
            if window.answer is None:
                continue
            for slot, reason in enumerate(kind(window.answer)):
                if reason is not None:
                    reasons[window.positions[slot]] = reason
        return reasons

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "query_id": self.query_id,
            "query": self.query,
            "candidates": [c.to_dict() for c in self.candidates],
            "windows": [w.to_dict() for w in self.windows],
            "order": list(self.order),
            "labels": list(self.labels),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QueryAnnotation:
        """Build from :meth:`to_dict` output."""
        return cls(
            query_id=str(data["query_id"]),
            query=data["query"],
            candidates=tuple(Passage.from_dict(c) for c in data["candidates"]),
            windows=tuple(WindowAnnotation.from_dict(w) for w in data.get("windows", ())),
            order=tuple(data["order"]),
            labels=tuple(data.get("labels", ())),
            source=data.get("source", "teacher"),
        )


__all__ = ["QueryAnnotation", "WindowAnnotation"]
