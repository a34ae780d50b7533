"""Calibrated relevance and verdicts: the probability that a passage answers the query, and what that means in words.

A :class:`Calibrator` turns what the cascade measured about a passage (its scorer's score, the score of its best
sentence, how much of the query it covers) into ``relevance``, the probability that the passage *answers* the query,
with a logistic model fitted on labelled pairs; and ``relevance`` into a verdict with two documented thresholds:

- ``"relevant"``: ``relevance >= relevant_at``: the passage answers the query (on TREC DL: label >= 2, "highly" or
  "perfectly relevant");
- ``"partial"``: ``partial_at <= relevance < relevant_at``: on the topic, but it does not answer it (TREC label 1);
- ``"not_relevant"``: ``relevance < partial_at``.

A calibrator belongs to one scorer (its scores' scale): the package ships one for the bundled all-MiniLM-L6-v2, fitted
on the R2R training split with the teacher's own judgments (never on DL19/DL20/BRIGHT; see its ``fitted_on``).
``r2r calibrate`` fits one for another scorer or for your own labelled data. Applying one needs no torch.

Example:
    >>> c = Calibrator(scorer="s", features=("score",), weights=(10.0,), bias=-5.0, relevant_at=0.5, partial_at=0.2)
    >>> round(c.relevance({"score": 0.6}), 3), c.verdict(c.relevance({"score": 0.6}))
    (0.731, 'relevant')
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from . import vocabulary
from .errors import InvalidInputError, ModelPreparationError
from .vocabulary import VERDICTS

#: Version of the calibrator file layout.
CALIBRATOR_FORMAT = 1
#: The largest calibrator file :meth:`Calibrator.load` reads (a real one is under 2 kB).
MAX_CALIBRATOR_BYTES = 1 << 20


def content_words(text: str) -> set[str]:
    """The lower-cased, lightly stemmed words of ``text`` that carry content (the calibrator's setting of
    :func:`r2r_agent.vocabulary.content_words`: its fitted weights depend on it).

    Example:
        >>> sorted(content_words("How long do fleas live?"))
        ['flea', 'live', 'long']
    """
    return set(vocabulary.content_words(text, stop_words=vocabulary.QUERY_STOP_WORDS, fold=vocabulary.stem,
                                        split_apostrophes=True))


def query_coverage(query: str, passage: str) -> float:
    """The share of the query's content words that the passage contains (0 when the query has none)."""
    wanted = content_words(query)
    if not wanted:
        return 0.0
    have = set(vocabulary.content_words(passage, stop_words=(), fold=vocabulary.stem, split_apostrophes=True))
    return len(wanted & have) / len(wanted)


#: The features a calibrator may use, each computed from ``(query, passage, score, evidence_score)``.
FEATURES = {
    "score": lambda query, passage, score, evidence_score: score,
    "evidence_score": lambda query, passage, score, evidence_score: evidence_score,
    "query_coverage": lambda query, passage, score, evidence_score: query_coverage(query, passage),
}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


