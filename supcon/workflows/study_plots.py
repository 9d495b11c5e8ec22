"""Plots of a controlled study: per-corruption paired differences and the stability spreads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..eval._plot import new_figure, save_png


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


def plot_stability(factors: Mapping[str, Mapping[str, Sequence[tuple[str, float, float | None]]]],
                   path: str | Path, *, title: str) -> Path:
    """Mean test top-1 (with ±1 std over seeds as error bars) per value of each factor, one panel
    per factor, one line per method. ``factors[factor][method]`` = ``[(value, mean, std), ...]``."""
    fig = new_figure(4.4 * max(len(factors), 1), 4.0)
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
