"""Whether the fine-tuned encoder beats its untrained base on validation, and so is worth keeping.

A small bi-encoder fine-tuned on a few hundred queries can easily get worse, so the encoder trainer always validates
the base first (step 0) and compares the final validation with it on one metric (:data:`SELECTION_METRICS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The validation metrics ``select_on`` may name ("mean": the mean of those a validation has).
SELECTION_METRICS = ("mean", "ndcg_teacher", "ndcg_labels")


@dataclass(frozen=True)
class BaseComparison:
    """The final model against the untrained base on the validation metric ``metric``.

    Attributes:
        metric: The compared metric (:data:`SELECTION_METRICS`).
        base: Its value for the untrained encoder (step 0); ``None`` when it could not be computed.
        final: Its value after training.
        min_gain: The margin the final model must beat the base by.
    """

    metric: str
    base: float | None
    final: float | None
    min_gain: float = 0.0

    @property
    def beats_base(self) -> bool:
        """Whether the final model is better than the base by more than ``min_gain`` (``False`` when unknown)."""
        return self.base is not None and self.final is not None and self.final - self.base > self.min_gain

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``beats_base`` included)."""
        return {"metric": self.metric, "base": self.base, "final": self.final, "min_gain": self.min_gain,
                "gain": None if self.base is None or self.final is None else self.final - self.base,
                "beats_base": self.beats_base}


def selection_value(record: Mapping[str, Any], metric: str) -> float | None:
    """The value of ``metric`` in a validation record ("mean": the mean of the nDCGs it has; ``None``: none).

    Example:
        >>> selection_value({"ndcg_teacher": 0.5, "ndcg_labels": None}, "mean")
        0.5
    """
    if metric == "mean":
        values = [record[k] for k in ("ndcg_teacher", "ndcg_labels") if record.get(k) is not None]
        return sum(values) / len(values) if values else None
    value = record.get(metric)
    return None if value is None else float(value)


def compare_to_base(validation: Sequence[Mapping[str, Any]], metric: str, min_gain: float = 0.0) -> BaseComparison:
    """Compare the last validation record with the step-0 one (the untrained base)."""
    base = next((r for r in validation if r["step"] == 0), None)
    final = validation[-1] if validation else None
    return BaseComparison(metric, None if base is None else selection_value(base, metric),
                          None if final is None or final is base else selection_value(final, metric), min_gain)


__all__ = ["SELECTION_METRICS", "BaseComparison", "compare_to_base", "selection_value"]
