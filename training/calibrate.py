"""Fitting a :class:`~r2r_agent.calibration.Calibrator`: relevance that means "probability that it answers".

Labelled pairs (a query, a passage, a verdict) come from the R2R teacher files (the teacher's own verdict read from
its direct reason: :func:`~r2r_agent.training.teacher_verdicts.teacher_verdict`) or from your own JSON Lines
(``{"query": ..., "text": ..., "label": 0-3 or "relevant" / "partial" / "not_relevant"}``; graded labels follow TREC
DL: 2 and 3 answer, 1 is on the topic). The student's own scorer measures each pair exactly as at inference (the
passage score, the best sentence's score through :func:`r2r_agent.stages.judge`, the query coverage); a logistic
model on those is fitted on the training split (by query, the split of ``r2r distill``), and the two verdict
thresholds are those that maximise balanced accuracy on that split. The held-out split gives the recorded metrics.

Example:
    >>> pairs = r2r_pairs(["../shared/data/r2r-train/msmarco_500.jsonl.gz"])            # doctest: +SKIP
    >>> calibrator, report = fit_calibrator(measure(Student.default(), pairs))        # doctest: +SKIP
    >>> calibrator.save("my-calibrator.json")                                          # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r2r_agent.calibration import FEATURES, VERDICTS, Calibrator
from r2r_agent.errors import InvalidInputError
from r2r_agent.metrics import balanced_accuracy
from r2r_agent.progress import maybe_progress

from .dataset import split_query_ids
from .jsonl import iter_json_rows
from .r2r_import import iter_r2r_annotations
from .teacher_verdicts import teacher_verdict

#: The features of the shipped calibrator (see :data:`r2r_agent.calibration.FEATURES`).
DEFAULT_FEATURES = ("score", "evidence_score", "query_coverage")


@dataclass(frozen=True)
class LabelledPair:
    """One judged (query, passage) pair."""

    query_id: str
    query: str
    passage: str
    verdict: str


@dataclass(frozen=True)
class MeasuredPair:
    """A labelled pair with what the student's scorer measured on it (the calibrator's inputs)."""

    pair: LabelledPair
    values: Mapping[str, float]


def r2r_pairs(paths: Iterable[str | os.PathLike[str]]) -> list[LabelledPair]:
    """Every passage of the R2R files with a direct reason, labelled with the teacher's verdict (queries in several
    files count once)."""
    seen: set[str] = set()
    pairs = []
    for path in paths:
        for annotation in iter_r2r_annotations(path):
            if annotation.query_id in seen:
                continue
            seen.add(annotation.query_id)
            for index, reason in sorted(annotation.direct_reasons().items()):
                pairs.append(LabelledPair(annotation.query_id, annotation.query,
                                          annotation.candidates[index].text, teacher_verdict(reason)))
    return pairs


def _verdict_of(label: Any, where: str) -> str:
    if isinstance(label, str) and label in VERDICTS:
        return label
    if isinstance(label, int) and not isinstance(label, bool) and 0 <= label <= 3:
        return "relevant" if label >= 2 else "partial" if label == 1 else "not_relevant"
    raise InvalidInputError(f"{where}: 'label' must be 0-3 (TREC DL grades) or one of {list(VERDICTS)}, got "
                            f"{label!r}")


def jsonl_pairs(path: str | os.PathLike[str]) -> list[LabelledPair]:
    """Labelled pairs from your own JSON Lines file: ``query``, ``text`` and ``label`` per line (``qid`` optional;
    pairs without one are grouped by query text for the split)."""
    pairs: list[LabelledPair] = []
    if Path(path).is_dir():
        raise InvalidInputError(f"{path} is a folder; pass a JSON Lines file of labelled pairs")
    if not Path(path).is_file():
        raise InvalidInputError(f"{path}: no such file")
    where = f"{path}:1"
    try:
        for where, row in iter_json_rows(path, lambda at, exc: InvalidInputError(f"{at}: not JSON ({exc.msg})")):
            if not isinstance(row, Mapping) or not all(isinstance(row.get(key), str) for key in ("query", "text")):
                raise InvalidInputError(f"{where}: expected an object with string 'query' and 'text' and a 'label'")
            query_id = str(row.get("qid") or hashlib.sha256(row["query"].encode()).hexdigest()[:16])
            pairs.append(LabelledPair(query_id, row["query"], row["text"], _verdict_of(row.get("label"), where)))
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    except RecursionError:
        raise InvalidInputError(f"{path}: a line after {where} is nested too deeply to be a labelled pair") from None
    except OSError as exc:
        raise InvalidInputError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if not pairs:
        raise InvalidInputError(f"{path} holds no labelled pairs")
    return pairs


def measure(student: Any, pairs: Sequence[LabelledPair], *, progress: bool = False) -> list[MeasuredPair]:
    """What the student's scorer measures on each pair, query by query, exactly as the reranker does."""
    from r2r_agent.stages import judge
    from r2r_agent.student import Student
    from r2r_agent.types import model_text

    bare = Student(scorer=student.scorer, name=student.name)  # judged without any calibrator: raw measurements
    by_query: dict[str, list[LabelledPair]] = {}
    for pair in pairs:
        by_query.setdefault(pair.query_id, []).append(pair)
    measured = []
    with maybe_progress(progress, total=len(by_query), desc="Measuring pairs", unit="query") as bar:
        for group in by_query.values():
            query = model_text(group[0].query)
            texts = [model_text(p.passage) for p in group]
            scores = list(student.scorer.score(query, texts).values)
            judged, _ = judge(bare, query, texts, [p.passage for p in group], list(range(len(group))), scores)
            for i, pair in enumerate(group):
                evidence = judged[i].evidence_score
                values = {name: float(FEATURES[name](query, texts[i], scores[i],
                                                     scores[i] if evidence is None else evidence))
                          for name in FEATURES}
                measured.append(MeasuredPair(pair, values))
            bar.update(1)
    return measured


