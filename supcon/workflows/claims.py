"""`supcon study`: the paper's claims, each tested as one row with its own seeds and budget.

The core comparison (:mod:`.controlled`) gives the accuracy, robustness and calibration rows. The
other rows train more runs, around the settings the core selection chose on the validation split:

- ``lout-lin`` (paper Table 1): SupCon with L_in against L_out (the core supcon runs), top-1.
- ``stability`` (paper Fig. 4): supcon and ce retrained with the learning rate x0.25, x1, x4, the
  augmentations simaugment, autoaugment, randaugment, stacked-randaugment, and the batch size
  x0.5, x1, x2 (the points of `supcon sweep`); per seed, the spread (sample std) of test top-1
  over each factor's values; the row compares supcon's spread with ce's.
- ``long-schedule``: supcon and ce at ``long_factor`` x the main epochs; the SupCon - CE gap
  there, and its change from the main budget.

Each row uses ``seeds`` seeds (0..S-1; default 3), stated in the row. A run that is the same
experiment as another (e.g. the stability runs at x1, or L_out) is not trained twice.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from typing import Any

from .controlled import Controls, Study, write_outputs
from .controlled_report import METRICS, REFERENCE, analyse, build_sections, command_line, to_json
from .eval_options import EvalOptions
from .report import Figure, Section, Table, table_markdown
from .stats import fmt_interval, fmt_p, mean_interval, paired_difference, verdict
from .study import StudySpec
from .study_plots import plot_stability
from .sweep import sweep_points

log = logging.getLogger("supcon")
CLAIMS = ("accuracy", "robustness", "calibration", "lout-lin", "stability", "long-schedule")
STABILITY = {"lr": ["0.25", "1", "4"],
             "augmentation": ["simaugment", "autoaugment", "randaugment", "stacked-randaugment"],
             "batch": [0.5, 1.0, 2.0]}  # batch: factors of the main batch size
FACTOR_TEXT = {"lr": "learning rates", "augmentation": "augmentations", "batch": "batch sizes"}


@dataclass(frozen=True)
class ClaimOptions:
    """Which claim rows to run and with what (defaults are the CLI's).

    Raises:
        ValueError: an unknown claim, ``seeds`` < 2, ``long_factor`` < 2 or ``stability_epochs`` < 1.
    """

    claims: tuple[str, ...] = CLAIMS
    seeds: int = 3
    """Seeds of the lout-lin, stability and long-schedule rows."""
    long_factor: int = 4
    """The long schedule's epochs as a multiple of the main epochs."""
    stability_epochs: int | None = None
    """Epochs of the stability runs; None = the main epochs."""

    def __post_init__(self) -> None:
        unknown = [c for c in self.claims if c not in CLAIMS]
        if unknown or not self.claims:
            raise ValueError(f"--claims: unknown {unknown or 'none given'}; choose from {', '.join(CLAIMS)} or all")
        if self.seeds < 2:
            raise ValueError(f"--claim-seeds must be >= 2 (an interval needs two), got {self.seeds}")
        if self.long_factor < 2:
            raise ValueError(f"--long-factor must be >= 2, got {self.long_factor}")
        if self.stability_epochs is not None and self.stability_epochs < 1:
            raise ValueError(f"--stability-epochs must be >= 1, got {self.stability_epochs}")


def run_study(spec: StudySpec, options: EvalOptions | None = None, controls: Controls | None = None,
              claims: ClaimOptions | None = None, *, progress: bool = False) -> dict[str, Any]:
    """The core controlled comparison plus every claim row; writes report.md / report.html /
    summary.json / claims.md and the plots into the record folder.

    Args:
        spec: methods (ce and supcon required), seeds of the core comparison, data, epochs,
            config and overrides; runs go to ``spec.out``.
        options: evaluation options of the core runs (default ``EvalOptions()``).
        controls: shared augmentation, grids, baseline row, budget, record folder, commit.
        claims: which claim rows, their seeds, the long schedule's factor, stability epochs.
        progress: show progress bars while training.

    Returns:
        ``{"claims": [row dicts], "table" (Markdown of the claims), "report", "html"}``.

    Raises:
        ValueError: supcon or ce missing from the methods, and everything
            :func:`~.controlled.run_controlled` refuses.
    """
    claims = claims or ClaimOptions()
    if not {"supcon", "ce"} <= set(spec.methods):
        raise ValueError(f"methods must include supcon and ce (the study tests SupCon against "
                         f"cross-entropy), got {list(spec.methods)}")
    study = Study(spec, options or EvalOptions(), controls or Controls(), progress)
    summaries = study.run_core()
    analysis = analyse(study, summaries)
    rows, sections, extra = _core_claims(study, analysis, claims), [], {}
    steps = (("lout-lin", _lout_lin), ("long-schedule", _long_schedule), ("stability", _stability))
    for name, fn in steps:
        if name in claims.claims:
            claim_rows, section, data = fn(study, claims)
            rows += claim_rows
            sections.append(section)
            extra[name] = data
    command = command_line("study", study, _claim_flags(claims))
    table = claims_table(rows)
    plots = study.record / "plots"
    core = build_sections(study, summaries, analysis, plots, command)
    legend = [
        "verdict: better / worse when the paired 95% interval of the measured difference excludes 0 "
        "(better = in the direction the claim states), else no difference detected at that number "
        "of seeds. p: two-sided paired t test, not corrected for the number of rows.",
        "setting: seeds, pre-training epochs and what is compared. Every run trains with the shared "
        f"augmentation ({study.controls.augmentation}) and the settings chosen on the validation "
        "split, unless the row varies them.",
    ]
    all_sections = [Section("Claims", [table, legend]), *core, *sections]
    data = summaries["ce"][0]["config"]["data"]["name"]
    (study.record / "claims.md").write_text(table_markdown(table) + "\n")
    summary = {"command": command, "claims": rows, "core": to_json(analysis), **to_json(extra)}
    md, page = write_outputs(study, f"supcon study: the paper's claims on {data}", all_sections, summary)
    return {"claims": rows, "table": table_markdown(table), "report": str(md), "html": str(page)}


def _claim_flags(claims: ClaimOptions) -> tuple[str, ...]:
    d = ClaimOptions()
    flags: list[str] = []
    if claims.claims != d.claims:
        flags += ["--claims", ",".join(claims.claims)]
    if claims.seeds != d.seeds:
        flags += ["--claim-seeds", str(claims.seeds)]
    if claims.long_factor != d.long_factor:
        flags += ["--long-factor", str(claims.long_factor)]
    if claims.stability_epochs is not None:
        flags += ["--stability-epochs", str(claims.stability_epochs)]
    return tuple(flags)


# ------------------------------------------------------------------------------ rows
def claim_row(claim: str, setting: str, what: str, paired, decimals: int, higher_is_better: bool,
              unit: str = "") -> dict[str, Any]:
    """One row of the claims table: the paper's claim, the setting, what was measured, the verdict."""
    d = paired.difference
    sign = "+" if d.mean is not None and d.mean >= 0 else ""
    measured = f"{what}: {sign}{fmt_interval(d, decimals)}{unit}" if d.mean is not None else f"{what}: —"
    return {"claim": claim, "setting": setting, "measured": measured, "p": paired.p,
            "verdict": verdict(paired, higher_is_better), "difference": d.to_dict()}


def claims_table(rows: list[dict[str, Any]]) -> Table:
    """The claims as a table (also written alone to claims.md, for the README)."""
    return Table(["the paper's claim", "setting", "measured here [95% CI]", "p", "verdict"],
                 [[r["claim"], r["setting"], r["measured"], fmt_p(r["p"]), r["verdict"]] for r in rows])


def _strongest(analysis: dict, metric: str) -> str:
    """The cross-entropy row with the better mean on ``metric`` (the baseline a claim must beat)."""
    m = METRICS[metric]
    bases = [b for b in analysis["baselines"] if analysis["intervals"][b][metric].mean is not None]
    if not bases:
        return REFERENCE
    means = {b: analysis["intervals"][b][metric].mean for b in bases}
    return (max if m.higher_is_better else min)(bases, key=means.__getitem__)


def _core_claims(study: Study, analysis: dict, claims: ClaimOptions) -> list[dict[str, Any]]:
    k = analysis["seeds"]
    epochs = analysis["budget"]["supcon"]["epochs"]
    setting = f"core: {k} seeds, {_epochs(epochs)} ({analysis['design']['budget']} budget)"
    spec = []
    if "accuracy" in claims.claims:
        spec.append(("SupCon reaches higher top-1 than cross-entropy (Tables 2-3)", "clean_top1", " points"))
    if "robustness" in claims.claims:
        spec += [("SupCon is more robust to natural corruptions: lower mCE (Table 4, Fig. 3)", "mce", ""),
                 ("... also on the corruptions no training augmentation imitates", "mce_unimitated", "")]
    if "calibration" in claims.claims:
        spec += [("SupCon is better calibrated: lower ECE (Fig. 3)", "ece", ""),
                 ("... also under corruption: lower mean ECE over corruptions (Fig. 3)", "corrupted_ece", "")]
    labels = {r["key"]: r["label"] for r in analysis["rows"]}
    rows = []
    for claim, metric, unit in spec:
        base = _strongest(analysis, metric)
        m = METRICS[metric]
        what = f"{m.title.replace(' (%)', '')}, supcon − {labels[base]}"
        rows.append(claim_row(claim, setting, what, analysis["paired"][f"supcon vs {base}"][metric],
                              m.decimals, m.higher_is_better, unit))
    return rows


def _epochs(n: int) -> str:
    return f"{n} epoch{'s' * (n != 1)}"


def _top1(summary: dict) -> float:
    return summary["results"]["test_top1"]


def _lout_lin(study: Study, claims: ClaimOptions):
    row = study.row("supcon")
    out_top1, in_top1 = [], []
    for seed in range(claims.seeds):
        out_top1.append(_top1(study.runner.run(study.core_name(row, seed), study.core_config(row, seed))))
        cfg = study.core_config(row, seed, **{"loss.variant": "in"})
        in_top1.append(_top1(study.runner.run(f"lout-lin/supcon-in-seed{seed}", cfg)))
    paired = paired_difference(out_top1, in_top1)
    epochs = study.core_config(row, 0).train.epochs
    setting = f"{claims.seeds} seeds, {_epochs(epochs)}, supcon's selected lr and temperature"
    rows = [claim_row("L_out (sum over positives outside the log) beats L_in (Table 1)", setting,
                      "top-1, L_out − L_in", paired, 2, True, " points")]
    table = Table(["loss", "test top-1 (%) [95% CI]", "per seed"],
                  [[name, fmt_interval(mean_interval(v)), ", ".join(f"{x:.2f}" for x in v)]
                   for name, v in (("L_out", out_top1), ("L_in", in_top1))])
    section = Section("L_out vs L_in", [f"SupCon with each loss variant, {setting}.", table])
    return rows, section, {"l_out": out_top1, "l_in": in_top1, "paired": paired}


def _long_schedule(study: Study, claims: ClaimOptions):
    f = claims.long_factor
    top1: dict[str, dict[str, list[float]]] = {}
    for key in ("supcon", REFERENCE):
        row = study.row(key)
        base = study.core_config(row, 0).train.epochs
        top1[key] = {"1x": [], f"{f}x": []}
        for seed in range(claims.seeds):
            top1[key]["1x"].append(_top1(study.runner.run(study.core_name(row, seed), study.core_config(row, seed))))
            cfg = study.config(row, seed, study.chosen(row), epochs=base * f)
            top1[key][f"{f}x"].append(_top1(study.runner.run(f"long/{key}-x{f}-seed{seed}", cfg)))
    gap = {b: [s - c for s, c in zip(top1["supcon"][b], top1[REFERENCE][b], strict=True)] for b in ("1x", f"{f}x")}
    at_long = paired_difference(top1["supcon"][f"{f}x"], top1[REFERENCE][f"{f}x"])
    change = paired_difference(gap[f"{f}x"], gap["1x"])
    epochs = {k: study.config(study.row(k), 0, study.chosen(study.row(k)),
                              epochs=study.core_config(study.row(k), 0).train.epochs * f).train.epochs
              for k in ("supcon", REFERENCE)}
    setting = f"{claims.seeds} seeds, {f}x the main epochs (supcon {epochs['supcon']}, ce {epochs[REFERENCE]})"
    rows = [claim_row(f"SupCon's lead over cross-entropy holds with a longer schedule ({f}x)", setting,
                      "top-1, supcon − ce", at_long, 2, True, " points"),
            claim_row("... and grows with the schedule", setting, f"gap at {f}x − gap at 1x", change, 2, True,
                      " points")]
    table = Table(["budget", "supcon top-1 (%)", "ce top-1 (%)", "supcon − ce (paired)"],
                  [[b, fmt_interval(mean_interval(top1["supcon"][b])), fmt_interval(mean_interval(top1[REFERENCE][b])),
                    fmt_interval(mean_interval(gap[b]))] for b in ("1x", f"{f}x")])
    section = Section("Longer schedule", [f"supcon and ce (shared augmentation), {setting}; "
                                          "seeds 0.. of the main budget are the core runs.", table])
    return rows, section, {"top1": top1, "gap": gap, "at_long": at_long, "change": change}


def _stability(study: Study, claims: ClaimOptions):
    epochs = claims.stability_epochs
    results: dict[str, dict[str, dict[str, list[float]]]] = {}  # factor -> method -> value -> per seed
    for factor, values in STABILITY.items():
        results[factor] = {}
        for key in ("supcon", REFERENCE):
            row = study.row(key)
            base = study.core_config(row, 0)
            chosen = study.chosen(row)
            if factor == "batch":
                values_ = [str(max(2, round(base.train.batch_size * v))) for v in values]
            else:
                values_ = list(values)
            points = sweep_points(factor, chosen["optim.lr"], values_, base.train.batch_size)
            results[factor][key] = {}
            for point in points:
                per_seed = []
                for seed in range(claims.seeds):
                    cfg = study.config(row, seed, {**chosen, **point.overrides}, epochs=epochs)
                    name = f"stability/{key}-{factor}-{point.label}-seed{seed}"
                    per_seed.append(_top1(study.runner.run(name, cfg)))
                results[factor][key][point.label] = per_seed
    rows, blocks, spreads = [], [], {}
    n_epochs = study.config(study.row("supcon"), 0, study.chosen(study.row("supcon")), epochs=epochs).train.epochs
    for factor, by_method in results.items():
        spreads[factor] = {m: [statistics.stdev(vals[k] for vals in by_value.values())
                               for k in range(claims.seeds)] for m, by_value in by_method.items()}
        paired = paired_difference(spreads[factor]["supcon"], spreads[factor][REFERENCE])
        labels = ", ".join(by_method["supcon"])
        setting = f"{claims.seeds} seeds, {_epochs(n_epochs)}, {factor} in {labels}"
        rows.append(claim_row(f"SupCon's top-1 varies less than cross-entropy's over {FACTOR_TEXT[factor]} (Fig. 4)",
                              setting, "std of top-1 over the values, supcon − ce", paired, 2, False, " points"))
        blocks.append(Table(["method", factor, "test top-1 (%) [95% CI]"],
                            [[m, v, fmt_interval(mean_interval(t))] for m, by_value in by_method.items()
                             for v, t in by_value.items()]))
        blocks.append(Table(["method", f"std over the {factor} values, per seed", "mean [95% CI]"],
                            [[m, ", ".join(f"{x:.2f}" for x in s), fmt_interval(mean_interval(s))]
                             for m, s in spreads[factor].items()]))
    figure = plot_stability(
        {f: {m: [(v, statistics.fmean(t), statistics.stdev(t) if len(t) > 1 else None)
                 for v, t in by_value.items()] for m, by_value in by_method.items()}
         for f, by_method in results.items()},
        study.record / "plots" / "stability.png",
        title=f"Test top-1 per value (mean ± std over {claims.seeds} seeds, {_epochs(n_epochs)})")
    section = Section("Stability to hyperparameters", [
        "Around each method's selected settings (shared augmentation), one factor varied at a time "
        "(as `supcon sweep`); per seed, the sample std of test top-1 over the factor's values. The "
        "learning rate stays the same when the batch size changes.",
        Figure(figure, "Test top-1 for each value of each factor"), *blocks])
    return rows, section, {"top1": results, "spread": spreads}
