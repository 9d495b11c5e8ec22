"""The gradient analysis (paper Sec. 3.2.3) on one test batch of a trained contrastive run.

A seeded batch of test images gets the run's training augmentation (``n_views`` views each, as in
training), goes through encoder + projection head to unit rows z, and
:func:`supcon.eval.gradient_analysis` gives each positive's and negative's share of every anchor's
gradient. Positives are same-class views for SupCon and the other views of the same image for
SimCLR (SupCon with sample ids as labels). z is already normalised, so magnitudes are per unit
``|w_anchor|``: ``sqrt(1 - cos^2) |P_ij - [j positive]/|P(i)|| / t``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import build_transform
from ..eval.gradients import gradient_analysis, plot_gradient_magnitudes, quantile_bins
from ..methods import METHOD_CLASSES
from .eval_corruptions import subsample
from .eval_data import Target, uint8_images
from .eval_options import EvalOptions
from .runs import Run

BINS = 10


@torch.no_grad()
def batch_embeddings(run: Run, target: Target, batch: int, seed: int,
                     device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z [B, V, D], labels [B])`` of a seeded, augmented test batch through encoder + head."""
    test = target.splits.test
    idx = subsample(len(test), batch, seed)
    images = uint8_images(test, idx, target.info.image_size)
    views = max(run.cfg.data.n_views, 2)
    policy = build_transform(run.cfg.data.augmentation, target.info, train=True,
                             **run.cfg.data.augmentation_options)
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(len(idx) * views, policy.n_uniforms, dtype=torch.float64, generator=gen)
    x = policy.apply(images.repeat_interleave(views, dim=0), u)  # [B*V, C, S, S], sample-major
    encoder, head = run.encoder.to(device).eval(), run.head.to(device).eval()
    z = head(encoder(x.to(device))).double().cpu()
    labels = test.labels[idx] if _supervised(run) else torch.arange(len(idx))
    return z.reshape(len(idx), views, -1), labels


def gradient_summary(run: Run, target: Target, options: EvalOptions, path: Path,
                     device: torch.device | str) -> dict[str, Any]:
    """Run the analysis, plot magnitude vs cosine to ``path``, and return binned means."""
    z, labels = batch_embeddings(run, target, options.gradient_batch, options.seed, device)
    results = gradient_analysis(z, labels, temperature=run.cfg.loss.temperature)
    kind = "same class" if _supervised(run) else "same image (SimCLR)"
    plot_gradient_magnitudes(
        results, path, n_bins=BINS,
        title=f"{run.method}: each sample's gradient share vs cosine to the anchor "
              f"({len(results)} anchors, positives = {kind}, t = {run.cfg.loss.temperature})")
    cos = torch.cat([r.cosine for r in results]).numpy()
    mag = torch.cat([r.magnitude for r in results]).numpy()
    pos = torch.cat([r.is_positive for r in results]).numpy()
    return {"anchors": len(results), "views": int(z.shape[1]), "images": int(z.shape[0]),
            "positives_are": kind, "temperature": run.cfg.loss.temperature,
            "positives": _binned(cos[pos], mag[pos]), "negatives": _binned(cos[~pos], mag[~pos])}


def _supervised(run: Run) -> bool:
    """Whether the run's method takes its positives from the labels (SupCon) or not (SimCLR)."""
    return METHOD_CLASSES[run.method].needs_labels


def _binned(cos: np.ndarray, mag: np.ndarray) -> dict[str, list]:
    """Count, cosine range and mean magnitude per cosine bin of equal counts (the plot's bins)."""
    bins = quantile_bins(cos, mag, BINS)
    return {"count": bins["count"], "cosine_lo": bins["x_lo"], "cosine_hi": bins["x_hi"],
            "mean_cosine": bins["mean_x"], "mean_magnitude": bins["mean_y"]}
