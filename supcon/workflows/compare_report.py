"""What `supcon compare` reports: mean +- std over seeds of each metric, and the report sections."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..config import Config
from ..run_folder import METRICS as METRICS_FILE
from .plots import plot_severity_by_method, plot_training_curves
from .report import Figure, Section, Table
from .study import StudySpec

# key, column title, how to read it from an eval.json, decimals
METRICS: list[tuple[str, str, Callable[[dict], float | None], int]] = [
    ("clean_top1", "clean top-1 (%)", lambda e: e["linear"]["top1"], 2),
    ("knn_top1", "kNN top-1 (%)", lambda e: e["knn"]["top1"], 2),
    ("ece", "ECE", lambda e: e["calibration"]["ece"], 4),
    ("corrupted_top1", "corrupted top-1 (%)",
     lambda e: (e.get("corruptions") or {}).get("mean_corrupted_top1"), 2),
    ("mce", "mCE", lambda e: (e.get("reference") or {}).get("mce"), 3),
    ("relative_mce", "relative mCE", lambda e: (e.get("reference") or {}).get("relative_mce"), 3),
]


def mean_std(values: list[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (n - 1; None for one value) of the non-None values."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"mean": None, "std": None, "n": 0, "values": []}
    std = statistics.stdev(vals) if len(vals) > 1 else None
    return {"mean": statistics.fmean(vals), "std": std, "n": len(vals), "values": vals}


def summarise(evals: Mapping[str, list[dict]]) -> dict[str, dict[str, Any]]:
    """``{method: {metric: {"mean", "std", "n", "values"}}}`` over the seeds' eval.json dicts."""
    return {method: {key: mean_std([read(e) for e in runs]) for key, _, read, _ in METRICS}
            for method, runs in evals.items()}


def fmt(stat: Mapping[str, Any], decimals: int) -> str:
    """``"mean ± std"`` of a :func:`mean_std` result (``"—"`` without values, no std for one)."""
    if stat["mean"] is None:
        return "—"
    text = f"{stat['mean']:.{decimals}f}"
    return text if stat["std"] is None else f"{text} ± {stat['std']:.{decimals}f}"


def headline(summary: Mapping[str, Mapping[str, Any]], seeds: int) -> Table:
    """The report's main table: one row per method, one column per metric (mean ± std)."""
    header = ["method", "seeds", *(title for _, title, _, _ in METRICS)]
    rows = [[m, str(seeds), *(fmt(s[key], d) for key, _, _, d in METRICS)] for m, s in summary.items()]
    return Table(header, rows)


def build_sections(spec: StudySpec, configs: Mapping[tuple[str, int], Config],
                   evals: Mapping[str, list[dict]], summary: dict) -> list[Section]:
    """The report: headline table, setup, robustness, training, calibration, embeddings, gradients."""
    plots = spec.out / "plots"
    methods = list(evals)
    first = evals[methods[0]][0]
    return [
        Section("Results", [headline(summary, spec.seeds), _legend(spec, first)]),
        Section("Setup", [f"Made with `{spec.command()}`.", _setup_table(configs, methods),
                          "Each method keeps its own preset (augmentation, views, learning rate, "
                          "temperature) from `METHOD_DEFAULTS` in `supcon/config.py`; everything "
                          "else (data, encoder, epochs, batch size, linear stage) is shared."]),
        _robustness(evals, plots, first),
        Section("Training curves", [Figure(_training_plot(spec, methods, plots),
                                           "Pre-training loss per epoch (from metrics.jsonl)")]),
        _per_run_figures("Calibration", evals, spec.out, "reliability.png",
                         "reliability diagram of the linear classifier on the test split"),
        _per_run_figures("Embeddings", evals, spec.out, "embedding.png",
                         "2-D embedding of test representations"),
        _per_run_figures("Gradient analysis", evals, spec.out, "gradients.png",
                         "per-sample gradient magnitude vs cosine similarity (paper Sec. 3.2.3)"),
    ]


