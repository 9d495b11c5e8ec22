"""Intervals, paired differences, verdicts and multiple-comparison adjustments of a study, against
hand-computed values, printed t tables and naive references (the procedures run step by step)."""

import math
import random

import pytest

from supcon.workflows.report import fmt_interval, fmt_p, fmt_pm
from supcon.workflows.stats import (
    benjamini_hochberg,
    holm,
    mean,
    mean_interval,
    mean_std,
    paired_difference,
    spread,
    supported,
    verdict,
)

# Two-sided 95% critical values t_{0.975, df} as printed in t tables (4 decimals).
T_TABLE = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 9: 2.2622, 10: 2.2281,
           29: 2.0452, 120: 1.9799}


@pytest.mark.parametrize("df, value", T_TABLE.items())
def test_interval_uses_the_printed_t_table(df, value):
    # df + 1 values -1, 1, 0, ...: mean 0, s = sqrt(2 / df), so half-width = t * s / sqrt(df + 1)
    iv = mean_interval([-1.0, 1.0] + [0.0] * (df - 1))
    assert iv.std == pytest.approx(math.sqrt(2 / df))
    assert iv.half_width * math.sqrt(df + 1) / iv.std == pytest.approx(value, abs=6e-5)


def test_mean_std_and_spread_are_the_intervals_numbers():
    values = [90.0, 92.0, 91.0, None]
    assert mean_std(values) == {"mean": 91.0, "std": pytest.approx(1.0), "n": 3, "values": [90.0, 92.0, 91.0]}
    assert mean_std([5.0])["std"] is None and mean_std([None])["mean"] is None
    s = spread([1.0, 4.0, 2.5])
    assert (s["n"], s["mean"], s["range"], s["min"], s["max"]) == (3, 2.5, 3.0, 1.0, 4.0)
    assert s["std"] == pytest.approx(1.5) and spread([7.0])["std"] is None
    assert mean([1.0, None, 2.0]) == 1.5 and mean([None]) is None


def test_mean_interval_by_hand():
    iv = mean_interval([1, 2, 3, 4, 5])
    # mean 3, s = sqrt(10/4) = 1.5811, se = s/sqrt(5) = 0.70711, half = 2.776445 * 0.70711 = 1.96324
    assert iv.mean == 3 and iv.n == 5 and iv.std == pytest.approx(math.sqrt(2.5))
    assert iv.half_width == pytest.approx(1.963243, abs=1e-6)
    assert (iv.low, iv.high) == pytest.approx((1.036757, 4.963243), abs=1e-6)
    two = mean_interval([85.7, 86.1])  # n = 2: half = 12.7062 * |a - b| / 2
    assert two.half_width == pytest.approx(12.7062 * 0.2, abs=1e-4)
    one = mean_interval([86.0, None])
    assert one.mean == 86.0 and one.low is None and one.n == 1 and fmt_interval(one) == "86.00 (1 seed)"
    assert mean_interval([]).mean is None and fmt_interval(mean_interval([])) == "—"


def test_paired_difference_by_hand():
    supcon = [86.0, 86.5, 85.5, 86.2, 85.8]
    ce = [85.7, 85.9, 85.6, 85.8, 85.5]
    p = paired_difference(supcon, ce)
    # d = 0.3, 0.6, -0.1, 0.4, 0.3: mean 0.3, sum of squares 0.26, s = sqrt(0.065) = 0.254951,
    # se = 0.114018, t = 2.631174, half = 2.776445 * 0.114018 = 0.316563
    assert p.difference.mean == pytest.approx(0.3) and p.n == 5
    assert p.difference.std == pytest.approx(math.sqrt(0.065))
    assert p.t == pytest.approx(2.631174, abs=1e-6)
    assert (p.difference.low, p.difference.high) == pytest.approx((-0.016563, 0.616563), abs=1e-6)
    # two-sided p from the df = 4 closed form of the t CDF
    r = p.t / math.sqrt(1 + p.t**2 / 4)
    cdf = 0.5 + 0.375 * r * (1 - p.t**2 / (12 * (1 + p.t**2 / 4)))
    assert p.p == pytest.approx(2 * (1 - cdf), abs=1e-12)
    assert p.p == pytest.approx(0.0581, abs=1e-4)
    # the interval holds 0: no difference detected, nothing to bold
    assert verdict(p) == "no difference detected (5 seeds)" and not supported(p)
    # one more point of difference per seed: the interval is shifted by 1 and excludes 0
    better = paired_difference([s + 1 for s in supcon], ce)
    assert better.difference.low == pytest.approx(p.difference.low + 1) and verdict(better) == "better"
    assert verdict(better, higher_is_better=False) == "worse"  # e.g. a larger ECE or mCE
    assert supported(better) and not supported(better, higher_is_better=False)


