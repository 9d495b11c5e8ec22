"""Where a study's claims and a sweep are drawn: the claims table and the sections of the claim rows
that train their own runs (:mod:`.claims` analyses them), and the `supcon sweep` report."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .claims import epochs_text, per_value
from .plots import plot_stability
from .report import Figure, Section, Table, fmt_interval, fmt_p
from .stats import mean_interval


def claims_table(rows: list[dict[str, Any]]) -> Table:
    """The claims as a table (also written alone to claims.md, for the README)."""
    return Table(["family", "the paper's claim", "setting", "compared with", "measured here [95% CI]", "p",
                  "adjusted p", "verdict"],
                 [[r.get("family", "—"), r["claim"], r["setting"], r.get("comparator", "—"), r["measured"],
                   fmt_p(r["p"]), fmt_p(r.get("p_adjusted")), r["verdict"]] for r in rows])


def claims_section(rows: list[dict[str, Any]], augmentation: str, plan: Mapping[str, Any]) -> Section:
    """The claims table with its legend (the first section of the study's report)."""
    families = "; ".join(f"{f}: {m}" for f, m in plan["adjustment"].items())
    legend = [
        "Endpoints, comparators and families were fixed in plan.json before the first run. "
        f"p: two-sided paired t test over seeds; adjusted p: within each family ({families}). "
        f"verdict: better / worse when the adjusted p is below {plan['alpha']} (better = in the direction "
        "the claim states), else no difference detected, with what the unadjusted 95% interval rules out. "
        "Exploratory rows look at subsets chosen after the corruptions were seen; read them as leads.",
        "compared with: " + "; ".join(f"{k}: {v}" for k, v in plan["comparators"].items()) + ".",
        "setting: seeds, pre-training epochs and what is compared. Every run trains with the settings "
        f"chosen on the validation split (supcon and ce: the shared augmentation, {augmentation}), "
        "unless the row varies them.",
    ]
    return Section("Claims", [claims_table(rows), legend])


def lout_lin_section(data: Mapping[str, Any], setting: str) -> Section:
    """Test top-1 of SupCon with each loss variant, per seed and with its interval."""
    table = Table(["loss", "test top-1 (%) [95% CI]", "per seed"],
                  [[name, fmt_interval(mean_interval(v)), ", ".join(f"{x:.2f}" for x in v)]
                   for name, v in (("L_out", data["l_out"]), ("L_in", data["l_in"]))])
    return Section("L_out vs L_in", [f"SupCon with each loss variant, {setting}.", table])


def equal_compute_section(data: Mapping[str, Any], labels: Mapping[str, str], setting: str) -> Section:
    """Top-1 and mCE of supcon at the main budget and of each cross-entropy row at equal passes."""
    body = [["supcon (core runs)", fmt_interval(mean_interval(data["supcon"]["clean_top1"])),
             fmt_interval(mean_interval(data["supcon"]["mce"]), 3), "", ""]]
    for key, by_metric in data["ce"].items():
        paired = data["paired"][key]
        body.append([labels[key], fmt_interval(mean_interval(by_metric["clean_top1"])),
                     fmt_interval(mean_interval(by_metric["mce"]), 3),
                     fmt_interval(paired["clean_top1"].difference), fmt_interval(paired["mce"].difference, 3)])
    table = Table(["row", "test top-1 (%) [95% CI]", "mCE [95% CI]", "supcon − row, top-1", "supcon − row, mCE"], body)
    return Section("Equal compute", [f"{setting}. mCE is relative to the core ce run of the same seed.", table])


def long_schedule_section(data: Mapping[str, Any], factor: int, labels: Mapping[str, str], setting: str) -> Section:
    """supcon and each ce row's top-1 and their paired gap at the main and the long budget."""
    top1, gap = data["top1"], data["gap"]
    budgets = ("1x", f"{factor}x")
    table = Table(["budget", "row", "supcon top-1 (%)", "row top-1 (%)", "supcon − row (paired)"],
                  [[b, labels[k], fmt_interval(mean_interval(top1["supcon"][b])), fmt_interval(mean_interval(top1[k][b])),
                    fmt_interval(mean_interval(gap[k][b]))] for k in labels for b in budgets])
    return Section("Longer schedule", [f"supcon against each cross-entropy row, {setting}; "
                                       "seeds 0.. of the main budget are the core runs.", table])


def stability_section(data: Mapping[str, Any], seeds: int, epochs: int, plots: Path) -> Section:
    """Top-1 per value of each factor, the per-seed spreads, and the stability figure."""
    blocks: list = []
    for factor, by_method in data["top1"].items():
        blocks.append(Table(["row", factor, "test top-1 (%) [95% CI]"],
                            [[m, v, fmt_interval(mean_interval(t))] for m, by_value in by_method.items()
                             for v, t in by_value.items()]))
        blocks.append(Table(["row", f"std over the {factor} values, per seed", "mean [95% CI]"],
                            [[m, ", ".join(f"{x:.2f}" for x in s), fmt_interval(mean_interval(s))]
                             for m, s in data["spread"][factor].items()]))
    figure = plot_stability(per_value(data["top1"]), plots / "stability.png",
                            title=f"Test top-1 per value (mean ± std over {seeds} seeds)")
    diverged = data.get("diverged") or []
    return Section("Stability to hyperparameters", [
        "Around each row's selected settings, one factor varied at a time; per seed, the sample std "
        f"of test top-1 over the factor's values. lr and augmentation: {epochs_text(epochs)} at the main "
        f"batch size. Batch size: x0.5, x1, x2 at the same number of steps ({epochs_text(epochs)} at the "
        "smallest, more epochs for larger batches) with the lr scaled with the batch. "
        + (f"Diverged (counted at chance accuracy): {', '.join(diverged)}." if diverged else "No run diverged."),
        Figure(figure, "Test top-1 for each value of each factor"), *blocks])


# ------------------------------------------------------------------------------ supcon sweep
def sweep_sections(vary: str, rows: Mapping[str, list[dict]], spread: Mapping[str, dict], out: Path,
                   command: str) -> list[Section]:
    """The sweep's report: the spread of top-1 per method (with the figure) and every run."""
    panels = {vary: {_legend(m, spread[m]): [(_tick(r, vary), r["top1"], None) for r in rs]
                     for m, rs in rows.items()}}
    figure = plot_stability(panels, out / "sweep.png", title=f"Stability of test top-1 to the {vary} (seed 0)")
    summary = Table(["method", "points", "mean top-1 (%)", "std (points)", "range (points)",
                     "min", "max"],
                    [[m, str(s["n"]), f"{s['mean']:.2f}", "—" if s["std"] is None else f"{s['std']:.2f}",
                      f"{s['range']:.2f}", f"{s['min']:.2f}", f"{s['max']:.2f}"] for m, s in spread.items()])
    return [
        Section("Spread of top-1 per method", [
            summary, f"std: sample standard deviation (n - 1) over the {vary} values; range: "
            "max - min, in percentage points of test top-1 (linear classifier).",
            Figure(figure, f"Test top-1 for each {vary}, one line per method")]),
        Section("Every run", [_runs_table(vary, rows), f"Made with `{command}`; "
                              "run folders are `<method>-<vary>-<value>` in this folder."]),
    ]


def _legend(method: str, s: Mapping[str, Any]) -> str:
    std = "—" if s["std"] is None else f"{s['std']:.2f}"
    return f"{method}: std {std}, range {s['range']:.2f} points"


def _tick(row: Mapping[str, Any], vary: str) -> str:
    """x-axis label of a run; optimizers also show their learning rate."""
    return f"{row['value']} (lr {row['lr']:g})" if vary == "optimizer" else row["value"]


def _runs_table(vary: str, rows) -> Table:
    """One row per run: the varied value, the settings it implies, and the results."""
    settings = [k for k in ("optimizer", "augmentation") if k != vary]
    header = ["method", "lr factor" if vary == "lr" else vary, *settings, "peak lr", "top-1 (%)",
              "kNN top-1 (%)", "ECE"]
    body = [[m, r["value"], *(r[k] for k in settings), f"{r['lr']:g}", f"{r['top1']:.2f}",
             f"{r['knn_top1']:.2f}", f"{r['ece']:.4f}"] for m, rs in rows.items() for r in rs]
    return Table(header, body)
