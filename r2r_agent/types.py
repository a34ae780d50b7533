"""Core result types: the passage that goes in, the per-passage :class:`Judgment` and the :class:`Ranking`.

All are small dataclasses with ``to_dict``/``from_dict`` that round-trip through JSON.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import math
import numbers
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import InvalidInputError, InvalidPassageError

logger = logging.getLogger(__name__)


def model_text(text: str) -> str:
    """``text`` as models may read it: lone surrogates (``"\\udc80"``, from broken JSON escapes or ``surrogateescape``
    decoding) become U+FFFD, which every tokenizer accepts; valid text comes back unchanged (the same object).

    Example:
        >>> model_text("fleas \\ud800 live")
        'fleas \ufffd live'
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


_CHECKS: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "bool": (bool,), "float": (int, float),
    "Mapping[str, Any]": (Mapping,), "tuple[int, int]": (list, tuple), "tuple[str, ...]": (list, tuple),
}


@functools.cache
def _field_kinds(cls: Any) -> dict[str, tuple[str, bool, tuple[type, ...] | None]]:
    """Each field's declared type, whether it allows ``None`` and the types it accepts (worked out once per class:
    a trace file of 50k candidates spent most of its reading time redoing this)."""
    kinds = {}
    for f in fields(cls):
        kind = str(f.type)
        kinds[f.name] = (kind, kind.endswith(" | None"), _CHECKS.get(kind.removesuffix(" | None")))
    return kinds


def from_fields(cls: Any, data: Mapping[str, Any], *, renamed: Mapping[str, str] | None = None) -> Any:
    """Build the dataclass ``cls`` from a mapping read back from JSON: unknown keys are ignored, ``renamed`` old keys
    are read under their new names, and each value must have its field's type (``X | None`` allows ``None``).

    Raises:
        InvalidInputError: for a value of the wrong type or a missing required field, naming the field.
    """
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    values = {renamed.get(k, k): v for k, v in data.items()} if renamed else data
    known = _field_kinds(cls)
    kept = {k: v for k, v in values.items() if k in known}
    for name, value in kept.items():
        kind, optional, expected = known[name]
        if expected is None or (value is None and optional):
            continue
        if not isinstance(value, expected) or (bool not in expected and isinstance(value, bool)):
            raise InvalidInputError(f"{cls.__name__}.{name} must be {kind}, got {type(value).__name__} "
                                    f"{_preview(value)}")
    try:
        return cls(**kept)
    except TypeError as exc:  # a required field is missing
        raise InvalidInputError(f"{cls.__name__}: {exc}") from None


#: Containers copied item by item (exact types only: a subclass may carry state that a rebuild would lose).
_CONTAINERS = (dict, list, tuple, set, frozenset)
#: Below this depth, containers are copied by ``copy.deepcopy`` alone (which may fail and share them).
_MAX_COPY_DEPTH = 100
_uncopyable_said: set[str] = set()
_uncopyable_lock = threading.Lock()


def _say_shared(value: Any, where: str, exc: BaseException) -> None:
    """Log, once per type and process, that a metadata value of that type is shared with the caller."""
    kind = type(value).__qualname__
    with _uncopyable_lock:
        if kind in _uncopyable_said:
            return
        _uncopyable_said.add(kind)
    logger.warning("metadata value %s (a %s) cannot be copied (%s: %s); it is shared with the caller by reference, "
                   "everything else in the metadata is copied", where, kind, type(exc).__name__, str(exc)[:80])


def _copy_value(value: Any, memo: dict[int, Any], where: str, depth: int) -> Any:
    """A deep copy of ``value``: built-in containers item by item, anything else by ``copy.deepcopy``; a value that
    cannot be copied (a lock, a generator, a ``__deepcopy__`` that raises) is shared, and said so."""
    kind = type(value)
    if kind in _CONTAINERS and depth < _MAX_COPY_DEPTH:
        if id(value) in memo:
            return memo[id(value)]
        if kind is dict:
            out: dict[Any, Any] = {}
            memo[id(value)] = out
            for key, item in value.items():
                out[key] = _copy_value(item, memo, f"{where}[{key!r}]", depth + 1)
            return out
        if kind is list:
            items: list[Any] = []
            memo[id(value)] = items
            items.extend(_copy_value(item, memo, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))
            return items
        # tuples and sets hold hashable items or refer to themselves only through a mutable container
        copied = kind(_copy_value(item, memo, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))
        memo[id(value)] = copied
        return copied
    try:
        return copy.deepcopy(value, memo)
    except Exception as exc:  # noqa: BLE001 - any object's __deepcopy__/__reduce__ may raise anything
        _say_shared(value, where, exc)
        return value