def test_paired_difference_edge_cases():
    same = paired_difference([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    assert same.p == 1.0 and verdict(same) == "no difference detected (3 seeds)"
    constant = paired_difference([0.75, 0.5], [1.0, 0.75])  # every seed 0.25 lower, no spread
    assert constant.p == 0.0 and verdict(constant, higher_is_better=False) == "better"
    missing = paired_difference([1.0, None, 3.0], [0.5, 2.0, 2.0])  # pairs with a gap are left out
    assert missing.n == 2 and missing.difference.mean == pytest.approx(0.75)
    assert verdict(paired_difference([None, None], [1.0, 2.0])) == "not measured"
    single = paired_difference([1.0], [0.0])
    assert single.p is None and verdict(single) == "no difference detected (1 seed)"
    with pytest.raises(ValueError, match="same length"):
        paired_difference([1.0, 2.0], [1.0])


def test_formatting():
    iv = mean_interval([1, 2, 3, 4, 5])
    assert fmt_interval(iv) == "3.00 [1.04, 4.96]" and fmt_pm(iv, 1) == "3.0 ± 2.0"
    assert fmt_p(0.0581) == "0.0581" and fmt_p(0.0004) == "< 0.001" and fmt_p(None) == "—"


def test_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    a, b = [3.1, 2.9, 3.4, 3.8], [2.0, 2.8, 2.9, 3.1]
    p = paired_difference(a, b)
    assert p.p == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)
    d = [x - y for x, y in zip(a, b, strict=True)]
    low, high = stats.t.interval(0.95, 3, loc=p.difference.mean, scale=stats.sem(d))
    assert (p.difference.low, p.difference.high) == pytest.approx((low, high), rel=1e-12)


# ------------------------------------------------------------------------------ adjustments
def _smallest_level(p, index, rejects):
    """The smallest level at which ``rejects(p, level)`` rejects hypothesis ``index``: the adjusted
    p-value by its definition, searched over every level where the procedure's decisions change."""
    m = len(p)
    levels = sorted({min(1.0, v * k) for v in p for k in range(1, m + 1)}
                    | {min(1.0, v * m / k) for v in p for k in range(1, m + 1)} | {1.0})
    return next((a for a in levels if index in rejects(p, a)), 1.0)


def _holm_rejects(p, level):
    """Holm's step-down test at ``level``: reject in order of p while p_(k) <= level / (m - k + 1)."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    out = set()
    for k, i in enumerate(order):
        if p[i] > level / (len(p) - k) * (1 + 1e-12):  # levels are products of p: allow rounding
            break
        out.add(i)
    return out


def _bh_rejects(p, level):
    """Benjamini-Hochberg's step-up test at ``level``: the largest k with p_(k) <= k level / m and
    every hypothesis up to it."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    last = max((k for k, i in enumerate(order, 1) if p[i] <= k * level / len(p) * (1 + 1e-12)), default=0)
    return set(order[:last])


def test_holm_and_bh_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04; Holm: 4 x 0.005, 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 0.04)
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: 4/1 x 0.005, 4/2 x 0.01, 4/3 x 0.03, 4/4 x 0.04, each the minimum of itself and those after
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # not measured stays None and does not count in m; adjusted values never exceed 1
    assert holm([0.2, None, 0.5]) == [pytest.approx(0.4), None, pytest.approx(0.5)]
    assert benjamini_hochberg([None, 0.9, 0.8]) == [None, pytest.approx(0.9), pytest.approx(0.9)]
    assert holm([0.6, 0.7]) == [1.0, 1.0] and holm([]) == [] and benjamini_hochberg([None]) == [None]


@pytest.mark.parametrize("seed", range(20))
def test_adjusted_p_is_the_smallest_level_that_rejects(seed):
    rng = random.Random(seed)
    m = rng.randint(1, 7)
    p = [round(rng.choice([rng.random(), rng.random() / 50]), 4) for _ in range(m)]
    for adjust, rejects in ((holm, _holm_rejects), (benjamini_hochberg, _bh_rejects)):
        got = adjust(p)
        for i in range(m):
            assert got[i] == pytest.approx(_smallest_level(p, i, rejects), abs=1e-12), (adjust.__name__, p, i)


def test_bh_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    if not hasattr(stats, "false_discovery_control"):  # scipy >= 1.11
        pytest.skip("this scipy has no false_discovery_control")
    p = [0.001, 0.2, 0.03, 0.04, 0.5, 0.0201, 0.9]
    assert benjamini_hochberg(p) == pytest.approx(list(stats.false_discovery_control(p)), rel=1e-12)


def test_tiny_p_values_are_not_rounded_to_zero():
    stats = pytest.importorskip("scipy.stats")
    # 5 seeds, a 10-point difference with a spread of about 0.001: t near 30000 on 4 degrees of
    # freedom, p near 1e-18, far below the 1e-16 where 2 * (1 - cdf) rounds to 0
    p = paired_difference([10.0, 10.001, 9.999, 10.0005, 9.9995], [0.0] * 5)
    assert 0.0 < p.p < 1e-15
    assert p.p == pytest.approx(2 * stats.t.sf(p.t, 4), rel=1e-9)
    assert paired_difference([0.0] * 5, [10.0, 10.001, 9.999, 10.0005, 9.9995]).p == pytest.approx(p.p, rel=1e-12)
