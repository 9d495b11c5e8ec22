"""`supcon compare` as a controlled experiment (the default): every method shares the encoder,
data, augmentation policy, batch size and pre-training budget; each method's learning rate (and
temperature, for supcon and simclr) is picked from the same grid on the validation split; and
cross-entropy with its own augmentation is a second baseline row.

The steps:

1. **Selection** (validation split only). For every row, each grid point is trained once at
   seed :data:`SELECT_SEED` (not one of the evaluated seeds) into ``select/<row>-<aug>-lr<lr>[-t<t>]``
   with ``test=False``: the run never reads the test split and its results hold only the
   validation top-1 (linear classifier chosen on the validation split; ce: its own classifier).
   The point with the highest validation top-1 wins (ties: the first in grid order).
2. **Core runs**: every row x seed 0..K-1 with the chosen settings, in ``<row>-seed<k>``, each
   evaluated as by `supcon eval` (no reference: mCE is computed from the summaries).
3. Every finished run leaves a summary in ``<record>/summaries/`` (:mod:`.record`); a run whose
   summary is there with the same configuration is not redone, on this machine or another.

Budget: ``epochs`` (default) gives every method the same number of epochs; ``passes`` gives the
same number of encoder passes (images x views x epochs), so one-view ce trains ``v`` times as
many epochs as the ``v``-view contrastive methods. Either way the report shows epochs, encoder
passes and the measured wall time of each method.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import Config
from ..eval.imitation import POLICIES
from ..run_folder import RunError, is_finished, open_config
from .eval_options import EvalOptions
from .evaluate import evaluate_if_needed
from .record import (
    check_git,
    commit_files,
    config_key,
    make_summary,
    matches,
    read_summary,
    write_summary,
)
from .runs import train_or_resume
from .study import StudySpec, ordered

log = logging.getLogger("supcon")
SELECT_SEED = 1000  # the selection runs' seed: their init, batch order and validation split
CONTRASTIVE = ("supcon", "simclr")
BUDGETS = ("epochs", "passes")
OWN = "ce-own"  # the row of cross-entropy with its own augmentation
# Keys the controlled compare sets itself; as key=value overrides they would undo the control.
CONTROLLED_KEYS = {
    "optim.lr": "--lr-grid", "loss.temperature": "--temperature-grid",
    "data.augmentation": "--augmentation / --baseline-augmentation", "train.epochs": "--epochs",
    "train.seed": "--seeds", "method": "--methods",
}


@dataclass(frozen=True)
class Controls:
    """How the controlled compare shares and selects settings (defaults are the CLI's).

    Raises:
        ValueError: an unknown augmentation policy or budget, an empty or non-positive grid,
            ``select_epochs`` < 1, or a negative ``unreliable_below`` (messages name the option).
    """

    augmentation: str = "simaugment"
    """The augmentation policy every method trains with."""
    lr_grid: tuple[float, ...] = (0.05, 0.1, 0.2)
    """Peak learning rates tried for every method."""
    temperature_grid: tuple[float, ...] = (0.1, 0.5)
    """Temperatures tried for supcon and simclr (crossed with the lr grid)."""
    baseline_augmentations: tuple[str, ...] = ("crop-flip", "autoaugment")
    """ce's own augmentation(s) for the second baseline row, chosen on validation with the lr
    (default: ce's preset crop-flip and the paper's CE augmentation, AutoAugment); () = no such row."""
    budget: str = "epochs"
    """``epochs`` (same epochs for every method) or ``passes`` (same encoder passes)."""
    select_epochs: int | None = None
    """Epochs of the selection runs (before the budget rule); None = the main epochs."""
    unreliable_below: float = 5.0
    """Relative CE of a corruption is marked unreliable when the reference's own mean drop in
    top-1 under it (over severities and seeds) is below this many percentage points."""
    record: Path | None = None
    """Folder of the committable outputs (summaries/, report, plots); None = the --out folder."""
    commit: bool = False
    """git add + commit each summary as it is written (and the report at the end)."""

    def __post_init__(self) -> None:
        checks = [
            (self.augmentation in POLICIES,
             f"--augmentation: unknown policy {self.augmentation!r}; choose from {', '.join(POLICIES)}"),
            (all(a in POLICIES for a in self.baseline_augmentations),
             f"--baseline-augmentation: unknown policy in {list(self.baseline_augmentations)}; "
             f"choose from {', '.join(POLICIES)} (or none)"),
            (len(set(self.baseline_augmentations)) == len(self.baseline_augmentations),
             f"--baseline-augmentation names a policy twice: {list(self.baseline_augmentations)}"),
            (bool(self.lr_grid) and all(v > 0 for v in self.lr_grid),
             f"--lr-grid must be positive numbers like 0.05,0.1,0.2, got {list(self.lr_grid)}"),
            (bool(self.temperature_grid) and all(v > 0 for v in self.temperature_grid),
             f"--temperature-grid must be positive numbers like 0.1,0.5, got {list(self.temperature_grid)}"),
            (self.budget in BUDGETS, f"--budget must be one of {', '.join(BUDGETS)}, got {self.budget!r}"),
            (self.select_epochs is None or self.select_epochs >= 1,
             f"--select-epochs must be >= 1, got {self.select_epochs}"),
            (self.unreliable_below >= 0, f"--unreliable-below must be >= 0, got {self.unreliable_below}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass(frozen=True)
class Row:
    """One row of the comparison: a method and the augmentation(s) it may train with."""

    key: str  # "ce", "ce-own", "simclr", "supcon": run folders are <key>-seed<k>
    method: str
    augmentations: tuple[str, ...]  # one for the shared rows; ce-own: candidates
    label: str  # as shown in the report

    def shown_as(self, augmentation: str) -> str:
        """How the row is shown once its ``augmentation`` is chosen."""
        return self.label if self.key != OWN else f"ce (own augmentation: {augmentation})"


def build_rows(methods: tuple[str, ...], controls: Controls) -> list[Row]:
    """The table's rows: each method with the shared augmentation (ce first), then ce with its
    own augmentation when that differs from the shared one.

    Raises:
        ValueError: ce is not among ``methods`` (it is the baseline every row is tested against).
    """
    if "ce" not in methods:
        raise ValueError(f"methods must include ce in a controlled compare (it is the baseline "
                         f"every method is tested against), got {list(methods)}; add ce or pass presets=True")
    rows = [Row(m, m, (controls.augmentation,), f"{m} ({controls.augmentation})") for m in ordered(methods)]
    own = controls.baseline_augmentations
    if own and own != (controls.augmentation,):
        text = own[0] if len(own) == 1 else "best of " + ", ".join(own) + " on validation"
        rows.insert(1, Row(OWN, "ce", own, f"ce (own augmentation: {text})"))
    return rows


def grid(row: Row, controls: Controls) -> list[dict[str, Any]]:
    """The selection grid of a row: augmentation x lr (x temperature for contrastive methods)."""
    temps = controls.temperature_grid if row.method in CONTRASTIVE else (None,)
    points = []
    for aug in row.augmentations:
        for lr in controls.lr_grid:
            for t in temps:
                point = {"data.augmentation": aug, "optim.lr": float(lr)}
                if t is not None:
                    point["loss.temperature"] = float(t)
                points.append(point)
    return points


def point_label(point: dict[str, Any]) -> str:
    """``simaugment-lr0.1-t0.5``: a grid point as text (also its run folder's suffix)."""
    text = f"{point['data.augmentation']}-lr{point['optim.lr']:g}"
    return text + (f"-t{point['loss.temperature']:g}" if "loss.temperature" in point else "")


def check_overrides(overrides: tuple[str, ...]) -> None:
    """Refuse ``key=value`` overrides of the settings the controlled compare chooses itself.

    Raises:
        ValueError: an override of a controlled key (the message names the option to use).
    """
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key in CONTROLLED_KEYS:
            raise ValueError(f"{key} is set by the controlled compare; use {CONTROLLED_KEYS[key]} "
                             "instead (or --presets for each method's own preset)")


@dataclass
class Runner:
    """Trains, evaluates and records runs, skipping every one the record already holds.

    Two requests for the same experiment (same portable config) share one run: the first name
    asked for is used for both.
    """

    out: Path
    record: Path
    commit: bool = False
    progress: bool = False
    aliases: dict[str, str] = field(default_factory=dict)
    trained: list[str] = field(default_factory=list)  # names trained or evaluated by this call

    def run(self, name: str, cfg: Config, *, test: bool = True,
            evaluate: EvalOptions | None = None) -> dict[str, Any]:
        """The summary of run ``name`` (made now if the record lacks it)."""
        name = self.aliases.setdefault(config_key("test" if test else "select", cfg), name)
        settings = evaluate.settings() if evaluate is not None else None
        summary = read_summary(self.record, name)
        if matches(summary, cfg, settings, need_test=test):
            log.debug("%s: recorded, skipping", name)
            return summary
        path = self.out / name
        results = train_or_resume(cfg, path, self.progress) if test else \
            train_or_resume(cfg, path, self.progress, test=False)  # never reads the test split
        evaluation = evaluate_if_needed(path, evaluate) if evaluate is not None else None
        summary = make_summary(name, cfg, path, results, evaluation)
        written = write_summary(self.record, summary)
        self.trained.append(name)
        log.info("%s: summary in %s", name, written)
        if self.commit:
            commit_files([written], f"study: {name} finished")
        return summary


@dataclass
class Study:
    """The controlled comparison of ``spec.methods`` (see the module docstring).

    Raises:
        ValueError: ``options`` sets ``data``/``reference``, a controlled key among the overrides,
            no ce among the methods, runs that would differ in data/encoder/batch, or ``--commit``
            with a record folder outside a git repository.
    """

    spec: StudySpec
    options: EvalOptions
    controls: Controls
    progress: bool = False
    rows: list[Row] = field(init=False)
    runner: Runner = field(init=False)
    selection: dict[str, dict[str, Any]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.options.data is not None or self.options.reference is not None:
            raise ValueError("compare evaluates each run on its own data against its own ce run; "
                             "use `supcon eval` for --data/--reference")
        check_overrides(self.spec.overrides)
        self.rows = build_rows(self.spec.methods, self.controls)
        record = Path(self.controls.record or self.spec.out)
        if self.controls.commit:
            check_git(record)
        self.runner = Runner(Path(self.spec.out), record, self.controls.commit, self.progress)
        self.options = replace(self.options, reference=None)
        self._check_budget()

    @property
    def record(self) -> Path:
        """Folder of the summaries and the report."""
        return self.runner.record

    def row(self, key: str) -> Row:
        """The row named ``key``."""
        return next(r for r in self.rows if r.key == key)

    # ---------------------------------------------------------------- budget
    def base_config(self, method: str) -> Config:
        """The method's config from the shared settings alone (seed 0, nothing selected)."""
        return self.spec.config_for(method, 0, {"data.augmentation": self.controls.augmentation})

    def views(self, method: str) -> int:
        """Views per image of ``method`` (from its preset or the overrides)."""
        return self.base_config(method).data.n_views

    def epochs(self, method: str, base: int | None = None) -> int:
        """Pre-training epochs of ``method`` under the budget rule (``base``: the main epochs)."""
        base = base if base is not None else self.base_config(method).train.epochs
        if self.controls.budget == "epochs":
            return base
        most = max(self.views(r.method) for r in self.rows)
        return base * most // self.views(method)

    def _check_budget(self) -> None:
        if self.controls.budget == "passes":
            most = max(self.views(r.method) for r in self.rows)
            odd = [r.method for r in self.rows if most % self.views(r.method)]
            if odd:
                raise ValueError(f"--budget passes needs view counts that divide {most}; "
                                 f"{sorted(set(odd))} cannot match it with whole epochs")
        shared = {(c.data.name, c.model.encoder, json.dumps(c.model.encoder_options, sort_keys=True),
                   c.train.batch_size) for c in (self.base_config(r.method) for r in self.rows)}
        if len(shared) != 1:
            raise ValueError(f"compare: runs would differ in data/encoder/batch: {sorted(shared)}")

    # ---------------------------------------------------------------- configs
    def config(self, row: Row, seed: int, point: dict[str, Any], *, epochs: int | None = None,
               extra: dict[str, Any] | None = None) -> Config:
        """The config of one run of ``row`` at ``seed`` with the grid ``point`` (and ``extra``);
        these settings win over ``key=value`` overrides of the same keys (e.g. a varied batch size)."""
        flags = {**point, "train.epochs": self.epochs(row.method, epochs), **(extra or {})}
        dotted = tuple(o for o in self.spec.overrides if o.partition("=")[0].strip() not in flags)
        return replace(self.spec, overrides=dotted).config_for(row.method, seed, flags)

    def chosen(self, row: Row) -> dict[str, Any]:
        """The grid point selected for ``row`` (call :meth:`select` first)."""
        return self.selection[row.key]["chosen"]

    def core_config(self, row: Row, seed: int, **extra: Any) -> Config:
        """The config of ``row``'s run at ``seed`` with its selected settings."""
        return self.config(row, seed, self.chosen(row), extra=extra or None)

    def core_name(self, row: Row, seed: int) -> str:
        """Run folder (and summary name) of ``row`` at ``seed``."""
        return f"{row.key}-seed{seed}"

    def check_existing(self) -> None:
        """Refuse, before any training, finished core runs in ``--out`` that another configuration
        made (settings the selection picks are taken from the run itself).

        Raises:
            RunError: such a run folder exists.
        """
        for row in self.rows:
            for seed in range(self.spec.seeds):
                path = self.runner.out / self.core_name(row, seed)
                if not is_finished(path):
                    continue
                have = open_config(path)
                point = {"data.augmentation": have.data.augmentation, "optim.lr": have.optim.lr}
                if row.method in CONTRASTIVE:
                    point["loss.temperature"] = have.loss.temperature
                if self.config(row, seed, point).to_dict() != have.to_dict():
                    raise RunError(f"{path} holds a finished run with another configuration; "
                                   "remove it or choose another --out")

    # ---------------------------------------------------------------- the runs
    def select(self) -> dict[str, dict[str, Any]]:
        """Train every grid point of every row at :data:`SELECT_SEED` without touching the test
        split and keep, per row, the point with the highest validation top-1."""
        epochs = self.controls.select_epochs
        for row in self.rows:
            tried = []
            for point in grid(row, self.controls):
                name = f"select/{row.key}-{point_label(point)}"
                cfg = self.config(row, SELECT_SEED, point, epochs=epochs)
                summary = self.runner.run(name, cfg, test=False)
                tried.append({"point": point, "label": point_label(point), "name": name,
                              "val_top1": summary["results"]["val_top1"],
                              "epochs": cfg.train.epochs})
            best = max(tried, key=lambda t: t["val_top1"])  # first of equals wins
            self.selection[row.key] = {"chosen": best["point"], "label": best["label"], "grid": tried}
            log.info("selection %s: %s (val top-1 %.2f%%)", row.key, best["label"], best["val_top1"])
        return self.selection

    def run_core(self, on_run: Callable[[], None] | None = None) -> dict[str, list[dict[str, Any]]]:
        """Selection, then every row x seed (seed by seed), each trained, evaluated and recorded;
        returns ``{row key: [summary per seed]}``."""
        self.check_existing()
        self.select()
        summaries: dict[str, list[dict[str, Any]]] = {r.key: [] for r in self.rows}
        for seed in range(self.spec.seeds):
            for row in self.rows:
                cfg = self.core_config(row, seed)
                summaries[row.key].append(self.runner.run(self.core_name(row, seed), cfg,
                                                          evaluate=self.options))
                if on_run is not None:
                    on_run()
        return summaries

    def plan_counts(self) -> dict[str, int]:
        """Runs the core comparison needs: selection grid points and evaluated runs."""
        return {"selection": sum(len(grid(r, self.controls)) for r in self.rows),
                "core": len(self.rows) * self.spec.seeds}


def write_outputs(study: Study, title: str, sections: list, summary: dict[str, Any]) -> tuple[Path, Path]:
    """report.md, report.html and summary.json into the record folder (committed with --commit)."""
    from .report import write_report

    record = study.record
    md, page = write_report(title, sections, record)
    (record / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if study.controls.commit:
        files = [md, page, record / "summary.json", *sorted((record / "plots").glob("*.png"))]
        commit_files(files, f"study: report in {record.name}")
    return md, page


def run_controlled(spec: StudySpec, options: EvalOptions | None = None, controls: Controls | None = None,
                   *, progress: bool = False) -> dict[str, Any]:
    """The controlled `supcon compare`: select on validation, train and evaluate every row x
    seed, and write report.md / report.html / summary.json / plots into the record folder.

    Args:
        spec: methods (ce required), seeds, data, epochs, config and overrides; runs go to
            ``spec.out``.
        options: evaluation options (default ``EvalOptions()``); ``data``/``reference`` unset.
        controls: the shared augmentation, grids, baseline row, budget, record folder.
        progress: show progress bars while training.

    Returns:
        ``{"summary", "table" (Markdown), "report", "html"}``.

    Raises:
        ValueError: bad controls, a controlled key among the overrides, no ce among the methods,
            ``options`` with ``data``/``reference``, runs that would differ in data/encoder/batch,
            ``--commit`` outside a git repository; RunError for a run folder holding another
            configuration; ConfigError for bad overrides.
    """
    from . import controlled_report as rep

    study = Study(spec, options or EvalOptions(), controls or Controls(), progress)
    summaries = study.run_core()
    analysis = rep.analyse(study, summaries)
    command = rep.command_line("compare", study)
    sections = rep.build_sections(study, summaries, analysis, study.record / "plots", command)
    data = summaries["ce"][0]["config"]["data"]["name"]
    md, page = write_outputs(study, f"supcon compare (controlled): {', '.join(spec.methods)} on {data}",
                             sections, {"command": command, **rep.to_json(analysis)})
    return {"summary": rep.to_json(analysis), "table": rep.headline(analysis), "report": str(md),
            "html": str(page)}
