"""Workflows behind `supcon eval`, `supcon compare`, `supcon study` and `supcon sweep`: they load
finished runs, train missing ones through the engine, call the pure functions of `supcon.eval`,
and write ``eval.json``, PNGs and reports. compare, study and sweep are configurations of one
experiment engine: a grid of runs (:mod:`.grid`) made by :mod:`.execute`, analysed by
:mod:`.analysis` / :mod:`.claims` and drawn by :mod:`.render` / :mod:`.plots`. See
docs/evaluation.md."""

from ..run_folder import RunError
from .compare import run_compare
from .eval_options import EvalOptions
from .evaluate import EVAL_NAME, evaluate_if_needed, evaluate_run
from .grid import StudySpec
from .runs import Run, open_run, train_or_resume
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
