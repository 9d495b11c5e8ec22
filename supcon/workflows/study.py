"""`supcon study`: the paper's claims, each tested as one row with its own seeds and budget; a
configuration of the experiment engine (the controlled comparison of :mod:`.compare`, plus the
runs of the claim rows below, analysed by :mod:`.claims` and drawn by :mod:`.render_study`).

The core comparison gives the accuracy, robustness and calibration rows. The other rows train
more runs, around the settings the core selection chose on the validation split:

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
from dataclasses import dataclass, field
from typing import Any

from ..command_line import to_flags
from . import claims as analysis_of
from . import render, render_study
from .analysis import REFERENCE, analyse, to_json
from .compare import run_comparison
from .controlled import Controls, Design, command_line
from .eval_options import EvalOptions
from .execute import Runner, publish
from .grid import RunSpec, StudySpec
from .report import table_markdown
from .sweep import sweep_points

log = logging.getLogger("supcon")
CLAIMS = ("accuracy", "robustness", "calibration", "lout-lin", "stability", "long-schedule")
STABILITY = {"lr": ["0.25", "1", "4"],
             "augmentation": ["simaugment", "autoaugment", "randaugment", "stacked-randaugment"],
             "batch": [0.5, 1.0, 2.0]}  # batch: factors of the main batch size


@dataclass(frozen=True)
class ClaimOptions:
    """Which claim rows to run and with what; each field is also a flag of the command line
    (:mod:`supcon.command_line`; ``seeds`` is ``--claim-seeds``).

    Raises:
        ValueError: an unknown claim, ``seeds`` < 2, ``long_factor`` < 2 or ``stability_epochs`` < 1.
    """

    claims: tuple[str, ...] = field(default=CLAIMS, metadata={"all": CLAIMS})
    """The claim rows: accuracy, robustness, calibration, lout-lin, stability, long-schedule."""
    seeds: int = field(default=3, metadata={"flag": "--claim-seeds"})
    """Seeds of the lout-lin, stability and long-schedule rows."""
    long_factor: int = 4
    """The long schedule's epochs as a multiple of the main epochs."""
    stability_epochs: int | None = None
    """Epochs of the stability runs; None = the main epochs."""

    def __post_init__(self) -> None:
        unknown = [c for c in self.claims if c not in CLAIMS]
        if unknown or not self.claims:
            raise ValueError(f"claims: unknown {unknown or 'none given'}; choose from {', '.join(CLAIMS)} or all")
        if self.seeds < 2:
            raise ValueError(f"--claim-seeds must be >= 2 (an interval needs two), got {self.seeds}")
        if self.long_factor < 2:
            raise ValueError(f"long_factor must be >= 2, got {self.long_factor}")
        if self.stability_epochs is not None and self.stability_epochs < 1:
            raise ValueError(f"stability_epochs must be >= 1, got {self.stability_epochs}")


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
            :func:`~.compare.run_comparison` refuses.
    """
    claims = claims or ClaimOptions()
    if not {"supcon", "ce"} <= set(spec.methods):
        raise ValueError(f"methods must include supcon and ce (the study tests SupCon against "
                         f"cross-entropy), got {list(spec.methods)}")
    design, runner, options, summaries = run_comparison(spec, options, controls, progress)
    analysis = analyse(design.shown_rows(), design.described(), design.selection, summaries)
    plots = runner.record / "plots"
    specs = [c for c in analysis_of.CORE_CLAIMS if c.group in claims.claims]
    # the comparator of each core row: the ce row with the better test mean (kept from earlier
    # studies; an input here, so a study can fix it in advance instead)
    comparators = {c.metric: analysis_of.strongest(analysis, c.metric) for c in specs}
    epochs = analysis["budget"]["supcon"]["epochs"]
    setting = f"core: {analysis['seeds']} seeds, {analysis_of.epochs_text(epochs)} ({analysis['design']['budget']} budget)"
    rows = analysis_of.core_claims(analysis, specs, comparators, setting)
    sections, extra = [], {}
    steps = (("lout-lin", _lout_lin), ("long-schedule", _long_schedule), ("stability", _stability))
    for name, fn in steps:
        if name in claims.claims:
            claim_rows, section, data = fn(design, runner, claims, plots)
            rows += claim_rows
            sections.append(section)
            extra[name] = data
    command = command_line("study", design, options, tuple(to_flags(claims)))
    table = render_study.claims_table(rows)
    core = render.build_sections(summaries, analysis, plots, command)
    all_sections = [render_study.claims_section(rows, design.controls.augmentation), *core, *sections]
    data = summaries["ce"][0]["config"]["data"]["name"]
    (runner.record / "claims.md").write_text(table_markdown(table) + "\n")
    summary = {"command": command, "claims": rows, "core": to_json(analysis), **to_json(extra)}
    md, page = publish(runner.record, f"supcon study: the paper's claims on {data}", all_sections, summary,
                       commit=design.controls.commit)
    return {"claims": rows, "table": table_markdown(table), "report": str(md), "html": str(page)}


# ------------------------------------------------------------------------------ the claim rows' runs
def _top1(runner: Runner, name: str, cfg) -> float:
    return runner.run(RunSpec(name, cfg))["results"]["test_top1"]


def _lout_lin(design: Design, runner: Runner, claims: ClaimOptions, plots):
    row = design.row("supcon")
    l_out, l_in = [], []
    for seed in range(claims.seeds):
        l_out.append(_top1(runner, design.core_name(row, seed), design.core_config(row, seed)))
        l_in.append(_top1(runner, f"lout-lin/supcon-in-seed{seed}", design.core_config(row, seed, **{"loss.variant": "in"})))
    epochs = design.core_config(row, 0).train.epochs
    setting = f"{claims.seeds} seeds, {analysis_of.epochs_text(epochs)}, supcon's selected lr and temperature"
    rows, data = analysis_of.lout_lin(l_out, l_in, setting)
    return rows, render_study.lout_lin_section(data, setting), data


def _long_schedule(design: Design, runner: Runner, claims: ClaimOptions, plots):
    f = claims.long_factor
    top1: dict[str, dict[str, list[float]]] = {}
    epochs = {}
    for key in ("supcon", REFERENCE):
        row = design.row(key)
        base = design.core_config(row, 0).train.epochs
        top1[key] = {"1x": [], f"{f}x": []}
        for seed in range(claims.seeds):
            top1[key]["1x"].append(_top1(runner, design.core_name(row, seed), design.core_config(row, seed)))
            cfg = design.config(row, seed, design.chosen(row), epochs=base * f)
            top1[key][f"{f}x"].append(_top1(runner, f"long/{key}-x{f}-seed{seed}", cfg))
        epochs[key] = design.config(row, 0, design.chosen(row), epochs=base * f).train.epochs
    setting = f"{claims.seeds} seeds, {f}x the main epochs (supcon {epochs['supcon']}, ce {epochs[REFERENCE]})"
    rows, data = analysis_of.long_schedule(top1, f, setting)
    return rows, render_study.long_schedule_section(data, f, setting), data


def _stability(design: Design, runner: Runner, claims: ClaimOptions, plots):
    epochs = claims.stability_epochs
    results: dict[str, dict[str, dict[str, list[float]]]] = {}  # factor -> method -> value -> per seed
    for factor, values in STABILITY.items():
        results[factor] = {}
        for key in ("supcon", REFERENCE):
            row = design.row(key)
            base = design.core_config(row, 0)
            chosen = design.chosen(row)
            if factor == "batch":
                values_ = [str(max(2, round(base.train.batch_size * v))) for v in values]
            else:
                values_ = list(values)
            points = sweep_points(factor, chosen["optim.lr"], values_, base.train.batch_size)
            results[factor][key] = {}
            for point in points:
                results[factor][key][point.label] = [
                    _top1(runner, f"stability/{key}-{factor}-{point.label}-seed{seed}",
                          design.config(row, seed, {**chosen, **point.overrides}, epochs=epochs))
                    for seed in range(claims.seeds)]
    supcon = design.row("supcon")
    n_epochs = design.config(supcon, 0, design.chosen(supcon), epochs=epochs).train.epochs
    settings = {f: f"{claims.seeds} seeds, {analysis_of.epochs_text(n_epochs)}, {f} in "
                   f"{', '.join(results[f]['supcon'])}" for f in results}
    rows, data = analysis_of.stability(results, claims.seeds, settings)
    return rows, render_study.stability_section(data, claims.seeds, n_epochs, plots), data
