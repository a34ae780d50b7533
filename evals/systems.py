"""Ranking systems compared by ``r2r eval``: a small protocol and an explicit registry of system names.

A :class:`System` ranks one query's first-stage candidates and says what it cost. The registry maps exact names to
builders (no matching on parts of names):

- ``first-stage``: the given first-stage order (BM25 for ``dl19``/``dl20``);
- ``minilm``: the bundled all-MiniLM-L6-v2 bi-encoder scores every candidate;
- ``student``: the library's default cascade, ``Reranker(Student.default(), rescore_top=K)`` with
  ``K = SystemOptions.student_rescore_top`` (0, the library default: MiniLM only) and explanations off; its
  SmolLM2 carries the adapter that ships in the package;
- ``zero-shot-student``: the same cascade with the zero-shot SmolLM2 (``Student.default(adapter=None)``);
- ``zero-shot-lm``: SmolLM2-135M-Instruct's yes/no log-odds re-score the MiniLM top ``SystemOptions.lm_top``;
- ``adapter:PATH``: ``Student.from_pretrained(base, adapter=PATH)`` re-scores the MiniLM top ``lm_top``;
- ``SystemOptions.first_stage_weight`` (``r2r eval --first-stage-weight W``, default 0) mixes the first-stage score
  into MiniLM's in every system above that runs a :class:`r2r_agent.Reranker` (``Reranker(first_stage_weight=W)``);
  with W > 0 their report names get ``+first-stage@W`` (e.g. ``minilm+first-stage@0.5``) and W is in their cache
  key;
- ``teacher``: a teacher LLM (``SystemOptions.teacher``, any :class:`r2r_agent.training.Teacher`) reranks the
  first-stage top ``teacher_top`` listwise with sliding windows, on the first ``teacher_queries`` queries only
  (:func:`query_limit`): a paid or slow teacher is not run on everything.

Systems built on a student with an explainer (``student``, ``zero-shot-student``, ``adapter:PATH``) are
:class:`ExplainingSystem` s (:func:`can_explain`): ``r2r eval --explain-queries N`` also reranks N queries with them
with explanations on.

Models are loaded once per :class:`ModelPool` and shared by the systems built from it (MiniLM and SmolLM2 each load
once however many systems use them).

Example:
    >>> pool = ModelPool()
    >>> system = build_system("first-stage", SystemOptions(), pool)
    >>> system.rank("q", [Candidate("d1", 2.0, "a"), Candidate("d2", 1.0, "b")]).doc_ids
    ('d1', 'd2')
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from r2r_agent.errors import InvalidInputError
from r2r_agent.types import StageCost

from .records import Candidate

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------------
# Results and the protocol
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemResult:
    """One query ranked by one system.

    Attributes:
        doc_ids: Every candidate's doc id, best first.
        scores: The system's own score of each, in the same order. Scores of different cascade stages are not
            comparable (a re-scored head and the tail use different models), so metrics use the order, not these.
        seconds: Wall-clock seconds spent ranking this query (model loading excluded).
        passages: Passages run through a model (all stages); 0 for the first-stage order.
        generated_tokens: Tokens generated (0 for ranking-only systems).
        stages: The cost of each cascade stage, where the system reports them.
        by_score: The scores alone define the order (one model scored every candidate, as in a first stage):
            metrics then sort by score with trec_eval's tie-breaking. Otherwise the order of ``doc_ids`` counts.
        failures: Units of work that failed and fell back to the input order (e.g. teacher windows whose answer
            could not be parsed); 0 when everything worked.
    """

    doc_ids: tuple[str, ...]
    scores: tuple[float, ...]
    seconds: float
    passages: int = 0
    generated_tokens: int = 0
    stages: tuple[StageCost, ...] = ()
    by_score: bool = False
    failures: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "doc_ids", tuple(self.doc_ids))
        object.__setattr__(self, "scores", tuple(float(s) for s in self.scores))
        object.__setattr__(self, "stages", tuple(self.stages))
        if len(self.doc_ids) != len(self.scores):
            raise InvalidInputError(
                f"SystemResult: {len(self.doc_ids)} doc ids but {len(self.scores)} scores; give one score per id."
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "doc_ids": list(self.doc_ids),
            "scores": list(self.scores),
            "seconds": self.seconds,
            "passages": self.passages,
            "generated_tokens": self.generated_tokens,
            "stages": [s.to_dict() for s in self.stages],
            "by_score": self.by_score,
            "failures": self.failures,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SystemResult:
        """Build from :meth:`to_dict` output."""
        return cls(
            doc_ids=tuple(data["doc_ids"]),
            scores=tuple(data["scores"]),
            seconds=float(data["seconds"]),
            passages=int(data.get("passages", 0)),
            generated_tokens=int(data.get("generated_tokens", 0)),
            stages=tuple(StageCost.from_dict(s) for s in data.get("stages", ())),
            by_score=bool(data.get("by_score", False)),
            failures=int(data.get("failures", 0)),
        )


@runtime_checkable
class System(Protocol):
    """Ranks one query's candidates.

    A system may also declare ``query_limit: int | None``: it ranks only the first N queries of each dataset
    (:func:`query_limit`; the ``teacher`` system does), and its means and paired tests are over those queries.

    Attributes:
        name: The name shown in reports (e.g. ``"minilm"``, ``"adapter:runs/a1"``).
        config: The settings that change its output (e.g. ``{"rescore_top": 20}``); part of the cache key, so a
            changed setting is never served stale cached results.
    """

    name: str
    config: Mapping[str, Any]

    def rank(self, query: str, candidates: Sequence[Candidate]) -> SystemResult:
        """Rank ``candidates`` (first-stage order) for ``query``; every candidate comes back once."""
        ...


def query_limit(system: System) -> int | None:
    """The number of queries per dataset ``system`` declares it ranks (``None``: all of them).

    Example:
        >>> query_limit(FirstStageSystem()) is None
        True
    """
    limit = getattr(system, "query_limit", None)
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInputError(f"System {system.name!r}: query_limit must be an int >= 1 or None, got {limit!r}.")
    return limit


def system_key(system: System) -> str:
    """The cache key of a system: its name and its config, e.g. ``'zero-shot-lm {"rescore_top": 10}'``."""
    return f"{system.name} {json.dumps(dict(system.config), sort_keys=True)}"


# ---------------------------------------------------------------------------------------------------------------
# Implementations
# ---------------------------------------------------------------------------------------------------------------


class FirstStageSystem:
    """The first-stage order itself: the baseline every reranker is compared with."""

    def __init__(self, name: str = "first-stage") -> None:
        self.name = name
        self.config: Mapping[str, Any] = {}

    def rank(self, query: str, candidates: Sequence[Candidate]) -> SystemResult:
        """Return the candidates in the order given."""
        start = time.perf_counter()
        ids = tuple(c.docid for c in candidates)
        scores = tuple(c.score for c in candidates)
        return SystemResult(ids, scores, time.perf_counter() - start, by_score=True)


@runtime_checkable
class ExplainingSystem(System, Protocol):
    """A :class:`System` that can also rerank with explanations on (for the explanation-quality measures).

    Attributes:
        explains: Whether :meth:`explain` works (declared when the system is built, so checking loads nothing).
    """

    explains: bool

    def explain(self, query: str, candidates: Sequence[Candidate], explain_top: int) -> Any:
        """Rerank with direct explanations of the top ``explain_top`` (no comparison); an
        :class:`r2r_agent.Ranking` of the top ``explain_top`` judgments."""
        ...


def can_explain(system: System) -> bool:
    """Whether ``system`` declares it can explain (see :class:`ExplainingSystem`)."""
    return bool(getattr(system, "explains", False)) and callable(getattr(system, "explain", None))


def can_explain_passages(system: System) -> bool:
    """Whether ``system`` can explain given passages directly (``explain_passages``, for teacher agreement)."""
    return can_explain(system) and callable(getattr(system, "explain_passages", None))


class RerankerSystem:
    """A system that runs an :class:`r2r_agent.Reranker` (built on first use) with explanations off.

    Args:
        name: The report name.
        factory: Builds the reranker (called once, on the first query, so merely listing a system loads nothing).
        config: The settings that change its output (see :class:`System`).
        explains: Whether the reranker's student has an explainer, so :meth:`explain` can be used.
    """

    def __init__(self, name: str, factory: Callable[[], Any], config: Mapping[str, Any] | None = None, *,
                 explains: bool = False) -> None:
        self.name = name
        self.config: Mapping[str, Any] = dict(config or {})
        self.explains = explains
        self._factory = factory
        self._reranker: Any | None = None
        self.load_seconds: float | None = None

    @property
    def reranker(self) -> Any:
        """The reranker, built on first access (its build time is :attr:`load_seconds`)."""
        if self._reranker is None:
            start = time.perf_counter()
            self._reranker = self._factory()
            self.load_seconds = time.perf_counter() - start
            logger.info("%s: loaded in %.1f s", self.name, self.load_seconds)
        return self._reranker

    def rank(self, query: str, candidates: Sequence[Candidate]) -> SystemResult:
        """Rerank all candidates; no explanations (``explain_top=0, compare_top=0``)."""
        from r2r_agent.types import Passage

        missing = [c.docid for c in candidates if c.text is None]
        if missing:
            raise InvalidInputError(
                f"System {self.name!r} needs passage texts, but {len(missing)} candidates have none (e.g. "
                f"{missing[:3]}). For BRIGHT pass a local copy of xlangai/BRIGHT (--bright-dir); only 'first-stage' "
                "runs without texts."
            )
        reranker = self.reranker
        passages = [Passage(c.text or "", id=c.docid, first_stage_score=c.score) for c in candidates]
        start = time.perf_counter()
        ranking = reranker.rerank(query, passages, explain_top=0, compare_top=0)
        seconds = time.perf_counter() - start
        return SystemResult(
            doc_ids=tuple(j.id or "" for j in ranking),
            scores=tuple(j.score for j in ranking),
            seconds=seconds,
            passages=sum(s.items for s in ranking.stages),
            generated_tokens=sum(s.generated_tokens for s in ranking.stages),
            stages=ranking.stages,
        )

    def explain(self, query: str, candidates: Sequence[Candidate], explain_top: int) -> Any:
        """Rerank with direct explanations of the top ``explain_top`` (``compare_top=0``).

        Returns:
            The :class:`r2r_agent.Ranking` of the top ``explain_top`` judgments (their passage texts included).

        Raises:
            InvalidInputError: when the system was not built to explain, its student turns out to have no
                explainer, or candidates have no texts.
        """
        from r2r_agent.types import Passage

        if not self.explains:
            raise InvalidInputError(
                f"System {self.name!r} was built without explanations; only systems whose student has an explainer "
                "(e.g. 'student', 'adapter:PATH') can be asked to explain."
            )
        missing = [c.docid for c in candidates if c.text is None]
        if missing:
            raise InvalidInputError(
                f"System {self.name!r} needs passage texts to explain, but {len(missing)} candidates have none "
                f"(e.g. {missing[:3]})."
            )
        reranker = self.reranker
        if getattr(reranker.student, "explainer", None) is None:
            raise InvalidInputError(
                f"System {self.name!r} declared it explains, but its student has no explainer; build it with one "
                "or with explains=False."
            )
        passages = [Passage(c.text or "", id=c.docid, first_stage_score=c.score) for c in candidates]
        return reranker.rerank(query, passages, top_n=explain_top, explain_top=explain_top, compare_top=0)

    def explain_passages(self, query: str, passages: Sequence[Any]) -> Any:
        """Direct explanations of ``passages`` by the student's explainer alone, in the given order (no scoring).

        Used to compare the student's explanations with a teacher's on the same passages
        (:mod:`r2r_agent.evals.teacher_agreement`).

        Args:
            query: The query.
            passages: :class:`r2r_agent.Passage` objects (or anything :func:`r2r_agent.types.to_passages` takes).

        Returns:
            An :class:`r2r_agent.Ranking` with one judgment per passage in input order (``rank == input_rank``,
            score 0), each with its explanation, and the explanation stage's cost.

        Raises:
            InvalidInputError: when the system was not built to explain or its student has no explainer.
        """
        if not self.explains:
            raise InvalidInputError(
                f"System {self.name!r} was built without explanations; only systems whose student has an explainer "
                "(e.g. 'student', 'adapter:PATH') can explain passages."
            )
        if getattr(self.reranker.student, "explainer", None) is None:
            raise InvalidInputError(f"System {self.name!r} declared it explains, but its student has no explainer.")
        return self.reranker.explain(query, passages, compare_top=0)


class TeacherSystem:
    """A teacher LLM reranks the first-stage top ``top`` listwise; the rest keeps the first-stage order.

    The head is ranked with sliding windows back to front (:func:`r2r_agent.training.annotate_query`, the same
    windows and prompt as ``r2r teach``). A window whose answer cannot be parsed after ``max_attempts`` calls keeps
    its passages in their current order and is counted in :attr:`SystemResult.failures`. Only the first
    ``query_limit`` queries of each dataset are ranked (see :func:`query_limit`).

    Args:
        teacher: Any :class:`r2r_agent.training.Teacher` (``name`` + ``complete(messages)``); its name is part of
            the cache key.
        top: Candidates the teacher reranks per query.
        window_size: Passages per teacher call.
        stride: How far each window moves towards the top (default: half the window, as RankGPT).
        max_attempts: Teacher calls per window at most.
        query_limit: Queries per dataset ranked (the first ones).
        name: The report name.
    """

    def __init__(self, teacher: Any, *, top: int = 20, window_size: int = 20, stride: int | None = None,
                 max_attempts: int = 2, query_limit: int = 10, name: str = "teacher") -> None:
        if stride is None:
            stride = max(1, window_size // 2) if isinstance(window_size, int) else window_size
        for label, value in (("top", top), ("window_size", window_size), ("stride", stride),
                             ("max_attempts", max_attempts), ("query_limit", query_limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"TeacherSystem: {label} must be an int >= 1, got {value!r}.")
        if stride > window_size:
            raise InvalidInputError(f"TeacherSystem: stride ({stride}) must not exceed window_size ({window_size}); "
                                    "a larger stride would skip passages.")
        if not isinstance(getattr(teacher, "name", None), str) or not callable(getattr(teacher, "complete", None)):
            raise InvalidInputError(f"TeacherSystem needs a teacher with a name and complete(messages), got "
                                    f"{type(teacher).__name__}.")
        from r2r_agent.prompts import PROMPT_VERSION

        self.name = name
        self.teacher = teacher
        self.top = top
        self.window_size = window_size
        self.stride = stride
        self.max_attempts = max_attempts
        self.query_limit = query_limit
        # Everything that changes the teacher's answers; query_limit only picks queries, so it is not here.
        self.config: Mapping[str, Any] = {"teacher": teacher.name, "top": top, "window_size": window_size,
                                          "stride": stride, "max_attempts": max_attempts,
                                          "prompt_version": PROMPT_VERSION}
        self.load_seconds: float | None = None

    def rank(self, query: str, candidates: Sequence[Candidate]) -> SystemResult:
        """Rerank the top ``top`` candidates with the teacher; the rest follow in first-stage order."""
        # Imported here: evals and training both sit above the core, and only this system needs training.
        from r2r_agent.training.annotate import AnnotationConfig, annotate_query
        from r2r_agent.types import Passage

        head = list(candidates[: self.top])
        missing = [c.docid for c in head if c.text is None]
        if missing:
            raise InvalidInputError(
                f"System {self.name!r} needs passage texts, but {len(missing)} candidates have none (e.g. "
                f"{missing[:3]}). For BRIGHT pass a local copy of xlangai/BRIGHT (--bright-dir)."
            )
        load = getattr(self.teacher, "load", None)
        if self.load_seconds is None and callable(load):  # a local model loads once, outside the per-query time
            started = time.perf_counter()
            load()
            self.load_seconds = time.perf_counter() - started
        config = AnnotationConfig(window_size=self.window_size, stride=self.stride, max_attempts=self.max_attempts,
                                  require_reasons=False)  # only the ranking is used here
        start = time.perf_counter()
        annotation = annotate_query(self.teacher, query, [Passage(c.text or "", id=c.docid, first_stage_score=c.score)
                                                          for c in head], query_id="", config=config)
        seconds = time.perf_counter() - start
        order = [head[i] for i in annotation.order] + list(candidates[self.top :])
        shown = sum(len(w.positions) for w in annotation.windows)
        failures = len(annotation.failures)
        if failures:
            logger.warning("%s: %d of %d teacher windows failed for query %r (kept their order): %s", self.name,
                           failures, len(annotation.windows), query[:60], annotation.failures[0].error)
        return SystemResult(
            doc_ids=tuple(c.docid for c in order),
            scores=tuple(float(len(order) - r) for r in range(len(order))),
            seconds=seconds,
            passages=shown,
            stages=(StageCost("teacher", self.teacher.name, shown, seconds),),
            failures=failures,
        )


# ---------------------------------------------------------------------------------------------------------------
# Options, shared models and the registry
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemOptions:
    """Settings of the built-in systems (the ``r2r eval`` flags derive from these)."""

    student_rescore_top: int = field(
        default=0, metadata={"help": "student: re-score the top K with SmolLM2 (default 0, the library default)"}
    )
    lm_top: int = field(
        default=20, metadata={"help": "zero-shot-lm and adapter:PATH: LM re-scores the MiniLM top K (≈0.2 s each)"}
    )
    rescore_weight: float = field(
        default=1.0, metadata={"help": "student, zero-shot-lm, adapter:PATH: weight of the LM score in the re-scored "
                                       "top, mixed with MiniLM's (see Reranker.rescore_weight)"}
    )
    first_stage_weight: float = field(
        default=0.0, metadata={"help": "minilm, student, zero-shot-student, zero-shot-lm, adapter:PATH: weight of the "
                                       "first-stage score mixed with MiniLM's over all candidates (see "
                                       "Reranker.first_stage_weight; 0: MiniLM alone)"}
    )
    base_model: str | None = field(
        default=None,
        metadata={"help": "adapter:PATH: the base model folder (default: the embedded SmolLM2 copy)"},
    )
    teacher: Any = field(
        default=None,
        metadata={"help": "teacher: the teacher (any r2r_agent.training.Teacher; on the command line --teacher)"},
    )
    teacher_top: int = field(default=20, metadata={"help": "teacher: candidates reranked per query"})
    teacher_queries: int = field(default=10, metadata={"help": "teacher: only the first N queries of each dataset"})
    teacher_window_size: int = field(default=20, metadata={"help": "teacher: passages per teacher call"})
    teacher_stride: int | None = field(
        default=None, metadata={"help": "teacher: how far each window moves to the top (default: half the window)"}
    )

    def __post_init__(self) -> None:
        for name in ("student_rescore_top", "lm_top"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"SystemOptions.{name} must be an int >= 0, got {value!r}.")
        for name in ("rescore_weight", "first_stage_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"SystemOptions.{name} must be a number in [0, 1], got {value!r}.")
        for name in ("teacher_top", "teacher_queries", "teacher_window_size", "teacher_stride"):
            value = getattr(self, name)
            if value is None and name == "teacher_stride":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"SystemOptions.{name} must be an int >= 1, got {value!r}.")


class ModelPool:
    """Loads each embedded model once and shares it between the systems built from this pool."""

    def __init__(self) -> None:
        self._encoder: Any | None = None
        self._student: Any | None = None
        self._base_student: Any | None = None

    def encoder(self) -> Any:
        """The bundled all-MiniLM-L6-v2 :class:`~r2r_agent.EncoderScorer` in float32 (the reference bi-encoder)."""
        if self._encoder is None:
            from r2r_agent.scorers import EncoderScorer

            self._encoder = EncoderScorer.default()
        return self._encoder

    def default_student(self) -> Any:
        """:meth:`Student.default` exactly as users get it (its MiniLM may run in bfloat16: see ``dtype="auto"``)."""
        if self._student is None:
            from r2r_agent.student import Student

            self._student = Student.default()
        return self._student

    def zero_shot_student(self) -> Any:
        """:meth:`Student.default` without the shipped adapter: the zero-shot SmolLM2 base."""
        if self._base_student is None:
            from r2r_agent.student import Student

            self._base_student = Student.default(adapter=None)
        return self._base_student


Builder = Callable[[str | None, SystemOptions, ModelPool], System]


@dataclass(frozen=True)
class SystemSpec:
    """One registry entry.

    Attributes:
        name: The exact name users pass (``--systems``).
        description: One line for listings and reports.
        builder: ``builder(argument, options, pool) -> System``.
        argument: The name of the argument after ``name:`` (e.g. ``"PATH"``), or ``None`` when it takes none.
    """

    name: str
    description: str
    builder: Builder
    argument: str | None = None

    @property
    def usage(self) -> str:
        """How to name it on the command line (``"adapter:PATH"``)."""
        return f"{self.name}:{self.argument}" if self.argument else self.name


_REGISTRY: dict[str, SystemSpec] = {}


def register_system(spec: SystemSpec) -> None:
    """Add a system to the registry.

    Raises:
        InvalidInputError: if the name is taken or contains ``':'`` or ``','`` (they separate arguments and systems).
    """
    if spec.name in _REGISTRY:
        raise InvalidInputError(f"System {spec.name!r} is already registered; pick another name.")
    if not spec.name or ":" in spec.name or "," in spec.name:
        raise InvalidInputError(f"A system name must be non-empty without ':' or ',', got {spec.name!r}.")
    _REGISTRY[spec.name] = spec


def known_systems() -> list[str]:
    """The registered systems as users write them (``"adapter:PATH"`` for those taking an argument)."""
    return [spec.usage for spec in _REGISTRY.values()]


def parse_system(text: str) -> tuple[SystemSpec, str | None]:
    """Split ``"name"`` or ``"name:ARG"`` and look the name up (exactly).

    Raises:
        InvalidInputError: for an unknown name (listing the known ones), a missing or unexpected argument.

    Example:
        >>> spec, arg = parse_system("adapter:runs/a1")
        >>> spec.name, arg
        ('adapter', 'runs/a1')
    """
    name, sep, arg = text.strip().partition(":")
    spec = _REGISTRY.get(name)
    if spec is None:
        raise InvalidInputError(f"Unknown system {text!r}. Known systems: {', '.join(known_systems())}.")
    if spec.argument and not arg:
        raise InvalidInputError(f"System {name!r} needs an argument: write {spec.usage}, got {text!r}.")
    if not spec.argument and sep:
        raise InvalidInputError(f"System {name!r} takes no argument; write {name!r}, got {text!r}.")
    return spec, (arg or None)


def build_system(text: str, options: SystemOptions | None = None, pool: ModelPool | None = None) -> System:
    """Build a system from its command-line name (see :func:`parse_system`)."""
    spec, arg = parse_system(text)
    return spec.builder(arg, options or SystemOptions(), pool or ModelPool())


def build_systems(names: Sequence[str], options: SystemOptions | None = None,
                  pool: ModelPool | None = None) -> list[System]:
    """Build several systems sharing one :class:`ModelPool`.

    Raises:
        InvalidInputError: for an unknown name, or the same system named twice.
    """
    seen = [n.strip() for n in names if n.strip()]
    dups = sorted({n for n in seen if seen.count(n) > 1})
    if dups:
        raise InvalidInputError(f"Systems named more than once: {dups}; name each once.")
    if not seen:
        raise InvalidInputError(f"No systems given. Known systems: {', '.join(known_systems())}.")
    options = options or SystemOptions()
    pool = pool or ModelPool()
    return [build_system(n, options, pool) for n in seen]


def _first_stage(arg: str | None, options: SystemOptions, pool: ModelPool) -> System:
    return FirstStageSystem()


def _fused(name: str, config: Mapping[str, Any], first_stage_weight: float) -> tuple[str, dict[str, Any]]:
    """The report name and cache-key config of a system whose Reranker mixes in the first-stage score.

    With weight 0 both stay as they were before the option existed (the ranking is the same bit for bit, so earlier
    caches stay valid). Otherwise the weight is in the config (the cache key) and in the name: a fused ``minilm``
    must not be reported, nor used as the ``minilm`` baseline, under the plain system's name.

    Example:
        >>> _fused("minilm", {"model": "all-MiniLM-L6-v2"}, 0.5)
        ('minilm+first-stage@0.5', {'model': 'all-MiniLM-L6-v2', 'first_stage_weight': 0.5})
    """
    if first_stage_weight == 0.0:
        return name, dict(config)
    return f"{name}+first-stage@{first_stage_weight:g}", {**config, "first_stage_weight": first_stage_weight}


def _minilm(arg: str | None, options: SystemOptions, pool: ModelPool) -> System:
    fw = options.first_stage_weight

    def factory() -> Any:
        from r2r_agent.reranker import Reranker
        from r2r_agent.student import Student

        encoder = pool.encoder()
        return Reranker(Student(scorer=encoder, name=encoder.name), first_stage_weight=fw, explain_top=0,
                        compare_top=0)

    name, config = _fused("minilm", {"model": "all-MiniLM-L6-v2"}, fw)
    return RerankerSystem(name, factory, config)


def _cascade(name: str, make_student: Callable[[], Any], rescore_top: int, options: SystemOptions,
             config: Mapping[str, Any], *, explains: bool) -> System:
    """A system reranking with ``Reranker(make_student(), rescore_top=...)``, explanations off.

    Its cache-key config is ``rescore_top``, ``rescore_weight`` and ``config``; the first-stage weight is added to
    the name and the key by :func:`_fused`.
    """
    w, fw = options.rescore_weight, options.first_stage_weight

    def factory() -> Any:
        from r2r_agent.reranker import Reranker

        return Reranker(make_student(), rescore_top=rescore_top, rescore_weight=w, first_stage_weight=fw,
                        explain_top=0, compare_top=0)

    name, key = _fused(name, {"rescore_top": rescore_top, "rescore_weight": w, **config}, fw)
    return RerankerSystem(name, factory, key, explains=explains)


def _auto_dtype() -> str:
    """What ``dtype="auto"`` resolves to here: part of the cache key, since it means different weights on different
    CPUs."""
    from r2r_agent.modeling import resolve_dtype

    return str(resolve_dtype("auto")).removeprefix("torch.")


def _student(arg: str | None, options: SystemOptions, pool: ModelPool) -> System:
    # A new adapter release changes the student, so the shipped adapter's digest is in the cache key too.
    return _cascade("student", pool.default_student, options.student_rescore_top, options,
                    {"dtype": _auto_dtype(), "adapter": _shipped_fingerprint()}, explains=True)


def _shipped_fingerprint() -> str | None:
    """A short digest of the shipped adapter's weights (``None`` where the build ships none)."""
    from r2r_agent.default_models import shipped_adapter

    folder = shipped_adapter()
    return _adapter_fingerprint(folder) if folder is not None else None