def _copy_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """A deep copy, value by value, so that no nested dict, list or set is shared with the caller.

    Only a value that cannot be copied (a lock, a client, a generator) is kept by reference, with a warning logged once
    per type; the containers around it are still copied.
    """
    memo: dict[int, Any] = {}
    return {key: _copy_value(value, memo, f"[{key!r}]", 1) for key, value in dict(metadata or {}).items()}


@dataclass(frozen=True, init=False)
class Passage:
    """One retrieved passage to rerank.

    Args:
        text: The passage content. Must be a string (it may be empty).
        id: An optional identifier (a document id); duplicates are allowed and kept apart.
        metadata: Optional metadata; deep-copied, never modified.
        first_stage_score: The first-stage (retriever's) score, if any; higher means more relevant. NaN and
            infinities are read as no score.
        score: Deprecated spelling of ``first_stage_score`` (read for one release, with a warning).

    Example:
        >>> Passage("Fleas live 2-3 months.", id="d1", first_stage_score=12.3).first_stage_score
        12.3
    """

    text: str
    id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    first_stage_score: float | None = None

    def __init__(self, text: str, id: str | None = None, metadata: Mapping[str, Any] | None = None,
                 first_stage_score: float | None = None, *, score: float | None = None) -> None:
        if score is not None:
            if first_stage_score is not None:
                raise InvalidInputError("Passage: pass first_stage_score only (score is its deprecated spelling)")
            warnings.warn("Passage(score=...) is deprecated; pass first_stage_score=...", DeprecationWarning,
                          stacklevel=2)
            first_stage_score = score
        if not isinstance(text, str):
            raise InvalidPassageError(
                f"Passage.text must be a str, got {type(text).__name__}: {_preview(text)}. "
                "Convert the content to text first (e.g. str(...) or the document's page_content)."
            )
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidPassageError(f"Passage.metadata must be a mapping (a dict) or None, got "
                                      f"{type(metadata).__name__}: {_preview(metadata)}")
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "id", None if id is None else str(id))
        object.__setattr__(self, "metadata", _copy_metadata(metadata))
        object.__setattr__(self, "first_stage_score", _as_score(first_stage_score, "Passage.first_stage_score"))

    @property
    def score(self) -> float | None:
        """Deprecated: :attr:`first_stage_score`."""
        warnings.warn("Passage.score is deprecated; read first_stage_score", DeprecationWarning, stacklevel=2)
        return self.first_stage_score

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {"text": self.text, "id": self.id, "metadata": _copy_metadata(self.metadata),
                "first_stage_score": self.first_stage_score}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Passage:
        """Build from :meth:`to_dict` output (the older key ``score`` is read too)."""
        return to_passage(data)


