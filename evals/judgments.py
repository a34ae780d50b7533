"""Relevance and verdicts over all candidates: how far the judgments can be trusted (``r2r eval --judgments``).

Every system that can judge (:func:`~r2r_agent.evals.protocol.can_judge`) reranks each query's candidates with
``top_n=None, judge=True`` and no explanations; each query's judgments are kept as a :class:`JudgedQuery` (ids,
scores, relevance, verdicts: no texts) and measured against the TREC labels, unjudged passages counting as label 0.
"Answers" means TREC label >= 2 (what :attr:`r2r_agent.Judgment.relevance` estimates); "on topic" means label >= 1.

- **verdict coverage**: the share of judgments with a verdict;
- **balanced accuracy** (:func:`r2r_agent.metrics.balanced_accuracy`) of ``verdict == "relevant"`` against label
  >= 2 and of ``verdict != "not_relevant"`` against label >= 1, over judgments with a verdict (a constant scores 0.5);
- **calibration** of ``relevance`` against label >= 2: expected calibration error (10 equal-width bins) and Brier
  score; and the AUC of ``relevance`` and, for reference, of the judgment's score, pooled over all pairs;
- **abstention** (:func:`abstention`): the AUC of a list's best relevance between each query's full list (when it
  holds a label >= 1 passage) and the same list with every label >= 1 passage removed, with how many lists each side
  has; and how often :attr:`r2r_agent.Ranking.answerable` (some verdict ``"relevant"``) holds on each side;
- **verdict counts** and mean relevance, overall and per TREC label.

Example:
    >>> from r2r_agent.metrics import balanced_accuracy
    >>> balanced_accuracy([True, False, False, False], [True, True, False, False])  # labels, then predictions
    0.8333333333333333
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from r2r_agent import Passage, Ranking
from r2r_agent.errors import InvalidInputError
from r2r_agent.metrics import auc, balanced_accuracy, brier, expected_calibration_error

from .records import PerQueryMeans, docid

#: The issue's targets ("Trustworthy explanations", Measured), printed beside the values.
TARGETS: Mapping[str, str] = {"verdict_coverage": "100%", "balanced_accuracy_relevant": ">= 0.78",
                              "balanced_accuracy_on_topic": ">= 0.78", "ece": "<= 0.10", "abstention_auc": ">= 0.90"}
#: A passage answers the query from this TREC label on; it is on topic from :data:`ON_TOPIC` on.
ANSWERS = 2
ON_TOPIC = 1
#: The verdicts counted, ``"none"`` for a judgment without one.
VERDICT_KEYS = ("relevant", "partial", "not_relevant", "none")


@dataclass(frozen=True)
class JudgedQuery:
    """One query's judgments as the cache keeps them: every candidate's id, score, relevance and verdict, best first.

    Attributes:
        doc_ids: The candidates' ids in the system's order.
        scores: Each judgment's :attr:`~r2r_agent.Judgment.score`.
        relevance: Each judgment's :attr:`~r2r_agent.Judgment.relevance` (``None`` without one).
        verdicts: Each judgment's :attr:`~r2r_agent.Judgment.verdict` (``None`` without one).
        seconds: What the ranking cost, all stages together.
    """

    doc_ids: tuple[str, ...]
    scores: tuple[float, ...]
    relevance: tuple[float | None, ...]
    verdicts: tuple[str | None, ...]
    seconds: float = 0.0

    def __post_init__(self) -> None:
        for name in ("doc_ids", "scores", "relevance", "verdicts"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not len(self.doc_ids) == len(self.scores) == len(self.relevance) == len(self.verdicts):
            raise InvalidInputError(f"JudgedQuery: {len(self.doc_ids)} ids, {len(self.scores)} scores, "
                                    f"{len(self.relevance)} relevance values and {len(self.verdicts)} verdicts; give "
                                    "one of each per judgment.")

    @classmethod
    def from_ranking(cls, ranking: Ranking, candidates: Sequence[Passage]) -> JudgedQuery:
        """The judgments of ``ranking``, which must hold every one of ``candidates`` once.

        Raises:
            InvalidInputError: when the ranking is not an order of the candidates (a system that dropped some).
        """
        if not isinstance(ranking, Ranking):
            raise InvalidInputError(f"judge() must return an r2r_agent.Ranking, got {type(ranking).__name__}.")
        judged = cls(tuple(j.id or "" for j in ranking), tuple(j.score for j in ranking),
                     tuple(j.relevance for j in ranking), tuple(j.verdict for j in ranking), ranking.seconds)
        judged._check(candidates)
        return judged

    def _check(self, candidates: Sequence[Passage]) -> None:
        if sorted(self.doc_ids) != sorted(docid(c) for c in candidates):
            raise InvalidInputError(f"JudgedQuery: {len(self.doc_ids)} judged ids are not the {len(candidates)} "
                                    "candidates; judge every candidate once (top_n=None, min_relevance=None).")

    def to_dict(self) -> dict[str, Any]:
        """The cached form (no passage texts)."""
        return {"doc_ids": list(self.doc_ids), "scores": list(self.scores), "relevance": list(self.relevance),
                "verdicts": list(self.verdicts), "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], candidates: Sequence[Passage] | None = None) -> JudgedQuery:
        """Build from :meth:`to_dict` output (checked against ``candidates`` when given)."""
        judged = cls(tuple(str(d) for d in data["doc_ids"]), tuple(float(s) for s in data["scores"]),
                     tuple(None if r is None else float(r) for r in data["relevance"]),
                     tuple(data["verdicts"]), float(data.get("seconds", 0.0)))
        if candidates is not None:
            judged._check(candidates)
        return judged


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class Abstention:
    """Whether the best relevance of a list tells lists with a relevant passage from lists without one.

    Attributes:
        auc: AUC of each list's highest relevance, full lists (positive) against lists without their label >= 1
            passages (negative); ``None`` without both.
        n_full: Full lists that hold a label >= 1 passage (the positives).
        n_removed: Lists left when every label >= 1 passage is removed (the negatives; a query without any label >= 1
            candidate gives its full list here, once).
        n_all_relevant: Queries whose every candidate is label >= 1 (no negative list).
        n_no_relevant: Queries without any label >= 1 candidate (their list counts as a negative only).
        answerable_full: Share of the positive lists with a ``"relevant"`` verdict (``Ranking.answerable``).
        answerable_removed: Share of the negative lists with one (the false alarms).
    """

    auc: float | None
    n_full: int
    n_removed: int
    n_all_relevant: int
    n_no_relevant: int
    answerable_full: float | None
    answerable_removed: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def abstention(lists: Sequence[Sequence[tuple[int, float | None, str | None]]]) -> Abstention:
    """:class:`Abstention` of ``lists``: per query, each candidate's ``(label, relevance, verdict)``.

    Example:
        >>> a = abstention([[(2, 0.9, "relevant"), (0, 0.2, "not_relevant")], [(0, 0.4, "partial")]])
        >>> a.auc, a.n_full, a.n_removed, a.n_no_relevant, a.answerable_full, a.answerable_removed
        (1.0, 1, 2, 1, 1.0, 0.0)
    """
    best: list[float] = []
    positive: list[bool] = []
    answerable: dict[bool, list[bool]] = {True: [], False: []}
    all_relevant = no_relevant = 0

    def add(items: Sequence[tuple[int, float | None, str | None]], is_full: bool) -> None:
        values = [r for _, r, _ in items if r is not None]
        answerable[is_full].append(any(v == "relevant" for _, _, v in items))
        if values:
            best.append(max(values))
            positive.append(is_full)

    for items in lists:
        rest = [item for item in items if item[0] < ON_TOPIC]
        if len(rest) == len(items):
            no_relevant += 1
        else:
            add(items, True)
        if rest:
            add(rest, False)
        else:
            all_relevant += 1

    def rate(values: list[bool]) -> float | None:
        return sum(values) / len(values) if values else None

    return Abstention(_number(auc(best, positive)), len(answerable[True]), len(answerable[False]), all_relevant,
                      no_relevant, rate(answerable[True]), rate(answerable[False]))


@dataclass(frozen=True)
class JudgmentQuality:
    """The measures of one system's judgments on one dataset (see the module docs).

    Attributes:
        n_queries: Queries measured (those with qrels).
        n_judgments: Judgments in them.
        n_with_verdict: Judgments with a verdict.
        n_answers: Judgments of label >= 2 passages.
        n_on_topic: Judgments of label >= 1 passages.
        balanced_accuracy_relevant: ``verdict == "relevant"`` against label >= 2.
        balanced_accuracy_on_topic: ``verdict != "not_relevant"`` against label >= 1.
        ece: Expected calibration error of ``relevance`` against label >= 2 (10 bins).
        brier: Brier score of the same.
        auc_relevance: AUC of ``relevance`` against label >= 2.
        auc_score: AUC of the judgment's score against label >= 2 (pooled over queries, for reference).
        mean_relevance: Mean ``relevance`` over judgments with one.
        abstention: See :class:`Abstention`.
        by_label: ``{label: {"n", verdict counts (:data:`VERDICT_KEYS`), "mean_relevance"}}``, and ``"all"``.
    """

    n_queries: int
    n_judgments: int
    n_with_verdict: int
    n_answers: int
    n_on_topic: int
    balanced_accuracy_relevant: float | None
    balanced_accuracy_on_topic: float | None
    ece: float | None
    brier: float | None
    auc_relevance: float | None
    auc_score: float | None
    mean_relevance: float | None
    abstention: Abstention
    by_label: Mapping[str, Mapping[str, float | int | None]] = field(default_factory=dict)

    @property
    def verdict_coverage(self) -> float | None:
        """Share of judgments with a verdict."""
        return self.n_with_verdict / self.n_judgments if self.n_judgments else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (with the coverage and the targets)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(abstention=self.abstention.to_dict(), by_label={k: dict(v) for k, v in self.by_label.items()},
                    verdict_coverage=self.verdict_coverage, targets=dict(TARGETS))
        return data


def _by_label(rows: Sequence[tuple[int, float | None, str | None]]) -> dict[str, dict[str, float | int | None]]:
    groups: dict[str, list[tuple[int, float | None, str | None]]] = {"all": list(rows)}
    for row in sorted(rows, key=lambda r: r[0]):
        groups.setdefault(str(row[0]), []).append(row)
    out: dict[str, dict[str, float | int | None]] = {}
    for name, items in groups.items():
        counts: dict[str, float | int | None] = {"n": len(items)}
        counts.update({key: sum((v or "none") == key for _, _, v in items) for key in VERDICT_KEYS})
        values = [r for _, r, _ in items if r is not None]
        counts["mean_relevance"] = math.fsum(values) / len(values) if values else None
        out[name] = counts
    return out


def judgment_quality(judged: Mapping[str, JudgedQuery], qrels: Mapping[str, Mapping[str, int]]) -> JudgmentQuality:
    """Measure every query's judgments against the qrels (queries without qrels are left out; unjudged = label 0)."""
    rows: list[tuple[int, float | None, str | None]] = []
    scores: list[float] = []
    lists = []
    for qid, query in judged.items():
        if qid not in qrels:
            continue
        labels = [qrels[qid].get(d, 0) for d in query.doc_ids]
        items = list(zip(labels, query.relevance, query.verdicts))
        rows += items
        scores += query.scores
        lists.append(items)
    answers = [label >= ANSWERS for label, _, _ in rows]
    with_verdict = [(label, v) for label, _, v in rows if v is not None]
    calibrated = [(r, label >= ANSWERS) for label, r, _ in rows if r is not None]
    probabilities, outcomes = [r for r, _ in calibrated], [y for _, y in calibrated]
    return JudgmentQuality(
        n_queries=len(lists), n_judgments=len(rows), n_with_verdict=len(with_verdict),
        n_answers=sum(answers), n_on_topic=sum(label >= ON_TOPIC for label, _, _ in rows),
        balanced_accuracy_relevant=_number(balanced_accuracy([label >= ANSWERS for label, _ in with_verdict],
                                                             [v == "relevant" for _, v in with_verdict])),
        balanced_accuracy_on_topic=_number(balanced_accuracy([label >= ON_TOPIC for label, _ in with_verdict],
                                                             [v != "not_relevant" for _, v in with_verdict])),
        ece=_number(expected_calibration_error(probabilities, outcomes)), brier=_number(brier(probabilities, outcomes)),
        auc_relevance=_number(auc(probabilities, outcomes)), auc_score=_number(auc(scores, answers)),
        mean_relevance=math.fsum(probabilities) / len(probabilities) if probabilities else None,
        abstention=abstention(lists), by_label=_by_label(rows))