def _adapter_fingerprint(folder: Path) -> str | None:
    """A short digest of an adapter folder's weights, so retraining into the same folder is a new cache key."""
    import hashlib

    digest = hashlib.sha256()
    found = False
    for name in ("adapter_model.safetensors", "rank_head.safetensors"):
        if (folder / name).is_file():
            digest.update((folder / name).read_bytes())
            found = True
    return digest.hexdigest()[:16] if found else None


def _zero_shot_student(arg: str | None, options: SystemOptions, pool: ModelPool) -> System:
    return _cascade("zero-shot-student", pool.zero_shot_student, options.student_rescore_top, options,
                    {"dtype": _auto_dtype()}, explains=True)


def _zero_shot_lm(arg: str | None, options: SystemOptions, pool: ModelPool) -> System:
    def student() -> Any:
        from r2r_agent.student import Student

        base = pool.zero_shot_student().rescorer
        return Student(scorer=pool.encoder(), rescorer=base, name=f"{pool.encoder().name} + {base.name} (LM re-scorer)")

    return _cascade("zero-shot-lm", student, options.lm_top, options, {}, explains=False)


def _adapter(arg: str | None, options: SystemOptions, pool: ModelPool) -> System:
    path = Path(str(arg))
    if not path.is_dir():
        raise InvalidInputError(
            f"adapter:PATH needs a distilled adapter folder (from `r2r distill`), got {str(path)!r}, which is not "
            "a folder."
        )
    base = options.base_model

    def student() -> Any:
        from r2r_agent.default_models import prepare_smollm2
        from r2r_agent.student import Student

        model = base if base is not None else prepare_smollm2()
        distilled = Student.from_pretrained(model, adapter=path)
        return Student(scorer=pool.encoder(), rescorer=distilled.scorer, explainer=distilled.explainer,
                       name=f"minilm + {distilled.name}", adapter=str(path))

    return _cascade(f"adapter:{arg}", student, options.lm_top, options,
                    {"base_model": base, "adapter": str(path.resolve()), "weights": _adapter_fingerprint(path)},
                    explains=True)


