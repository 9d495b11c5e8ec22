"""Where a comparison is drawn: the tables and sections of a controlled comparison's report, from
its analysis (:func:`~.analysis.analyse`) and run summaries; nothing is computed here but
formatting. The figures are :mod:`.plots`'s; `--presets` is drawn by :mod:`.render_presets`,
the claims and the sweep by :mod:`.render_study`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from ..eval.corruptions import CORRUPTIONS
from .analysis import (
    ACCURACY,
    METRICS,
    REFERENCE,
    RELATIVE,
    ROBUSTNESS,
    Metric,
    is_bold,
    paired_common,
    severity_curves,
)
from .plots import plot_corruption_differences, plot_severity_by_method, plot_training_curves
from .report import Figure, Section, Table, fmt_interval, fmt_p, fmt_pm, table_markdown
from .stats import Interval, verdict


def _label(analysis: dict, key: str) -> str:
    return next(r["label"] for r in analysis["rows"] if r["key"] == key)


def _cell(analysis: dict, row: str, metric: Metric) -> str:
    if row == REFERENCE and metric.key in RELATIVE and analysis["intervals"][row][metric.key].mean is not None:
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
    return [imitation, top1, ce, rel, *_ce_differences(analysis)]


def _ce_differences(analysis: dict) -> list:
    """Per corruption, supcon's CE minus each cross-entropy row's (paired over seeds, 95% CI):
    the terms of the mCE differences, imitated corruptions marked."""
    keys = [r["key"] for r in analysis["rows"]]
    bases = [b for b in analysis["baselines"] if b in keys]
    if "supcon" not in keys or not bases:
        return []
    d, pc = analysis["design"], analysis["per_corruption"]

    def cell(n: str, base: str) -> str:
        diff = paired_common(list(pc[n]["ce"]["supcon"].values), list(pc[n]["ce"][base].values)).difference
        return "—" if diff.mean is None else ("+" if diff.mean >= 0 else "") + fmt_interval(diff, 3)

    return ["Corruption error of supcon minus each cross-entropy row, per corruption (paired over seeds, "
            "95% CI; negative = supcon more robust). mCE differences are the means of these columns.",
            Table(["corruption", *(f"supcon − {_label(analysis, b)}" for b in bases)],
                  [[_mark(n, d), *(cell(n, b) for b in bases)] for n in d["corruptions"]])]


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
    machines = Counter(m for x in b.values() for m in x.get("machines", []))
    made_on = "; ".join(f"{m} ({n} run{'s' * (n != 1)})" for m, n in sorted(machines.items()))
    return (f"{stated}: {'; '.join(agree)}. Wall time is measured on the machine that ran each "
            "run and is only comparable between runs made on the same, otherwise idle machine"
            + (f"; these runs were made on: {made_on}." if machines else "."))


def grid_edges(analysis: dict) -> list[str]:
    """A sentence for every row whose chosen lr is the largest or smallest of a grid of several:
    its best lr may lie outside the grid, so its row may be under-tuned (the grid is fixed in
    the plan, so it is said rather than extended)."""
    grid = sorted(analysis["design"]["lr_grid"])
    out = []
    for r in analysis["rows"]:
        lr = (analysis["selection"].get(r["key"]) or {}).get("chosen", {}).get("optim.lr")
        if len(grid) > 1 and lr in (grid[0], grid[-1]):
            side = "largest" if lr == grid[-1] else "smallest"
            out.append(f"{r['label']} chose lr {lr:g}, the {side} in the grid: its best lr may lie "
                       "beyond it, so this row may be tuned less well than the others.")
    return out


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


def setup_table(configs: Mapping[str, dict], *, key_column: bool = True) -> Table:
    """The resolved settings of every row (``configs[label]``: a config as a nested dict, e.g.
    its seed-0 run's); ``key_column``: a first column naming the row besides its method."""
    header = ["method", "augmentation", "views", "optimizer", "peak lr", "temperature",
              "batch", "epochs", "encoder", "linear stage"]
    body = []
    for label, c in configs.items():
        enc = c["model"]["encoder_options"]
        encoder = c["model"]["encoder"] + (f" ({', '.join(f'{k}={v}' for k, v in enc.items())})" if enc else "")
        lr = f"{c['optim']['lr']:g}" + (" x batch/256" if c["optim"]["scale_lr"] else "")
        body.append([*([label] if key_column else []), c["method"], c["data"]["augmentation"],
                     str(c["data"]["n_views"]), c["optim"]["name"], lr,
                     "—" if c["method"] == "ce" else f"{c['loss']['temperature']:g}",
                     str(c["train"]["batch_size"]), str(c["train"]["epochs"]), encoder,
                     "own classifier" if c["method"] == "ce" else
                     f"{c['linear']['epochs']} epochs, lr {c['linear']['lr']:g}"])
    return Table(["row", *header] if key_column else header, body)


def _csv(values) -> str:
    return ",".join(f"{v:g}" for v in values)


# ------------------------------------------------------------------------------ sections
def build_sections(summaries: Mapping[str, list[dict]], analysis: dict, plots: Path,
                   command: str) -> list[Section]:
    """The controlled comparison's report sections."""
    d = analysis["design"]
    configs = {r["label"]: summaries[r["key"]][0]["config"] for r in analysis["rows"]}
    return [
        Section("Results", [_design_sentence(analysis), results_table(analysis, ACCURACY),
                            results_table(analysis, ROBUSTNESS), _legend(analysis)]),
        Section("Paired differences against cross-entropy", [
            f"Per seed k, a row's value minus the cross-entropy row's value at the same seed; mean "
            f"over {analysis['seeds']} seeds with its 95% t interval and the two-sided p-value of the "
            "paired t test. Verdict: better / worse when the interval excludes 0 (in the metric's "
            "good direction), else no difference detected at this number of seeds. The p-values are "
            "per comparison, not corrected for the number of comparisons in this table.",
            *paired_tables(analysis, ACCURACY + ROBUSTNESS)]),
        _robustness(summaries, analysis, plots),
        Section("Budget", [*_budget_blocks(analysis)]),
        Section("Selection on the validation split", [
            f"Each row's settings were chosen by validation top-1 from the same grid (lr "
            f"{_csv(d['lr_grid'])}; temperature {_csv(d['temperature_grid'])} "
            "for supcon and simclr), one run per point at seed 1000 (not an evaluated seed). These "
            "runs are trained without the test split: they never read it and record no test "
            "accuracy.", selection_table(analysis), *grid_edges(analysis)]),
        Section("Setup", [f"Made with `{command}`.", setup_table(configs),
                          "Shared by every row: data, encoder, batch size, pre-training budget, "
                          "linear stage and (except the own-augmentation row) the augmentation "
                          "policy; chosen per row on validation: learning rate and temperature."]),
        Section("Training curves", [Figure(training_plot(summaries, plots),
                                           "Pre-training loss per epoch (from the summaries)")]),
    ]


def _design_sentence(analysis: dict) -> str:
    d = analysis["design"]
    own = [r for r in analysis["rows"] if r["key"] == "ce-own"]
    grid = analysis["selection"]["ce-own"]["grid"] if own else []
    cands = ", ".join(dict.fromkeys(t["point"]["data.augmentation"] for t in grid))
    extra = (f" The row {own[0]['label']} is cross-entropy with its own augmentation (from {cands}, "
             "chosen with its lr on the validation split), so the strongest baseline is in the "
             "table." if own else "")
    return (f"A controlled comparison: every row trains with the `{d['augmentation']}` augmentation, "
            f"the same encoder, data, batch size and budget ({d['budget']}), with its learning rate "
            "(and temperature) chosen on the validation split." + extra)


def _legend(analysis: dict) -> list[str]:
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


def _robustness(summaries, analysis: dict, plots: Path) -> Section:
    d = analysis["design"]
    if not d["corruptions"]:
        return Section("Robustness by corruption", ["Not evaluated (no corruptions selected)."])
    imitation, top1, ce, rel, *terms = corruption_tables(analysis)
    forest = _forest(analysis, plots)
    severity = severity_figure({_label(analysis, r): [s["eval"] for s in runs] for r, runs in summaries.items()},
                               plots)
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
        "relative CE divides by that drop, so a few images decide it.", rel, *terms,
        Figure(severity, "Top-1 accuracy and ECE vs corruption severity"),
    ])


def severity_figure(evals: Mapping[str, list[dict]], plots: Path) -> Path:
    """``plots/severity.png``: mean over corruptions vs severity per row (``evals[label]``: the
    evaluations of its seeds)."""
    return plot_severity_by_method(severity_curves(evals), plots / "severity.png",
                                   title="Mean over corruptions vs severity (band: ±1 std over seeds)")


def training_plot(summaries: Mapping[str, list[dict]], plots: Path) -> Path:
    """``plots/training_curves.png``: each row's pre-training loss per epoch, one line per seed."""
    curves = {r: [(s["pretrain"]["epoch"], s["pretrain"]["loss"]) for s in runs]
              for r, runs in summaries.items()}
    return plot_training_curves(curves, plots / "training_curves.png",
                                title="Pre-training loss per epoch (one line per seed)")


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


def headline(analysis: dict) -> str:
    """The results tables as Markdown (printed by the CLI)."""
    return "\n\n".join(table_markdown(results_table(analysis, ms)) for ms in (ACCURACY, ROBUSTNESS))


__all__ = ["METRICS", "build_sections", "headline", "results_table", "setup_table"]
