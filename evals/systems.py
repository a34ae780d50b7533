"""The systems ``r2r eval`` compares, by exact name (a :class:`r2r_agent.registry.Registry`), and how they are built.

A :class:`~r2r_agent.evals.protocol.System` ranks one query's first-stage candidates and says what it cost.
:data:`SYSTEMS` maps exact names to builders (no matching on parts of names):

- ``first-stage``: the given first-stage order (BM25 for ``dl19``/``dl20``);
- ``minilm``: the bundled all-MiniLM-L6-v2 bi-encoder scores every candidate;
- ``student``: the library's default cascade, ``Reranker(Student.default(), config=...)`` with ``rescore_top``
  from ``SystemOptions.rerank`` (0, the library default: MiniLM only) and explanations off; its SmolLM2 carries the
  adapter that ships in the package;
- ``zero-shot-student``: the same cascade with the zero-shot SmolLM2 (``Student.default(adapter=None)``);
- ``zero-shot-lm``: SmolLM2-135M-Instruct's yes/no log-odds re-score the MiniLM top ``SystemOptions.lm_top``;
- ``adapter:PATH``: ``Student.from_pretrained(base, adapter=PATH)`` re-scores the MiniLM top ``lm_top``;
- ``teacher``: a teacher LLM (``SystemOptions.teacher``, any :class:`r2r_agent.training.Teacher`) reranks the
  first-stage top ``teacher_top`` listwise with sliding windows, on the first ``teacher_queries`` queries only
  (:func:`~r2r_agent.evals.protocol.query_limit`): a paid or slow teacher is not run on everything.

Every system above that runs a :class:`r2r_agent.Reranker` takes its settings from one
:class:`r2r_agent.RerankConfig`, ``SystemOptions.rerank`` (the ``r2r eval`` flags derive from its fields). Its
``first_stage_weight`` W (default 0) mixes the first-stage score into MiniLM's; with W > 0 their report names get
``+first-stage@W`` (e.g. ``minilm+first-stage@0.5``) and W is in their cache key. Its ``ordering`` other than
``"scorer"`` adds ``+rrf`` or ``+first-stage-order`` (:data:`ORDERING_TAGS`) the same way; ``r2r eval --ordering``
builds the systems under several orderings at once (:mod:`.policies`).

Systems built on a student with an explainer (``student``, ``zero-shot-student``, ``adapter:PATH``) can explain
(:func:`~r2r_agent.evals.protocol.can_explain`): ``r2r eval --explain-queries N`` also reranks N queries with them
with explanations on. Systems whose student carries the calibrator shipped for MiniLM (``student``,
``zero-shot-student``, ``minilm``) can judge (:func:`~r2r_agent.evals.protocol.can_judge`): ``r2r eval --judgments``
gives every candidate a relevance and a verdict; the calibrator's digest keys those judgments in the cache.

Models are loaded once per :class:`ModelPool` and shared by the systems built from it (MiniLM and SmolLM2 each load
once however many systems use them).

The protocol and the system classes live in :mod:`.protocol`, :mod:`.reranker_system` and :mod:`.teacher_system`,
and the result record in :mod:`.results`; all are importable from here too.

Example:
    >>> from r2r_agent.evals.records import candidate
    >>> system = build_system("first-stage", SystemOptions(), ModelPool())
    >>> system.rank("q", [candidate("d1", 2.0, "a"), candidate("d2", 1.0, "b")]).doc_ids
    ('d1', 'd2')
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2r_agent import RerankConfig
from r2r_agent.errors import InvalidInputError
from r2r_agent.registry import Entry, Registry

from .checks import check_count
from .protocol import (
    ExplainingSystem,
    FirstStageSystem,
    JudgingSystem,
    System,
    can_explain,
    can_explain_passages,
    can_judge,
    needs_texts,
    query_limit,
    system_key,
)
from .reranker_system import RerankerSystem
from .results import SystemResult
from .teacher_system import TeacherSystem

if TYPE_CHECKING:
    from r2r_agent import EncoderScorer, Reranker, Student

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------------
# Options and shared models
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemOptions:
    """Settings of the built-in systems (the ``r2r eval`` flags derive from these)."""

    rerank: RerankConfig = field(
        default_factory=RerankConfig,
        metadata={"help": "minilm, student, zero-shot-student, zero-shot-lm, adapter:PATH: the Reranker settings "
                          "(rescore_top: the student's and zero-shot-student's; rescore_weight, first_stage_weight: "
                          "all of them). Every candidate is ranked with explanations off, so top_n, explain_top and "
                          "compare_top do not apply"},
    )
    lm_top: int = field(
        default=20, metadata={"help": "zero-shot-lm and adapter:PATH: LM re-scores the MiniLM top K (≈0.2 s each)"}
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
        if not isinstance(self.rerank, RerankConfig):
            raise InvalidInputError(f"SystemOptions.rerank must be an r2r_agent.RerankConfig, got "
                                    f"{type(self.rerank).__name__}; e.g. RerankConfig(first_stage_weight=0.5).")
        check_count("SystemOptions.lm_top", self.lm_top, 0)
        for name in ("teacher_top", "teacher_queries", "teacher_window_size", "teacher_stride"):
            check_count(f"SystemOptions.{name}", getattr(self, name), optional=name == "teacher_stride")


class ModelPool:
    """Loads each embedded model once and shares it between the systems built from this pool."""

    def __init__(self) -> None:
        self._encoder: Any | None = None
        self._student: Any | None = None
        self._base_student: Any | None = None

    def encoder(self) -> EncoderScorer:
        """The bundled all-MiniLM-L6-v2 :class:`~r2r_agent.EncoderScorer` in float32 (the reference bi-encoder)."""
        if self._encoder is None:
            from r2r_agent import EncoderScorer

            self._encoder = EncoderScorer.default()
        return self._encoder

    def default_student(self) -> Student:
        """:meth:`Student.default` exactly as users get it (its MiniLM may run in bfloat16: see ``dtype="auto"``)."""
        if self._student is None:
            from r2r_agent import Student

            self._student = Student.default()
        return self._student

    def zero_shot_student(self) -> Student:
        """:meth:`Student.default` without the shipped adapter: the zero-shot SmolLM2 base."""
        if self._base_student is None:
            from r2r_agent import Student

            self._base_student = Student.default(adapter=None)
        return self._base_student


# ---------------------------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------------------------

#: ``builder(argument, options, pool) -> System``.
Builder = Callable[[str | None, SystemOptions, ModelPool], System]
#: One registry entry: the name, its argument (``PATH`` for ``adapter:PATH``), a description and the builder.
SystemSpec = Entry[Builder]

#: Every system by exact name (``','`` separates systems on the command line, so no name holds one).
SYSTEMS: Registry[Builder] = Registry("system", forbidden=",")


def register_system(name: str, builder: Builder, *, argument: str | None = None,
                    description: str = "") -> SystemSpec:
    """Add a system to :data:`SYSTEMS`.

    Raises:
        InvalidInputError: if the name is taken or contains ``':'`` or ``','`` (they separate arguments and systems).
    """
    return SYSTEMS.register(name, builder, argument=argument, description=description)


def known_systems() -> list[str]:
    """The registered systems as users write them (``"adapter:PATH"`` for those taking an argument)."""
    return SYSTEMS.usages()


def parse_system(text: str) -> tuple[SystemSpec, str | None]:
    """The entry and the argument of ``"name"`` or ``"name:ARG"`` in :data:`SYSTEMS` (exact names only), e.g.
    ``parse_system("adapter:runs/a1")`` gives the ``adapter`` entry and ``"runs/a1"``.

    Raises:
        InvalidInputError: for an unknown name (listing the known ones), a missing or unexpected argument.
    """
    return SYSTEMS.parse(text)


def build_system(text: str, options: SystemOptions | None = None, pool: ModelPool | None = None) -> System:
    """Build a system from its command-line name (see :func:`parse_system`)."""
    spec, arg = parse_system(text)
    return spec.value(arg, options or SystemOptions(), pool or ModelPool())


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


# ---------------------------------------------------------------------------------------------------------------
# The built-in systems
# ---------------------------------------------------------------------------------------------------------------


def _first_stage(arg: str | None, options: SystemOptions, pool: ModelPool) -> System:
    return FirstStageSystem()


#: How a system's report name shows an ordering other than ``"scorer"`` (:attr:`r2r_agent.RerankConfig.ordering`).
ORDERING_TAGS: Mapping[str, str] = {"rrf": "rrf", "first_stage": "first-stage-order"}


def variant(name: str, config: Mapping[str, Any], rerank: RerankConfig) -> tuple[str, dict[str, Any]]:
    """The report name and cache-key config of a system whose Reranker orders by ``rerank.ordering`` and mixes in the
    first-stage score with ``rerank.first_stage_weight``.

    With the defaults (ordering ``"scorer"``, weight 0) both stay as they were before these options existed (the
    ranking is the same bit for bit, so earlier caches stay valid). Otherwise the ordering and the weight are in the
    config (the cache key) and in the name: a fused or reordered ``minilm`` must not be reported, nor used as the
    ``minilm`` baseline, under the plain system's name.

    Example:
        >>> variant("minilm", {"model": "all-MiniLM-L6-v2"}, RerankConfig(first_stage_weight=0.5))
        ('minilm+first-stage@0.5', {'model': 'all-MiniLM-L6-v2', 'first_stage_weight': 0.5})
        >>> variant("minilm", {}, RerankConfig(ordering="rrf"))
        ('minilm+rrf', {'ordering': 'rrf'})
    """
    key = dict(config)
    if rerank.ordering != "scorer":
        name, key = f"{name}+{ORDERING_TAGS[rerank.ordering]}", {**key, "ordering": rerank.ordering}
    if rerank.first_stage_weight != 0.0:
        weight = rerank.first_stage_weight
        name, key = f"{name}+first-stage@{weight:g}", {**key, "first_stage_weight": weight}
    return name, key


def _ranking_config(options: SystemOptions, **changes: Any) -> RerankConfig:
    """``options.rerank`` for ranking every candidate with explanations off (plus ``changes``)."""
    return options.rerank.replace(top_n=None, explain_top=0, compare_top=0, **changes)


#: The bundled scorer's name (what its shipped calibrator was fitted for).
MINILM = "all-MiniLM-L6-v2"


def _calibrator_digest(scorer: str) -> str | None:
    """A short digest of the calibrator shipped for ``scorer`` (``None`` where none ships): a new calibrator means new
    judgments, so it is in their cache key (not in the ranking's, which it does not change)."""
    from r2r_agent.calibration import shipped_calibrator

    calibrator = shipped_calibrator(scorer)
    if calibrator is None:
        return None
    return hashlib.sha256(json.dumps(calibrator.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _minilm(arg: str | None, options: SystemOptions, pool: ModelPool) -> System:
    config = _ranking_config(options)

    def factory() -> Reranker:
        from r2r_agent import Reranker, Student
        from r2r_agent.calibration import shipped_calibrator

        encoder = pool.encoder()
        # The shipped calibrator only gives judgments relevance and verdicts (judge=True); the order is the scorer's.
        return Reranker(Student(scorer=encoder, name=encoder.name, calibrator=shipped_calibrator(encoder.name)),
                        config=config)

    name, key = variant("minilm", {"model": MINILM}, config)
    digest = _calibrator_digest(MINILM)
    return RerankerSystem(name, factory, key, judges=digest is not None, judge_config={"calibrator": digest})


def _cascade(name: str, make_student: Callable[[], Student], rescore_top: int, options: SystemOptions,
             config: Mapping[str, Any], *, explains: bool, calibrated: bool = False) -> System:
    """A system reranking with ``Reranker(make_student(), config=...)``, re-scoring the top ``rescore_top``.

    Its cache-key config is ``rescore_top``, ``rescore_weight`` and ``config``; the ordering and the first-stage
    weight are added to the name and the key by :func:`variant`. ``calibrated``: the student carries the calibrator
    shipped for MiniLM (as :meth:`r2r_agent.Student.default` does), so the system can judge.
    """
    settings = _ranking_config(options, rescore_top=rescore_top)

    def factory() -> Reranker:
        from r2r_agent import Reranker

        return Reranker(make_student(), config=settings)

    key = {"rescore_top": settings.rescore_top, "rescore_weight": settings.rescore_weight, **config}
    report_name, key = variant(name, key, settings)
    digest = _calibrator_digest(MINILM) if calibrated else None
    return RerankerSystem(report_name, factory, key, explains=explains, judges=digest is not None,
                          judge_config={"calibrator": digest})


def _auto_dtype() -> str:
    """What ``dtype="auto"`` resolves to here: part of the cache key, since it means different weights on different
    CPUs."""
    from r2r_agent.modeling import resolve_dtype

    return str(resolve_dtype("auto")).removeprefix("torch.")


def _student(arg: str | None, options: SystemOptions, pool: ModelPool) -> System:
    # A new adapter release changes the student, so the shipped adapter's digest is in the cache key too.
    return _cascade("student", pool.default_student, options.rerank.rescore_top, options,
                    {"dtype": _auto_dtype(), "adapter": _shipped_fingerprint()}, explains=True, calibrated=True)


def _shipped_fingerprint() -> str | None:
    """A short digest of the shipped adapter's weights (``None`` where the build ships none)."""
    from r2r_agent.default_models import shipped_adapter

    folder = shipped_adapter()
    return _adapter_fingerprint(folder) if folder is not None else None


def _adapter_fingerprint(folder: Path) -> str | None:
    """A short digest of an adapter folder's weights, so retraining into the same folder is a new cache key."""
    digest = hashlib.sha256()
    found = False
    for name in ("adapter_model.safetensors", "rank_head.safetensors"):
        if (folder / name).is_file():
            digest.update((folder / name).read_bytes())
            found = True
    return digest.hexdigest()[:16] if found else None


def _zero_shot_student(arg: str | None, options: SystemOptions, pool: ModelPool) -> System:
    return _cascade("zero-shot-student", pool.zero_shot_student, options.rerank.rescore_top, options,
                    {"dtype": _auto_dtype()}, explains=True, calibrated=True)


def _zero_shot_lm(arg: str | None, options: SystemOptions, pool: ModelPool) -> System:
    def student() -> Student:
        from r2r_agent import Student

        base = pool.zero_shot_student().rescorer
        if base is None:  # Student.default always builds one; a patched pool might not
            raise InvalidInputError("zero-shot-lm needs the zero-shot student's LM re-scorer, but it has none.")
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

    def student() -> Student:
        from r2r_agent import Student
        from r2r_agent.default_models import prepare_smollm2

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


register_system("first-stage", _first_stage, description="the first-stage order as given (BM25 for dl19/dl20)")
register_system("minilm", _minilm, description="the bundled all-MiniLM-L6-v2 bi-encoder scores every candidate")
register_system("student", _student,
                description="Reranker(Student.default(), rescore_top=--rescore-top), explanations off")
register_system("zero-shot-student", _zero_shot_student,
                description="the student cascade without the shipped adapter (zero-shot SmolLM2 explainer)")
register_system("zero-shot-lm", _zero_shot_lm,
                description="SmolLM2-135M-Instruct yes/no log-odds re-score the MiniLM top --lm-top")
register_system("adapter", _adapter, argument="PATH",
                description="Student.from_pretrained(--base-model, adapter=PATH) re-scores the MiniLM top --lm-top")
register_system("teacher", _teacher, description="a teacher LLM (--teacher) reranks the first-stage top --teacher-top "
                "listwise, on the first --teacher-queries queries only")

__all__ = ["ORDERING_TAGS", "SYSTEMS", "Builder", "ExplainingSystem", "FirstStageSystem", "JudgingSystem", "ModelPool",
           "RerankerSystem", "System", "SystemOptions", "SystemResult", "SystemSpec", "TeacherSystem", "build_system",
           "build_systems", "can_explain", "can_explain_passages", "can_judge", "known_systems", "needs_texts",
           "parse_system", "query_limit", "register_system", "system_key", "variant"]