@dataclass(frozen=True)
class Calibrator:
    """A logistic model from a passage's measured features to the probability that it answers the query.

    Attributes:
        scorer: The scorer whose scores it reads (a calibrator fits one scorer's scale only).
        features: The names of the features it uses, from :data:`FEATURES`.
        weights: One weight per feature.
        bias: The intercept.
        relevant_at: ``relevance`` at or above which the verdict is ``"relevant"``.
        partial_at: ``relevance`` at or above which (and below ``relevant_at``) the verdict is ``"partial"``.
        fitted_on: What it was fitted on (data, split, labels), for the record.
        metrics: What it scored on held-out data when it was fitted (for the record).
    """

    scorer: str
    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    relevant_at: float = 0.5
    partial_at: float = 0.2
    fitted_on: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.scorer, str) or not isinstance(self.fitted_on, str):
            raise InvalidInputError("Calibrator: scorer and fitted_on must be strings")
        for name in ("features", "weights"):
            if isinstance(getattr(self, name), (str, bytes)) or not isinstance(getattr(self, name), (list, tuple)):
                raise InvalidInputError(f"Calibrator: {name} must be a list, got {type(getattr(self, name)).__name__}")
        if len(self.features) > len(FEATURES) or len(set(map(repr, self.features))) != len(self.features):
            raise InvalidInputError(f"Calibrator: features must name each of {sorted(FEATURES)} at most once, got "
                                    f"{len(self.features)} names ({len(set(map(repr, self.features)))} distinct)")
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "weights", tuple(_finite(w, f"weights[{i}]") for i, w in enumerate(self.weights)))
        for name in ("bias", "relevant_at", "partial_at"):
            object.__setattr__(self, name, _finite(getattr(self, name), name))
        if not isinstance(self.metrics, Mapping):
            raise InvalidInputError(f"Calibrator: metrics must be a JSON object, got {type(self.metrics).__name__}")
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise InvalidInputError(f"Calibrator: unknown features {unknown}; known: {sorted(FEATURES)}")
        if len(self.weights) != len(self.features):
            raise InvalidInputError(f"Calibrator: {len(self.weights)} weights for {len(self.features)} features")
        if not 0.0 <= self.partial_at <= self.relevant_at <= 1.0:
            raise InvalidInputError(f"Calibrator: need 0 <= partial_at <= relevant_at <= 1, got {self.partial_at} "
                                    f"and {self.relevant_at}")

    def feature_values(self, query: str, passage: str, score: float, evidence_score: float | None) -> list[float]:
        """The feature vector of one passage (the evidence score falls back to the passage score)."""
        sentence = score if evidence_score is None else evidence_score
        return [float(FEATURES[name](query, passage, score, sentence)) for name in self.features]

    def relevance(self, values: Mapping[str, float] | Sequence[float]) -> float:
        """The probability that the passage answers the query, from its features (by name, or in order)."""
        vector = [values[name] for name in self.features] if isinstance(values, Mapping) else list(values)
        return _sigmoid(self.bias + math.fsum(w * v for w, v in zip(self.weights, vector)))

    def verdict(self, relevance: float) -> str:
        """``"relevant"``, ``"partial"`` or ``"not_relevant"`` for a relevance (see the module docs)."""
        if relevance >= self.relevant_at:
            return "relevant"
        return "partial" if relevance >= self.partial_at else "not_relevant"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (with a ``format`` version)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(format=CALIBRATOR_FORMAT, features=list(self.features), weights=list(self.weights),
                    metrics=_json_numbers(dict(self.metrics)))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibrator:
        """Build from :meth:`to_dict` output (every field checked: see :meth:`load`)."""
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"a calibrator must be a JSON object, got {type(data).__name__}")
        if data.get("format", CALIBRATOR_FORMAT) != CALIBRATOR_FORMAT:
            raise InvalidInputError(f"calibrator format {data.get('format')!r} is not supported (this version reads "
                                    f"{CALIBRATOR_FORMAT})")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the calibrator as JSON, atomically: a failed write leaves the previous file as it was."""
        from .files import atomic_write_text

        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Calibrator:
        """Read a calibrator written by :meth:`save` (or ``r2r calibrate``).

        Only a regular file of at most :data:`MAX_CALIBRATOR_BYTES` is read (a FIFO or ``/dev/zero`` is refused at
        once). Every field is checked: finite numbers for ``weights``, ``bias`` and the thresholds, each known
        feature at most once, one weight per feature.

        Raises:
            ModelPreparationError: The file cannot be read or is not a calibrator; the message names the field.
        """
        from .files import read_text_bounded

        try:
            data = json.loads(read_text_bounded(path, MAX_CALIBRATOR_BYTES))
            return cls.from_dict(data)
        except RecursionError:
            raise ModelPreparationError(f"could not read a calibrator from {path}: its JSON is nested too deeply")\
                from None
        except (OSError, ValueError, TypeError) as exc:
            raise ModelPreparationError(f"could not read a calibrator from {path}: {exc}") from exc


def _json_numbers(value: Any) -> Any:
    """``value`` with NaN and infinities (an AUC on one class is NaN) as ``None``, so that it is valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _json_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_numbers(v) for v in value]
    return value


def _finite(value: Any, name: str) -> float:
    """``value`` as a float, if it is a finite real number (not a bool, not a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError(f"Calibrator: {name} must be a finite number, got {value!r}")
    return float(value)


def shipped_calibrator(scorer: str) -> Calibrator | None:
    """The calibrator that ships in the package for ``scorer`` (e.g. ``"all-MiniLM-L6-v2"``), or ``None``."""
    resource = resources.files("r2r_agent").joinpath("calibrators", f"{scorer}.json")
    if not resource.is_file():
        return None
    return Calibrator.from_dict(json.loads(resource.read_text(encoding="utf-8")))


__all__ = ["CALIBRATOR_FORMAT", "FEATURES", "VERDICTS", "Calibrator", "content_words", "query_coverage",
           "shipped_calibrator"]