def _fit_logistic(rows: Sequence[Sequence[float]], labels: Sequence[int], l2: float) -> tuple[list[float], float]:
    """L2-regularised logistic regression by gradient descent on standardised features (weights returned on the
    original scale)."""
    import numpy as np

    x = np.asarray(rows, dtype=float)
    y = np.asarray(labels, dtype=float)
    mean, spread = x.mean(0), x.std(0) + 1e-9
    z = (x - mean) / spread
    w, b = np.zeros(z.shape[1]), math.log((y.mean() + 1e-6) / (1 - y.mean() + 1e-6))
    for _ in range(4000):
        p = 1.0 / (1.0 + np.exp(-(z @ w + b)))
        w -= 0.5 * (z.T @ (p - y) / len(y) + l2 * w)
        b -= 0.5 * float((p - y).mean())
    weights = w / spread
    return [float(v) for v in weights], float(b - weights @ mean)


def best_threshold(values: Sequence[float], labels: Sequence[bool]) -> float:
    """The threshold ``t`` on ``values`` (positive when ``value >= t``) with the highest balanced accuracy."""
    candidates = sorted(set(values))
    return max(candidates, key=lambda t: (balanced_accuracy(labels, [v >= t for v in values]), -t))


def fit_calibrator(measured: Sequence[MeasuredPair], *, scorer: str, features: Sequence[str] = DEFAULT_FEATURES,
                   validation_fraction: float = 0.1, seed: int = 0, l2: float = 0.01,
                   fitted_on: str = "") -> tuple[Calibrator, dict[str, Any]]:
    """Fit on the training split, choose the thresholds there, and measure on the held-out split.

    Returns:
        The calibrator and a report (counts and the held-out AUC, balanced accuracies, ECE and Brier score).
    """
    train_ids, held_ids = split_query_ids({m.pair.query_id for m in measured}, validation_fraction, seed)
    held = set(held_ids)
    train = [m for m in measured if m.pair.query_id not in held]
    validation = [m for m in measured if m.pair.query_id in held]
    labels = [m.pair.verdict == "relevant" for m in train]
    if not any(labels) or all(labels):
        raise InvalidInputError("the training split needs both relevant and other pairs to fit a calibrator")
    weights, bias = _fit_logistic([[m.values[f] for f in features] for m in train], [int(v) for v in labels], l2)
    draft = Calibrator(scorer=scorer, features=tuple(features), weights=tuple(weights), bias=bias,
                       relevant_at=1.0, partial_at=0.0)
    relevance = [draft.relevance(m.values) for m in train]
    relevant_at = best_threshold(relevance, labels)
    partial_at = min(best_threshold(relevance, [m.pair.verdict != "not_relevant" for m in train]), relevant_at)
    report = {"pairs": {"train": len(train), "validation": len(validation)},
              "verdicts": {split: {v: sum(m.pair.verdict == v for m in rows) for v in VERDICTS}
                           for split, rows in (("train", train), ("validation", validation))}}
    calibrator = Calibrator(scorer=scorer, features=tuple(features), weights=tuple(weights), bias=bias,
                            relevant_at=relevant_at, partial_at=partial_at, fitted_on=fitted_on)
    if validation:
        report["validation"] = held_out_metrics(calibrator, validation)
    return Calibrator(**{**calibrator.__dict__, "metrics": report}), report


def held_out_metrics(calibrator: Calibrator, measured: Sequence[MeasuredPair]) -> dict[str, float]:
    """AUC, balanced accuracies, ECE (10 equal-width bins) and Brier score of ``calibrator`` on labelled pairs."""
    from r2r_agent.metrics import auc, brier, expected_calibration_error

    relevance = [calibrator.relevance(m.values) for m in measured]
    relevant = [m.pair.verdict == "relevant" for m in measured]
    on_topic = [m.pair.verdict != "not_relevant" for m in measured]
    verdicts = [calibrator.verdict(r) for r in relevance]
    return {"auc_relevant": auc(relevance, relevant), "auc_on_topic": auc(relevance, on_topic),
            "balanced_accuracy_relevant": balanced_accuracy(relevant, [v == "relevant" for v in verdicts]),
            "balanced_accuracy_on_topic": balanced_accuracy(on_topic, [v != "not_relevant" for v in verdicts]),
            "ece": expected_calibration_error(relevance, relevant), "brier": brier(relevance, relevant)}


__all__ = ["DEFAULT_FEATURES", "LabelledPair", "MeasuredPair", "balanced_accuracy", "best_threshold",
           "fit_calibrator", "held_out_metrics", "jsonl_pairs", "measure", "r2r_pairs"]
