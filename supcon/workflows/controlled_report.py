"""What a controlled comparison reports, computed from the run summaries alone: every metric as
a mean with its 95% t interval over seeds, paired differences against each cross-entropy row with
p-values and verdicts, robustness split by whether a training augmentation imitates the
corruption, the pre-training budget, and the validation-only selection.

mCE and relative mCE are computed here (not by `supcon eval`) from the error tables of each run
and of the ce run of the same seed, so only the summaries are needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..eval.corruptions import CORRUPTIONS
from ..eval.imitation import imitated
from .eval_corruptions import against_reference, as_table
from .eval_options import EvalOptions
from .plots import plot_severity_by_method, plot_training_curves
from .report import Figure, Section, Table
from .stats import (
    LEVEL,
    Interval,
    Paired,
    fmt_interval,
    fmt_p,
    fmt_pm,
    mean_interval,
    paired_difference,
    verdict,
)
from .study_plots import plot_corruption_differences

# The study (supcon.workflows.controlled.Study) is passed in, never imported: controlled calls
# this module, and an import back would make a circle.
Study = Any

REFERENCE = "ce"


@dataclass(frozen=True)
class Metric:
    """A reported number: how it is titled, rounded, and which direction is better."""

    key: str
    title: str
    decimals: int
    higher_is_better: bool


ACCURACY = [
    Metric("clean_top1", "clean top-1 (%)", 2, True),
    Metric("knn_top1", "kNN top-1 (%)", 2, True),
    Metric("ece", "ECE", 4, False),
    Metric("corrupted_ece", "ECE under corruption", 4, False),
]
ROBUSTNESS = [
    Metric("corrupted_top1", "corrupted top-1, all (%)", 2, True),
    Metric("corrupted_top1_unimitated", "corrupted top-1, unimitated (%)", 2, True),
    Metric("mce", "mCE, all", 3, False),
    Metric("mce_unimitated", "mCE, unimitated", 3, False),
    Metric("relative_mce", "relative mCE, all", 3, False),
    Metric("relative_mce_reliable", "relative mCE, reliable", 3, False),
]
METRICS = {m.key: m for m in ACCURACY + ROBUSTNESS}
_RELATIVE = ("mce", "mce_unimitated", "relative_mce", "relative_mce_reliable")


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return math.fsum(vals) / len(vals) if vals else None


def training_policies(study: Study) -> list[str]:
    """Augmentations the compared rows trained with (the shared one and ce's own chosen one)."""
    return list(dict.fromkeys(study.chosen(r)["data.augmentation"] for r in study.rows))


def data_info(summaries: Mapping[str, list[dict]]) -> dict[str, int]:
    """Channels and image side of the data set (from the first summary that records them)."""
    for runs in summaries.values():
        for s in runs:
            if s.get("data_info"):
                return s["data_info"]
    return {"channels": 1, "image_size": 28}


def run_metrics(summary: dict, reference: dict | None, unimitated: list[str],
                reliable: list[str]) -> dict[str, float | None]:
    """The metrics of one run (``reference``: the ce run of the same seed)."""
    e = summary["eval"]
    out: dict[str, float | None] = dict.fromkeys(METRICS)
    out.update(clean_top1=e["linear"]["top1"], knn_top1=e["knn"]["top1"], ece=e["calibration"]["ece"])
    c = e.get("corruptions")
    if not c:
        return out
    out["corrupted_top1"] = c["mean_corrupted_top1"]
    out["corrupted_top1_unimitated"] = _mean(_mean(c["top1"][n]) for n in unimitated if n in c["top1"])
    out["corrupted_ece"] = _mean(c["ece_per_severity"][1:])
    ref = (reference or {}).get("eval", {}).get("corruptions") if reference else None
    if ref:
        scores = against_reference(as_table(c), as_table(ref))
        out["mce"], out["relative_mce"] = scores["mce"], scores["relative_mce"]
        out["mce_unimitated"] = _mean(scores["ce"].get(n) for n in unimitated)
        out["relative_mce_reliable"] = _mean(scores["relative_ce"].get(n) for n in reliable)
    return out


def reference_drop(summary: dict, name: str) -> float | None:
    """The run's own mean drop in top-1 under corruption ``name`` (points, mean over severities)."""
    c = (summary.get("eval") or {}).get("corruptions")
    if not c or name not in c["error"]:
        return None
    return 100.0 * (_mean(c["error"][name]) - c["clean"]["error"])


def analyse(study: Study, summaries: Mapping[str, list[dict]]) -> dict[str, Any]:
    """Everything the report shows, as plain data (written to summary.json)."""
    rows = [r.key for r in study.rows]
    refs = summaries[REFERENCE]
    info = data_info(summaries)
    policies = training_policies(study)
    first = summaries[rows[0]][0]["eval"]
    names = list((first.get("corruptions") or {}).get("top1", {}))
    seen = imitated(policies, channels=info["channels"], image_size=info["image_size"])
    unimitated = [n for n in names if n not in seen]
    drops = {n: mean_interval([reference_drop(s, n) for s in refs]) for n in names}
    threshold = study.controls.unreliable_below
    reliable = [n for n in names if drops[n].mean is not None and drops[n].mean >= threshold]
    per_seed = {r: [run_metrics(s, refs[k] if k < len(refs) else None, unimitated, reliable)
                    for k, s in enumerate(summaries[r])] for r in rows}
    values = {r: {m: [x[m] for x in per_seed[r]] for m in METRICS} for r in rows}
    intervals = {r: {m: mean_interval(v) for m, v in values[r].items()} for r in rows}
    baselines = [r for r in rows if study.row(r).method == "ce"]
    paired = {f"{r} vs {b}": {m: paired_difference(values[r][m], values[b][m]) for m in METRICS}
              for b in baselines for r in rows if r != b}
    return {
        "level": LEVEL, "seeds": study.spec.seeds, "rows": _rows(study),
        "design": {"augmentation": study.controls.augmentation, "budget": study.controls.budget,
                   "lr_grid": list(study.controls.lr_grid),
                   "temperature_grid": list(study.controls.temperature_grid),
                   "training_policies": policies, "imitated": seen, "unimitated": unimitated,
                   "unreliable_below": threshold, "reliable": reliable, "corruptions": names,
                   "data_info": info},
        "selection": study.selection,
        "values": values, "intervals": intervals, "paired": paired, "baselines": baselines,
        "per_corruption": _per_corruption(summaries, rows, names, refs, drops, reliable),
        "budget": _budget(study, summaries),
    }


def _rows(study: Study) -> list[dict[str, Any]]:
    out = []
    for r in study.rows:
        point = study.chosen(r)
        out.append({"key": r.key, "label": r.shown_as(point["data.augmentation"]), "method": r.method,
                    "augmentation": point["data.augmentation"], "lr": point["optim.lr"],
                    "temperature": point.get("loss.temperature")})
    return out


def _per_corruption(summaries, rows, names, refs, drops, reliable) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in names:
        top1 = {r: [_mean(s["eval"]["corruptions"]["top1"][n]) for s in summaries[r]] for r in rows}
        ce, rel = {}, {}
        for r in rows:
            ce[r], rel[r] = [], []
            for k, s in enumerate(summaries[r]):
                scores = against_reference(as_table(s["eval"]["corruptions"]),
                                           as_table(refs[k]["eval"]["corruptions"]))
                ce[r].append(scores["ce"].get(n))
                rel[r].append(scores["relative_ce"].get(n))
        out[n] = {
            "reference_drop": drops[n], "reliable": n in reliable,
            "top1": {r: mean_interval(v) for r, v in top1.items()},
            "top1_difference": {r: paired_difference(top1[r], top1[REFERENCE]) for r in rows if r != REFERENCE},
            "ce": {r: mean_interval(v) for r, v in ce.items()},
            "relative_ce": {r: mean_interval(v) for r, v in rel.items()},
        }
    return out


def _budget(study: Study, summaries) -> dict[str, Any]:
    out = {}
    for r in study.rows:
        runs = summaries[r.key]
        cfg = runs[0]["config"]
        out[r.key] = {
            "epochs": cfg["train"]["epochs"], "views": cfg["data"]["n_views"],
            "batch_size": cfg["train"]["batch_size"], "steps": runs[0]["results"].get("steps"),
            "encoder_passes": runs[0]["encoder_passes"],
            "pretrain_time_s": mean_interval([s.get("pretrain_time_s") for s in runs]),
            "train_time_s": mean_interval([s["results"].get("train_time_s") for s in runs]),
        }
    return out


def to_json(value: Any) -> Any:
    """``analyse``'s result with intervals and paired differences as plain dicts."""
    if isinstance(value, (Interval, Paired)):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


# ------------------------------------------------------------------------------ tables
def _label(analysis: dict, key: str) -> str:
    return next(r["label"] for r in analysis["rows"] if r["key"] == key)


def is_bold(analysis: dict, row: str, metric: str) -> bool:
    """Bold only what the intervals support: ``row`` is better than every other row on
    ``metric`` by the paired 95% interval (with at least 2 seeds)."""
    m = METRICS[metric]
    values = analysis["values"]
    others = [r for r in values if r != row]
    return bool(others) and all(
        verdict(paired_difference(values[row][metric], values[o][metric]), m.higher_is_better) == "better"
        for o in others)


def _cell(analysis: dict, row: str, metric: Metric) -> str:
    if row == REFERENCE and metric.key in _RELATIVE and analysis["intervals"][row][metric.key].mean is not None:
        return "1 (reference)"
    text = fmt_interval(analysis["intervals"][row][metric.key], metric.decimals)
    return f"**{text}**" if text != "—" and is_bold(analysis, row, metric.key) else text


def results_table(analysis: dict, metrics: list[Metric]) -> Table:
    """One row per compared row: mean [95% interval] of each metric, bold where supported."""
    header = ["row", "seeds", *(_title(analysis, m) for m in metrics)]
    body = [[r["label"], str(analysis["intervals"][r["key"]]["clean_top1"].n),
             *(_cell(analysis, r["key"], m) for m in metrics)] for r in analysis["rows"]]
    return Table(header, body)


def _title(analysis: dict, m: Metric) -> str:
    d = analysis["design"]
    counts = {"corrupted_top1": len(d["corruptions"]), "mce": len(d["corruptions"]),
              "relative_mce": len(d["corruptions"]), "corrupted_top1_unimitated": len(d["unimitated"]),
              "mce_unimitated": len(d["unimitated"]), "relative_mce_reliable": len(d["reliable"])}
    return f"{m.title} [{counts[m.key]}]" if m.key in counts else m.title


def paired_tables(analysis: dict, metrics: list[Metric]) -> list:
    """Per compared row, a table of its paired differences against each cross-entropy row:
    difference [95% CI], p and the verdict, one line per metric."""
    blocks: list = []
    rows = [r["key"] for r in analysis["rows"]]
    for row in rows:
        bases = [b for b in analysis["baselines"] if b != row and not (row in analysis["baselines"]
                                                                     and b != REFERENCE)]
        if not bases:
            continue
        header = ["metric"]
        for b in bases:
            header += [f"− {_label(analysis, b)}: difference [95% CI]", "p", "verdict"]
        body = []
        for m in metrics:
            cells = [m.title]
            for b in bases:
                p = analysis["paired"][f"{row} vs {b}"][m.key]
                if p.difference.mean is None:
                    cells += ["—", "—", "—"]
                    continue
                sign = "+" if p.difference.mean >= 0 else ""
                cells += [sign + fmt_interval(p.difference, m.decimals), fmt_p(p.p), verdict(p, m.higher_is_better)]
            body.append(cells)
        blocks += [f"**{_label(analysis, row)}** against cross-entropy:", Table(header, body)]
    return blocks


def corruption_tables(analysis: dict) -> list:
    """Per corruption: what imitates it, the reference's drop, top-1, CE and relative CE."""
    d, pc = analysis["design"], analysis["per_corruption"]
    rows = [r["key"] for r in analysis["rows"]]
    others = [r for r in rows if r != REFERENCE]
    imitation = Table(["corruption", "category", "imitated by", "why"],
                      [[n, CORRUPTIONS[n].category, ", ".join(d["imitated"][n]) if n in d["imitated"] else "—",
                        "; ".join(dict.fromkeys(d["imitated"][n].values())) if n in d["imitated"] else ""]
                       for n in d["corruptions"]])
    top1 = Table(["corruption", *(f"{_label(analysis, r)}" for r in rows)],
                 [[_mark(n, d), *(fmt_pm(pc[n]["top1"][r]) for r in rows)] for n in d["corruptions"]])
    ce = Table(["corruption", *(_label(analysis, r) for r in others)],
               [[_mark(n, d), *(fmt_pm(pc[n]["ce"][r], 3) for r in others)] for n in d["corruptions"]])
    rel = Table(["corruption", "ce's own drop (points)", *(_label(analysis, r) for r in others)],
                [[_mark(n, d), fmt_pm(pc[n]["reference_drop"], 1),
                  *(fmt_pm(pc[n]["relative_ce"][r], 3) + ("" if pc[n]["reliable"] else " (unreliable)")
                    for r in others)] for n in d["corruptions"]])
    return [imitation, top1, ce, rel]


def _mark(name: str, design: dict) -> str:
    return f"{name} (imitated)" if name in design["imitated"] else name


def budget_table(analysis: dict) -> tuple[Table, str]:
    """Epochs, views, encoder passes and measured wall time per row, and whether they agree."""
    b = analysis["budget"]
    ref = b[REFERENCE]
    body = []
    for r in analysis["rows"]:
        x = b[r["key"]]
        body.append([r["label"], str(x["epochs"]), str(x["views"]), str(x["steps"]),
                     f"{x['encoder_passes'] / 1e6:.3f}", f"{x['encoder_passes'] / max(ref['encoder_passes'], 1):.2f}",
                     fmt_interval(x["pretrain_time_s"], 1), _ratio(x["pretrain_time_s"], ref["pretrain_time_s"]),
                     fmt_interval(x["train_time_s"], 1)])
    header = ["row", "epochs", "views", "steps", "encoder passes (M images)", "passes / ce",
              "pre-training wall time per run (s)", "time / ce", "whole run incl. linear stage (s)"]
    return Table(header, body), _budget_sentence(analysis)


def _ratio(a: Interval, b: Interval) -> str:
    return "—" if not a.mean or not b.mean else f"{a.mean / b.mean:.2f}"


def _budget_sentence(analysis: dict) -> str:
    b = analysis["budget"]
    mode = analysis["design"]["budget"]
    epochs = sorted({x["epochs"] for x in b.values()})
    passes = [x["encoder_passes"] for x in b.values()]
    times = [x["pretrain_time_s"].mean for x in b.values() if x["pretrain_time_s"].mean]
    spread_p = max(passes) / max(min(passes), 1)
    spread_t = max(times) / min(times) if times else 1.0
    stated = (f"The budget is **equal epochs** ({', '.join(map(str, epochs))})" if mode == "epochs"
              else "The budget is **equal encoder passes** (images x views x epochs)")
    agree = []
    if mode == "epochs":
        agree.append("encoder passes differ by up to " + f"{spread_p:.2f}x" if spread_p > 1.05
                     else "encoder passes agree")
    else:
        agree.append("epochs differ (" + ", ".join(map(str, epochs)) + ")" if len(epochs) > 1 else "epochs agree")
    agree.append(f"measured pre-training wall time differs by up to {spread_t:.2f}x" if spread_t > 1.1
                 else "measured pre-training wall time agrees within 10%")
    return (f"{stated}: {'; '.join(agree)}. Wall time is measured on the machine that ran each "
            "run and is only comparable between runs made on the same, otherwise idle machine.")


def selection_table(analysis: dict) -> Table:
    """Every grid point of every row with its validation top-1; the chosen one in bold."""
    body = []
    for r in analysis["rows"]:
        sel = analysis["selection"][r["key"]]
        for t in sel["grid"]:
            chosen = t["label"] == sel["label"]
            val = f"{t['val_top1']:.2f}"
            body.append([r["label"], t["label"], str(t["epochs"]), f"**{val}**" if chosen else val,
                         "chosen" if chosen else ""])
    return Table(["row", "grid point", "epochs", "validation top-1 (%)", ""], body)


def setup_table(summaries: Mapping[str, list[dict]], analysis: dict) -> Table:
    """The resolved settings of every row (from its seed-0 run's config)."""
    header = ["row", "method", "augmentation", "views", "optimizer", "peak lr", "temperature",
              "batch", "epochs", "encoder", "linear stage"]
    body = []
    for r in analysis["rows"]:
        c = summaries[r["key"]][0]["config"]
        enc = c["model"]["encoder_options"]
        encoder = c["model"]["encoder"] + (f" ({', '.join(f'{k}={v}' for k, v in enc.items())})" if enc else "")
        body.append([r["label"], c["method"], c["data"]["augmentation"], str(c["data"]["n_views"]),
                     c["optim"]["name"], f"{c['optim']['lr']:g}",
                     "—" if c["method"] == "ce" else f"{c['loss']['temperature']:g}",
                     str(c["train"]["batch_size"]), str(c["train"]["epochs"]), encoder,
                     "own classifier" if c["method"] == "ce" else
                     f"{c['linear']['epochs']} epochs, lr {c['linear']['lr']:g}"])
    return Table(header, body)


# ------------------------------------------------------------------------------ sections
def command_line(verb: str, study: Study, extra: tuple[str, ...] = ()) -> str:
    """The exact command that makes (or resumes) this study."""
    c = study.controls
    d = type(c)()  # the defaults: only what differs goes on the command line
    flags: list[str] = ["--seeds", str(study.spec.seeds)] if verb != "compare" else []
    pairs = [("--augmentation", c.augmentation, d.augmentation),
             ("--lr-grid", _csv(c.lr_grid), _csv(d.lr_grid)),
             ("--temperature-grid", _csv(c.temperature_grid), _csv(d.temperature_grid)),
             ("--baseline-augmentation", ",".join(c.baseline_augmentations) or "none",
              ",".join(d.baseline_augmentations)),
             ("--budget", c.budget, d.budget), ("--select-epochs", c.select_epochs, None),
             ("--unreliable-below", f"{c.unreliable_below:g}", f"{d.unreliable_below:g}")]
    for flag, value, default in pairs:
        if value != default and value is not None:
            flags += [flag, str(value)]
    if c.record is not None:
        flags += ["--record", str(c.record)]
    if c.commit:
        flags.append("--commit")
    o, od = study.options, EvalOptions()
    evals = [("--corruption-samples", o.corruption_samples, od.corruption_samples),
             ("--corruptions", _names(o), _names(od)),
             ("--severities", ",".join(map(str, o.severities)), ",".join(map(str, od.severities))),
             ("--knn-k", o.knn_k, od.knn_k), ("--knn-temperature", o.knn_temperature, od.knn_temperature),
             ("--embedding", o.embedding, od.embedding),
             ("--embedding-samples", o.embedding_samples, od.embedding_samples),
             ("--eval-seed", o.seed, od.seed)]
    for flag, value, default in evals:
        if value != default:
            flags += [flag, str(value)]
    return study.spec.command(verb, tuple(flags) + tuple(extra))


def _csv(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def _names(options: EvalOptions) -> str:
    if options.corruptions is None:
        return "all"
    return ",".join(options.corruptions) or "none"


def build_sections(study: Study, summaries: Mapping[str, list[dict]], analysis: dict,
                   plots: Path, command: str) -> list[Section]:
    """The controlled comparison's report sections."""
    return [
        Section("Results", [_design_sentence(study, analysis), results_table(analysis, ACCURACY),
                            results_table(analysis, ROBUSTNESS), _legend(study, analysis)]),
        Section("Paired differences against cross-entropy", [
            f"Per seed k, a row's value minus the cross-entropy row's value at the same seed; mean "
            f"over {analysis['seeds']} seeds with its 95% t interval and the two-sided p-value of the "
            "paired t test. Verdict: better / worse when the interval excludes 0 (in the metric's "
            "good direction), else no difference detected at this number of seeds. The p-values are "
            "per comparison, not corrected for the number of comparisons in this table.",
            *paired_tables(analysis, ACCURACY + ROBUSTNESS)]),
        _robustness(study, summaries, analysis, plots),
        Section("Budget", [*_budget_blocks(analysis)]),
        Section("Selection on the validation split", [
            f"Each row's settings were chosen by validation top-1 from the same grid (lr "
            f"{_csv(study.controls.lr_grid)}; temperature {_csv(study.controls.temperature_grid)} "
            "for supcon and simclr), one run per point at seed 1000 (not an evaluated seed). These "
            "runs are trained without the test split: they never read it and record no test "
            "accuracy.", selection_table(analysis)]),
        Section("Setup", [f"Made with `{command}`.", setup_table(summaries, analysis),
                          "Shared by every row: data, encoder, batch size, pre-training budget, "
                          "linear stage and (except the own-augmentation row) the augmentation "
                          "policy; chosen per row on validation: learning rate and temperature."]),
        Section("Training curves", [Figure(_training_plot(summaries, analysis, plots),
                                           "Pre-training loss per epoch (from the summaries)")]),
    ]


def _design_sentence(study: Study, analysis: dict) -> str:
    d = analysis["design"]
    own = [r for r in analysis["rows"] if r["key"] == "ce-own"]
    cands = ", ".join(study.row("ce-own").augmentations) if own else ""
    extra = (f" The row {own[0]['label']} is cross-entropy with its own augmentation (from {cands}, "
             "chosen with its lr on the validation split), so the strongest baseline is in the "
             "table." if own else "")
    return (f"A controlled comparison: every row trains with the `{d['augmentation']}` augmentation, "
            f"the same encoder, data, batch size and budget ({d['budget']}), with its learning rate "
            "(and temperature) chosen on the validation split." + extra)


def _legend(study: Study, analysis: dict) -> list[str]:
    d = analysis["design"]
    k = analysis["seeds"]
    return [
        f"Each cell: mean over {k} seeds (0..{k - 1}) [95% confidence interval, t distribution with "
        f"{k - 1} degrees of freedom]. **Bold**: better than every other row by the paired 95% "
        "interval; nothing else is bold.",
        "clean top-1: linear classifier on frozen representations (ce: its own classifier), whole "
        "test split; kNN top-1: weighted kNN of test on train representations; ECE: 15 bins (lower "
        "is better); ECE under corruption: mean over corruptions and severities.",
        f"Corruptions [{len(d['corruptions'])}]: all evaluated; unimitated [{len(d['unimitated'])}]: "
        f"those no training augmentation of these rows ({', '.join(d['training_policies'])}) imitates: "
        f"{', '.join(d['unimitated']) or 'none'} (see Robustness by corruption for why).",
        "mCE: against the ce row of the same seed (1 = as robust as it; lower is better). Relative "
        "mCE divides by ce's own drop in accuracy, which is noisy when that drop is small: relative "
        f"mCE, reliable [{len(d['reliable'])}] averages only the corruptions under which ce's own mean "
        f"drop is at least {d['unreliable_below']:g} points.",
    ]


def _robustness(study: Study, summaries, analysis: dict, plots: Path) -> Section:
    d = analysis["design"]
    if not d["corruptions"]:
        return Section("Robustness by corruption", ["Not evaluated (no corruptions selected)."])
    imitation, top1, ce, rel = corruption_tables(analysis)
    forest = _forest(analysis, plots)
    curves = {_label(analysis, r): {"top1": [s["eval"]["corruptions"]["mean_top1_per_severity"] for s in runs],
                                    "ece": [s["eval"]["corruptions"]["ece_per_severity"] for s in runs]}
              for r, runs in summaries.items()}
    severity = plot_severity_by_method(curves, plots / "severity.png",
                                       title="Mean over corruptions vs severity (band: ±1 std over seeds)")
    c = summaries[REFERENCE][0]["eval"]["corruptions"]
    return Section("Robustness by corruption", [
        f"{len(d['corruptions'])} corruptions x severities {', '.join(map(str, c['severities']))} on a "
        f"{c['note']} (see docs/evaluation.md for how they differ from ImageNet-C). Which of them "
        "the training augmentations imitate, and why:", imitation,
        Figure(forest, "Paired difference in top-1 under each corruption against ce (shared "
                       "augmentation), mean over severities, with 95% intervals"),
        "Top-1 (%) under each corruption, mean over severities; mean ± half-width of the 95% interval:",
        top1,
        "Corruption error CE_c against the ce row of the same seed (lower is better), mean ± "
        "half-width of the 95% interval:", ce,
        f"Relative CE_c (lower is better), mean ± half-width of the 95% interval. Marked unreliable "
        f"where ce's own mean drop under the corruption is below {d['unreliable_below']:g} points: "
        "relative CE divides by that drop, so a few images decide it.", rel,
        Figure(severity, "Top-1 accuracy and ECE vs corruption severity"),
    ])


def _forest(analysis: dict, plots: Path) -> Path:
    d, pc = analysis["design"], analysis["per_corruption"]
    panels = {}
    for r in analysis["rows"]:
        if r["key"] == REFERENCE:
            continue
        items = []
        for n in d["corruptions"]:
            diff = pc[n]["top1_difference"][r["key"]].difference
            items.append((n, diff.mean, diff.low, diff.high, n in d["imitated"]))
        for key, text in (("corrupted_top1", "mean, all"), ("corrupted_top1_unimitated", "mean, unimitated")):
            diff = analysis["paired"][f"{r['key']} vs {REFERENCE}"][key].difference
            if diff.mean is not None:
                items.append((text, diff.mean, diff.low, diff.high, False))
        panels[f"{r['label']} − ce"] = items
    return plot_corruption_differences(panels, plots / "corruption_differences.png",
                                       title="Top-1 under corruption: paired difference against ce "
                                             f"({analysis['seeds']} seeds, 95% intervals)",
                                       xlabel="top-1 difference (points)")


def _budget_blocks(analysis: dict) -> list:
    table, sentence = budget_table(analysis)
    return [sentence, table,
            "Encoder passes: images per epoch actually used (full batches) x views x epochs. "
            "Pre-training wall time: sum of the epochs' times in metrics.jsonl; the whole run adds "
            "feature extraction and the linear stage."]


def _training_plot(summaries, analysis: dict, plots: Path) -> Path:
    curves = {r: [(s["pretrain"]["epoch"], s["pretrain"]["loss"]) for s in runs]
              for r, runs in summaries.items()}
    return plot_training_curves(curves, plots / "training_curves.png",
                                title="Pre-training loss per epoch (one line per seed)")


def headline(analysis: dict) -> str:
    """The results tables as Markdown (printed by the CLI)."""
    from .report import table_markdown

    return "\n\n".join(table_markdown(results_table(analysis, ms)) for ms in (ACCURACY, ROBUSTNESS))


