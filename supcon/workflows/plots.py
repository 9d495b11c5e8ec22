"""Every figure of the workflows, drawn from numbers the analysis computed: corruption curves of
one run, and the comparison, study and sweep figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from ..eval._plot import new_figure, save_png
from ..eval.corruptions import CORRUPTIONS

CATEGORIES = ("noise", "blur", "weather", "digital")
LOSS_NAMES = {"ce": "cross-entropy loss", "supcon": "SupCon loss", "simclr": "SimCLR (NT-Xent) loss"}


def plot_corruption_curves(summary: Mapping, path: str | Path, *, title: str) -> Path:
    """Top-1 vs severity for every corruption of an eval.json ``corruptions`` entry, one panel
    per ImageNet-C category, each with the mean over all corruptions (dashed) for reference."""
    sev = [0, *summary["severities"]]
    clean = summary["clean"]["top1"]
    fig = new_figure(10.0, 7.5)
    axes = fig.subplots(2, 2, sharex=True, sharey=True).ravel()
    for ax, category in zip(axes, CATEGORIES, strict=True):
        names = [c for c in summary["top1"] if CORRUPTIONS[c].category == category]
        for name in names:
            ax.plot(sev, [clean, *summary["top1"][name]], marker="o", markersize=3, label=name)
        ax.plot(sev, summary["mean_top1_per_severity"], "k--", linewidth=1.5,
                label="mean of all corruptions")
        ax.set_title(f"{category} ({len(names)} corruption{'s' * (len(names) != 1)})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for ax in axes[2:]:
        ax.set_xlabel("severity (0 = clean)")
    for ax in axes[::2]:
        ax.set_ylabel("top-1 accuracy (%)")
    axes[0].set_xticks(sev)
    fig.suptitle(f"{title}\n{summary['note']}, corruption seed {summary['seed']}")
    return save_png(fig, path)


def plot_severity_by_method(curves: Mapping[str, Mapping], path: str | Path, *, title: str) -> Path:
    """Mean over corruptions of top-1 and of ECE vs severity, one line per method.

    ``curves[method]`` = ``{"n": seeds, "top1": {"mean": [...], "std": [...]}, "ece": {...}}``
    over ``[clean, s1..s5]`` (:func:`~.analysis.severity_curves`): the line is the seeds' mean,
    the band +-1 std over seeds (none for one seed).
    """
    fig = new_figure(11.0, 4.5)
    axes = fig.subplots(1, 2)
    for key, ax, label in (("top1", axes[0], "top-1 accuracy (%)"),
                           ("ece", axes[1], "expected calibration error (15 bins)")):
        for method, curve in curves.items():
            mean = np.asarray(curve[key]["mean"], dtype=float)
            x = np.arange(len(mean))
            line, = ax.plot(x, mean, marker="o", label=f"{method} ({curve['n']} seed(s))")
            if curve["n"] > 1:
                std = np.asarray(curve[key]["std"], dtype=float)
                ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        ax.set_xlabel("corruption severity (0 = clean; mean over corruptions)")
        ax.set_ylabel(label)
        ax.set_xticks(x)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("accuracy under corruption")
    axes[1].set_title("calibration under corruption")
    fig.suptitle(title)
    return save_png(fig, path)


def plot_training_curves(curves: Mapping[str, Sequence[tuple[Sequence[int], Sequence[float]]]],
                         path: str | Path, *, title: str) -> Path:
    """Pre-training loss per epoch, one panel per method (losses of different methods are on
    different scales), one line per seed. ``curves[method]`` = ``[(epochs, losses), ...]``."""
    methods = list(curves)
    fig = new_figure(4.0 * max(len(methods), 1), 3.6)
    axes = np.atleast_1d(fig.subplots(1, max(len(methods), 1)))
    for ax, method in zip(axes, methods, strict=False):
        for seed, (epochs, losses) in enumerate(curves[method]):
            ax.plot(epochs, losses, marker="o", markersize=3, label=f"seed {seed}")
        ax.set_title(f"{method}: {LOSS_NAMES.get(method) or LOSS_NAMES.get(method.split('-')[0], method)}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean training loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return save_png(fig, path)


def plot_stability(factors: Mapping[str, Mapping[str, Sequence[tuple[str, float, float | None]]]],
                   path: str | Path, *, title: str) -> Path:
    """Test top-1 per value of each varied factor (`supcon sweep`, the study's stability row): one
    panel per factor, one line per method, ±1 std over seeds as error bars (none for one seed).
    ``factors[factor][legend label]`` = ``[(value, mean, std or None), ...]`` in the factor's order."""
    fig = new_figure(max(4.4 * max(len(factors), 1), 6.0), 4.0)
    axes = np.atleast_1d(fig.subplots(1, max(len(factors), 1)))
    for ax, (factor, methods) in zip(axes, factors.items(), strict=False):
        labels = list(dict.fromkeys(v for rows in methods.values() for v, _, _ in rows))
        for method, rows in methods.items():
            x = [labels.index(v) for v, _, _ in rows]
            mean = [m for _, m, _ in rows]
            std = [s or 0.0 for _, _, s in rows]
            ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=method)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
        ax.set_title(factor)
        ax.set_ylabel("test top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return save_png(fig, path)


def plot_corruption_differences(panels: Mapping[str, Sequence[tuple[str, float, float, float, bool]]],
                                path: str | Path, *, title: str, xlabel: str) -> Path:
    """A forest plot per compared row: mean paired difference with its 95% interval per corruption.

    ``panels[row]`` = ``[(label, mean, low, high, imitated), ...]`` top to bottom; imitated
    corruptions are drawn in orange, the others in blue, summary lines (label starting with
    ``"mean"``) in black.
    """
    n = max((len(v) for v in panels.values()), default=1)
    fig = new_figure(4.6 * max(len(panels), 1), 0.32 * n + 1.6)
    axes = np.atleast_1d(fig.subplots(1, max(len(panels), 1), sharey=True))
    for ax, (row, items) in zip(axes, panels.items(), strict=False):
        y = np.arange(len(items))[::-1]
        for yi, (label, mean, low, high, imitated) in zip(y, items, strict=True):
            colour = "black" if label.startswith("mean") else ("tab:orange" if imitated else "tab:blue")
            if low is not None and high is not None:
                ax.plot([low, high], [yi, yi], color=colour, linewidth=1.6)
            ax.plot([mean], [yi], "o", color=colour, markersize=4.5)
        ax.axvline(0.0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_yticks(y)
        ax.set_yticklabels([item[0] for item in items], fontsize=8)
        ax.set_title(row, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
    handles = [axes[0].plot([], [], "o-", color=c, label=t)[0] for c, t in (
        ("tab:orange", "imitated by a training augmentation"), ("tab:blue", "not imitated"),
        ("black", "mean over corruptions"))]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(title)
    return save_png(fig, path)
