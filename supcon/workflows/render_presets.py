"""Where `supcon compare --presets` is drawn: its headline table (mean ± std over seeds, from
:func:`~.analysis.summarise`) and report sections, from the runs' evaluations and summaries."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .analysis import PRESET_METRICS, mean_over_runs
from .grid import StudySpec
from .render import setup_table, severity_figure, training_plot
from .report import Figure, Section, Table, fmt_std


def headline(summary: Mapping[str, Mapping[str, Any]], seeds: int) -> Table:
    """The report's main table: one row per method, one column per metric (mean ± std)."""
    header = ["method", "seeds", *(title for _, title, _, _ in PRESET_METRICS)]
    rows = [[m, str(seeds), *(fmt_std(s[key], d) for key, _, _, d in PRESET_METRICS)] for m, s in summary.items()]
    return Table(header, rows)


def build_sections(spec: StudySpec, configs: Mapping[str, dict], evals: Mapping[str, list[dict]],
                   summaries: Mapping[str, list[dict]], summary: dict) -> list[Section]:
    """The report: headline table, setup, robustness, training, calibration, embeddings, gradients.

    ``configs[method]``: its seed-0 config as a nested dict; ``evals[method]`` / ``summaries[method]``:
    per seed, the evaluation (eval.json) and the run summary."""
    plots = spec.out / "plots"
    first = next(iter(evals.values()))[0]
    return [
        Section("Results", [headline(summary, spec.seeds), _legend(spec, first)]),
        Section("Setup", [f"Made with `{spec.command()}`.", setup_table(configs, key_column=False),
                          "Each method keeps its own preset (augmentation, views, learning rate, "
                          "temperature) from `METHOD_DEFAULTS` in `supcon/config.py`; everything "
                          "else (data, encoder, epochs, batch size, linear stage) is shared."]),
        _robustness(evals, plots, first),
        Section("Training curves", [Figure(training_plot(summaries, plots),
                                           "Pre-training loss per epoch (from metrics.jsonl)")]),
        _per_run_figures("Calibration", evals, spec.out, "reliability.png",
                         "reliability diagram of the linear classifier on the test split"),
        _per_run_figures("Embeddings", evals, spec.out, "embedding.png",
                         "2-D embedding of test representations"),
        _per_run_figures("Gradient analysis", evals, spec.out, "gradients.png",
                         "per-sample gradient magnitude vs cosine similarity (paper Sec. 3.2.3)"),
    ]


def _legend(spec: StudySpec, first: dict) -> list[str]:
    items = [
        f"Mean ± sample std over {spec.seeds} seed(s) (seeds 0..{spec.seeds - 1}); "
        "one value when there is one seed.",
        "clean top-1: linear classifier on frozen encoder representations (ce: its own "
        "classifier), whole test split.",
        f"kNN top-1: weighted kNN (cosine, k={first['knn']['k']}, t={first['knn']['temperature']}) "
        "of test on train representations.",
        "ECE: expected calibration error of the linear classifier, 15 bins (lower is better).",
    ]
    if first.get("corruptions"):
        c = first["corruptions"]
        items.append(f"corrupted top-1: mean over {len(c['top1'])} corruptions x "
                     f"{len(c['severities'])} severities on a {c['note']}.")
    if not first.get("corruptions"):
        items.append("mCE: not computed (no corruptions evaluated).")
    elif not first.get("reference"):
        items.append("mCE: not computed (no ce run among the methods to serve as reference).")
    else:
        items.append("mCE / relative mCE: against the ce run of the same seed (1.0 = as robust as "
                     "ce; lower is better); see docs/evaluation.md for the formulas. Relative mCE "
                     "divides by the reference's own accuracy drop, so it swings widely when that "
                     "drop is small.")
    return items


def _robustness(evals: Mapping[str, list[dict]], plots: Path, first: dict) -> Section:
    if not first.get("corruptions"):
        return Section("Robustness to corruptions", ["Not evaluated (no corruptions selected)."])
    figure = severity_figure(evals, plots)
    names = list(first["corruptions"]["top1"])
    table = Table(["corruption", *(f"{m} top-1 (%)" for m in evals)],
                  [[c, *(f"{mean_over_runs(runs, c):.2f}" for runs in evals.values())] for c in names])
    notes = [f"{m} seed {seed}: {note}" for m, runs in evals.items()
             for seed, e in enumerate(runs) for note in (e.get("reference") or {}).get("notes", [])]
    severities = ", ".join(map(str, first["corruptions"]["severities"]))
    blocks = [Figure(figure, "Top-1 accuracy and ECE vs corruption severity"),
              f"Top-1 per corruption, mean over severities {severities} and seeds:", table]
    return Section("Robustness to corruptions", blocks + ([notes] if notes else []))


def _per_run_figures(title: str, evals: Mapping[str, list[dict]], out: Path, name: str, what: str) -> Section:
    blocks: list = []
    for method, runs in evals.items():
        path = out / f"{method}-seed0" / name
        if name in runs[0].get("plots", []) and path.is_file():  # not a stale file of an older eval
            blocks.append(Figure(path, f"{method} (seed 0): {what}"))
    return Section(title, blocks or [f"No {name} (not produced for these methods)."])
