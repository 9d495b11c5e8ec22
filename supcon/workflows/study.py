"""`supcon study`: the paper's claims, each tested as one row with its own seeds and budget; a
configuration of the experiment engine (the controlled comparison of :mod:`.compare`, plus the
runs of the claim rows below, analysed by :mod:`.claims` and drawn by :mod:`.render_study`).

Before the first run the study writes its plan (:mod:`.plan`): every claim row, measured against
both cross-entropy rows (:data:`~.claims.COMPARATORS`: shared augmentation, and own augmentation
chosen on validation), in a family whose p-values are adjusted together (primary: clean top-1
and mCE over all corruptions, Holm; secondary and exploratory: Benjamini-Hochberg). The rows:

- core (``accuracy``, ``robustness``, ``calibration``): the controlled comparison's runs, each
  seed's corruption subsample drawn with that seed; ECE with each method's own classifier and with
  the same linear probe on every encoder; the imitated and unimitated corruption subsets are
  exploratory.
- ``lout-lin`` (paper Table 1): SupCon with L_in against L_out (the core supcon runs), top-1.
- ``equal-compute``: each cross-entropy row retrained with as many encoder passes as SupCon at the
  main epochs (views x epochs), seeds as the core; supcon's core runs against them, top-1 and mCE.
- ``stability`` (paper Fig. 4): supcon and both cross-entropy rows retrained with the learning
  rate x0.25, x1, x4, the four augmentation policies, and the batch size x0.5, x1, x2 of the main
  one with the number of steps held equal (epochs grow with the batch) and the lr scaled with the
  batch (the linear scaling rule); per seed, the spread (sample std) of test top-1 over each
  factor's values. A run whose loss diverges counts at chance accuracy.
- ``long-schedule`` (not run by default): supcon and both cross-entropy rows at ``long_factor`` x
  the main epochs.

Order: the selection and core runs of supcon and the cross-entropy rows first (the primary
endpoints), then simclr's, then the other rows. A run that is the same experiment as another is
not trained twice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..command_line import to_flags
from ..engine.loop import NonFiniteLossError
from . import claims as analysis_of
from . import plan as study_plan
from . import render, render_study
from .analysis import REFERENCE, analyse, run_metrics, to_json
from .compare import run_comparison
from .controlled import Controls, Design, command_line
from .eval_options import EvalOptions
from .execute import Runner, publish, select
from .grid import RunSpec, StudySpec, seed_eval_options
from .record import check_git, commit_files
from .report import table_markdown

log = logging.getLogger("supcon")
CLAIMS = ("accuracy", "robustness", "calibration", "lout-lin", "equal-compute", "stability", "long-schedule")
DEFAULT_CLAIMS = tuple(c for c in CLAIMS if c != "long-schedule")
CORE_GROUPS = ("accuracy", "robustness", "calibration")
STABILITY = {"lr": (0.25, 1.0, 4.0),
             "augmentation": ("simaugment", "autoaugment", "randaugment", "stacked-randaugment"),
             "batch": (0.5, 1.0, 2.0)}  # lr and batch: factors of the selected lr and the main batch size
COMPARATOR_TEXT = {"ce": "cross-entropy with the shared augmentation (the controlled comparator)",
                   "ce-own": "cross-entropy with its own augmentation, chosen with its lr on the validation "
                             "split (the strong comparator)"}


@dataclass(frozen=True)
class ClaimOptions:
    """Which claim rows to run and with what; each field is also a flag of the command line
    (:mod:`supcon.command_line`; ``seeds`` is ``--claim-seeds``).

    Raises:
        ValueError: an unknown claim, ``seeds`` < 2, ``long_factor`` < 2 or ``stability_epochs`` < 1.
    """

    claims: tuple[str, ...] = field(default=DEFAULT_CLAIMS, metadata={"all": CLAIMS})
    """The claim rows: accuracy, robustness, calibration, lout-lin, equal-compute, stability
    (default: all of these), long-schedule."""
    seeds: int = field(default=3, metadata={"flag": "--claim-seeds"})
    """Seeds of the lout-lin, stability and long-schedule rows (equal-compute uses the core's)."""
    long_factor: int = 4
    """The long schedule's epochs as a multiple of the main epochs."""
    stability_epochs: int | None = None
    """Epochs of the stability runs at the main batch size (the batch factor's smallest batch
    trains this many too; larger batches more, at equal steps); None = a quarter of the main
    epochs (at least 1)."""

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
    """The plan, the core controlled comparison and every claim row; writes plan.json / plan.md
    (before any run), report.md / report.html / summary.json / claims.md and the plots into the
    record folder.

    Args:
        spec: methods (ce and supcon required), seeds of the core comparison, data, epochs,
            config and overrides; runs go to ``spec.out``.
        options: evaluation options of the core runs (default ``EvalOptions()``; the corruption
            subsample's seed is each run's seed).
        controls: shared augmentation, grids, budget, record folder, commit.
        claims: which claim rows, their seeds, the long schedule's factor, stability epochs.
        progress: show progress bars while training.

    Returns:
        ``{"claims": [row dicts], "table" (Markdown of the claims), "report", "html"}``.

    Raises:
        ValueError: supcon or ce missing from the methods, equal-compute with ``--budget passes``
            (the core is then at equal compute already), a record folder holding another plan,
            and everything :func:`~.compare.run_comparison` refuses.
    """
    claims = claims_for_data(spec, claims or ClaimOptions())
    controls = controls or Controls()
    if not {"supcon", "ce"} <= set(spec.methods):
        raise ValueError(f"methods must include supcon and ce (the study tests SupCon against "
                         f"cross-entropy), got {list(spec.methods)}")
    if "equal-compute" in claims.claims and controls.budget == "passes":
        raise ValueError("--claims equal-compute with --budget passes: the core already gives every method "
                         "the same encoder passes; drop one of them")
    options = options or EvalOptions()
    plan = json.loads(plan_study(spec, options, controls, claims).read_text())
    design, runner, options, summaries = run_comparison(spec, options, controls, progress)
    analysis = analyse(design.shown_rows(), design.described(), design.selection, summaries)
    plots = runner.record / "plots"
    rows = _core_rows(design, analysis, [c for c in analysis_of.CORE_CLAIMS if c.group in claims.claims])
    sections, extra = [], {}
    steps = (("lout-lin", _lout_lin), ("equal-compute", _equal_compute), ("long-schedule", _long_schedule),
             ("stability", _stability))
    for name, fn in steps:
        if name in claims.claims:
            claim_rows, section, data = fn(design, runner, claims, plots, options=options, analysis=analysis,
                                           summaries=summaries)
            rows += claim_rows
            sections.append(section)
            extra[name] = data
    rows = study_plan.check_rows_follow(plan, analysis_of.adjust(rows))
    command = plan["command"]
    table = render_study.claims_table(rows)
    core = render.build_sections(summaries, analysis, plots, command)
    all_sections = [render_study.claims_section(rows, design.controls.augmentation, plan), *core, *sections]
    data = summaries["ce"][0]["config"]["data"]["name"]
    claims_md = runner.record / "claims.md"
    claims_md.write_text(table_markdown(table) + "\n")
    summary = {"command": command, "plan": plan, "claims": rows, "core": to_json(analysis), **to_json(extra)}
    md, page = publish(runner.record, f"supcon study: the paper's claims on {data}", all_sections, summary,
                       commit=design.controls.commit, also=(claims_md,))
    return {"claims": rows, "table": table_markdown(table), "report": str(md), "html": str(page)}


def _core_rows(design: Design, analysis: dict[str, Any], specs: list[analysis_of.ClaimSpec]) -> list[dict[str, Any]]:
    """The claim rows of ``specs`` from the core runs' analysis, each against both comparators."""
    comparators = _comparators(design)
    epochs = analysis["budget"]["supcon"]["epochs"]
    setting = f"core: {analysis['seeds']} seeds, {analysis_of.epochs_text(epochs)} ({analysis['design']['budget']} budget)"
    planned = [(s.metric, k) for s in specs for k in comparators]
    return [{**r, "endpoint": m, "comparator_key": k}
            for r, (m, k) in zip(analysis_of.core_claims(analysis, specs, comparators, setting), planned, strict=True)]


def read_early_families(spec: StudySpec, options: EvalOptions | None = None, controls: Controls | None = None,
                        claims: ClaimOptions | None = None) -> dict[str, Any]:
    """The families whose every row comes from the core runs of supcon and the cross-entropy rows
    (primary and exploratory), read from the record of a study that is still running: as soon as
    those runs are committed their adjusted p are final (each family is adjusted on its own).
    Nothing is trained; the record must hold the plan of this very study.

    Returns:
        ``{"claims": [row dicts], "table": Markdown of the claims, "families": [names]}``.

    Raises:
        ValueError: no plan in the record, or another one; LookupError: a run the families need is
            not in the record yet (the message names it).
    """
    options, controls, claims = options or EvalOptions(), controls or Controls(), claims or ClaimOptions()
    record = Path(controls.record or spec.out)
    path = record / study_plan.PLAN_JSON
    if not path.is_file():
        raise ValueError(f"{record}: no study plan ({study_plan.PLAN_JSON}) there")
    plan = json.loads(path.read_text())
    if study_plan.substance(plan) != study_plan.substance(_plan(spec, options, controls, claims)):
        raise ValueError(f"{record} holds the plan of another study; give the command in its plan.md")
    design = Design(spec, controls)
    runner = Runner(Path(spec.out), record, read_only=True)
    first = design.stages()[0]
    select(design, runner, first)
    summaries = {row.key: [runner.run(run) for run in design.core_runs(options, [row])] for row in first}
    analysis = analyse(design.shown_rows(first), design.described(), design.selection, summaries)
    core_metrics = {c.metric for c in analysis_of.CORE_CLAIMS}
    needs_more = {r["family"] for r in plan["rows"] if r["endpoint"] not in core_metrics}  # e.g. lout-lin
    specs = [c for c in analysis_of.CORE_CLAIMS if c.group in claims.claims and c.family not in needs_more]
    rows = analysis_of.adjust(_core_rows(design, analysis, specs))
    return {"claims": rows, "table": table_markdown(render_study.claims_table(rows)),
            "families": list(dict.fromkeys(r["family"] for r in rows))}


# ------------------------------------------------------------------------------ the plan
IMAGE_CLAIMS = ("robustness", "stability")  # corruptions; augmentation policies


def claims_for_data(spec: StudySpec, claims: ClaimOptions) -> ClaimOptions:
    """``claims`` as a study of ``spec``'s data can test them: with a text encoder (no corruptions,
    no augmentation policies) the default leaves out :data:`IMAGE_CLAIMS`, with a log line.

    Raises:
        ValueError: an image claim asked for by name with a text encoder.
    """
    if not spec.reads_text():
        return claims
    asked = [c for c in claims.claims if c in IMAGE_CLAIMS]
    if asked and claims.claims != DEFAULT_CLAIMS:
        raise ValueError(f"--claims {','.join(asked)}: these test image corruptions and augmentation policies, "
                         "which a text encoder has not; leave them out")
    kept = tuple(c for c in claims.claims if c not in IMAGE_CLAIMS)
    if asked:
        log.info("text encoder: the study leaves out the image claims (%s)", ", ".join(asked))
    return replace(claims, claims=kept)


def plan_study(spec: StudySpec, options: EvalOptions | None = None, controls: Controls | None = None,
               claims: ClaimOptions | None = None) -> Path:
    """Write the study's plan into its record folder (committed with ``controls.commit``), or
    check that the plan there is this one; no run is made. Returns the path of plan.json.

    Raises:
        ValueError: the record folder holds another plan, ``--commit`` outside a git repository,
            and what :class:`~.controlled.Design` refuses.
    """
    options, controls = options or EvalOptions(), controls or Controls()
    claims = claims_for_data(spec, claims or ClaimOptions())
    plan = _plan(spec, options, controls, claims)
    record = Path(controls.record or spec.out)
    if controls.commit:
        check_git(record)  # before the plan is written: a plan that cannot be committed is no plan
    written = study_plan.write_or_check(record, plan)
    if controls.commit and written:
        commit_files(written, f"study: plan of {record.name}, before its first run")
    return record / study_plan.PLAN_JSON


def _comparators(design: Design) -> list[str]:
    keys = {r.key for r in design.rows}
    return [c for c in analysis_of.COMPARATORS if c in keys]


def _plan(spec: StudySpec, options: EvalOptions, controls: Controls, claims: ClaimOptions) -> dict[str, Any]:
    """What the study will test, fixed before its first run (:mod:`.plan`)."""
    design = Design(spec, controls)
    comparators = _comparators(design)
    labels = {r.key: r.label for r in design.rows}
    rows = []
    for c in analysis_of.CORE_CLAIMS:
        if c.group in claims.claims:
            rows += [study_plan.planned_row(c.claim, c.metric, k, c.family) for k in comparators]
    if "lout-lin" in claims.claims:
        rows.append(study_plan.planned_row("L_out beats L_in (Table 1)", "lout-lin", "supcon-in", "secondary"))
    if "equal-compute" in claims.claims:
        rows += [study_plan.planned_row(f"SupCon's lead holds at equal compute ({m})", f"equal-compute {m}", k,
                                        "secondary") for k in comparators for m in ("clean_top1", "mce")]
    if "long-schedule" in claims.claims:
        rows += [study_plan.planned_row(f"SupCon's lead holds at {claims.long_factor}x epochs ({what})",
                                        f"long-schedule {what}", k, "secondary")
                 for k in comparators for what in ("gap", "gap change")]
    if "stability" in claims.claims:
        rows += [study_plan.planned_row(f"SupCon's top-1 varies less over {analysis_of.FACTOR_TEXT[f]} (Fig. 4)",
                                        f"stability {f}", k, "secondary") for f in STABILITY for k in comparators]
    main = design.base_config("supcon").train.epochs
    about = {"seeds (core, equal-compute)": spec.seeds, "seeds (simclr)": min(spec.seeds, controls.simclr_seeds or spec.seeds),
             "seeds (lout-lin, stability, long-schedule)": claims.seeds, "epochs": main,
             "budget": controls.budget, "lr grid": list(controls.lr_grid),
             "temperature grid": list(controls.temperature_grid),
             "selection": f"validation split, seed 1000, {controls.select_epochs or main} epochs",
             "stability epochs at the main batch": _stability_epochs(claims, main),
             "corruptions": "all 16" if options.corruptions is None else list(options.corruptions),
             "corruption subsample": f"{options.corruption_samples} test images, drawn with each run's seed"}
    order = ["selection of supcon and the cross-entropy rows", "their core runs, seed by seed",
             "selection and core runs of simclr (if compared)",
             *[f"{c} runs" for c in ("lout-lin", "equal-compute", "long-schedule", "stability") if c in claims.claims]]
    command = command_line("study", design, options, tuple(to_flags(claims)))
    described = {k: f"{labels[k]}: {COMPARATOR_TEXT[k]}" for k in comparators}
    if "lout-lin" in claims.claims:
        described["supcon-in"] = "supcon with L_in, the settings of the core supcon runs (lout-lin only)"
    return study_plan.build_plan(f"supcon study on {design.base_config('supcon').data.name}", command, rows,
                                 described, order, about)


# ------------------------------------------------------------------------------ the claim rows' runs
def _top1(runner: Runner, name: str, cfg) -> float:
    return runner.run(RunSpec(name, cfg))["results"]["test_top1"]


def _lout_lin(design: Design, runner: Runner, claims: ClaimOptions, plots, **_):
    row = design.row("supcon")
    l_out, l_in = [], []
    for seed in range(claims.seeds):
        l_out.append(_top1(runner, design.core_name(row, seed), design.core_config(row, seed)))
        l_in.append(_top1(runner, f"lout-lin/supcon-in-seed{seed}", design.core_config(row, seed, **{"loss.variant": "in"})))
    epochs = design.core_config(row, 0).train.epochs
    setting = f"{claims.seeds} seeds, {analysis_of.epochs_text(epochs)}, supcon's selected lr and temperature"
    rows, data = analysis_of.lout_lin(l_out, l_in, setting)
    rows = [{**r, "endpoint": "lout-lin", "comparator_key": "supcon-in"} for r in rows]
    return rows, render_study.lout_lin_section(data, setting), data


def _equal_compute(design: Design, runner: Runner, claims: ClaimOptions, plots, *, options: EvalOptions,
                   analysis: dict, summaries: dict, **_):
    supcon_row = design.row("supcon")
    passes = design.views("supcon")
    main = design.core_config(supcon_row, 0).train.epochs
    unimitated, reliable = analysis["design"]["unimitated"], analysis["design"]["reliable"]
    refs = summaries[REFERENCE]
    metrics = ("clean_top1", "mce")
    supcon = {m: [run_metrics(s, refs[k], unimitated, reliable)[m] for k, s in enumerate(summaries["supcon"])]
              for m in metrics}
    ce, labels, epochs = {}, {}, {}
    for key in _comparators(design):
        row = design.row(key)
        epochs[key] = main * passes // design.views(row.method)
        per_seed = []
        for seed in range(design.spec.seeds):
            cfg = design.config(row, seed, design.chosen(row), epochs=epochs[key])
            name = f"equal-compute/{key}-{epochs[key]}ep-seed{seed}"
            s = runner.run(RunSpec(name, cfg, evaluate=seed_eval_options(options, seed)))
            per_seed.append(run_metrics(s, refs[seed], unimitated, reliable))
        ce[key] = {m: [x[m] for x in per_seed] for m in metrics}
        labels[key] = f"{analysis_of.epochs_text(epochs[key])} of {design.shown_label(row)}"
    setting = (f"{design.spec.seeds} seeds; supcon {analysis_of.epochs_text(main)} x {passes} views against "
               f"cross-entropy at the same encoder passes")
    rows, data = analysis_of.equal_compute(supcon, ce, labels, setting)
    endpoints = [f"equal-compute {m}" for _ in ce for m in metrics]
    rows = [{**r, "endpoint": e, "comparator_key": k}
            for r, e, k in zip(rows, endpoints, [k for k in ce for _ in metrics], strict=True)]
    return rows, render_study.equal_compute_section(data, labels, setting), data


def _long_schedule(design: Design, runner: Runner, claims: ClaimOptions, plots, **_):
    f = claims.long_factor
    keys = ["supcon", *_comparators(design)]
    top1: dict[str, dict[str, list[float]]] = {}
    for key in keys:
        row = design.row(key)
        base = design.core_config(row, 0).train.epochs
        top1[key] = {"1x": [], f"{f}x": []}
        for seed in range(claims.seeds):
            top1[key]["1x"].append(_top1(runner, design.core_name(row, seed), design.core_config(row, seed)))
            cfg = design.config(row, seed, design.chosen(row), epochs=base * f)
            top1[key][f"{f}x"].append(_top1(runner, f"long/{key}-x{f}-seed{seed}", cfg))
    labels = {k: design.shown_label(design.row(k)) for k in keys[1:]}
    setting = f"{claims.seeds} seeds, {f}x the main epochs"
    rows, data = analysis_of.long_schedule(top1, f, labels, setting)
    planned = [(e, k) for k in labels for e in ("long-schedule gap", "long-schedule gap change")]
    rows = [{**r, "endpoint": e, "comparator_key": k} for r, (e, k) in zip(rows, planned, strict=True)]
    return rows, render_study.long_schedule_section(data, f, labels, setting), data


def _stability_epochs(claims: ClaimOptions, main: int) -> int:
    return claims.stability_epochs or max(1, main // 4)


def stability_points(lr: float, augmentation: str, batch: int, epochs: int) -> dict[str, list[tuple[str, dict]]]:
    """``{factor: [(value label, overrides), ...]}`` around a row's selected ``lr`` and
    ``augmentation`` at the main ``batch``: lr x0.25/x1/x4 and the four policies at ``epochs``;
    batch x0.5/x1/x2 with epochs growing with the batch from ``epochs`` at the smallest (equal
    steps) and the lr scaled with the batch."""
    base = {"optim.lr": lr, "data.augmentation": augmentation, "train.batch_size": batch, "train.epochs": epochs}
    smallest = min(STABILITY["batch"])
    return {
        "lr": [(f"x{f:g}", {**base, "optim.lr": lr * f}) for f in STABILITY["lr"]],
        "augmentation": [(a, {**base, "data.augmentation": a}) for a in STABILITY["augmentation"]],
        "batch": [(str(max(2, round(batch * f))), {**base, "train.batch_size": max(2, round(batch * f)),
                                                    "train.epochs": round(epochs * f / smallest),
                                                    "optim.lr": lr * f}) for f in STABILITY["batch"]],
    }


def _stability(design: Design, runner: Runner, claims: ClaimOptions, plots, **_):
    keys = ["supcon", *_comparators(design)]
    main = design.core_config(design.row("supcon"), 0)
    epochs = _stability_epochs(claims, main.train.epochs)
    results: dict[str, dict[str, dict[str, list[float]]]] = {f: {} for f in STABILITY}
    diverged: list[str] = []
    for key in keys:
        row = design.row(key)
        chosen = design.chosen(row)
        points = stability_points(chosen["optim.lr"], chosen["data.augmentation"], main.train.batch_size, epochs)
        for factor, values in points.items():
            results[factor][key] = {}
            for label, overrides in values:
                tops = []
                for seed in range(claims.seeds):
                    name = f"stability/{key}-{factor}-{label}-seed{seed}"
                    cfg = design.config(row, seed, {**chosen, **overrides}, epochs=overrides["train.epochs"])
                    tops.append(_top1_or_chance(runner, name, cfg, diverged))
                results[factor][key][label] = tops
    settings = {f: f"{claims.seeds} seeds, {_factor_setting(f, epochs)}" for f in STABILITY}
    labels = {k: design.shown_label(design.row(k)) for k in keys[1:]}
    rows, data = analysis_of.stability(results, claims.seeds, settings, labels)
    planned = [(f"stability {f}", k) for f in STABILITY for k in labels]
    rows = [{**r, "endpoint": e, "comparator_key": k} for r, (e, k) in zip(rows, planned, strict=True)]
    data["diverged"] = diverged
    return rows, render_study.stability_section(data, claims.seeds, epochs, plots), data


def _factor_setting(factor: str, epochs: int) -> str:
    if factor == "batch":
        return (f"batch x0.5, x1, x2 at equal steps ({analysis_of.epochs_text(epochs)} at the smallest), "
                "lr scaled with the batch")
    if factor == "lr":  # factors of the selected lr, not learning rates
        return f"{analysis_of.epochs_text(epochs)}, lr x{', x'.join(f'{f:g}' for f in STABILITY['lr'])} the selected one"
    return f"{analysis_of.epochs_text(epochs)}, {factor} in {', '.join(map(str, STABILITY[factor]))}"


def _top1_or_chance(runner: Runner, name: str, cfg, diverged: list[str]) -> float:
    """Test top-1 of the run, or chance accuracy when its loss diverged (recorded in ``diverged``)."""
    try:
        return _top1(runner, name, cfg)
    except NonFiniteLossError:
        diverged.append(name)
        log.warning("%s: the loss diverged; counted at chance accuracy", name)
        return 100.0 / _num_classes(cfg)


def _num_classes(cfg) -> int:
    from ..data.registry import load_dataset  # rare (a diverged run): the set is read once more

    return load_dataset(cfg.data.name, data_dir=cfg.data.data_dir, download=False).info.num_classes
