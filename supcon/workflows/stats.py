"""Statistics of a comparison over seeds: t intervals, paired differences and verdicts in words.

Every number a study reports is a mean over seeds with a 95% confidence interval from the t
distribution (``mean ± t_{0.975, n-1} * s / sqrt(n)``, s the sample standard deviation). A
method is compared with a baseline by the *paired* per-seed difference ``d_k = m_k - b_k`` (seed
k of both runs shares the validation split, initialisation stream and batch order): its mean, t
interval and two-sided p-value of the one-sample t test of ``mean(d) = 0``. The verdict is
"better" or "worse" when the interval excludes 0 (p < 0.05) and "no difference detected (n
seeds)" otherwise; it never claims equality, only that this many seeds cannot tell.

The t distribution is computed here (the regularised incomplete beta function by its continued
fraction), so no statistics package is needed: ``t_cdf`` and ``t_quantile`` agree with printed
tables to the 4 decimals they give.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

LEVEL = 0.95  # confidence level of every interval


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
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


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function ``I_x(a, b)`` for a, b > 0 and x in [0, 1].

    Raises:
        ValueError: a or b not positive, or x outside [0, 1].
    """
    if not (a > 0 and b > 0):
        raise ValueError(f"betainc needs a, b > 0, got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc needs x in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """``P(T <= t)`` for Student's t with ``df`` degrees of freedom.

    Raises:
        ValueError: ``df`` not positive.
    """
    if not df > 0:
        raise ValueError(f"df must be > 0, got {df}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))  # P(T > |t|)
    return 1.0 - tail if t >= 0 else tail


def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom (``t_cdf`` inverted by
    bisection to 1e-12).

    Raises:
        ValueError: ``q`` outside (0, 1) or ``df`` not positive.
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    if not df > 0:
        raise ValueError(f"df must be > 0, got {df}")
    if q < 0.5:
        return -t_quantile(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        lo, hi = hi, hi * 2.0
    while hi - lo > 1e-12 * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


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
    half = t_quantile(0.5 + level / 2.0, n - 1) * std / math.sqrt(n)
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
    p = 2.0 * (1.0 - t_cdf(abs(t), interval.n - 1))
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
    standard deviation (n - 1; None for one value)."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"mean": None, "std": None, "n": 0, "values": []}
    std = statistics.stdev(vals) if len(vals) > 1 else None
    return {"mean": statistics.fmean(vals), "std": std, "n": len(vals), "values": vals}


def spread(values: Sequence[float]) -> dict[str, float | None]:
    """``{"n", "mean", "std", "range", "min", "max"}`` of a sweep's values (std: n - 1, None for one)."""
    n = len(values)
    avg = sum(values) / n
    std = (sum((t - avg) ** 2 for t in values) / (n - 1)) ** 0.5 if n > 1 else None
    return {"n": n, "mean": avg, "std": std, "range": max(values) - min(values),
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
