"""`supcon sweep`: the paper's stability study (its Figure 4), a configuration of the experiment
engine. For each method, vary one factor around the method's preset, train + evaluate every point
(:mod:`.execute`), and report the spread of top-1 (:func:`~.stats.spread`, drawn by
:mod:`.render_study`).

Factors and values (each run otherwise exactly the method's preset):

- ``augmentation``: simaugment, autoaugment, randaugment, stacked-randaugment, crop-flip.
- ``optimizer``: sgd and rmsprop at the preset learning rate (RMSProp with eps = 1, as in the
  paper's TF recipes, steps like momentum SGD), lars at 1.0 (its trust ratio, eta = 0.001, sets
  each layer's step to lr * eta * |w|), adamw at 1e-3.
- ``lr``: the preset learning rate times 0.25, 0.5, 1, 2, 4.
- ``batch``: the batch size times 0.5, 1, 2 (the learning rate unchanged; ``--values`` takes sizes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..data import POLICIES
from .eval_options import EvalOptions
from .execute import Runner, publish
from .grid import RunSpec, StudySpec
from .render_study import sweep_sections
from .stats import spread

log = logging.getLogger("supcon")
AUGMENTATIONS = tuple(p for p in POLICIES if p != "none")
OPTIMIZER_LR: dict[str, float | None] = {"sgd": None, "lars": 1.0, "rmsprop": None, "adamw": 1e-3}
LR_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
BATCH_FACTORS = (0.5, 1.0, 2.0)
FACTORS = ("augmentation", "optimizer", "lr", "batch")


@dataclass(frozen=True)
class Point:
    """One run of a sweep: its label and the config overrides that make it."""

    label: str  # value shown in tables and run-folder names
    overrides: dict[str, Any]


def sweep_points(vary: str, base_lr: float, values: list[str] | None = None,
                 base_batch: int = 256) -> list[Point]:
    """The runs of one method; ``base_lr``/``base_batch`` are the method's preset lr and batch
    size; ``values`` picks a subset (lr: any factors; batch: any sizes).

    Raises:
        ValueError: unknown ``vary``, an unknown value, a non-positive lr factor or a batch size < 2.
    """
    if vary == "augmentation":
        points = [Point(a, {"data.augmentation": a}) for a in AUGMENTATIONS]
    elif vary == "optimizer":
        points = [Point(o, {"optim.name": o, "optim.lr": lr or base_lr}) for o, lr in OPTIMIZER_LR.items()]
    elif vary == "lr":
        points = [Point(f"x{f:g}", {"optim.lr": base_lr * f}) for f in LR_FACTORS]
    elif vary == "batch":
        points = [_batch_point(str(max(2, round(base_batch * f)))) for f in BATCH_FACTORS]
    else:
        raise ValueError(f"--vary must be one of {', '.join(FACTORS)}, got {vary!r}")
    if values is None:
        return points
    if vary == "batch":
        return [_batch_point(v) for v in values]
    return [_lr_point(v, base_lr) if vary == "lr" else _pick(points, vary, v) for v in values]


def _batch_point(value: str) -> Point:
    try:
        size = int(value.strip())
    except ValueError:
        size = 0
    if size < 2:
        raise ValueError(f"--values for batch are batch sizes >= 2 like 128,512; got {value!r}")
    return Point(str(size), {"train.batch_size": size})


def _lr_point(value: str, base_lr: float) -> Point:
    """Any positive factor of the preset lr (``0.5``, ``x2``), not only the ladder's."""
    try:
        factor = float(value.strip().lstrip("x"))
    except ValueError:
        factor = -1.0
    if not factor > 0:
        raise ValueError(f"--values for lr are positive factors like 0.5,2; got {value!r}")
    return Point(f"x{factor:g}", {"optim.lr": base_lr * factor})


def _pick(points: list[Point], vary: str, value: str) -> Point:
    wanted = value.strip()
    match = [p for p in points if p.label == wanted]
    if not match:
        raise ValueError(f"--values: unknown {vary} {value!r}; choose from "
                         f"{', '.join(p.label for p in points)}")
    return match[0]


def run_sweep(spec: StudySpec, vary: str, values: list[str] | None = None, *,
              options: EvalOptions | None = None, progress: bool = False) -> dict[str, Any]:
    """Train and evaluate every (method, value) at seed 0; write ``sweep.md``/``.html``/``.json``
    and ``sweep.png`` into ``spec.out``; return the per-method results and spreads.

    Args:
        spec: methods, data, epochs, config and overrides shared by every run.
        vary: one of :data:`FACTORS` (``augmentation``, ``optimizer``, ``lr``, ``batch``).
        values: a subset of the factor's values (lr: any positive factors); None = all.
        options: evaluation options; default: linear, kNN and ECE only.
        progress: show progress bars while training.

    Raises:
        ValueError: a bad ``vary``/``values``, ``augmentation`` for a text encoder; RunError (a
            ValueError) for a run folder that holds another configuration; ConfigError for bad
            overrides.
    """
    options = options or EvalOptions(corruptions=(), embedding="none", gradients=False)
    if vary == "augmentation" and spec.reads_text():
        raise ValueError("--vary augmentation varies image policies; a text encoder's views are dropout "
                         "views: vary lr, optimizer or batch")
    runs = []
    for method in spec.methods:
        base = spec.config_for(method, 0)
        for point in sweep_points(vary, base.optim.lr, values, base.train.batch_size):
            cfg = spec.config_for(method, 0, point.overrides)
            runs.append((method, point.label, RunSpec(f"{method}-{vary}-{point.label}", cfg, evaluate=options)))
    runner = Runner(spec.out, progress=progress)
    rows: dict[str, list[dict[str, Any]]] = {m: [] for m in spec.methods}
    for method, label, run in runs:
        e = runner.run(run)["eval"]
        rows[method].append({"value": label, "lr": run.cfg.optim.lr, "optimizer": run.cfg.optim.name,
                             "augmentation": run.cfg.data.augmentation, "top1": e["linear"]["top1"],
                             "knn_top1": e["knn"]["top1"], "ece": e["calibration"]["ece"]})
    result = {"vary": vary, "rows": rows, "spread": {m: spread([r["top1"] for r in rs]) for m, rs in rows.items()}}
    flags = ("--vary", vary, *(("--values", ",".join(values)) if values else ()))
    sections = sweep_sections(vary, rows, result["spread"], spec.out, spec.command("sweep", flags))
    publish(spec.out, f"supcon sweep: {vary}", sections, result, stem="sweep", data="sweep.json")
    return result
