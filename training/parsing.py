"""Pure parsing of a teacher's answer to :func:`r2r_agent.prompts.teacher_listwise_messages`.

The prompt asks for JSON of the form::

    {"ranking": [2, 1, 3],
     "reasons": [{"passage": 2, "direct": "...", "comparison": "..."}, ...],
     "comparison": "why the top passages are ordered as they are"}

with passages numbered from 1. Real teachers wrap it in prose or code fences, leave trailing commas, skip, repeat or
invent passage numbers, or number from 0. :func:`parse_teacher_answer` repairs what can be repaired without guessing
(and records each repair in :attr:`TeacherAnswer.repairs`), and raises :class:`ParseError` otherwise.

The original R2R answer shape (``{"ranked_passages": [{"identifier", "direct_reason", "listwise_reason"}]}``) is
accepted too.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from r2r_agent.vocabulary import verdict_from_label

from .errors import ParseError
from .teacher import TeacherAnswer

_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)
_INDEX_TEXT = re.compile(r"^\s*\[?\s*(?:passage|doc(?:ument)?|p)?\s*#?\s*(\d+)\s*\]?\s*$", re.IGNORECASE)
_RANKING_KEYS = ("ranking", "rank", "order")
_REASONS_KEYS = ("reasons", "ranked_passages", "passages")
_PASSAGE_KEYS = ("passage", "identifier", "id", "index")
_DIRECT_KEYS = ("direct", "direct_reason")
_COMPARISON_KEYS = ("comparison", "listwise_reason", "comparison_reason", "listwise")
_VERDICT_KEYS = ("verdict", "judgment", "label")
_EVIDENCE_KEYS = ("evidence", "direct_answer_sentence", "answer_sentence")


def _preview(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _json_chars(text: str, start: int = 0) -> Iterator[tuple[int, str, bool]]:
    """``(index, char, structural)`` for ``text[start:]``; ``structural`` is False inside JSON strings (quotes too)."""
    in_string, escaped = False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        yield i, ch, not in_string and ch != '"'


def _balanced_object(text: str, start: int) -> str | None:
    """The ``{...}`` starting at ``start`` (strings respected), or ``None`` if it never closes."""
    depth = 0
    for i, ch, structural in _json_chars(text, start):
        if not structural:
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return None


def strip_trailing_commas(text: str) -> str:
    """Remove commas that directly precede ``}`` or ``]`` outside JSON strings.

    Example:
        >>> strip_trailing_commas('{"a": [1, 2,], "b": "x,]",}')
        '{"a": [1, 2], "b": "x,]"}'
    """
    out: list[str] = []
    for _, ch, structural in _json_chars(text):
        if structural and ch in "}]":
            j = len(out) - 1
            while j >= 0 and out[j].isspace():
                j -= 1
            if j >= 0 and out[j] == ",":
                del out[j]
        out.append(ch)
    return "".join(out)


def extract_json_object(text: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Find and decode the JSON object in a model's reply.

    Looks inside code fences first, then anywhere in the text; tries each ``{`` in turn so prose with braces before
    the answer does not hide it; removes trailing commas when strict JSON fails.

    Returns:
        The decoded object and the repairs made (e.g. ``"removed trailing commas"``).

    Raises:
        ParseError: when no JSON object can be decoded.

    Example:
        >>> extract_json_object('Sure! ```json\\n{"ranking": [1,],}\\n```')
        ({'ranking': [1]}, ('removed trailing commas',))
    """
    if not isinstance(text, str):
        raise ParseError(f"teacher answer must be a str, got {type(text).__name__}")
    sources = [m.group(1) for m in _FENCE.finditer(text) if "{" in m.group(1)] + [text]
    unterminated = False
    last_error = ""
    for source in sources:
        for start in (i for i, ch in enumerate(source) if ch == "{"):
            candidate = _balanced_object(source, start)
            if candidate is None:
                unterminated = True
                continue
            try:
                data = json.loads(candidate)
                repairs: tuple[str, ...] = ()
            except json.JSONDecodeError as exc:
                last_error = str(exc)
                try:
                    data = json.loads(strip_trailing_commas(candidate))
                    repairs = ("removed trailing commas",)
                except json.JSONDecodeError as exc2:
                    last_error = str(exc2)
                    continue
            if isinstance(data, dict):
                return data, repairs
    if unterminated and not last_error:
        raise ParseError(f"teacher answer has a JSON object that never closes (answer cut off?): {_preview(text)}. "
                         "Raise the backend's max_tokens or shorten the window.")
    detail = f" (last JSON error: {last_error})" if last_error else ""
    raise ParseError(f"no JSON object found in the teacher answer{detail}: {_preview(text)}; expected "
                     '{"ranking": [...], "reasons": [...], "comparison": "..."}')


