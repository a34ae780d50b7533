"""Import the Reason-to-Rank (R2R) teacher annotations (GPT-4 direct and listwise reasons on MS MARCO).

The rows (``msmarco_{100,500}.jsonl.gz`` from JoyDajunSpaceCraft/Reason-to-Rank; see the shared data README) become
the same :class:`~r2r_agent.training.QueryAnnotation` records a teacher run produces: one window of the row's
passages in the order the teacher saw them, its ranking (``re_rank_id``, 1-based in the file, 0-based here), the
``direct_reason`` and ``listwise_reason`` of each passage, and the MS MARCO labels from ``scores``.

The data has no license: research or internal use only, not for redistribution.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from r2r_agent.types import Passage

from .errors import AnnotationFormatError
from .jsonl import iter_json_rows
from .records import QueryAnnotation, WindowAnnotation
from .teacher import TeacherAnswer
from .teacher_verdicts import teacher_verdict
from .windows import window_hash

#: The teacher name recorded on imported windows.
R2R_TEACHER = "r2r-gpt4"
#: The "prompt version" recorded on imported windows: R2R's own prompt, not :data:`r2r_agent.prompts.PROMPT_VERSION`.
R2R_PROMPT_VERSION = "r2r-original"
R2R_SOURCE = "r2r-import"

_REQUIRED = ("query", "qid", "unsorted_docs", "re_rank_id", "reason")


def _fail(where: str, message: str) -> AnnotationFormatError:
    return AnnotationFormatError(f"{where}: {message}. Expected an R2R row with {list(_REQUIRED)} (+ optional "
                                 "'sorted_docids', 'scores'), as in Reason-to-Rank's msmarco_*.jsonl")


def _text(value: Any) -> str | None:
    return " ".join(value.split()) if isinstance(value, str) and value.strip() else None


def r2r_row_to_annotation(row: Mapping[str, Any], *, where: str = "row") -> QueryAnnotation:
    """Convert one R2R row into a :class:`QueryAnnotation` (see the module docstring).

    Raises:
        AnnotationFormatError: naming ``where`` and the field, when the row is not in R2R's format.
    """
    if not isinstance(row, Mapping):
        raise _fail(where, f"expected a JSON object, got {type(row).__name__}")
    missing = [k for k in _REQUIRED if k not in row]
    if missing:
        raise _fail(where, f"missing fields {missing}")
    docs = row["unsorted_docs"]
    if not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
        raise _fail(where, "'unsorted_docs' must be a list of strings")
    n = len(docs)
    order_1 = row["re_rank_id"]
    if not isinstance(order_1, list) or sorted(order_1) != list(range(1, n + 1)):
        raise _fail(where, f"'re_rank_id' must be a permutation of 1..{n} (1-based), got {order_1!r:.80}")
    ranking = tuple(i - 1 for i in order_1)
    reason = row["reason"]
    entries = reason.get("ranked_passages") if isinstance(reason, Mapping) else None
    if not isinstance(entries, list):
        raise _fail(where, "'reason.ranked_passages' must be a list")
    direct: list[str | None] = [None] * n
    listwise: list[str | None] = [None] * n
    evidence: list[str | None] = [None] * n
    for rank, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise _fail(where, f"reason.ranked_passages[{rank}] must be an object")
        identifier = entry.get("identifier", order_1[rank] if rank < n else None)
        if not isinstance(identifier, int) or not 1 <= identifier <= n:
            raise _fail(where, f"reason.ranked_passages[{rank}].identifier must be in 1..{n}, got {identifier!r}")
        direct[identifier - 1] = _text(entry.get("direct_reason"))
        listwise[identifier - 1] = _text(entry.get("listwise_reason"))
        evidence[identifier - 1] = _text(entry.get("direct_answer_sentence"))
    labels: tuple[int | None, ...] = ()
    if "scores" in row:
        try:
            labels = tuple(int(s) for s in row["scores"])
        except (TypeError, ValueError) as exc:
            raise _fail(where, f"'scores' must be integer labels, got {row['scores']!r:.80}") from exc
        if len(labels) != n:
            raise _fail(where, f"'scores' has {len(labels)} labels for {n} passages")
    ids: list[str | None] = [None] * n
    sorted_ids = row.get("sorted_docids")
    if isinstance(sorted_ids, list) and len(sorted_ids) == n:
        for rank, docid in enumerate(sorted_ids):  # sorted_docids[i] is the id of unsorted_docs[re_rank_id[i] - 1]
            ids[ranking[rank]] = str(docid)
    query = row["query"]
    if not isinstance(query, str):
        raise _fail(where, "'query' must be a string")
    # The R2R teacher states no verdict: it is read from its direct reason (teacher_verdicts), the teacher's own words.
    verdicts = tuple(teacher_verdict(reason) if reason else None for reason in direct)
    answer = TeacherAnswer(ranking=ranking, direct_reasons=tuple(direct), comparison_reasons=tuple(listwise),
                           verdicts=verdicts, evidence=tuple(evidence))
    window = WindowAnnotation(positions=tuple(range(n)), window_hash=window_hash(query, docs), teacher=R2R_TEACHER,
                              prompt_version=R2R_PROMPT_VERSION, answer=answer)
    return QueryAnnotation(query_id=str(row["qid"]), query=query,
                           candidates=tuple(Passage(text=d, id=i) for d, i in zip(docs, ids, strict=True)),
                           windows=(window,), order=ranking, labels=labels, source=R2R_SOURCE)


def iter_r2r_annotations(path: str | os.PathLike[str]) -> Iterator[QueryAnnotation]:
    """Yield one :class:`QueryAnnotation` per line of an R2R ``.jsonl`` or ``.jsonl.gz`` file.

    Raises:
        AnnotationFormatError: naming the file and line of the first bad row.
    """
    for where, row in iter_json_rows(path, lambda where, exc: _fail(where, f"not valid JSON ({exc})")):
        yield r2r_row_to_annotation(row, where=where)


def load_r2r_annotations(path: str | os.PathLike[str]) -> list[QueryAnnotation]:
    """All annotations of an R2R file (see :func:`iter_r2r_annotations`).

    Example:
        >>> rows = load_r2r_annotations("../shared/data/r2r-train/msmarco_500.jsonl.gz")  # doctest: +SKIP
        >>> rows[0].candidates[rows[0].order[0]].text[:30]                                 # doctest: +SKIP
    """
    return list(iter_r2r_annotations(path))


__all__ = ["R2R_PROMPT_VERSION", "R2R_SOURCE", "R2R_TEACHER", "iter_r2r_annotations", "load_r2r_annotations",
           "r2r_row_to_annotation"]
