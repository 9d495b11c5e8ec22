"""Plots of the workflows: corruption curves of one run, and the comparison / sweep figures."""

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


def plot_severity_by_method(curves: Mapping[str, Mapping[str, Sequence[Sequence[float]]]],
                            path: str | Path, *, title: str) -> Path:
    """Mean over corruptions of top-1 and of ECE vs severity, one line per method.

    ``curves[method]["top1"|"ece"]`` holds one ``[clean, s1..s5]`` list per seed; the line is the
    seed mean and the band +-1 std over seeds.
    """
    fig = new_figure(11.0, 4.5)
    axes = fig.subplots(1, 2)
    for key, ax, label in (("top1", axes[0], "top-1 accuracy (%)"),
                           ("ece", axes[1], "expected calibration error (15 bins)")):
        for method, per_seed in curves.items():
            arr = np.asarray(per_seed[key], dtype=float)
            x = np.arange(arr.shape[1])
            mean = arr.mean(axis=0)
            line, = ax.plot(x, mean, marker="o", label=f"{method} ({arr.shape[0]} seed(s))")
            if arr.shape[0] > 1:
                std = arr.std(axis=0, ddof=1)
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


def plot_sweep(rows: Mapping[str, Sequence[tuple[str, float]]], path: str | Path, *,
               vary: str, title: str) -> Path:
    """Top-1 per swept value, one line per method; the legend gives each method's std and range.

    ``rows[method]`` = ``[(value label, top-1 %), ...]`` in sweep order.
    """
    labels = list(dict.fromkeys(v for pairs in rows.values() for v, _ in pairs))
    fig = new_figure(max(6.0, 1.3 * len(labels) + 2), 4.5)
    ax = fig.subplots()
    for method, pairs in rows.items():
        x = [labels.index(v) for v, _ in pairs]
        y = np.asarray([t for _, t in pairs], dtype=float)
        std = y.std(ddof=1) if len(y) > 1 else 0.0
        ax.plot(x, y, marker="o", label=f"{method}: std {std:.2f}, range {np.ptp(y):.2f} points")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=20, ha="right")
    ax.set_xlabel(vary)
    ax.set_ylabel("test top-1 accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return save_png(fig, path)
