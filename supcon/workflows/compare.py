"""`supcon compare`: a configuration of the experiment engine (grid -> :mod:`.execute` ->
:mod:`.analysis` -> :mod:`.render` -> report), in two designs.

- Controlled (the default, :mod:`.controlled`): shared augmentation and budget, lr/temperature
  chosen on the validation split, a ce row with its own augmentation, 95% intervals and paired
  tests; the runs are recorded as summaries in the record folder.
- ``--presets``: every (method, seed) with the method's own preset (augmentation, views, lr,
  temperature from ``METHOD_DEFAULTS``) unless the config or overrides set one for all; the mCE
  reference of seed k is the ``ce`` run of seed k when ce is among the methods. Re-running skips
  finished runs (and evaluations made with the same settings) and resumes interrupted ones.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import render, render_presets
from .analysis import analyse, summarise, to_json
from .controlled import Controls, Design, command_line
from .eval_options import EvalOptions
from .execute import Runner, publish, select
from .grid import StudySpec, ordered, presets_runs
from .report import table_markdown

log = logging.getLogger("supcon")


def run_compare(spec: StudySpec, options: EvalOptions | None = None, *,
                progress: bool = False, controls: Controls | None = None, presets: bool = False) -> dict[str, Any]:
    """Train and evaluate every (method, seed), then write the report; return the summary.

    Args:
        spec: methods, seeds, data, epochs, config and overrides; runs go to
            ``spec.out/<method>-seed<k>`` (controlled: ``<row>-seed<k>`` and ``select/``).
        options: evaluation options (default ``EvalOptions()``); must leave ``data`` and
            ``reference`` unset (the ce run of each seed is the reference).
        progress: show progress bars while training.
        controls: the controlled design (default ``Controls()``); ignored with presets.
        presets: each method with its own ``METHOD_DEFAULTS`` preset, no selection.

    Returns:
        ``{"summary", "table" (Markdown), "report" (path of report.md), "html"}``.

    Raises:
        ValueError: ``options`` sets ``data``/``reference``, or the runs would differ in data,
            encoder, epochs or batch size (and, controlled, what :func:`run_controlled` refuses);
            RunError for a run folder that holds another configuration; ConfigError for bad
            overrides.
    """
    if not presets:
        return run_controlled(spec, options, controls, progress=progress)
    options = _own_data(options)
    runs = presets_runs(spec, options)
    runner = Runner(spec.out, progress=progress)
    summaries: dict[str, list[dict]] = {m: [] for m in ordered(spec.methods)}
    for run in runs:
        summaries[run.cfg.method].append(runner.run(run))
    evals = {m: [runner.evaluations[s["name"]] for s in runs_] for m, runs_ in summaries.items()}
    summary = summarise(evals)
    configs = {m: runs_[0]["config"] for m, runs_ in summaries.items()}
    sections = render_presets.build_sections(spec, configs, evals, summaries, summary)
    data = runs[0].cfg.data.name
    md, page = publish(spec.out, f"supcon compare: {', '.join(spec.methods)} on {data}", sections, summary)
    log.debug("report: %s and %s", md, page)
    return {"summary": summary, "table": table_markdown(render_presets.headline(summary, spec.seeds)),
            "report": str(md), "html": str(page)}


def _own_data(options: EvalOptions | None) -> EvalOptions:
    options = options or EvalOptions()
    if options.data is not None or options.reference is not None:
        raise ValueError("compare evaluates each run on its own data against its own ce run; "
                         "use `supcon eval` for --data/--reference")
    return options


def run_comparison(spec: StudySpec, options: EvalOptions | None, controls: Controls | None,
                   progress: bool = False) -> tuple[Design, Runner, EvalOptions, dict[str, list[dict]]]:
    """The controlled comparison's runs: selection on validation, then every row x seed, each
    trained, evaluated and recorded; supcon and the ce rows first, then simclr. Returns the
    design (with its selection), the runner, the evaluation options and ``{row key: [summary
    per seed]}``.

    Raises:
        ValueError: bad controls, a controlled key among the overrides, no ce among the methods,
            ``options`` with ``data``/``reference``, runs that would differ in data/encoder/batch,
            ``--commit`` outside a git repository; RunError for a run folder holding another
            configuration; ConfigError for bad overrides.
    """
    options = replace(_own_data(options), reference=None)
    controls = controls or Controls()
    design = Design(spec, controls)
    runner = Runner(Path(spec.out), Path(controls.record or spec.out), controls.commit, progress)
    design.check_existing(runner.out)
    summaries: dict[str, list[dict]] = {r.key: [] for r in design.rows}
    for rows in design.stages():  # the claims' endpoints first
        select(design, runner, rows)
        for run in design.core_runs(options, rows):
            summaries[run.name.rpartition("-seed")[0]].append(runner.run(run))
    return design, runner, options, summaries


def run_controlled(spec: StudySpec, options: EvalOptions | None = None, controls: Controls | None = None,
                   *, progress: bool = False) -> dict[str, Any]:
    """The controlled `supcon compare`: :func:`run_comparison`, then report.md / report.html /
    summary.json / plots into the record folder. Returns ``{"summary", "table" (Markdown),
    "report", "html"}``; raises what :func:`run_comparison` raises."""
    design, runner, options, summaries = run_comparison(spec, options, controls, progress)
    analysis = analyse(design.shown_rows(), design.described(), design.selection, summaries)
    command = command_line("compare", design, options)
    sections = render.build_sections(summaries, analysis, runner.record / "plots", command)
    data = summaries["ce"][0]["config"]["data"]["name"]
    title = f"supcon compare (controlled): {', '.join(spec.methods)} on {data}"
    md, page = publish(runner.record, title, sections, {"command": command, **to_json(analysis)},
                       commit=design.controls.commit)
    return {"summary": to_json(analysis), "table": render.headline(analysis), "report": str(md),
            "html": str(page)}