def _teacher(arg: str | None, options: SystemOptions, pool: ModelPool) -> System:
    if options.teacher is None:
        raise InvalidInputError(
            "System 'teacher' needs a teacher: on the command line pass --teacher openai:MODEL --teacher-url URL or "
            "--teacher transformers:PATH (as for `r2r teach`); in Python, SystemOptions(teacher=...)."
        )
    return TeacherSystem(options.teacher, top=options.teacher_top, window_size=options.teacher_window_size,
                         stride=options.teacher_stride, query_limit=options.teacher_queries)


for _spec in (
    SystemSpec("first-stage", "the first-stage order as given (BM25 for dl19/dl20)", _first_stage),
    SystemSpec("minilm", "the bundled all-MiniLM-L6-v2 bi-encoder scores every candidate", _minilm),
    SystemSpec("student", "Reranker(Student.default(), rescore_top=--rescore-top), explanations off", _student),
    SystemSpec("zero-shot-student", "the student cascade without the shipped adapter (zero-shot SmolLM2 explainer)",
               _zero_shot_student),
    SystemSpec("zero-shot-lm", "SmolLM2-135M-Instruct yes/no log-odds re-score the MiniLM top --lm-top",
               _zero_shot_lm),
    SystemSpec("adapter", "Student.from_pretrained(--base-model, adapter=PATH) re-scores the MiniLM top --lm-top",
               _adapter, argument="PATH"),
    SystemSpec("teacher", "a teacher LLM (--teacher) reranks the first-stage top --teacher-top listwise, on the first "
               "--teacher-queries queries only", _teacher),
):
    register_system(_spec)