def _as_number(value: Any) -> int | None:
    """A passage number from ``2``, ``2.0``, ``"2"``, ``"[2]"`` or ``"Passage 2"``; ``None`` otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        match = _INDEX_TEXT.match(value)
        if match:
            return int(match.group(1))
    return None


def _first(mapping: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    return next((mapping[k] for k in keys if k in mapping), None)


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return " ".join(value.split())
    return None


def answer_from_data(data: Mapping[str, Any], num_passages: int, *, require_reasons: bool = True,
                     min_ranked_fraction: float = 0.5) -> TeacherAnswer:
    """Validate and repair an already-decoded teacher answer (see :func:`parse_teacher_answer`)."""
    n = num_passages
    if n == 0:
        return TeacherAnswer.empty()
    if not isinstance(data, Mapping):
        raise ParseError(f"teacher answer must be a JSON object, got {type(data).__name__}")
    repairs: list[str] = []
    reasons = _first(data, _REASONS_KEYS)
    if reasons is not None and not isinstance(reasons, list):
        repairs.append(f"ignored 'reasons' of type {type(reasons).__name__} (expected a list)")
        reasons = None
    reason_items = [r for r in reasons or [] if isinstance(r, Mapping)]
    if reasons and len(reason_items) < len(reasons):
        repairs.append(f"ignored {len(reasons) - len(reason_items)} reasons that are not objects")

    raw_ranking = _first(data, _RANKING_KEYS)
    if not isinstance(raw_ranking, list):
        numbers_in_reasons = [_as_number(_first(r, _PASSAGE_KEYS)) for r in reason_items]
        if reason_items and all(x is not None for x in numbers_in_reasons):
            raw_ranking = numbers_in_reasons
            repairs.append("no 'ranking' list: took the order of the reasons")
        else:
            raise ParseError(f"teacher answer has no 'ranking' list (keys: {sorted(data)[:8]}); expected "
                             f'"ranking": a list of the passage numbers 1..{n}, best first')

    numbers = [_as_number(x) for x in raw_ranking]
    if any(x is None for x in numbers):
        bad = [x for x, num in zip(raw_ranking, numbers, strict=True) if num is None]
        repairs.append(f"dropped ranking entries that are not passage numbers: {bad[:5]}")
    present = [x for x in numbers if x is not None]
    # A teacher that numbered from 0 gives exactly 0..n-1; anything less clear-cut is read as 1-based.
    offset = 1
    if present and sorted(set(present)) == list(range(n)) and 0 in present and n not in present:
        offset = 0
        repairs.append("ranking used 0-based passage numbers")
    ranking: list[int] = []
    out_of_range, duplicates = [], []
    for number in present:
        index = number - offset
        if not 0 <= index < n:
            out_of_range.append(number)
        elif index in ranking:
            duplicates.append(number)
        else:
            ranking.append(index)
    if out_of_range:
        repairs.append(f"dropped passage numbers outside 1..{n}: {out_of_range}")
    if duplicates:
        repairs.append(f"dropped repeated passage numbers: {duplicates}")
    needed = max(1, math.ceil(min_ranked_fraction * n))
    if len(ranking) < needed:
        raise ParseError(f"teacher ranking names only {len(ranking)} valid passages of {n} (need at least {needed}); "
                         f"got {raw_ranking!r:.200}; expected a permutation of 1..{n}")
    missing = [i for i in range(n) if i not in ranking]
    if missing:
        ranking.extend(missing)
        repairs.append(f"appended passages missing from the ranking in their original order: "
                       f"{[i + 1 for i in missing]}")

    direct: list[str | None] = [None] * n
    comparison: list[str | None] = [None] * n
    verdicts: list[str | None] = [None] * n
    evidence: list[str | None] = [None] * n
    seen: set[int] = set()
    dropped_reasons: list[Any] = []
    repeated_reasons: list[int] = []
    for item in reason_items:
        named = _as_number(_first(item, _PASSAGE_KEYS))
        slot = None if named is None else named - offset
        if slot is None or not 0 <= slot < n:
            dropped_reasons.append(_first(item, _PASSAGE_KEYS))
            continue
        if slot in seen:
            repeated_reasons.append(slot + 1)
            continue
        seen.add(slot)
        direct[slot] = _text(_first(item, _DIRECT_KEYS))
        comparison[slot] = _text(_first(item, _COMPARISON_KEYS))
        word = _text(_first(item, _VERDICT_KEYS))
        verdicts[slot] = verdict_from_label(word) if word else None
        evidence[slot] = _text(_first(item, _EVIDENCE_KEYS))
    if dropped_reasons:
        repairs.append(f"dropped reasons with a missing or invalid passage number: {dropped_reasons[:5]}")
    if repeated_reasons:
        repairs.append(f"dropped repeated reasons for passages {repeated_reasons} (kept the first)")
    if require_reasons and all(reason is None for reason in direct):
        raise ParseError(f"teacher answer has no direct reason for any of the {n} passages; expected "
                         '"reasons": [{"passage": <number>, "direct": "...", "comparison": "..."}, ...]')
    no_direct = [i + 1 for i in range(n) if direct[i] is None]
    if no_direct:
        repairs.append(f"no direct reason for passages {no_direct}")
    no_comparison = [i + 1 for i in range(n) if comparison[i] is None]
    if no_comparison:
        repairs.append(f"no comparison reason for passages {no_comparison}")
    overall = _text(data.get("comparison"))
    if overall is None:
        repairs.append("no overall 'comparison'")
    return TeacherAnswer(tuple(ranking), tuple(direct), tuple(comparison), overall, tuple(repairs),
                         tuple(verdicts) if any(verdicts) else (), tuple(evidence) if any(evidence) else ())


def parse_teacher_answer(text: str, num_passages: int, *, require_reasons: bool = True,
                         min_ranked_fraction: float = 0.5) -> TeacherAnswer:
    """Parse a teacher's reply for a window of ``num_passages`` passages into a :class:`TeacherAnswer`.

    Repairs (each recorded in ``repairs``; passage numbers in the messages are the prompt's 1-based numbers):
    JSON found inside prose or code fences; trailing commas removed; ranking entries written as ``"2"``, ``"[2]"``
    or ``"Passage 2"`` read as numbers; a complete 0-based ranking (``0..n-1``) shifted; out-of-range and repeated
    numbers dropped; passages missing from the ranking appended in their original order; reasons with bad
    passage numbers dropped; a missing ``ranking`` taken from the order of the reasons.

    Args:
        text: The teacher's reply.
        num_passages: How many passages the window showed.
        require_reasons: Reject an answer without any direct reason (it teaches the explainer nothing).
        min_ranked_fraction: Reject a ranking that names fewer than this fraction of the passages (appending the
            rest in their original order would then be a guess rather than a repair).

    Returns:
        The answer, with 0-based indices.

    Raises:
        ParseError: when no JSON object can be found, when the ranking is missing or names too few valid passages,
            or when ``require_reasons`` and no passage has a direct reason.

    Example:
        >>> a = parse_teacher_answer('Here: {"ranking": [2, 1, 2], "reasons": [{"passage": 2, "direct": "yes"}]}', 2)
        >>> a.ranking, a.direct_reasons
        ((1, 0), (None, 'yes'))
    """
    if num_passages < 0:
        raise ValueError(f"num_passages must be >= 0, got {num_passages}")
    if num_passages == 0:
        return TeacherAnswer.empty()
    data, json_repairs = extract_json_object(text)
    answer = answer_from_data(data, num_passages, require_reasons=require_reasons,
                              min_ranked_fraction=min_ranked_fraction)
    if json_repairs:
        return TeacherAnswer(answer.ranking, answer.direct_reasons, answer.comparison_reasons, answer.comparison,
                             json_repairs + answer.repairs)
    return answer


__all__ = ["answer_from_data", "extract_json_object", "parse_teacher_answer", "strip_trailing_commas"]
