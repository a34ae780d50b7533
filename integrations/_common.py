"""Helpers shared by the framework adapters: argument checks, the settings rule and the keys they write.

Nothing here imports a framework; each adapter maps its own objects to :class:`~r2r_agent.Passage` and back.

What the adapters write follows each framework's own rerankers, so code written for those keeps working:

- LangChain's (``CohereRerank``, ``FlashrankRerank``, ``JinaRerank``) return new ``Document`` objects with a deep
  copy of the metadata and ``metadata["relevance_score"]``, a number in [0, 1]; ours is the calibrated relevance
  (:func:`reported_score`). ``CrossEncoderReranker`` writes no key.
- LlamaIndex's (``SentenceTransformerRerank``, ``CohereRerank``, ``LLMRerank``...) put their relevance in
  ``NodeWithScore.score`` (``SimilarityPostprocessor(similarity_cutoff=...)`` filters on it) and, with
  ``keep_retrieval_score=True``, the incoming score in ``metadata["retrieval_score"]``; ours: the calibrated
  relevance, and the incoming score under both ``retrieval_score`` and ``r2r_first_stage_score``. They emit
  ``ReRankStartEvent``/``ReRankEndEvent`` and the ``RERANKING`` callback event; so does ``R2R``. They change the
  caller's nodes in place; ``R2R`` returns copies.

Both also write the ``r2r_*`` keys. The order they return is R2R's (``r2r_rank``, by ``r2r_score``, the value of
``r2r_stage``: the fused, scored or retriever's order), which need not be the order of the relevance they report: with
the default ``ordering="tiers"`` (and ``"rrf"``) a passage the retriever ranked high can sit above one of higher
relevance within its verdict's tier. The first item's
``r2r_order_matches_score`` says whether re-sorting by the reported score would keep the order.
"""

from __future__ import annotations

import difflib
import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..config import RerankConfig, split_settings
from ..errors import InvalidInputError, InvalidTypeError
from ..types import Judgment, Ranking

if TYPE_CHECKING:
    from ..reranker import Reranker
    from ..student import Student

#: Metadata keys the adapters write on their output copies (the same in LlamaIndex and LangChain).
SCORE_KEY = "r2r_score"
RANK_KEY = "r2r_rank"
EXPLANATION_KEY = "r2r_explanation"
COMPARISON_KEY = "r2r_comparison"
NOTE_KEY = "r2r_note"
FIRST_STAGE_SCORE_KEY = "r2r_first_stage_score"
RELEVANCE_KEY = "r2r_relevance"
VERDICT_KEY = "r2r_verdict"
EVIDENCE_KEY = "r2r_evidence"
ANSWERABLE_KEY = "r2r_answerable"
#: Which value ordered the items (:attr:`~r2r_agent.Judgment.stage`: ``score``, ``score+rrf``...).
STAGE_KEY = "r2r_stage"
#: On the first item: whether the items are also in order of the score reported to the framework.
ORDER_MATCHES_SCORE_KEY = "r2r_order_matches_score"
#: The frameworks' own keys: LangChain rerankers' relevance, LlamaIndex rerankers' incoming score.
RELEVANCE_SCORE_KEY = "relevance_score"
RETRIEVAL_SCORE_KEY = "retrieval_score"

#: Keys written by a previous rerank that must not leak into a new result (an item reranked twice).
STALE_KEYS = (SCORE_KEY, RANK_KEY, EXPLANATION_KEY, COMPARISON_KEY, NOTE_KEY, FIRST_STAGE_SCORE_KEY, RELEVANCE_KEY,
              VERDICT_KEY, EVIDENCE_KEY, ANSWERABLE_KEY, STAGE_KEY, ORDER_MATCHES_SCORE_KEY, RETRIEVAL_SCORE_KEY,
              RELEVANCE_SCORE_KEY)
