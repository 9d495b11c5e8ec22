"""`supcon compare`: train every (method, seed) with the same encoder, epochs and data, evaluate
each, and write ``report.md`` / ``report.html`` / ``summary.json`` into the output folder.

Every method keeps its own preset (augmentation, views, learning rate, temperature from
``METHOD_DEFAULTS``) unless the config or overrides set one for all. The mCE reference of seed k
is the ``ce`` run of seed k when ce is among the methods. Re-running skips finished runs (and
evaluations made with the same settings) and resumes interrupted ones from their checkpoint.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

from ..config import Config
from .compare_report import build_sections, headline, summarise
from .eval_options import EvalOptions
from .evaluate import evaluate_if_needed
from .report import table_markdown, write_report
from .runs import train_or_resume
from .study import StudySpec, ordered

log = logging.getLogger("supcon")


def run_compare(spec: StudySpec, options: EvalOptions | None = None, *,
                progress: bool = False, controls: Any = None, presets: bool = False) -> dict[str, Any]:
    """Train and evaluate every (method, seed), then write the report; return the summary.

    By default the comparison is controlled (:mod:`.controlled`: shared augmentation and budget,
    lr/temperature chosen on the validation split, a ce row with its own augmentation, 95%
    intervals and paired tests); ``presets=True`` gives the uncontrolled comparison below, where
    every method keeps its own preset.

    Args:
        spec: methods, seeds, data, epochs, config and overrides; runs go to
            ``spec.out/<method>-seed<k>``.
        options: evaluation options (default ``EvalOptions()``); must leave ``data`` and
            ``reference`` unset (the ce run of each seed is the reference).
        progress: show progress bars while training.
        controls: a :class:`~.controlled.Controls` (default ``Controls()``); ignored with presets.
        presets: each method with its own ``METHOD_DEFAULTS`` preset, no selection.

    Returns:
        ``{"summary", "table" (Markdown), "report" (path of report.md), "html"}``.

    Raises:
        ValueError: ``options`` sets ``data``/``reference``, or the runs would differ in data,
            encoder, epochs or batch size (and, controlled, what ``run_controlled`` refuses);
            RunError for a run folder that holds another configuration; ConfigError for bad
            overrides.
    """
    if not presets:
        from .controlled import run_controlled

        return run_controlled(spec, options, controls, progress=progress)
    options = options or EvalOptions()
    if options.data is not None or options.reference is not None:
        raise ValueError("compare evaluates each run on its own data against its own ce run; "
                         "use `supcon eval` for --data/--reference")
    configs = {(m, s): spec.config_for(m, s) for s in range(spec.seeds) for m in spec.methods}
    _check_shared(configs)
    evals: dict[str, list[dict]] = {m: [] for m in ordered(spec.methods)}
    for seed in range(spec.seeds):
        for method in ordered(spec.methods):
            path = spec.out / f"{method}-seed{seed}"
            train_or_resume(configs[method, seed], path, progress)
            ref = spec.out / f"ce-seed{seed}" if "ce" in spec.methods else None
            evals[method].append(
                evaluate_if_needed(path, replace(options, reference=str(ref) if ref else None)))
    summary = summarise(evals)
    sections = build_sections(spec, configs, evals, summary)
    md, page = write_report(f"supcon compare: {', '.join(spec.methods)} on "
                            f"{configs[spec.methods[0], 0].data.name}", sections, spec.out)
    (spec.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    log.debug("report: %s and %s", md, page)
    return {"summary": summary, "table": table_markdown(headline(summary, spec.seeds)),
            "report": str(md), "html": str(page)}


def _check_shared(configs: dict[tuple[str, int], Config]) -> None:
    """The runs must differ only in method, seed and method defaults: same data, encoder, epochs."""
    seen = {(c.data.name, c.model.encoder, json.dumps(c.model.encoder_options, sort_keys=True),
             c.train.epochs, c.train.batch_size) for c in configs.values()}
    if len(seen) != 1:
        raise ValueError(f"compare: runs would differ in data/encoder/epochs/batch: {sorted(seen)}")
