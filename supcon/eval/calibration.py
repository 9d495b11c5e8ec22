"""Expected calibration error (ECE) and the reliability diagram.

ECE with M equal-width confidence bins (Guo et al., 2017; used by the SupCon paper):
``ECE = sum_m (|B_m| / n) * |acc(B_m) - conf(B_m)|``, where the confidence of a sample is its
top-1 probability and bin m holds confidences in ``((m-1)/M, m/M]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..checks import check_int
from ._plot import new_figure, save_png


@dataclass(frozen=True)
class CalibrationResult:
    """ECE and its per-bin statistics.

    ``counts``, ``accuracy`` and ``confidence`` have one entry per bin; empty bins hold count 0
    and accuracy/confidence 0.0. ``edges`` are the ``n_bins + 1`` bin boundaries in [0, 1].
    """

    ece: float
    counts: list[int]
    accuracy: list[float]
    confidence: list[float]
    edges: list[float]

    def to_dict(self) -> dict:
        """JSON-ready form (for ``eval.json``)."""
        return {
            "ece": self.ece,
            "bins": [
                {"lo": lo, "hi": hi, "count": n, "accuracy": a, "confidence": c}
                for lo, hi, n, a, c in zip(
                    self.edges[:-1],
                    self.edges[1:],
                    self.counts,
                    self.accuracy,
                    self.confidence,
                    strict=True,
                )
            ],
        }


def to_probabilities(scores: Tensor, from_logits: bool | None = None) -> Tensor:
    """``[n, K]`` probabilities from probabilities or logits.

    With ``from_logits=None`` the input is taken as probabilities when every entry is in
    ``[0, 1]`` and every row sums to 1 (within 1e-4), else as logits (softmax is applied).
    """
    scores = scores.detach().double()
    if from_logits is None:
        rows_sum_to_one = bool(((scores.sum(dim=1) - 1).abs() < 1e-4).all())
        from_logits = not (rows_sum_to_one and bool(((scores >= 0) & (scores <= 1)).all()))
    return scores.softmax(dim=1) if from_logits else scores


def expected_calibration_error(
    probs: Tensor, labels: Tensor, n_bins: int = 15, *, from_logits: bool | None = None
) -> CalibrationResult:
    """ECE of a classifier's predictions with ``n_bins`` equal-width confidence bins.

    Args:
        probs: ``[n, K]`` class probabilities or logits (see :func:`to_probabilities`).
        labels: ``[n]`` integer true classes.
        n_bins: number of bins M (15 as in the paper).
        from_logits: force the interpretation of ``probs``; None detects it.

    Returns:
        A :class:`CalibrationResult` (ECE in ``[0, 1]`` and per-bin count/accuracy/confidence).

    Raises:
        ValueError: ``probs`` not a finite non-empty float ``[n, K]``, ``labels`` not integers
            ``[n]`` in ``[0, K)``, or ``n_bins`` not an int >= 1.
    """
    _check_inputs(probs, labels, n_bins)
    p = to_probabilities(probs, from_logits)
    conf, pred = p.max(dim=1)
    correct = (pred == labels.to(pred.device).long()).double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    # right=False: bin m takes (edges[m], edges[m+1]]; confidence is always > 0
    bins = torch.bucketize(conf.cpu(), edges[1:-1], right=False)
    counts = torch.bincount(bins, minlength=n_bins)
    acc_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bins, correct.cpu())
    conf_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bins, conf.cpu())
    safe = counts.clamp(min=1).double()
    accuracy, confidence = acc_sum / safe, conf_sum / safe
    ece = ((counts.double() / len(labels)) * (accuracy - confidence).abs()).sum().item()
    return CalibrationResult(
        ece=ece,
        counts=counts.tolist(),
        accuracy=accuracy.tolist(),
        confidence=confidence.tolist(),
        edges=edges.tolist(),
    )


def _check_inputs(probs, labels, n_bins) -> None:
    if not isinstance(probs, Tensor) or probs.dim() != 2 or probs.shape[0] == 0:
        shape = tuple(probs.shape) if isinstance(probs, Tensor) else type(probs).__name__
        raise ValueError(f"probs must be a non-empty [n, K] tensor, got {shape}")
    if not probs.is_floating_point() or not bool(torch.isfinite(probs).all()):
        raise ValueError(f"probs must be finite floating point, got dtype {probs.dtype}")
    if not isinstance(labels, Tensor) or labels.shape != (probs.shape[0],):
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"labels must be [{probs.shape[0]}] to match probs, got {shape}")
    if labels.is_floating_point() or int(labels.min()) < 0 or int(labels.max()) >= probs.shape[1]:
        raise ValueError(f"labels must be integers in [0, {probs.shape[1]})")
    check_int("n_bins", n_bins)


def reliability_diagram(
    result: CalibrationResult, path: str | Path, *, title: str | None = None
) -> Path:
    """Plot accuracy vs confidence per bin (with the gap to the diagonal) and write a PNG.

    The lower panel shows how many samples fall in each bin, since a large gap in a nearly
    empty bin barely moves the ECE.

    Raises:
        ValueError: ``path`` does not end in ``.png``.
    """
    edges = np.asarray(result.edges)
    lo, width = edges[:-1], np.diff(edges)
    filled = np.asarray(result.counts) > 0
    acc = np.where(filled, result.accuracy, 0.0)
    conf = np.where(filled, result.confidence, 0.0)
    fig = new_figure(5.0, 6.0)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.bar(
        lo, acc, width=width, align="edge", color="tab:blue", edgecolor="black", label="accuracy"
    )
    top.bar(
        lo,
        np.abs(acc - conf),
        bottom=np.minimum(acc, conf),
        width=width,
        align="edge",
        facecolor="none",  # hatch only: reads the same over the bar (under-confident bins)
        edgecolor="tab:red",
        hatch="//",
        label="gap to mean confidence",
    )
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(title or "Reliability diagram")
    top.legend(loc="upper left", title=f"ECE = {result.ece:.4f}")
    bottom.bar(lo, result.counts, width=width, align="edge", color="gray", edgecolor="black")
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("confidence (top-1 probability)")
    bottom.set_ylabel("samples")
    return save_png(fig, path)
