"""Paired significance tests between two systems' per-query values: randomization (sign flips) and Student's t.

Example:
    >>> test = paired_test({"q1": 0.2, "q2": 0.4}, {"q1": 0.5, "q2": 0.6}, method="randomization")
    >>> round(test.delta, 2), test.exact
    (0.25, True)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from r2r_agent._optional import require
from r2r_agent.errors import InvalidInputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairedTest:
    """The result of :func:`paired_test` (two-sided).

    Attributes:
        method: ``"t"`` (paired t-test) or ``"randomization"`` (paired sign-flip permutation test).
        n: Number of paired queries.
        mean_a: Mean of system A over the paired queries.
        mean_b: Mean of system B.
        delta: ``mean_b - mean_a``.
        statistic: The t statistic (``"t"``) or the observed mean difference (``"randomization"``).
        p_value: Two-sided p-value.
        exact: Randomization test only: all ``2**n`` sign flips were enumerated.
        n_unpaired: Queries present in only one of the two systems (left out).
    """

    method: str
    n: int
    mean_a: float
    mean_b: float
    delta: float
    statistic: float
    p_value: float
    exact: bool = False
    n_unpaired: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairedTest:
        """Build from :meth:`to_dict` output."""
        return cls(**dict(data))


def paired_test(
    a: Mapping[str, float],
    b: Mapping[str, float],
    *,
    method: Literal["t", "randomization"] = "randomization",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> PairedTest:
    """Two-sided paired significance test between two systems' per-query values (e.g. :meth:`Evaluation.values`).

    ``"randomization"`` flips the sign of each per-query difference at random (Fisher's paired randomization test,
    Smucker et al., CIKM 2007); it enumerates all ``2**n`` flips when that is at most ``n_resamples``, else samples
    ``n_resamples`` with ``p = (hits + 1) / (n_resamples + 1)`` (``scipy.stats.permutation_test``). ``"t"`` is the
    paired Student t-test (``scipy.stats.ttest_1samp`` on the differences, as ``ttest_rel``). Both need scipy (the
    ``evals`` extra).

    Args:
        a: ``{qid: value}`` of system A.
        b: ``{qid: value}`` of system B; only queries in both are paired (the rest are counted in ``n_unpaired``).
        method: ``"randomization"`` or ``"t"``.
        n_resamples: Random sign flips when the test is not exact.
        seed: Seed of the random flips (results are reproducible).

    Raises:
        InvalidInputError: with fewer than 2 paired queries, or an unknown method.
        MissingExtraError: without scipy.
    """
    common = [q for q in a if q in b]
    unpaired = len(set(a) ^ set(b))
    if unpaired:
        logger.warning("paired_test: %d queries are in only one system and are left out", unpaired)
    n = len(common)
    if n < 2:
        raise InvalidInputError(
            f"paired_test needs at least 2 queries scored by both systems, got {n} "
            f"({len(a)} in A, {len(b)} in B). Evaluate both systems on the same queries."
        )
    diffs = [float(b[q]) - float(a[q]) for q in common]
    mean_a = math.fsum(float(a[q]) for q in common) / n
    mean_b = math.fsum(float(b[q]) for q in common) / n
    delta = math.fsum(diffs) / n
    if method == "t":
        t, p = _paired_t(diffs)
        return PairedTest("t", n, mean_a, mean_b, delta, t, p, n_unpaired=unpaired)
    if method == "randomization":
        if n_resamples < 1:
            raise InvalidInputError(f"n_resamples must be >= 1, got {n_resamples}.")
        p, exact = _randomization_p(diffs, n_resamples, seed)
        return PairedTest("randomization", n, mean_a, mean_b, delta, delta, p, exact, unpaired)
    raise InvalidInputError(f"method must be 't' or 'randomization', got {method!r}.")


def _stats() -> Any:
    return require("scipy.stats", "evals", "The paired significance tests")


def _randomization_p(diffs: Sequence[float], n_resamples: int, seed: int) -> tuple[float, bool]:
    """scipy's permutation test on one sample of differences: each sign flipped at random (``"samples"`` on a single
    sample), exact over all ``2**n`` flips when that is at most ``n_resamples``."""
    import numpy as np

    observed = math.fsum(diffs)
    if observed == 0.0:  # every flip is at least as extreme as no difference at all
        return 1.0, 2 ** len(diffs) <= n_resamples
    # Two-sided as the share of flips with |sum| at least the observed one (alternative="greater" on |sum|): scipy's
    # "two-sided" doubles the smaller one-sided p, which for sampled flips starts at 2/(n+1) instead of 1/(n+1).
    result = _stats().permutation_test(
        (np.asarray(diffs, dtype=np.float64),), lambda x, axis: np.abs(np.sum(x, axis=axis)),
        permutation_type="samples", vectorized=True, n_resamples=n_resamples, alternative="greater",
        rng=np.random.default_rng(seed))
    exact = 2 ** len(diffs) <= n_resamples
    return float(min(1.0, result.pvalue)), exact


def _paired_t(diffs: Sequence[float]) -> tuple[float, float]:
    n = len(diffs)
    mean = math.fsum(diffs) / n
    var = math.fsum((d - mean) ** 2 for d in diffs) / (n - 1)
    if var == 0.0:
        # Identical differences: no variance (scipy returns NaN). Same values -> no evidence; a constant shift ->
        # certain.
        return (0.0, 1.0) if mean == 0.0 else (math.copysign(math.inf, mean), 0.0)
    result = _stats().ttest_1samp(diffs, 0.0)  # the paired t-test is the one-sample test of the differences
    return float(result.statistic), float(result.pvalue)


__all__ = ["PairedTest", "paired_test"]
