"""The analysis of `supcon study`: each claim of the paper as one row, from per-seed numbers alone
(plain data in and out; :mod:`.render_study` draws the rows, :mod:`.study` makes the runs).

A row is a paired difference with its 95% interval, its p-value and a verdict. What a row compares
is an input, fixed before its numbers are read: the core rows (:data:`CORE_CLAIMS`) take their
comparator row per metric from the caller, and a row may declare a ``family``: then the p-values
of each family are adjusted together (:func:`adjust`: Holm for ``primary``, Benjamini-Hochberg
for the others) and the row's verdict uses the adjusted value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .analysis import METRICS, REFERENCE
from .report import fmt_interval
from .stats import Paired, benjamini_hochberg, holm, mean_std, paired_difference, verdict

ALPHA = 0.05  # the level an adjusted p-value is compared with (the intervals are 95%)


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
    ClaimSpec("accuracy", "SupCon reaches higher top-1 than cross-entropy (Tables 2-3)", "clean_top1", " points"),
    ClaimSpec("robustness", "SupCon is more robust to natural corruptions: lower mCE (Table 4, Fig. 3)", "mce"),
    ClaimSpec("robustness", "... also on the corruptions no training augmentation imitates", "mce_unimitated"),
    ClaimSpec("calibration", "SupCon is better calibrated: lower ECE (Fig. 3)", "ece"),
    ClaimSpec("calibration", "... also under corruption: lower mean ECE over corruptions (Fig. 3)",
              "corrupted_ece"),
)


def claim_row(claim: str, setting: str, what: str, paired: Paired, decimals: int, higher_is_better: bool,
              unit: str = "", family: str | None = None) -> dict[str, Any]:
    """One row of the claims table: the paper's claim, the setting, what was measured, the verdict."""
    d = paired.difference
    sign = "+" if d.mean is not None and d.mean >= 0 else ""
    measured = f"{what}: {sign}{fmt_interval(d, decimals)}{unit}" if d.mean is not None else f"{what}: —"
    row = {"claim": claim, "setting": setting, "measured": measured, "p": paired.p,
           "verdict": verdict(paired, higher_is_better), "difference": d.to_dict()}
    if family is not None:
        row.update(family=family, higher_is_better=higher_is_better)
    return row


def adjust(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with ``p_adjusted`` within each declared family (Holm for ``primary``, Benjamini-
    Hochberg for any other) and the verdict from it: better / worse when the adjusted p is below
    :data:`ALPHA`, in the direction of the measured difference. Rows without a family are
    returned as they are."""
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
                row["verdict"] = f"no difference detected ({d['n']} seed{'s' * (d['n'] != 1)})"
    return out


def strongest(analysis: Mapping[str, Any], metric: str) -> str:
    """The cross-entropy row with the better test mean on ``metric`` (the comparator the core
    claims have used so far; a comparator chosen on the test split, see docs/evaluation.md)."""
    m = METRICS[metric]
    bases = [b for b in analysis["baselines"] if analysis["intervals"][b][metric].mean is not None]
    if not bases:
        return REFERENCE
    means = {b: analysis["intervals"][b][metric].mean for b in bases}
    return (max if m.higher_is_better else min)(bases, key=means.__getitem__)


def core_claims(analysis: Mapping[str, Any], specs: Sequence[ClaimSpec], comparators: Mapping[str, str],
                setting: str) -> list[dict[str, Any]]:
    """The rows of ``specs``: supcon against ``comparators[metric]`` (a row key of the analysis)."""
    labels = {r["key"]: r["label"] for r in analysis["rows"]}
    rows = []
    for spec in specs:
        base, m = comparators[spec.metric], METRICS[spec.metric]
        what = f"{m.title.replace(' (%)', '')}, supcon − {labels[base]}"
        rows.append(claim_row(spec.claim, setting, what, analysis["paired"][f"supcon vs {base}"][spec.metric],
                              m.decimals, m.higher_is_better, spec.unit, spec.family))
    return rows


def epochs_text(n: int) -> str:
    """``"1 epoch"``, ``"4 epochs"``."""
    return f"{n} epoch{'s' * (n != 1)}"


def lout_lin(l_out: Sequence[float], l_in: Sequence[float], setting: str) -> tuple[list[dict], dict]:
    """The L_out vs L_in row from per-seed test top-1 of both variants."""
    paired = paired_difference(l_out, l_in)
    rows = [claim_row("L_out (sum over positives outside the log) beats L_in (Table 1)", setting,
                      "top-1, L_out − L_in", paired, 2, True, " points")]
    return rows, {"l_out": list(l_out), "l_in": list(l_in), "paired": paired}


def long_schedule(top1: Mapping[str, Mapping[str, list[float]]], factor: int,
                  setting: str) -> tuple[list[dict], dict]:
    """The longer-schedule rows from ``top1[row][budget]`` (budgets ``1x`` and ``<factor>x``, rows
    supcon and ce): the gap at the long budget, and its change from the main one."""
    long = f"{factor}x"
    gap = {b: [s - c for s, c in zip(top1["supcon"][b], top1[REFERENCE][b], strict=True)] for b in ("1x", long)}
    at_long = paired_difference(top1["supcon"][long], top1[REFERENCE][long])
    change = paired_difference(gap[long], gap["1x"])
    rows = [claim_row(f"SupCon's lead over cross-entropy holds with a longer schedule ({factor}x)", setting,
                      "top-1, supcon − ce", at_long, 2, True, " points"),
            claim_row("... and grows with the schedule", setting, f"gap at {long} − gap at 1x", change, 2, True,
                      " points")]
    return rows, {"top1": top1, "gap": gap, "at_long": at_long, "change": change}


FACTOR_TEXT = {"lr": "learning rates", "augmentation": "augmentations", "batch": "batch sizes"}


def stability(results: Mapping[str, Mapping[str, Mapping[str, list[float]]]], seeds: int,
              settings: Mapping[str, str]) -> tuple[list[dict], dict]:
    """The stability rows from ``results[factor][row][value]`` = test top-1 per seed: per seed,
    the sample std of top-1 over the factor's values; supcon's spread against ce's."""
    rows, spreads = [], {}
    for factor, by_method in results.items():
        spreads[factor] = {m: [mean_std([vals[k] for vals in by_value.values()])["std"] for k in range(seeds)]
                           for m, by_value in by_method.items()}
        paired = paired_difference(spreads[factor]["supcon"], spreads[factor][REFERENCE])
        rows.append(claim_row(f"SupCon's top-1 varies less than cross-entropy's over {FACTOR_TEXT[factor]} (Fig. 4)",
                              settings[factor], "std of top-1 over the values, supcon − ce", paired, 2, False,
                              " points"))
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