#: What an answer LLM reads by default (the reasons) and what it does not (numbers, and the evidence, which the
#: passage text holds anyway).
REASON_KEYS = (EXPLANATION_KEY, COMPARISON_KEY, NOTE_KEY, VERDICT_KEY, ANSWERABLE_KEY)
NUMBER_KEYS = (SCORE_KEY, RANK_KEY, FIRST_STAGE_SCORE_KEY, RELEVANCE_KEY, EVIDENCE_KEY, STAGE_KEY,
               ORDER_MATCHES_SCORE_KEY, RETRIEVAL_SCORE_KEY, RELEVANCE_SCORE_KEY)

NO_TEXT_NOTE = "not reranked: this item has no text content, so it was passed through after the ranked ones"

#: What the framework adapters use unless given ``config=`` (the settings they name are applied on top), whether or not
#: they are given a ``reranker=`` (which brings the models and its trace, never the settings). The rule for their
#: ordering: an agent reads the top of the list, so a passage the calibrator calls ``not_relevant`` must never come
#: above a ``relevant`` or ``partial`` one, whatever the retriever in front of it is. ``ordering="tiers"`` keeps that
#: by construction (every relevant passage, then every partial one, then the rest, the retriever's order within a
#: tier); its nDCG against ``rrf`` and ``tiers_rrf`` behind weak (BM25) and strong (SPLADE++) first stages is in
#: docs/results.md. Without a calibrator there are no verdicts and it keeps the retriever's order. It sits in an
#: agent's hot path, so its explanations are the verdict and the passage's best sentence (``explain="evidence"``):
#: about 0.2 s over scoring instead of about 4.5 s for the LM's reasons here, which add little the evidence does not
#: say (docs/performance.md); ``explain="full"`` gives them.
ADAPTER_DEFAULTS = RerankConfig(ordering="tiers", explain="evidence")


def build_config(owner: str, *, config: RerankConfig | None, reranker: Reranker | None, settings: dict[str, Any],
                 default_top_n: int | None) -> RerankConfig:
    """The settings an adapter holds: ``config``, else :data:`ADAPTER_DEFAULTS` with the adapter's own
    ``default_top_n``, with ``settings`` applied (``None``: keep). Unknown names are refused, naming the closest.

    One rule: a ``reranker`` brings its student and its trace, never its settings (before 0.2, passing one just to
    trace silently switched an adapter to the reranker's ``ordering="scorer"`` and ``explain="full"``). A reranker
    whose settings differ from ``RerankConfig()`` gets a warning naming them and how to pass them.
    """
    RerankConfig.check_names(settings, owner)
    if isinstance(config, Mapping):  # read back from a serialised adapter (to_dict / from_dict)
        config = RerankConfig.from_dict(config)
    if config is not None:
        if not isinstance(config, RerankConfig):
            raise InvalidTypeError(f"{owner}: config must be an r2r_agent.RerankConfig, got {type(config).__name__}")
        base = config
    else:
        base = ADAPTER_DEFAULTS
        settings = {"top_n": default_top_n, **settings}
    _warn_unused_reranker_settings(owner, reranker, config)
    try:
        return base.override(**settings)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{owner}: {exc}") from None


def _warn_unused_reranker_settings(owner: str, reranker: Reranker | None, config: RerankConfig | None) -> None:
    own = getattr(reranker, "config", None)
    if not isinstance(own, RerankConfig) or own == config:
        return
    plain = RerankConfig().to_dict()
    changed = {k: v for k, v in own.to_dict().items() if plain.get(k) != v}
    if changed:
        shown = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        warnings.warn(f"{owner}: the reranker's own settings ({shown}) are not used; an adapter's settings are its "
                      f"own: pass them to {owner}(...) (or config=reranker.config)", UserWarning, stacklevel=4)