def _legend(spec, first: dict) -> list[str]:
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


def _setup_table(configs, methods: list[str]) -> Table:
    header = ["method", "augmentation", "views", "optimizer", "peak lr", "temperature", "batch",
              "epochs", "encoder", "linear stage"]
    rows = []
    for m in methods:
        c = configs[m, 0]
        lr = f"{c.optim.lr:g}" + (" x batch/256" if c.optim.scale_lr else "")
        linear = "own classifier" if m == "ce" else f"{c.linear.epochs} epochs, lr {c.linear.lr:g}"
        rows.append([m, c.data.augmentation, str(c.data.n_views), c.optim.name, lr,
                     "—" if m == "ce" else f"{c.loss.temperature:g}", str(c.train.batch_size),
                     str(c.train.epochs), _encoder_text(c),
                     linear])
    return Table(header, rows)


def _encoder_text(cfg: Config) -> str:
    options = ", ".join(f"{k}={v}" for k, v in cfg.model.encoder_options.items())
    return f"{cfg.model.encoder} ({options})" if options else cfg.model.encoder


def _robustness(evals, plots: Path, first: dict) -> Section:
    if not first.get("corruptions"):
        return Section("Robustness to corruptions", ["Not evaluated (no corruptions selected)."])
    curves = {m: {"top1": [e["corruptions"]["mean_top1_per_severity"] for e in runs],
                  "ece": [e["corruptions"]["ece_per_severity"] for e in runs]}
              for m, runs in evals.items()}
    figure = plot_severity_by_method(curves, plots / "severity.png",
                                     title="Mean over corruptions vs severity (band: ±1 std over seeds)")
    names = list(first["corruptions"]["top1"])
    table = Table(["corruption", *(f"{m} top-1 (%)" for m in evals)],
                  [[c, *(f"{_mean_over(runs, c):.2f}" for runs in evals.values())] for c in names])
    notes = [f"{m} seed {seed}: {note}" for m, runs in evals.items()
             for seed, e in enumerate(runs) for note in (e.get("reference") or {}).get("notes", [])]
    severities = ", ".join(map(str, first["corruptions"]["severities"]))
    blocks = [Figure(figure, "Top-1 accuracy and ECE vs corruption severity"),
              f"Top-1 per corruption, mean over severities {severities} and seeds:", table]
    return Section("Robustness to corruptions", blocks + ([notes] if notes else []))


def _mean_over(runs: list[dict], corruption: str) -> float:
    values = [v for e in runs for v in e["corruptions"]["top1"][corruption]]
    return sum(values) / len(values)


def _training_plot(spec, methods: list[str], plots: Path) -> Path:
    curves = {m: [epoch_losses(spec.out / f"{m}-seed{s}") for s in range(spec.seeds)] for m in methods}
    return plot_training_curves(curves, plots / "training_curves.png",
                                title="Pre-training loss per epoch (one line per seed)")


def epoch_losses(run: Path) -> tuple[list[int], list[float]]:
    """Epochs and mean losses of a run's ``pretrain_epoch`` records (the last record of each epoch
    wins, so records left by an interrupted attempt are replaced by the resumed ones)."""
    by_epoch: dict[int, float] = {}
    path = run / METRICS_FILE
    for line in path.read_text().splitlines() if path.is_file() else []:
        record = json.loads(line)
        if record.get("stage") == "pretrain_epoch":
            by_epoch[int(record["epoch"])] = float(record["loss"])
    epochs = sorted(by_epoch)
    return epochs, [by_epoch[e] for e in epochs]


def _per_run_figures(title: str, evals, out: Path, name: str, what: str) -> Section:
    blocks: list = []
    for method, runs in evals.items():
        path = out / f"{method}-seed0" / name
        if name in runs[0].get("plots", []) and path.is_file():  # not a stale file of an older eval
            blocks.append(Figure(path, f"{method} (seed 0): {what}"))
    return Section(title, blocks or [f"No {name} (not produced for these methods)."])
