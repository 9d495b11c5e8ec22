"""The analysis of `supcon study`: each claim of the paper as one row, from per-seed numbers alone
(plain data in and out; :mod:`.render_study` draws the rows, :mod:`.study` makes the runs).

A row is a paired difference with its 95% interval, its p-value and a verdict. What a row compares
is an input, fixed before its numbers are read: every row is measured against each cross-entropy
row of :data:`COMPARATORS` (the controlled and the strong one), and each row declares a
``family``: the p-values of each family are adjusted together (:func:`adjust`: Holm for
``primary``, Benjamini-Hochberg for the others) and the row's verdict uses the adjusted value.
A "no difference detected" verdict states what the row's 95% interval rules out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .analysis import METRICS
from .report import fmt_interval
from .stats import Paired, benjamini_hochberg, holm, mean_std, paired_difference, verdict

ALPHA = 0.05  # the level an adjusted p-value is compared with (the intervals are 95%)
# The comparators of every claim row, fixed before any run: the controlled one (cross-entropy with
# the shared augmentation) and the strong one (cross-entropy with its own augmentation, chosen
# with its lr on the validation split).
COMPARATORS = ("ce", "ce-own")
# Holm within the primary family (family-wise error); Benjamini-Hochberg within each other one.
ADJUSTMENT = {"primary": "Holm", "secondary": "Benjamini-Hochberg", "exploratory": "Benjamini-Hochberg"}


@dataclass(frozen=True)
class ClaimSpec:
    """A claim row of the core comparison: the paper's claim, the metric that tests it and the
    family its p-value is adjusted within (None: not adjusted)."""

    group: str  # the --claims name that turns it on
    claim: str
    metric: str
    unit: str = ""
    family: str | None = None


CORE_CLAIMS = (
    ClaimSpec("accuracy", "SupCon reaches higher top-1 than cross-entropy (Tables 2-3)", "clean_top1", " points",
              "primary"),
    ClaimSpec("robustness", "SupCon is more robust to natural corruptions: lower mCE over all corruptions "
              "(Table 4, Fig. 3)", "mce", family="primary"),
    ClaimSpec("robustness", "exploratory: ... on the corruptions no training augmentation imitates",
              "mce_unimitated", family="exploratory"),
    ClaimSpec("robustness", "exploratory: ... on the corruptions a training augmentation imitates",
              "mce_imitated", family="exploratory"),
    ClaimSpec("calibration", "SupCon is better calibrated: lower ECE, each method's own classifier (Fig. 3)",
              "ece", family="secondary"),
    ClaimSpec("calibration", "... with the same linear probe on every encoder", "probe_ece", family="secondary"),
    ClaimSpec("calibration", "... under corruption: lower mean ECE over corruptions (Fig. 3)", "corrupted_ece",
              family="secondary"),
)


def excluded(d: Mapping[str, Any] | Any, decimals: int, unit: str = "") -> str:
    """What a 95% interval ``d`` (a dict or :class:`~.stats.Interval`) rules out, in words."""
    low, high = (d["low"], d["high"]) if isinstance(d, Mapping) else (d.low, d.high)
    if low is None:
        return ""
    return f"; rules out a difference below {low:+.{decimals}f} or above {high:+.{decimals}f}{unit}"


def claim_row(claim: str, setting: str, what: str, paired: Paired, decimals: int, higher_is_better: bool,
              unit: str = "", family: str | None = None, comparator: str | None = None) -> dict[str, Any]:
    """One row of the claims table: the paper's claim, the setting, what was measured (against
    ``comparator``, shown as given), the verdict; a "no difference" verdict says what the
    interval rules out."""
    d = paired.difference
    sign = "+" if d.mean is not None and d.mean >= 0 else ""
    measured = f"{what}: {sign}{fmt_interval(d, decimals)}{unit}" if d.mean is not None else f"{what}: —"
    said = verdict(paired, higher_is_better)
    if said.startswith("no difference"):
        said += excluded(d, decimals, unit)
    row = {"claim": claim, "setting": setting, "measured": measured, "p": paired.p, "verdict": said,
           "difference": d.to_dict(), "decimals": decimals, "unit": unit}
    if comparator is not None:
        row["comparator"] = comparator
    if family is not None:
        row.update(family=family, higher_is_better=higher_is_better)
    return row


def adjust(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with ``p_adjusted`` within each declared family (Holm for ``primary``, Benjamini-
    Hochberg for any other) and the verdict from it: better / worse when the adjusted p is below
    :data:`ALPHA`, in the direction of the measured difference, else no difference detected with
    what the (unadjusted) 95% interval rules out. Rows without a family are returned as they are."""
    out = [dict(r) for r in rows]
    for family in dict.fromkeys(r["family"] for r in out if r.get("family")):
        members = [r for r in out if r.get("family") == family]
        method = holm if family == "primary" else benjamini_hochberg
        for row, p in zip(members, method([r["p"] for r in members]), strict=True):
            row["p_adjusted"] = p
            d = row["difference"]
            if p is not None and p < ALPHA and d["mean"] != 0:
                row["verdict"] = "better" if (d["mean"] > 0) == row["higher_is_better"] else "worse"
            elif d["n"]:
                seeds = f"{d['n']} seed{'s' * (d['n'] != 1)}"
                raw_excludes_zero = d["low"] is not None and (d["low"] > 0 or d["high"] < 0)
                said = (f"no difference detected after adjustment ({seeds}, adjusted p {p:.3g})" if raw_excludes_zero
                        else f"no difference detected ({seeds})")
                row["verdict"] = said + excluded(d, row.get("decimals", 2), row.get("unit", ""))
    return out