@dataclass(frozen=True)
class JudgmentRun(PerQueryMeans):
    """One system's judgments of every candidate of one dataset, and their measures.

    Attributes:
        system: The report name.
        key: The cache key (:func:`~r2r_agent.evals.runner.judgment_key`).
        dataset: The dataset name.
        queries: Queries judged.
        computed: Queries computed in this run (the rest came from the cache).
        seconds: Total seconds of those rankings, all stages together.
        quality: The measures.
        judged: ``{qid: JudgedQuery}`` (kept for callers; reports store only the measures).
    """

    system: str
    key: str
    dataset: str
    queries: int
    computed: int
    seconds: float
    quality: JudgmentQuality
    judged: Mapping[str, JudgedQuery] = field(default_factory=dict, repr=False)
    generated_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (without the per-query judgments)."""
        return {"system": self.system, "key": self.key, "dataset": self.dataset, "queries": self.queries,
                "computed": self.computed, "seconds": self.seconds, "seconds_per_query": self.seconds_per_query,
                "quality": self.quality.to_dict()}


__all__ = ["ANSWERS", "ON_TOPIC", "TARGETS", "VERDICT_KEYS", "Abstention", "JudgedQuery", "JudgmentQuality",
           "JudgmentRun", "abstention", "judgment_quality"]
