"""Where the runs of a study are made: :class:`Runner` trains (or resumes) and evaluates each
:class:`~.grid.RunSpec` and records it; :func:`select` makes a controlled comparison's selection
grid; :func:`publish` writes the rendered report and the analysis.

With a record folder, every finished run leaves a summary in ``<record>/summaries/``
(:mod:`.record`), committed as it is written with ``commit``; a run whose summary is there with
the same configuration is not redone, on this machine or another. Without one (`supcon compare
--presets`, `supcon sweep`) the run folders are the record: a finished run is skipped, an
interrupted one resumed (:func:`~.runs.train_or_resume`), an evaluation with the same settings
reused (:func:`~.evaluate.evaluate_if_needed`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .controlled import Design, point_label
from .evaluate import evaluate_if_needed
from .grid import RunSpec
from .record import (
    check_git,
    commit_files,
    config_key,
    make_summary,
    matches,
    read_summary,
    write_summary,
)
from .report import Section, write_report
from .runs import train_or_resume

log = logging.getLogger("supcon")


@dataclass
class Runner:
    """Trains, evaluates and records runs, skipping every one the record already holds.

    Two requests for the same experiment (same portable config) share one run: the first name
    asked for is used for both (with a record folder).

    Raises:
        ValueError: ``commit`` with a record folder outside a git repository.
    """

    out: Path
    record: Path | None = None
    commit: bool = False
    progress: bool = False
    aliases: dict[str, str] = field(default_factory=dict)
    trained: list[str] = field(default_factory=list)  # names trained or evaluated by this call
    evaluations: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # without a record
    read_only: bool = False  # only read the record: a run it lacks raises LookupError

    def __post_init__(self) -> None:
        if self.commit:
            check_git(Path(self.record or self.out))

    def run(self, run: RunSpec) -> dict[str, Any]:
        """The summary of ``run`` (made now if the record lacks it)."""
        if self.record is None:
            path = self.out / run.name
            results = train_or_resume(run.cfg, path, self.progress, test=run.test)
            evaluation = evaluate_if_needed(path, run.evaluate) if run.evaluate is not None else None
            self.evaluations[run.name] = evaluation
            return make_summary(run.name, run.cfg, path, results, evaluation)
        name = self.aliases.setdefault(config_key("test" if run.test else "select", run.cfg), run.name)
        settings = run.evaluate.settings() if run.evaluate is not None else None
        summary = read_summary(self.record, name)
        if matches(summary, run.cfg, settings, need_test=run.test):
            log.debug("%s: recorded, skipping", name)
            return summary
        if self.read_only:
            raise LookupError(f"{name}: not in the record {self.record} yet")
        path = self.out / name
        results = train_or_resume(run.cfg, path, self.progress, test=run.test)
        evaluation = evaluate_if_needed(path, run.evaluate) if run.evaluate is not None else None
        summary = make_summary(name, run.cfg, path, results, evaluation)
        written = write_summary(self.record, summary)
        self.trained.append(name)
        log.info("%s: summary in %s", name, written)
        if self.commit:
            commit_files([written], f"study: {name} finished")
        return summary


def select(design: Design, runner: Runner, rows: list | None = None) -> dict[str, dict[str, Any]]:
    """Train every selection grid point of every row (of ``rows``, default all) without touching
    the test split and keep, per row, the point with the highest validation top-1 (the first of
    equals); sets and returns ``design.selection``."""
    for row in design.rows if rows is None else rows:
        tried = []
        for point, run in design.selection_runs(row):
            summary = runner.run(run)
            tried.append({"point": point, "label": point_label(point), "name": run.name,
                          "val_top1": summary["results"]["val_top1"], "epochs": run.cfg.train.epochs})
        best = max(tried, key=lambda t: t["val_top1"])  # first of equals wins
        design.selection[row.key] = {"chosen": best["point"], "label": best["label"], "grid": tried}
        log.info("selection %s: %s (val top-1 %.2f%%)", row.key, best["label"], best["val_top1"])
    return design.selection


def publish(folder: Path, title: str, sections: list[Section], summary: dict[str, Any], *,
            stem: str = "report", data: str = "summary.json", commit: bool = False,
            also: tuple[Path, ...] = ()) -> tuple[Path, Path]:
    """``<stem>.md``, ``<stem>.html`` and ``data`` (the analysis as JSON) into ``folder``; with
    ``commit``, git add + commit them, the plots and the files in ``also``."""
    md, page = write_report(title, sections, folder, stem=stem)
    (Path(folder) / data).write_text(json.dumps(summary, indent=1) + "\n")
    if commit:
        files = [md, page, Path(folder) / data, *sorted((Path(folder) / "plots").glob("*.png")), *also]
        commit_files(files, f"study: report in {Path(folder).name}")
    return md, page
