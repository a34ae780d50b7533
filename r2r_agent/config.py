"""The per-call settings of a rerank: one frozen :class:`RerankConfig`, declared, documented and checked here only.

Everything that holds rerank settings holds one of these: the :class:`~r2r_agent.Reranker` (its defaults), each call
(``rerank(..., top_n=3)`` or ``config=``), the LlamaIndex and LangChain adapters and the agent tools; the ``r2r``
command-line flags are derived from its fields (:func:`r2r_agent.cli_flags.add_config_arguments`). A new setting is a
new field here (with its ``help`` and its check) plus the code that uses it.

Example:
    >>> config = RerankConfig(top_n=5)
    >>> config.replace(explain_top=2).explain_top
    2
    >>> RerankConfig().replace(topn=2)
    Traceback (most recent call last):
    ...
    r2r_agent.errors.InvalidInputError: RerankConfig has no setting 'topn' (did you mean 'top_n'?); ...
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from . import orderings
from .errors import InvalidInputError
from .orderings import FIRST_STAGE_ORDER, FUSED_STAGE, RRF_STAGE


def _count(minimum: int, *, optional: bool = False) -> Any:
    """A check for an int >= ``minimum`` (or ``None`` when ``optional``)."""

    def check(name: str, value: Any) -> str | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            return f"an int >= {minimum}" + (" or None" if optional else "")
        return None

    return check


def _unit(*, optional: bool = False) -> Any:
    """A check for a number in [0, 1] (or ``None`` when ``optional``)."""

    def check(name: str, value: Any) -> str | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            return "a number in [0, 1]" + (" or None" if optional else "")
        return None

    return check


def _flag() -> Any:
    """A check for a bool."""

    def check(name: str, value: Any) -> str | None:
        return None if isinstance(value, bool) else "True or False"

    return check


def _choice(options: tuple[str, ...] | Callable[[], tuple[str, ...]]) -> Any:
    """A check for one of ``options`` (or of what ``options()`` lists when the check runs: a registry's names)."""

    def check(name: str, value: Any) -> str | None:
        known = options() if callable(options) else options
        return None if value in known else f"one of {', '.join(map(repr, known))}"

    return check


#: ``RerankConfig.ordering``: how passages are ordered; the names of :data:`r2r_agent.orderings.REGISTRY` (one
#: class each), as registered when this module was imported (the setting's check reads the registry itself).
ORDERINGS = orderings.names()
#: ``RerankConfig.explain``: how explanations are made.
EXPLAIN_MODES = ("evidence", "full")
#: ``RerankConfig.comparison``: how the comparison is made.
COMPARISON_MODES = ("grounded", "lm")


def setting(default: Any, help: str, check: Any, metavar: str = "N") -> Any:
    """A :class:`RerankConfig` field: its default, its help text and metavar (the CLI flag's) and its check."""
    return field(default=default, metadata={"help": help, "check": check, "metavar": metavar})


@dataclass(frozen=True)
class RerankConfig:
    """How one rerank call runs. Every field has a default; all are checked on construction.

    Attributes:
        top_n: How many judgments to return, best first (``None``: all).
        explain_top: How many of the top passages get a direct explanation (0: none).
        compare_top: How many top passages the comparison explanation covers (below 2: no comparison).
        rescore_top: How many top passages the student's LM re-scorer re-scores (0: off; needs a re-scorer).
        rescore_weight: Weight of the re-scorer in the re-scored top: ``1.0`` orders it by the re-scorer alone,
            below 1 by ``(1 - w) * z(scorer) + w * z(re-scorer)`` (:func:`r2r_agent.reranker.mix_scores`).
        first_stage_weight: Weight of each passage's first-stage (retriever) score,
            :attr:`Passage.first_stage_score`, mixed with the scorer's over all passages: 0 orders by the scorer
            alone, 1 keeps the retriever's order (see :class:`~r2r_agent.Reranker`).
        ordering: ``"scorer"``: by the student's score (mixed with the first-stage score when
            ``first_stage_weight > 0``); ``"rrf"``: by reciprocal-rank fusion of the input order (the retriever's)
            and the scorer's order, which needs no retriever score; ``"first_stage"``: the input order is kept and
            the student only judges and explains; ``"tiers"``: every ``relevant`` passage, then every ``partial``
            one, then the ``not_relevant`` ones, each tier in the input order (the judging stage then runs on every
            passage, whatever ``judge`` says); ``"tiers_rrf"``: the same tiers, fusion within. One class each in
            :mod:`r2r_agent.orderings`.
        judge: Give each returned passage its evidence, relevance and verdict (scores its sentences with the scorer:
            cheap for a few returned passages, more for a hundred). Off: scores and order only, and explanations
            without a verdict.
        explain: ``"evidence"``: each explained passage gets its verdict and its best sentence, no LM (fast);
            ``"full"``: plus a reason written by the explainer LM from the verdict and the evidence.
        min_relevance: Passages whose relevance is below this are not returned (``None``: keep all; needs a
            calibrator, see :mod:`r2r_agent.calibration`).
        comparison: ``"grounded"``: the comparison is built from the verdicts, relevance and evidence (no LM);
            ``"lm"``: written by the explainer LM and checked by the grounding guard.
        budget_ms: A latency budget for the call, in milliseconds, counted from the moment ``rerank`` is called
            (waiting for the student's lock included); ``None`` (default): no budget. The guarantee: scoring,
            re-scoring and judging always run, whatever they cost, so the order, scores, verdicts and evidence never
            depend on the budget. The two LM stages are the ones it bounds: the LM reasons (``explain="full"``) start
            only if the budget is not yet spent when that stage is reached, else every explained passage gets the
            evidence explanation (its verdict and best sentence); the LM comparison (``comparison="lm"``) likewise
            falls back to the grounded one. A stage that has started is finished, so no reason is ever cut short
            and nothing raises: a call can overrun its budget by the time of the scoring and judging plus at most
            one LM stage (the one already running when the budget ran out). Each judgment says what it got
            (:attr:`Judgment.explained_by <r2r_agent.Judgment.explained_by>`: ``"lm"`` or ``"evidence"``), and
            :attr:`Ranking.stages <r2r_agent.Ranking.stages>` names what ran (component ``"evidence"`` /
            ``"grounded"`` instead of the explainer's name). ``0`` never runs the LM.
    """

    top_n: int | None = setting(None, "how many judgments to return, best first (default: all)",
                                _count(1, optional=True))
    explain_top: int = setting(5, "explain the top N passages (0: none)", _count(0))
    compare_top: int = setting(3, "explain the order of the top N passages (below 2: no comparison)", _count(0))
    rescore_top: int = setting(0, "re-score the top K with the student's LM scorer (0: off)", _count(0))
    rescore_weight: float = setting(
        1.0, "weight of the LM score in the re-scored top, mixed with the scorer's (standardised); 1: the LM score "
        "alone", _unit(), "W")
    first_stage_weight: float = setting(
        0.0, "weight of the passages' first-stage score (higher = more relevant) mixed with the scorer's over all "
        "passages (standardised); 0: the scorer alone, 1: the first-stage order; needs a score on every passage, "
        "else the scorer alone with a warning", _unit(), "W")

    ordering: str = setting(
        "scorer", "how all passages are ordered: 'scorer' (the student's score, mixed with the first-stage score by "
        "first_stage_weight), 'rrf' (reciprocal-rank fusion of the input order and the scorer's), 'first_stage' "
        "(keep the input order: judge and explain only), 'tiers' (relevant, then partial, then not relevant, the "
        "input order within each; judges every passage), 'tiers_rrf' (the same tiers, rrf within)",
        _choice(orderings.names), "POLICY")
    judge: bool = setting(
        True, "judge the returned passages: evidence (each sentence scored by the scorer), relevance and verdict; "
        "off: the order and scores only (faster with many returned passages)", _flag(), "")
    explain: str = setting(
        "full", "how the top passages are explained: 'evidence' (verdict, relevance and the best sentence, no LM) "
        "or 'full' (plus a reason the LM writes from the verdict and the evidence)", _choice(EXPLAIN_MODES), "MODE")
    min_relevance: float | None = setting(
        None, "drop returned passages whose relevance (probability of answering) is below this (default: keep all)",
        _unit(optional=True), "P")
    comparison: str = setting(
        "grounded", "how the comparison is written: 'grounded' (from the verdicts and evidence, no LM) or 'lm' "
        "(the explainer LM, checked by the grounding guard)", _choice(COMPARISON_MODES), "MODE")
    budget_ms: int | None = setting(
        None, "latency budget in ms: scoring and judging always run; the LM reasons and the LM comparison start only "
        "while it lasts, else the evidence explanation and the grounded comparison (default: no budget)",
        _count(0, optional=True), "MS")

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            expected = item.metadata["check"](item.name, value)
            if expected is not None:
                shown = repr(value) if value is None or type(value) in (int, float) else \
                    f"{type(value).__name__} {value!r}"
                raise InvalidInputError(f"{item.name} must be {expected}, got {shown}")
            if isinstance(value, int) and not isinstance(value, bool) and item.type in ("float", "float | None"):
                object.__setattr__(self, item.name, float(value))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every setting's name, in declaration order."""
        return tuple(item.name for item in fields(cls))

    @classmethod
    def help(cls, name: str) -> str:
        """The help text of the setting ``name`` (with its default)."""
        item = next(f for f in fields(cls) if f.name == name)
        return f"{item.metadata['help']} (default: {item.default})"

    @classmethod
    def check_names(cls, names: Any, owner: str = "RerankConfig") -> None:
        """Raise :class:`InvalidInputError` for any name that is not a setting, suggesting the closest one."""
        known = cls.names()
        unknown = [name for name in names if name not in known]
        if unknown:
            name = unknown[0]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InvalidInputError(f"{owner} has no setting {name!r}{hint}; the settings are {', '.join(known)}")

    def replace(self, **changes: Any) -> RerankConfig:
        """A copy with ``changes`` applied (checked). Unknown names are refused."""
        self.check_names(changes)
        return dataclasses.replace(self, **changes) if changes else self

    def override(self, **changes: Any) -> RerankConfig:
        """:meth:`replace`, except that ``None`` for a setting that cannot be ``None`` (all but ``top_n``) keeps the
        current value: what per-call keywords mean by "not given"."""
        self.check_names(changes)
        optional = {item.name for item in fields(self) if "None" in str(item.type)}
        return self.replace(**{k: v for k, v in changes.items() if v is not None or k in optional})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every setting."""
        return {item.name: getattr(self, item.name) for item in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RerankConfig:
        """Build from :meth:`to_dict` output (unknown keys are refused, naming them)."""
        cls.check_names(data)
        return cls(**dict(data))


def split_settings(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``kwargs`` split into the :class:`RerankConfig` settings and the rest."""
    names = set(RerankConfig.names())
    return ({k: v for k, v in kwargs.items() if k in names}, {k: v for k, v in kwargs.items() if k not in names})


__all__ = ["COMPARISON_MODES", "EXPLAIN_MODES", "FIRST_STAGE_ORDER", "FUSED_STAGE", "ORDERINGS", "RRF_STAGE",
           "RerankConfig", "setting", "split_settings"]
