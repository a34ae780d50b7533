"""Paired significance tests between two systems' per-query values: randomization (sign flips) and Student's t.

Example:
    >>> test = paired_test({"q1": 0.2, "q2": 0.4}, {"q1": 0.5, "q2": 0.6}, method="randomization")
    >>> round(test.delta, 2), test.exact
    (0.25, True)
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from r2r_agent._optional import is_available
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
    ``n_resamples`` with ``p = (hits + 1) / (n_resamples + 1)``. ``"t"`` is the paired Student t-test (scipy when
    installed, else an equivalent pure-Python computation).

    Args:
        a: ``{qid: value}`` of system A.
        b: ``{qid: value}`` of system B; only queries in both are paired (the rest are counted in ``n_unpaired``).
        method: ``"randomization"`` or ``"t"``.
        n_resamples: Random sign flips when the test is not exact.
        seed: Seed of the random flips (results are reproducible).

    Raises:
        InvalidInputError: with fewer than 2 paired queries, or an unknown method.
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


def _randomization_p(diffs: Sequence[float], n_resamples: int, seed: int) -> tuple[float, bool]:
    n = len(diffs)
    observed = abs(math.fsum(diffs))
    tol = 1e-12 * max(1.0, observed)  # equal sums must count as "as extreme" despite float rounding
    if 2**n <= n_resamples:
        hits = 0
        for mask in range(2**n):
            total = math.fsum(-d if mask >> i & 1 else d for i, d in enumerate(diffs))
            hits += abs(total) >= observed - tol
        return hits / 2**n, True
    rng = random.Random(seed)
    hits = 0
    for _ in range(n_resamples):
        total = math.fsum(d if rng.random() < 0.5 else -d for d in diffs)
        hits += abs(total) >= observed - tol
    return (hits + 1) / (n_resamples + 1), False


def _paired_t(diffs: Sequence[float]) -> tuple[float, float]:
    n = len(diffs)
    mean = math.fsum(diffs) / n
    var = math.fsum((d - mean) ** 2 for d in diffs) / (n - 1)
    if var == 0.0:
        # Identical differences: no variance. Same values -> no evidence; a constant shift -> certain.
        return (0.0, 1.0) if mean == 0.0 else (math.copysign(math.inf, mean), 0.0)
    t = mean / math.sqrt(var / n)
    if is_available("scipy"):
        from scipy import stats

        return t, float(stats.t.sf(abs(t), n - 1) * 2)
    df = n - 1
    return t, _betainc(df / 2, 0.5, df / (df + t * t))


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) (continued fraction, Numerical Recipes 6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def _betacf(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


__all__ = ["PairedTest", "paired_test"]