def split_init_kwargs(owner: str, data: dict[str, Any], own_fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``data`` split into rerank settings and the adapter's own fields; anything else is refused by name."""
    settings, rest = split_settings(data)
    unknown = [k for k in rest if k not in own_fields]
    if unknown:
        known = sorted({*RerankConfig.names(), *own_fields})
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InvalidInputError(f"{owner} got an unexpected setting {unknown[0]!r}{hint}; it takes "
                                f"{', '.join(known)}, reranker= or student=")
    return settings, rest


def resolve_reranker(owner: str, reranker: Reranker | None, student: Student | None, trace: Any = None
                     ) -> Reranker | None:
    """The reranker to use: the one given, one built around ``student`` and/or with ``trace`` (a trace sink or a
    JSON Lines path, as :class:`~r2r_agent.Reranker` takes), or ``None`` (the default, built lazily around the
    process's shared default student)."""
    if reranker is not None and student is not None:
        raise InvalidInputError(f"{owner}: pass either reranker= or student=, not both "
                                "(a Reranker already holds its student)")
    if reranker is not None and trace is not None:
        raise InvalidInputError(f"{owner}: pass either reranker= or trace=, not both (give the trace to the "
                                "Reranker, or let the adapter build one with trace=)")
    if reranker is not None:
        if not (hasattr(reranker, "rerank") and hasattr(reranker, "arerank") and hasattr(reranker, "config")):
            raise InvalidTypeError(f"{owner}: reranker must be an r2r_agent.Reranker (with rerank/arerank), got "
                                   f"{type(reranker).__name__}")
        return reranker
    if student is not None or trace is not None:
        from ..reranker import Reranker

        return Reranker(student=student, trace=trace)
    return None


def default_reranker() -> Reranker:
    """A ``Reranker()`` on the process's shared default student (loaded once however many adapters use it)."""
    from ..reranker import Reranker

    return Reranker()


class HoldsReranker:
    """The ``reranker`` and ``top_n`` of an adapter (a framework's pydantic model declares ``config`` and the private
    ``_reranker`` itself)."""

    if TYPE_CHECKING:
        config: RerankConfig
        _reranker: Any

    @property
    def reranker(self) -> Reranker:
        """The core reranker (the default one, on the shared default student, if none was given)."""
        if self._reranker is None:
            self._reranker = default_reranker()
        return self._reranker

    @property
    def top_n(self) -> int | None:
        """How many items are returned (``config.top_n``)."""
        return self.config.top_n


def check_count(owner: str, name: str, value: int | None) -> int | None:
    """Validate an optional non-negative count that is not a rerank setting (``fetch_k``)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"{owner}: {name} must be an int >= 0 or None, got {type(value).__name__} {value!r}")
    return value


def first_stage_score(value: Any) -> float | None:
    """A usable first-stage score: a finite real number (not a bool), else ``None``."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def reported_score(judgment: Judgment) -> float:
    """The score an adapter reports to its framework (LlamaIndex ``NodeWithScore.score``, LangChain
    ``metadata["relevance_score"]``): the calibrated relevance, a probability in [0, 1] whatever ordered the items,
    so a cut-off means the same for every query; the ordering value (:attr:`~r2r_agent.Judgment.score`) for a
    student without a calibrator."""
    return judgment.relevance if judgment.relevance is not None else judgment.score


def result_updates(judgment: Judgment, ranking: Ranking) -> dict[str, Any]:
    """The ``r2r_*`` metadata one ranked item gets (both adapters write the same ones)."""
    updates: dict[str, Any] = {SCORE_KEY: judgment.score, RANK_KEY: judgment.rank, STAGE_KEY: judgment.stage}
    optional = {FIRST_STAGE_SCORE_KEY: judgment.first_stage_score, RELEVANCE_KEY: judgment.relevance,
                VERDICT_KEY: judgment.verdict, EVIDENCE_KEY: judgment.evidence, EXPLANATION_KEY: judgment.explanation}
    updates.update({k: v for k, v in optional.items() if v is not None})
    if judgment.rank == 1:
        if ranking.comparison:
            updates[COMPARISON_KEY] = ranking.comparison
        if ranking.answerable is not None:
            updates[ANSWERABLE_KEY] = ranking.answerable
        reported = [reported_score(j) for j in ranking]
        updates[ORDER_MATCHES_SCORE_KEY] = all(a >= b for a, b in zip(reported, reported[1:]))
    return updates


def ordered_results(ranking: Ranking | None, textual: list[int], textless: list[int], top_n: int | None
                    ) -> list[tuple[int, Judgment | None]]:
    """``(input position, judgment)`` of what an adapter returns: the ranked items best first, then the items with
    no text (judgment ``None``), at most ``top_n`` in all."""
    ranked: list[tuple[int, Judgment | None]] = [(textual[j.input_rank - 1], j) for j in (ranking or ())]
    out = ranked + [(i, None) for i in textless]
    return out if top_n is None else out[:top_n]


def has_text(content: object) -> bool:
    """Whether ``content`` is text worth ranking (a non-blank string)."""
    return isinstance(content, str) and bool(content.strip())


def format_ranked(entries: Sequence[tuple[Any, str | None, float | None, str, dict[str, Any]]], *,
                  max_chars: int = 600) -> str:
    """Render reranked items for an agent's context: whether any answers the query, then per item ``[rank] id=``
    with its verdict and relevance (or score), the text, ``Why:``; then the comparison.

    Args:
        entries: ``(fallback_rank, id, score, text, metadata)`` per item, best first; ``metadata`` holds the keys
            the adapters write (``r2r_rank``, ``r2r_verdict``, ``r2r_relevance``, ``r2r_explanation``,
            ``r2r_comparison``, ``r2r_answerable``, ``r2r_note``).
        max_chars: Longest text shown per item (longer texts end with ``...``).

    Example:
        >>> print(format_ranked([(1, "d3", 0.91, "Adult fleas live 2-3 months.", {"r2r_explanation": "Lifespan."})]))
        [1] id=d3 score=0.910
        Adult fleas live 2-3 months.
        Why: Lifespan.
        >>> print(format_ranked([(1, "d1", 0.2, "Cats sleep.", {"r2r_verdict": "not_relevant", "r2r_relevance": 0.04,
        ...                                                       "r2r_answerable": False})]).splitlines()[0])
        None of these passages answers the query (best relevance 0.04): say so, or search again with other words.
    """
    if not entries:
        return ("No passage found for this query: none was retrieved, or none was likely enough to answer it "
                "(min_relevance). Say so, or search again with other words.")
    blocks: list[str] = []
    comparison = None
    first = entries[0][4]
    if first.get(ANSWERABLE_KEY) is False:
        best = max((m[RELEVANCE_KEY] for *_, m in entries if isinstance(m.get(RELEVANCE_KEY), float)), default=None)
        shown = f" (best relevance {best:.2f})" if best is not None else ""
        blocks.append(f"None of these passages answers the query{shown}: say so, or search again with other words.")
    for fallback_rank, item_id, score, text, metadata in entries:
        head = f"[{metadata.get(RANK_KEY, fallback_rank)}]" + (f" id={item_id}" if item_id is not None else "")
        if metadata.get(VERDICT_KEY):
            head += f" {metadata[VERDICT_KEY].replace('_', ' ')}"
        if isinstance(metadata.get(RELEVANCE_KEY), float):
            head += f" (relevance {metadata[RELEVANCE_KEY]:.2f})"
        elif isinstance(score, (int, float)):
            head += f" score={score:.3f}"
        if len(text) > max_chars:
            text = text[: max_chars - 3] + "..."
        lines = [head, text]
        if metadata.get(EXPLANATION_KEY):
            lines.append(f"Why: {metadata[EXPLANATION_KEY]}")
        if metadata.get(NOTE_KEY):
            lines.append(f"Note: {metadata[NOTE_KEY]}")
        comparison = comparison or metadata.get(COMPARISON_KEY)
        blocks.append("\n".join(lines))
    if comparison:
        blocks.append(f"Why this order: {comparison}")
    return "\n\n".join(blocks)
