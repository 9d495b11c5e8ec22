"""The design of the controlled `supcon compare` (the default): every method shares the encoder,
data, augmentation policy, batch size and pre-training budget; each method's learning rate (and
temperature, for supcon and simclr) is picked from the same grid on the validation split; and
cross-entropy with its own augmentation is a second baseline row.

This module builds the runs (:class:`Design`); :mod:`.execute` makes them:

1. **Selection** (validation split only). For every row, each grid point is trained once at
   seed :data:`SELECT_SEED` (not one of the evaluated seeds) into ``select/<row>-<aug>-lr<lr>[-t<t>]``
   with ``test=False``: the run never reads the test split and its results hold only the
   validation top-1 (linear classifier chosen on the validation split; ce: its own classifier).
   The point with the highest validation top-1 wins (ties: the first in grid order).
2. **Core runs**: every row x seed 0..K-1 with the chosen settings, in ``<row>-seed<k>``, each
   evaluated as by `supcon eval` (no reference: mCE is computed from the summaries) with eval
   seed ``options.seed + k`` (:meth:`Design.eval_options`): each seed draws its own corruption
   subsample and noise, and every row of seed k the same, so the pairs (and mCE against the ce
   run of seed k) stay paired image for image.

Budget: ``epochs`` (default) gives every method the same number of epochs; ``passes`` gives the
same number of encoder passes (images x views x epochs), so one-view ce trains ``v`` times as
many epochs as the ``v``-view contrastive methods.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..command_line import to_flags
from ..config import Config
from ..eval.imitation import POLICIES
from ..run_folder import RunError, is_finished, open_config
from .eval_options import RUN_ONLY, EvalOptions
from .grid import RunSpec, StudySpec, ordered, seed_eval_options

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
    """How the controlled compare shares and selects settings; each field is also a flag of the
    command line (:mod:`supcon.command_line`: ``lr_grid`` is ``--lr-grid``).

    Raises:
        ValueError: an unknown augmentation policy or budget, an empty or non-positive grid,
            ``select_epochs`` < 1, or a negative ``unreliable_below`` (messages name the field).
    """

    augmentation: str = "simaugment"
    """The augmentation policy every method trains with."""
    lr_grid: tuple[float, ...] = (0.05, 0.1, 0.2)
    """Peak learning rates tried for every method."""
    temperature_grid: tuple[float, ...] = (0.1, 0.5)
    """Temperatures tried for supcon and simclr (crossed with the lr grid)."""
    baseline_augmentations: tuple[str, ...] = field(default=("crop-flip", "autoaugment"),
                                                    metadata={"flag": "--baseline-augmentation"})
    """ce's own augmentation(s) for the second baseline row, chosen on validation with the lr
    (default: ce's preset crop-flip and the paper's CE augmentation, AutoAugment); () = no such row."""
    budget: str = "epochs"
    """``epochs`` (same epochs for every method) or ``passes`` (same encoder passes)."""
    simclr_seeds: int | None = None
    """Seeds of the simclr row (it tests no claim of its own); None = --seeds."""
    select_epochs: int | None = None
    """Epochs of the selection runs (before the budget rule); None = the main epochs."""
    unreliable_below: float = 5.0
    """Relative CE of a corruption is marked unreliable when the reference's own mean drop in
    top-1 under it (over severities and seeds) is below this many percentage points."""
    record: Path | None = None
    """Folder of the committable outputs (summaries/, report, plots); None = the study's out folder."""
    commit: bool = False
    """git add + commit each summary as it is written (and the report at the end)."""

    def __post_init__(self) -> None:
        checks = [
            (self.augmentation in POLICIES,
             f"augmentation: unknown policy {self.augmentation!r}; choose from {', '.join(POLICIES)}"),
            (all(a in POLICIES for a in self.baseline_augmentations),
             f"baseline_augmentations: unknown policy in {list(self.baseline_augmentations)}; "
             f"choose from {', '.join(POLICIES)} (or none)"),
            (len(set(self.baseline_augmentations)) == len(self.baseline_augmentations),
             f"baseline_augmentations names a policy twice: {list(self.baseline_augmentations)}"),
            (bool(self.lr_grid) and all(v > 0 for v in self.lr_grid),
             f"lr_grid must be positive numbers like 0.05,0.1,0.2, got {list(self.lr_grid)}"),
            (bool(self.temperature_grid) and all(v > 0 for v in self.temperature_grid),
             f"temperature_grid must be positive numbers like 0.1,0.5, got {list(self.temperature_grid)}"),
            (self.budget in BUDGETS, f"budget must be one of {', '.join(BUDGETS)}, got {self.budget!r}"),
            (self.select_epochs is None or self.select_epochs >= 1,
             f"select_epochs must be >= 1, got {self.select_epochs}"),
            (self.unreliable_below >= 0, f"unreliable_below must be >= 0, got {self.unreliable_below}"),
            (self.simclr_seeds is None or self.simclr_seeds >= 1, f"simclr_seeds must be >= 1, got {self.simclr_seeds}"),
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


def text_controls(controls: Controls) -> Controls:
    """The controls of a comparison on text: a text encoder's views are dropout views, so no
    augmentation policy is shared and there is no row of ce with its own augmentation.

    Raises:
        ValueError: an image policy was asked for (``augmentation`` or ``baseline_augmentations``
            other than their defaults or none).
    """
    default = Controls()
    if (controls.augmentation not in (default.augmentation, "none")
            or controls.baseline_augmentations not in (default.baseline_augmentations, (), ("none",))):
        raise ValueError("--augmentation and --baseline-augmentation name image policies; a text encoder's "
                         "views are dropout views: leave them unset")
    return replace(controls, augmentation="none", baseline_augmentations=())


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


def selection_points(row: Row, controls: Controls) -> list[dict[str, Any]]:
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
class Design:
    """The rows of a controlled comparison of ``spec.methods`` and the config of each of its runs
    (see the module docstring). ``selection`` is filled by :func:`~.execute.select`.

    Raises:
        ValueError: a controlled key among the overrides, no ce among the methods, runs that
            would differ in data/encoder/batch, or view counts the ``passes`` budget cannot match.
    """

    spec: StudySpec
    controls: Controls
    rows: list[Row] = field(init=False)
    selection: dict[str, dict[str, Any]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        check_overrides(self.spec.overrides)
        if self.spec.reads_text():
            self.controls = text_controls(self.controls)
        self.rows = build_rows(self.spec.methods, self.controls)
        self._check_budget()

    def row(self, key: str) -> Row:
        """The row named ``key``."""
        return next(r for r in self.rows if r.key == key)

    def seeds_of(self, row: Row) -> int:
        """How many seeds ``row`` trains (simclr: ``controls.simclr_seeds`` at most)."""
        if row.method == "simclr" and self.controls.simclr_seeds is not None:
            return min(self.spec.seeds, self.controls.simclr_seeds)
        return self.spec.seeds

    def stages(self) -> list[list[Row]]:
        """The rows in the order they are selected and run: supcon and the cross-entropy rows
        (the claims' endpoints) first, then the others (simclr)."""
        first = [r for r in self.rows if r.method in ("ce", "supcon")]
        rest = [r for r in self.rows if r not in first]
        return [first, rest] if rest else [first]

    def shown_label(self, row: Row) -> str:
        """How ``row`` is shown once selected (its chosen augmentation named)."""
        return row.shown_as(self.chosen(row)["data.augmentation"])

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
        """The grid point selected for ``row`` (after the selection)."""
        return self.selection[row.key]["chosen"]

    def core_config(self, row: Row, seed: int, **extra: Any) -> Config:
        """The config of ``row``'s run at ``seed`` with its selected settings."""
        return self.config(row, seed, self.chosen(row), extra=extra or None)

    def core_name(self, row: Row, seed: int) -> str:
        """Run folder (and summary name) of ``row`` at ``seed``."""
        return f"{row.key}-seed{seed}"

    def selection_runs(self, row: Row) -> list[tuple[dict[str, Any], RunSpec]]:
        """``row``'s selection grid: each point with its run (never reads the test split)."""
        epochs = self.controls.select_epochs
        return [(p, RunSpec(f"select/{row.key}-{point_label(p)}", self.config(row, SELECT_SEED, p, epochs=epochs),
                            test=False)) for p in selection_points(row, self.controls)]

    def core_runs(self, options: EvalOptions, rows: list[Row] | None = None) -> list[RunSpec]:
        """Every row (of ``rows``, default all) x its seeds, seed by seed, with its selected
        settings, evaluated with ``seed_eval_options(options, seed)``."""
        rows = self.rows if rows is None else rows
        return [RunSpec(self.core_name(row, seed), self.core_config(row, seed),
                        evaluate=seed_eval_options(options, seed))
                for seed in range(self.spec.seeds) for row in rows if seed < self.seeds_of(row)]

    def check_existing(self, out: Path) -> None:
        """Refuse, before any training, finished core runs in ``out`` that another configuration
        made (settings the selection picks are taken from the run itself).

        Raises:
            RunError: such a run folder exists.
        """
        for row in self.rows:
            for seed in range(self.seeds_of(row)):
                path = Path(out) / self.core_name(row, seed)
                if not is_finished(path):
                    continue
                have = open_config(path)
                point = {"data.augmentation": have.data.augmentation, "optim.lr": have.optim.lr}
                if row.method in CONTRASTIVE:
                    point["loss.temperature"] = have.loss.temperature
                if self.config(row, seed, point).to_dict() != have.to_dict():
                    raise RunError(f"{path} holds a finished run with another configuration; "
                                   "remove it or choose another --out")

    # ---------------------------------------------------------------- what the analysis reads
    def shown_rows(self, rows: list[Row] | None = None) -> list[dict[str, Any]]:
        """The rows (of ``rows``, default all) with their chosen settings, as the analysis takes them."""
        out = []
        for r in self.rows if rows is None else rows:
            point = self.chosen(r)
            out.append({"key": r.key, "label": r.shown_as(point["data.augmentation"]), "method": r.method,
                        "augmentation": point["data.augmentation"], "lr": point["optim.lr"],
                        "temperature": point.get("loss.temperature")})
        return out

    def described(self) -> dict[str, Any]:
        """What the comparison shares and how it chose, as the analysis takes it."""
        c = self.controls
        return {"augmentation": c.augmentation, "budget": c.budget, "lr_grid": c.lr_grid,
                "temperature_grid": c.temperature_grid, "unreliable_below": c.unreliable_below,
                "seeds": self.spec.seeds}


def command_line(verb: str, design: Design, options: EvalOptions, extra: tuple[str, ...] = ()) -> str:
    """The exact command that makes (or resumes) this comparison (only what differs from the
    defaults goes on it; :func:`supcon.command_line.to_flags` writes the options' flags).
    ``options`` are the base ones: ``--eval-seed`` is the base of the core runs' eval seeds."""
    flags = ["--seeds", str(design.spec.seeds)] if verb != "compare" else []
    flags += to_flags(design.controls) + to_flags(options, skip=(*RUN_ONLY, "device"))
    return design.spec.command(verb, tuple(flags) + tuple(extra))