def core_claims(analysis: Mapping[str, Any], specs: Sequence[ClaimSpec], comparators: Sequence[str],
                setting: str) -> list[dict[str, Any]]:
    """The rows of ``specs``, each against every row of ``comparators`` (row keys of the analysis,
    fixed in advance; one missing from the analysis is left out)."""
    labels = {r["key"]: r["label"] for r in analysis["rows"]}
    rows = []
    for spec in specs:
        m = METRICS[spec.metric]
        for base in (b for b in comparators if b in labels):
            what = f"{m.title.replace(' (%)', '')}, supcon − {labels[base]}"
            rows.append(claim_row(spec.claim, setting, what, analysis["paired"][f"supcon vs {base}"][spec.metric],
                                  m.decimals, m.higher_is_better, spec.unit, spec.family, labels[base]))
    return rows


def epochs_text(n: int) -> str:
    """``"1 epoch"``, ``"4 epochs"``."""
    return f"{n} epoch{'s' * (n != 1)}"


def lout_lin(l_out: Sequence[float], l_in: Sequence[float], setting: str) -> tuple[list[dict], dict]:
    """The L_out vs L_in row from per-seed test top-1 of both variants (secondary family)."""
    paired = paired_difference(l_out, l_in)
    rows = [claim_row("L_out (sum over positives outside the log) beats L_in (Table 1)", setting,
                      "top-1, L_out − L_in", paired, 2, True, " points", "secondary", "supcon with L_in")]
    return rows, {"l_out": list(l_out), "l_in": list(l_in), "paired": paired}


def equal_compute(supcon: Mapping[str, list[float | None]], ce: Mapping[str, Mapping[str, list[float | None]]],
                  labels: Mapping[str, str], setting: str) -> tuple[list[dict], dict]:
    """SupCon at the main budget against each cross-entropy row given as many encoder passes:
    ``supcon[metric]`` and ``ce[row][metric]`` per seed, for top-1 and mCE (secondary family)."""
    rows, paired = [], {}
    for base, by_metric in ce.items():
        paired[base] = {}
        for metric, claim in (("clean_top1", "SupCon's top-1 lead holds at equal compute (encoder passes)"),
                              ("mce", "SupCon's lower mCE holds at equal compute (encoder passes)")):
            m = METRICS[metric]
            paired[base][metric] = paired_difference(supcon[metric], by_metric[metric])
            rows.append(claim_row(claim, setting, f"{m.title.replace(' (%)', '')}, supcon − {labels[base]}",
                                  paired[base][metric], m.decimals, m.higher_is_better,
                                  " points" if metric == "clean_top1" else "", "secondary", labels[base]))
    return rows, {"supcon": dict(supcon), "ce": {k: dict(v) for k, v in ce.items()}, "paired": paired}


def long_schedule(top1: Mapping[str, Mapping[str, list[float]]], factor: int, labels: Mapping[str, str],
                  setting: str) -> tuple[list[dict], dict]:
    """The longer-schedule rows from ``top1[row][budget]`` (budgets ``1x`` and ``<factor>x``; rows
    supcon and each cross-entropy row of ``labels``): the gap at the long budget, and its change
    from the main one, against each cross-entropy row (secondary family)."""
    long = f"{factor}x"
    rows, gap = [], {}
    for base, label in labels.items():
        gap[base] = {b: [s - c for s, c in zip(top1["supcon"][b], top1[base][b], strict=True)] for b in ("1x", long)}
        at_long = paired_difference(top1["supcon"][long], top1[base][long])
        change = paired_difference(gap[base][long], gap[base]["1x"])
        rows += [claim_row(f"SupCon's lead over cross-entropy holds with a longer schedule ({factor}x)", setting,
                           f"top-1, supcon − {label}", at_long, 2, True, " points", "secondary", label),
                 claim_row("... and grows with the schedule", setting, f"gap at {long} − gap at 1x", change, 2, True,
                           " points", "secondary", label)]
    return rows, {"top1": top1, "gap": gap}


FACTOR_TEXT = {"lr": "learning rates", "augmentation": "augmentations", "batch": "batch sizes"}


def stability(results: Mapping[str, Mapping[str, Mapping[str, list[float]]]], seeds: int,
              settings: Mapping[str, str], labels: Mapping[str, str]) -> tuple[list[dict], dict]:
    """The stability rows from ``results[factor][row][value]`` = test top-1 per seed: per seed,
    the sample std of top-1 over the factor's values; supcon's spread against that of each
    cross-entropy row of ``labels`` (secondary family)."""
    rows, spreads = [], {}
    for factor, by_method in results.items():
        spreads[factor] = {m: [mean_std([vals[k] for vals in by_value.values()])["std"] for k in range(seeds)]
                           for m, by_value in by_method.items()}
        for base, label in labels.items():
            paired = paired_difference(spreads[factor]["supcon"], spreads[factor][base])
            rows.append(claim_row(f"SupCon's top-1 varies less than cross-entropy's over {FACTOR_TEXT[factor]} "
                                  "(Fig. 4)", settings[factor], f"std of top-1 over the values, supcon − {label}",
                                  paired, 2, False, " points", "secondary", label))
    return rows, {"top1": results, "spread": spreads}


def per_value(results: Mapping[str, Mapping[str, Mapping[str, list[float]]]]) -> dict:
    """``{factor: {row: [(value, mean, std or None), ...]}}``: what the stability figure draws."""
    out: dict = {}
    for factor, by_method in results.items():
        out[factor] = {}
        for m, by_value in by_method.items():
            stats = {v: mean_std(t) for v, t in by_value.items()}
            out[factor][m] = [(v, s["mean"], s["std"]) for v, s in stats.items()]
    return out
