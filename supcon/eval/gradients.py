"""Where the SupCon gradient goes (paper Sec. 3.2.3 and supplementary): the contribution of each
positive and each negative to the gradient of one anchor's L_out.

For anchor i with un-normalised embedding w_i, z = w / |w|, and
``P_ij = exp(z_i.z_j / t) / sum_{a != i} exp(z_i.z_a / t)``:

    dL_i/dz_i = (1/t) [ sum_p z_p (P_ip - 1/|P(i)|) + sum_n z_n P_in ]

and through the normalisation (``dz/dw = (I - z z^T) / |w|``) sample j adds
``g_j = c_j (z_j - (z_i.z_j) z_i) / (t |w_i|)``, with ``c_p = P_ip - 1/|P(i)|`` for a positive
and ``c_n = P_in`` for a negative, of norm

    |g_p| = sqrt(1 - (z_i.z_p)^2) |P_ip - 1/|P(i)|| / (t |w_i|),
    |g_n| = sqrt(1 - (z_i.z_n)^2) P_in / (t |w_i|).

Easy positives (z_i.z_p ~ 1) and easy negatives (z_i.z_n ~ -1, where P_in ~ 0 too) contribute
~0; hard ones dominate: the loss mines hard examples without being told to.
Only anchor i's own term L_i is differentiated, with respect to w_i alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from supcon.eval._plot import new_figure, save_png
from supcon.losses.options import TEMPERATURE


@dataclass(frozen=True)
class AnchorGradients:
    """Per-sample gradient contributions to one anchor (M = N - 1 other samples)."""

    anchor: int
    index: Tensor  # [M] row of each other sample in the flattened batch
    is_positive: Tensor  # [M] bool: same label as the anchor
    cosine: Tensor  # [M] z_i . z_j
    vectors: Tensor  # [M, D] g_j, each sample's share of dL_i/dw_i
    magnitude: Tensor  # [M] |g_j|

    @property
    def total(self) -> Tensor:
        """``[D]`` the full gradient dL_i/dw_i (sum of the contributions)."""
        return self.vectors.sum(dim=0)


def _flatten(features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """``[B, V, D]`` -> ``[V*B, D]`` view-major (as in supcon.losses), labels repeated; float64."""
    if not isinstance(features, Tensor) or features.dim() not in (2, 3) or features.numel() == 0:
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ValueError(f"features must be a non-empty [N, D] or [B, V, D] tensor, got {shape}")
    if not features.is_floating_point() or not bool(torch.isfinite(features).all()):
        raise ValueError("features must be finite floating point")
    if not isinstance(labels, Tensor) or labels.shape != features.shape[:1]:
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"labels must be [{features.shape[0]}] to match features, got {shape}")
    if features.dim() == 3:
        views = features.shape[1]
        features = features.transpose(0, 1).reshape(-1, features.shape[-1])
        labels = labels.repeat(views)
    return features.detach().double(), labels.detach()


def _anchor_terms(features, labels, anchor: int, temperature: float):
    """Shared setup: |w_i|, z, the others' indices, positives mask, cosines."""
    w, y = _flatten(features, labels)
    n = w.shape[0]
    if isinstance(anchor, bool) or not isinstance(anchor, int) or not 0 <= anchor < n:
        raise ValueError(f"anchor must be an int in [0, {n}), got {anchor!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    others = torch.cat([torch.arange(anchor), torch.arange(anchor + 1, n)])
    is_pos = y[others] == y[anchor]
    if not bool(is_pos.any()):
        raise ValueError(
            f"anchor {anchor} has no positive (no other sample with label {int(y[anchor])})"
        )
    z = F.normalize(w, dim=1)
    cosine = z[others] @ z[anchor]  # [M]
    return w[anchor].norm(), z, others, is_pos, cosine


def gradient_contributions(
    features: Tensor, labels: Tensor, anchor: int, temperature: float = TEMPERATURE
) -> AnchorGradients:
    """Each other sample's contribution vector to ``dL_out_i / dw_i`` for anchor ``anchor``.

    Args:
        features: un-normalised embeddings w, ``[N, D]`` or ``[B, V, D]`` (flattened view-major,
            so view v of sample b is row ``v * B + b``, as in :func:`supcon.losses.supcon_loss`).
        labels: ``[N]`` or ``[B]`` integer classes.
        anchor: row of the anchor in the flattened batch; it needs at least one positive.
        temperature: tau.

    Returns:
        :class:`AnchorGradients` (float64), built from the vector form ``c_j (I - z_i z_i^T) z_j``.

    Raises:
        ValueError: features not a finite ``[N, D]``/``[B, V, D]`` float tensor, labels of
            another length, ``anchor`` out of range or without a positive, ``temperature <= 0``.
    """
    w_norm, z, others, is_pos, cosine = _anchor_terms(features, labels, anchor, temperature)
    prob = torch.softmax(cosine / temperature, dim=0)  # P_ij over A(i) = the others
    coef = torch.where(is_pos, prob - 1.0 / int(is_pos.sum()), prob)
    tangent = z[others] - cosine[:, None] * z[anchor]  # (I - z_i z_i^T) z_j
    vectors = coef[:, None] * tangent / (temperature * w_norm)
    return AnchorGradients(anchor, others, is_pos, cosine, vectors, vectors.norm(dim=1))


def analytic_magnitudes(
    features: Tensor, labels: Tensor, anchor: int, temperature: float = TEMPERATURE
) -> Tensor:
    """Closed-form ``|g_j|`` (supplementary): ``sqrt(1 - cos^2) |P_ij - [j in P]/|P|| / (t |w_i|)``.

    Same arguments, sample order and errors as :func:`gradient_contributions`; returns ``[M]``
    float64.
    """
    w_norm, _, _, is_pos, cosine = _anchor_terms(features, labels, anchor, temperature)
    e = torch.exp((cosine - cosine.max()) / temperature)  # shift for stability; P unchanged
    prob = e / e.sum()
    weight = torch.where(is_pos, (prob - 1.0 / int(is_pos.sum())).abs(), prob)
    return (1 - cosine**2).clamp(min=0).sqrt() * weight / (temperature * w_norm)


def gradient_analysis(
    features: Tensor,
    labels: Tensor,
    anchors: Sequence[int] | None = None,
    temperature: float = TEMPERATURE,
) -> list[AnchorGradients]:
    """:func:`gradient_contributions` for several anchors (default: every row with a positive).

    ``features`` ``[N, D]`` or ``[B, V, D]``, ``labels`` ``[N]`` or ``[B]``, ``temperature``
    tau; raises ValueError as :func:`gradient_contributions` does.
    """
    w, y = _flatten(features, labels)
    if anchors is None:
        same = y[:, None] == y[None, :]
        anchors = [i for i in range(w.shape[0]) if int(same[i].sum()) > 1]
    return [gradient_contributions(w, y, int(a), temperature) for a in anchors]


def plot_gradient_magnitudes(
    results: Sequence[AnchorGradients],
    path: str | Path,
    *,
    title: str | None = None,
    n_bins: int = 20,
) -> Path:
    """Scatter gradient magnitude vs cosine similarity, positives and negatives side by side,
    with the mean per cosine bin (:func:`quantile_bins`: equal shares of the points, so every
    bin is populated wherever the points sit); axes span the data; write a PNG, return its path.

    Raises:
        ValueError: ``results`` is empty, or ``path`` does not end in ``.png``.
    """
    if not results:
        raise ValueError("results must hold at least one AnchorGradients, got none")
    cos = torch.cat([r.cosine for r in results]).numpy()
    mag = torch.cat([r.magnitude for r in results]).numpy()
    pos = torch.cat([r.is_positive for r in results]).numpy()
    fig = new_figure(10.0, 4.2)
    axes = fig.subplots(1, 2)
    for ax, sel, name, color in (
        (axes[0], pos, "positives", "tab:blue"),
        (axes[1], ~pos, "negatives", "tab:red"),
    ):
        ax.scatter(cos[sel], mag[sel], s=5, alpha=0.35, color=color, linewidths=0, label=name)
        bins = quantile_bins(cos[sel], mag[sel], n_bins)
        ax.plot(bins["mean_x"], bins["mean_y"], "k.-", linewidth=1.5, markersize=4,
                label=f"mean per cosine bin ({len(bins['count'])} bins of equal counts)")
        ax.set_xlim(*_padded(cos[sel]))
        ax.set_xlabel(f"cosine similarity z_anchor . z_{name[0]}")
        ax.set_ylabel("|contribution to dL/dw_anchor|")
        ax.set_title(f"{name} ({int(sel.sum())})")
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(title or f"SupCon gradient per sample vs similarity ({len(results)} anchors)")
    return save_png(fig, path)


def quantile_bins(x: np.ndarray, y: np.ndarray, n_bins: int = 20, min_count: int = 5) -> dict[str, list]:
    """Mean of ``y`` in bins of ``x`` that hold equal shares of the points (x sorted and cut into
    ``n_bins`` runs of n/n_bins points, fewer bins when that would leave one under ``min_count``),
    so a bin is never empty however the points crowd (after training, cosines sit in 0.8-1.0).

    Returns:
        ``count``, ``x_lo``/``x_hi`` (the smallest and largest x in each bin), ``mean_x``,
        ``mean_y``: lists of one value per bin, in increasing x; all empty for no points.
    """
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    k = min(n_bins, max(1, len(x) // max(min_count, 1))) if len(x) else 0
    order = np.argsort(x, kind="stable")
    runs = np.array_split(order, k) if k else []
    return {"count": [len(r) for r in runs], "x_lo": [float(x[r].min()) for r in runs],
            "x_hi": [float(x[r].max()) for r in runs], "mean_x": [float(x[r].mean()) for r in runs],
            "mean_y": [float(y[r].mean()) for r in runs]}


def _padded(x: np.ndarray) -> tuple[float, float]:
    """x-limits around the data (5% of its span on each side, at least 0.01), within [-1.05, 1.05]."""
    if not len(x):
        return -1.05, 1.05
    lo, hi = float(x.min()), float(x.max())
    pad = max(0.05 * (hi - lo), 0.01)
    return max(lo - pad, -1.05), min(hi + pad, 1.05)