def _as_score(value: Any, what: str) -> float | None:
    """``value`` as a float, or ``None``; a clear error for anything that is not a real number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidPassageError(f"{what} must be a number or None, got {type(value).__name__}: {_preview(value)}")
    number = float(value)
    # NaN and infinities order nothing: such a passage has no usable first-stage score (and JSON has no NaN).
    return number if math.isfinite(number) else None


_TEXT_KEYS = ("text", "content", "contents", "page_content")
_ID_KEYS = ("id", "docid", "doc_id", "_id")
#: Keys a mapping's first-stage score is read from (``score``: the older spelling, and what most retrievers write).
_SCORE_KEYS = ("first_stage_score", "score")


def _preview(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def to_passage(item: Any, index: int = 0) -> Passage:
    """Convert one accepted passage form into a :class:`Passage`.

    Accepted: a ``str``; a :class:`Passage`; a mapping with a string under one of ``text``, ``content``,
    ``contents`` or ``page_content`` (plus optional ``id``/``docid``, ``first_stage_score`` (or ``score``) and
    ``metadata``).

    Raises:
        InvalidPassageError: for anything else, naming the position and what arrived.
    """
    if isinstance(item, Passage):
        return item
    if isinstance(item, str):
        return Passage(text=item)
    if isinstance(item, Mapping):
        text_key = next((k for k in _TEXT_KEYS if k in item), None)
        if text_key is None or not isinstance(item[text_key], str):
            raise InvalidPassageError(
                f"passage {index}: a mapping must hold a string under one of {list(_TEXT_KEYS)}; "
                f"got keys {sorted(map(str, item))[:8]}"
                + (f" with {text_key!r} of type {type(item[text_key]).__name__}" if text_key else "")
            )
        id_key = next((k for k in _ID_KEYS if item.get(k) is not None), None)
        score_key = next((k for k in _SCORE_KEYS if item.get(k) is not None), None)
        score: Any = item[score_key] if score_key else None
        if isinstance(score, str):  # a number written as a string in JSON ("12.5") is still that number
            try:
                score = float(score)
            except ValueError:
                pass  # reported below, with the passage's position
        try:
            return Passage(text=item[text_key], id=str(item[id_key]) if id_key else None,
                           metadata=item.get("metadata"), first_stage_score=score)
        except InvalidPassageError as exc:
            raise InvalidPassageError(f"passage {index}: {exc}") from None
    raise InvalidPassageError(
        f"passage {index}: expected a str, a Passage or a mapping with 'text'; got {type(item).__name__}: "
        f"{_preview(item)}"
    )


def to_passages(items: Sequence[Any] | Iterator[Any]) -> list[Passage]:
    """Convert a sequence of accepted passage forms (see :func:`to_passage`)."""
    if isinstance(items, (str, bytes, Mapping, Passage)):
        raise InvalidPassageError(
            f"passages must be a list of passages, got a single {type(items).__name__}; wrap it in a list"
        )
    if items is None or not isinstance(items, Iterable):
        raise InvalidPassageError(f"passages must be a list (of strings, Passage objects or dicts with 'text'), got "
                                  f"{type(items).__name__}")
    return [to_passage(item, i) for i, item in enumerate(items)]


#: Keys that :meth:`Judgment.from_dict` reads under their older names (rankings and traces stored before 0.2).
_RENAMED_JUDGMENT_KEYS = {"original_rank": "input_rank", "original_score": "first_stage_score"}


@dataclass(frozen=True)
class Judgment:
    """The student's verdict on one passage.

    Attributes:
        id: The passage id given by the caller (``None`` if it had none). Duplicate ids are kept apart;
            ``input_rank`` always identifies the input position.
        text: The passage text as given (not truncated).
        score: The score from the last cascade stage that saw this passage (higher is more relevant). Scores
            are comparable only among passages scored by the same stage (see ``stage``). With
            ``first_stage_weight=w`` it is the mix of the scorer's and the first-stage score (both standardised over
            the call's passages), the value that ordered them.
        rank: 1-based position in the reranked order.
        input_rank: 1-based position in the input.
        first_stage_score: The first-stage (retriever's) score passed in, if any.
        explanation: Why the passage is (or is not) relevant, or ``None`` when it was not explained.
        truncated: Whether the passage was cut to fit a model's token budget in any stage.
        stage: The name of the cascade stage that produced ``score``: ``"score"`` (the scorer alone),
            ``"score+first_stage"`` (the scorer mixed with ``first_stage_score``, see ``first_stage_weight``),
            ``"score+rrf"`` (fused with the input order, ``ordering="rrf"``), ``"first_stage_order"`` (left in the
            input order), ``"verdict+first_stage_order"`` / ``"verdict+rrf"`` (the verdict tiers, ``"tiers"`` /
            ``"tiers_rrf"``: ordered by verdict first, ``score`` only within a tier), ``"rescore"``, or ``"given"``
            (explained in the given order, not scored: :meth:`Reranker.explain`). See :mod:`r2r_agent.orderings`.
        metadata: The passage's metadata (a deep copy: changing it changes nothing of the caller's).
        relevance: The probability that the passage answers the query (TREC DL: label >= 2), from the student's
            calibrator; ``None`` when the student has none for its scorer (see :mod:`r2r_agent.calibration`).
        verdict: ``"relevant"``, ``"partial"`` or ``"not_relevant"``, from ``relevance`` and the calibrator's
            thresholds; ``None`` without a calibrator.
        evidence: The sentence of ``text`` that best answers the query (an exact substring of ``text``, from the
            part the scorer read), or ``None`` for a passage without any.
        evidence_span: ``(start, end)`` character offsets of ``evidence`` in ``text``.
        unsupported: Claims (numbers, quantities, dates, quoted phrases) that the explainer wrote but neither the
            query nor the passage states; the sentences holding them were dropped from ``explanation``.
        explained_by: What wrote ``explanation``: ``"lm"`` (the explainer LM's reason after the verdict, guarded)
            or ``"evidence"`` (the verdict and the evidence sentence, no LM: ``explain="evidence"``, a student
            without an explainer, an LM reason the guard emptied or that contradicted the verdict, or a spent
            ``budget_ms``); ``None`` when the passage was not explained.
    """

    id: str | None
    text: str
    score: float
    rank: int
    input_rank: int
    first_stage_score: float | None = None
    explanation: str | None = None
    truncated: bool = False
    stage: str = "score"
    metadata: Mapping[str, Any] = field(default_factory=dict)
    relevance: float | None = None
    verdict: str | None = None
    evidence: str | None = None
    evidence_span: tuple[int, int] | None = None
    unsupported: tuple[str, ...] = ()
    explained_by: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _copy_metadata(self.metadata))
        if self.evidence_span is not None:
            object.__setattr__(self, "evidence_span", tuple(self.evidence_span))
        object.__setattr__(self, "unsupported", tuple(self.unsupported))

    @property
    def original_rank(self) -> int:
        """Deprecated: :attr:`input_rank`."""
        warnings.warn("Judgment.original_rank is deprecated; read input_rank", DeprecationWarning, stacklevel=2)
        return self.input_rank

    @property
    def original_score(self) -> float | None:
        """Deprecated: :attr:`first_stage_score`."""
        warnings.warn("Judgment.original_score is deprecated; read first_stage_score", DeprecationWarning,
                      stacklevel=2)
        return self.first_stage_score

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["metadata"] = _copy_metadata(self.metadata)
        data["evidence_span"] = list(self.evidence_span) if self.evidence_span is not None else None
        data["unsupported"] = list(self.unsupported)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Judgment:
        """Build from :meth:`to_dict` output (also from the older keys ``original_rank``/``original_score``)."""
        return from_fields(cls, data, renamed=_RENAMED_JUDGMENT_KEYS)


@dataclass(frozen=True)
class StageCost:
    """What one cascade stage cost.

    Attributes:
        stage: ``"score"``, ``"rescore"`` or ``"explain"``.
        component: The model (or scorer) that ran it.
        items: How many passages it processed.
        seconds: Wall-clock seconds.
        generated_tokens: Tokens generated (explanation stages only).
        cache_hits: How many of its ``items`` were answered from a score cache instead of a model.
    """

    stage: str
    component: str
    items: int
    seconds: float
    generated_tokens: int = 0
    cache_hits: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageCost:
        """Build from :meth:`to_dict` output."""
        return from_fields(cls, data)


@dataclass(frozen=True)
class Ranking:
    """A reranked list of passages for one query, best first, with the reasons.

    Iterating yields the :class:`Judgment` objects best first; ``len()`` and indexing work as on a list.

    Attributes:
        query: The query.
        judgments: The returned judgments, best first (at most ``top_n``).
        comparison: Why the top passages are ordered as they are, or ``None``.
        model: Identifies the student (scorer and explainer models).
        adapter: The distilled adapter in use, if any.
        num_candidates: How many passages came in.
        stages: The cost of each cascade stage.
        prompt_version: The version of the prompts the student saw.
        query_truncated: Whether a model cut the query to its token budget (a very long query).
        answerable: Whether some judged passage answers the query (a ``"relevant"`` verdict among the top
            ``top_n`` considered, before ``min_relevance`` drops any); ``None`` when the student has no calibrator.
            ``False`` tells an agent that none of these passages answers: search again or say so.
    """

    query: str
    judgments: tuple[Judgment, ...] = ()
    comparison: str | None = None
    model: str = ""
    adapter: str | None = None
    num_candidates: int = 0
    stages: tuple[StageCost, ...] = ()
    prompt_version: str = ""
    query_truncated: bool = False
    answerable: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "judgments", tuple(self.judgments))
        object.__setattr__(self, "stages", tuple(self.stages))

    def __iter__(self) -> Iterator[Judgment]:
        return iter(self.judgments)

    def __len__(self) -> int:
        return len(self.judgments)

    def __getitem__(self, index: int) -> Judgment:
        return self.judgments[index]

    @property
    def seconds(self) -> float:
        """Total seconds over all stages."""
        return math.fsum(stage.seconds for stage in self.stages)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "query": self.query,
            "judgments": [j.to_dict() for j in self.judgments],
            "comparison": self.comparison,
            "model": self.model,
            "adapter": self.adapter,
            "num_candidates": self.num_candidates,
            "stages": [s.to_dict() for s in self.stages],
            "prompt_version": self.prompt_version,
            "query_truncated": self.query_truncated,
            "answerable": self.answerable,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ranking:
        """Build from :meth:`to_dict` output."""
        return cls(
            query=data["query"],
            judgments=tuple(Judgment.from_dict(j) for j in data.get("judgments", ())),
            comparison=data.get("comparison"),
            model=data.get("model", ""),
            adapter=data.get("adapter"),
            num_candidates=data.get("num_candidates", 0),
            stages=tuple(StageCost.from_dict(s) for s in data.get("stages", ())),
            prompt_version=data.get("prompt_version", ""),
            query_truncated=bool(data.get("query_truncated", False)),
            answerable=data.get("answerable"),
        )

    def to_json(self, **kwargs: Any) -> str:
        """Serialise to a JSON string (``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    @classmethod
    def from_json(cls, text: str) -> Ranking:
        """Parse :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_order(cls, query: str, passages: Sequence[Any], order: Sequence[int] | None = None,
                   scores: Sequence[float] | None = None, *, stage: str = "given", stages: Sequence[StageCost] = (),
                   model: str = "") -> Ranking:
        """A ranking of ``passages`` in an order made outside a :class:`~r2r_agent.Reranker`.

        For orders that come from elsewhere (a first stage, a teacher LLM, a cache of earlier rankings), so that
        whatever reads rankings reads these too: each judgment gets the passage's id, text, first-stage score,
        metadata and input rank, as the reranker's judgments do. No explanations.

        Args:
            query: The query.
            passages: The passages in input order (anything :func:`to_passages` accepts).
            order: 0-based indices into ``passages``, best first, each exactly once (default: the input order).
            scores: Each passage's score, in input order (default: ``n`` for the first in ``order`` down to 1).
            stage: The :attr:`Judgment.stage` of every judgment (what produced the order, e.g. ``"teacher"``).
            stages: What producing the order cost.
            model: What produced the order.

        Raises:
            InvalidInputError: when ``order`` is not a permutation of the passages' indices or ``scores`` does not
                have one number per passage.

        Example:
            >>> ranking = Ranking.from_order("q", ["a", "b", "c"], order=[2, 0, 1])
            >>> [(j.text, j.rank, j.input_rank, j.score) for j in ranking]
            [('c', 1, 3, 3.0), ('a', 2, 1, 2.0), ('b', 3, 2, 1.0)]
        """
        items = to_passages(passages)
        n = len(items)
        chosen = list(range(n)) if order is None else list(order)
        if sorted(chosen) != list(range(n)) or any(isinstance(i, bool) or not isinstance(i, int) for i in chosen):
            raise InvalidInputError(f"Ranking.from_order: order must hold each index 0..{n - 1} exactly once (one "
                                    f"per passage), got {_preview(chosen)}")
        values: list[float | None] = [0.0] * n
        if scores is None:
            for place, i in enumerate(chosen):
                values[i] = float(n - place)
        else:
            values = [_as_score(s, "Ranking.from_order: a score") for s in scores]
            if len(values) != n or any(v is None for v in values):
                raise InvalidInputError(f"Ranking.from_order: scores must hold one number per passage ({n}), got "
                                        f"{_preview(list(scores))}")
        judgments = tuple(
            Judgment(id=items[i].id, text=items[i].text, score=float(values[i] or 0.0), rank=place + 1,
                     input_rank=i + 1, first_stage_score=items[i].first_stage_score, stage=stage,
                     metadata=items[i].metadata)
            for place, i in enumerate(chosen)
        )
        return cls(query=query, judgments=judgments, model=model, num_candidates=n, stages=tuple(stages))
