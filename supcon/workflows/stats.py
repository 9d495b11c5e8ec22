"""Statistics of a study: means, t intervals, paired differences, verdicts in words, and the
adjustments of a family of p-values. The only place of the package that computes a mean, a
standard deviation or an interval; the distributions are scipy.stats'.

Every number a study reports is a mean over seeds with a 95% confidence interval from the t
distribution (``mean ± t_{0.975, n-1} * s / sqrt(n)``, s the sample standard deviation). A
method is compared with a baseline by the *paired* per-seed difference ``d_k = m_k - b_k`` (seed
k of both runs shares the validation split, initialisation stream and batch order): its mean, t
interval and two-sided p-value of the one-sample t test of ``mean(d) = 0`` (from the survival
function, so a p-value far below 1e-16 is not rounded to 0). The verdict is "better" or "worse"
when the interval excludes 0 (p < 0.05) and "no difference detected (n seeds)" otherwise; it
never claims equality, only that this many seeds cannot tell.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats as scipy_stats

LEVEL = 0.95  # confidence level of every interval


@dataclass(frozen=True)
class Interval:
    """Mean of ``values`` with its t interval; ``low``/``high``/``std`` are None for one value."""

    mean: float | None
    low: float | None
    high: float | None
    std: float | None
    n: int
    values: tuple[float, ...]

    @property
    def half_width(self) -> float | None:
        """``(high - low) / 2``, None without an interval."""
        return None if self.low is None else (self.high - self.low) / 2.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for summary.json), with ``half_width``."""
        return {**asdict(self), "values": list(self.values), "half_width": self.half_width}


def mean_interval(values: Sequence[float | None], level: float = LEVEL) -> Interval:
    """Mean and ``level`` t interval of the non-None ``values`` (sample std, n - 1 degrees of freedom).

    Raises:
        ValueError: ``level`` outside (0, 1).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    vals = tuple(float(v) for v in values if v is not None)
    n = len(vals)
    if n == 0:
        return Interval(None, None, None, None, 0, ())
    mean = math.fsum(vals) / n
    if n == 1:
        return Interval(mean, None, None, None, 1, vals)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (n - 1))
    half = float(scipy_stats.t.ppf(0.5 + level / 2.0, n - 1)) * std / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, std, n, vals)


@dataclass(frozen=True)
class Paired:
    """The paired difference ``a_k - b_k`` over seeds: its interval, t statistic and p-value."""

    difference: Interval
    t: float | None
    p: float | None  # two-sided; None with fewer than 2 pairs

    @property
    def n(self) -> int:
        """Number of pairs."""
        return self.difference.n

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for summary.json)."""
        return {"difference": self.difference.to_dict(), "t": self.t, "p": self.p, "n": self.n}


def paired_difference(a: Sequence[float | None], b: Sequence[float | None],
                      level: float = LEVEL) -> Paired:
    """Paired difference of two per-seed series (pairs where either value is None are left out).

    ``p`` is the two-sided p-value of the one-sample t test of the differences against 0; all
    differences equal give p = 1 when they are 0 and p = 0 otherwise.

    Raises:
        ValueError: ``a`` and ``b`` of different lengths, or ``level`` outside (0, 1).
    """
    if len(a) != len(b):
        raise ValueError(f"paired series must have the same length, got {len(a)} and {len(b)}")
    diffs = [float(x) - float(y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    interval = mean_interval(diffs, level)
    if interval.n < 2:
        return Paired(interval, None, None)
    if interval.std == 0.0:
        zero = interval.mean == 0.0
        return Paired(interval, 0.0 if zero else math.copysign(math.inf, interval.mean), 1.0 if zero else 0.0)
    t = interval.mean / (interval.std / math.sqrt(interval.n))
    p = 2.0 * float(scipy_stats.t.sf(abs(t), interval.n - 1))  # sf: exact far in the tail
    return Paired(interval, t, min(1.0, max(0.0, p)))


def verdict(paired: Paired, higher_is_better: bool = True) -> str:
    """``"better"`` / ``"worse"`` when the interval of the difference excludes 0, else
    ``"no difference detected (n seeds)"``; ``"not measured"`` without any pair."""
    d = paired.difference
    if d.n == 0:
        return "not measured"
    if d.low is not None and (d.low > 0 or d.high < 0):
        up = d.low > 0
        return "better" if up == higher_is_better else "worse"
    return f"no difference detected ({d.n} seed{'s' * (d.n != 1)})"


def supported(paired: Paired, higher_is_better: bool = True) -> bool:
    """Whether the paired interval supports "better" (what may be shown in bold)."""
    return verdict(paired, higher_is_better) == "better"


def mean(values: Iterable[float | None]) -> float | None:
    """The mean of the non-None ``values`` (None when there is none)."""
    vals = [v for v in values if v is not None]
    return math.fsum(vals) / len(vals) if vals else None


def mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    """``{"mean", "std", "n", "values"}`` of the non-None values: the mean and the sample
    standard deviation (n - 1; None for one value), as :func:`mean_interval` computes them."""
    iv = mean_interval(values)
    return {"mean": iv.mean, "std": iv.std, "n": iv.n, "values": list(iv.values)}


def spread(values: Sequence[float]) -> dict[str, float | None]:
    """``{"n", "mean", "std", "range", "min", "max"}`` of a sweep's values (std: n - 1, None for one).

    Raises:
        ValueError: no values.
    """
    if not values:
        raise ValueError("spread needs at least one value")
    iv = mean_interval(values)
    return {"n": iv.n, "mean": iv.mean, "std": iv.std, "range": max(values) - min(values),
            "min": min(values), "max": max(values)}


def holm(p: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (family-wise error), in input order.

    With the m measured p-values sorted, ``p_(1) <= ... <= p_(m)``, the adjusted value of
    ``p_(i)`` is ``max_{j <= i} min(1, (m - j + 1) p_(j))``. None (not measured) stays None and
    is not counted in m.
    """
    order = sorted((v, i) for i, v in enumerate(p) if v is not None)
    out: list[float | None] = [None] * len(p)
    running = 0.0
    for rank, (value, index) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * value))
        out[index] = running
    return out


def benjamini_hochberg(p: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjustment of a family of p-values (false discovery rate), in input order.

    With the m measured p-values sorted, the adjusted value of ``p_(i)`` is
    ``min_{j >= i} min(1, m p_(j) / j)``. None (not measured) stays None and is not counted in m.
    """
    order = sorted((v, i) for i, v in enumerate(p) if v is not None)
    out: list[float | None] = [None] * len(p)
    running = 1.0
    for rank in range(len(order) - 1, -1, -1):
        value, index = order[rank]
        running = min(running, len(order) * value / (rank + 1))
        out[index] = running
    return out
