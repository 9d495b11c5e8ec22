"""Workflows behind `supcon eval`, `supcon compare` and `supcon sweep`: they load finished runs,
train missing ones through the engine, call the pure functions of `supcon.eval`, and write
``eval.json``, PNGs and reports. See docs/evaluation.md."""

from ..run_folder import RunError
from .compare import run_compare
from .eval_options import EvalOptions
from .evaluate import EVAL_NAME, evaluate_if_needed, evaluate_run
from .runs import Run, open_run, train_or_resume
from .study import StudySpec
from .sweep import FACTORS, run_sweep, sweep_points

__all__ = [
    "EVAL_NAME",
    "FACTORS",
    "EvalOptions",
    "Run",
    "RunError",
    "StudySpec",
    "evaluate_if_needed",
    "evaluate_run",
    "open_run",
    "run_compare",
    "run_sweep",
    "sweep_points",
    "train_or_resume",
]
