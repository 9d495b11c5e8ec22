"""Gradient analysis (paper Sec. 3.2.3): per-sample contributions sum to autograd's gradient of
the single-anchor L_out, and their norms equal the closed form."""

import math

import numpy as np
import pytest
import torch

from supcon.eval import gradients as gradients_mod
from supcon.eval.gradients import (
    analytic_magnitudes,
    gradient_analysis,
    gradient_contributions,
    plot_gradient_magnitudes,
    quantile_bins,
)
from supcon.losses import supcon_loss

T = 0.1


def batch(n=12, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, d, generator=g, dtype=torch.float64) * 2
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 0, 1, 2, 3, 3])[:n]
    return w, labels


def naive_single_anchor_loss(w, labels, i, t):
    """L_out of anchor i written from the paper's formula, one term at a time."""
    z = w / w.norm(dim=1, keepdim=True)
    others = [j for j in range(len(w)) if j != i]
    denom = sum(torch.exp(z[i] @ z[a] / t) for a in others)
    positives = [p for p in others if labels[p] == labels[i]]
    return -sum(torch.log(torch.exp(z[i] @ z[p] / t) / denom) for p in positives) / len(positives)


def autograd_anchor_grad(w, labels, i, t, use_library_loss):
    w = w.clone().requires_grad_(True)
    if use_library_loss:
        # a mask with only row i non-empty makes supcon_loss the single-anchor L_out
        mask = torch.zeros(len(w), len(w), dtype=torch.bool)
        mask[i] = labels == labels[i]
        loss = supcon_loss(w, mask=mask, temperature=t)
    else:
        loss = naive_single_anchor_loss(w, labels, i, t)
    (grad,) = torch.autograd.grad(loss, w)
    return grad[i]


@pytest.mark.parametrize("use_library_loss", [True, False])
def test_contributions_sum_to_autograd_gradient(use_library_loss):
    w, labels = batch()
    for i in range(len(w)):
        res = gradient_contributions(w, labels, i, temperature=T)
        expected = autograd_anchor_grad(w, labels, i, T, use_library_loss)
        torch.testing.assert_close(res.total, expected, rtol=1e-9, atol=1e-10)
        assert res.vectors.shape == (11, 5)
        assert int(res.is_positive.sum()) == int((labels == labels[i]).sum()) - 1


def test_magnitudes_equal_closed_form():
    w, labels = batch(seed=3)
    for i in range(len(w)):
        res = gradient_contributions(w, labels, i, temperature=0.2)
        torch.testing.assert_close(res.magnitude, analytic_magnitudes(w, labels, i, 0.2))
        # each contribution lies in the anchor's tangent plane (orthogonal to z_i)
        z_i = w[i] / w[i].norm()
        torch.testing.assert_close(res.vectors @ z_i, torch.zeros(11, dtype=torch.float64))


def test_magnitude_scales_with_inverse_anchor_norm():
    w, labels = batch()
    base = analytic_magnitudes(w, labels, 0, T)
    w2 = w.clone()
    w2[0] *= 4
    torch.testing.assert_close(analytic_magnitudes(w2, labels, 0, T), base / 4)


def test_easy_examples_contribute_nothing_hard_ones_dominate():
    e = torch.eye(4, dtype=torch.float64)
    # anchor e0; positives: e0 (easy, cos 1) and e1 (hard, cos 0);
    # negatives: -e0 (easy, cos -1) and e2 (hard, cos 0)
    w = torch.stack([e[0], 3 * e[0], e[1], -e[0], e[2]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    res = gradient_contributions(w, labels, 0, temperature=T)
    mag = dict(zip(res.index.tolist(), res.magnitude.tolist(), strict=True))
    assert mag[1] < 1e-12 and mag[3] < 1e-12  # easy positive, easy negative
    # hand values: logits 10, 0, -10, 0 -> P = exp(l) / Z; |w_0| = 1
    z = math.exp(10) + 1 + math.exp(-10) + 1
    p_hard = 1 / z
    assert mag[2] == pytest.approx(abs(p_hard - 0.5) / T)  # hard positive: |P - 1/|P|| / t
    assert mag[4] == pytest.approx(p_hard / T)  # hard negative: P / t
    assert mag[2] > 1e6 * max(mag[1], mag[3])


def test_multiview_input_is_flattened_view_major():
    g = torch.Generator().manual_seed(5)
    w = torch.randn(4, 2, 3, generator=g, dtype=torch.float64)  # [B, V, D]
    labels = torch.tensor([0, 1, 0, 1])
    flat = w.transpose(0, 1).reshape(8, 3)
    a = gradient_contributions(w, labels, 2, T)
    b = gradient_contributions(flat, labels.repeat(2), 2, T)
    torch.testing.assert_close(a.vectors, b.vectors)
    # row 2 = view 0 of sample 2; its positives: sample 0 (both views), sample 2 view 1
    assert sorted(a.index[a.is_positive].tolist()) == [0, 4, 6]


def test_gradient_analysis_and_plot(tmp_path):
    w, labels = batch()
    results = gradient_analysis(w, labels, temperature=T)
    assert [r.anchor for r in results] == list(range(12))  # every anchor has a positive here
    path = plot_gradient_magnitudes(results, tmp_path / "grad.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    solo = torch.tensor([0, 1, 2, 0, 1, 2, 0, 0, 1, 2, 3, 4])  # label 4 appears once
    assert 11 not in [r.anchor for r in gradient_analysis(w, solo)]


@pytest.mark.parametrize(
    "anchor, labels, match",
    [
        (11, torch.tensor([0, 1, 2, 0, 1, 2, 0, 0, 1, 2, 3, 4]), "no positive"),
        (12, None, "anchor must be"),
    ],
)
def test_bad_arguments(anchor, labels, match):
    w, default = batch()
    with pytest.raises(ValueError, match=match):
        gradient_contributions(w, default if labels is None else labels, anchor)


def test_bad_shapes():
    w, labels = batch()
    with pytest.raises(ValueError, match="labels must be"):
        gradient_contributions(w, labels[:3], 0)
    with pytest.raises(ValueError, match="features"):
        gradient_contributions(w[0], labels, 0)
    with pytest.raises(ValueError, match="temperature"):
        gradient_contributions(w, labels, 0, temperature=0.0)
    with pytest.raises(ValueError, match="at least one"):
        plot_gradient_magnitudes([], "x.png")


def test_quantile_bins_hold_equal_shares_of_the_points():
    """Bins cut where the points are (all cosines in 0.8-1.0 here): every bin holds n/k points
    (+-1), and each bin's means are those of the points between its bounds (masks, numpy)."""
    rng = np.random.default_rng(0)
    x = 0.8 + 0.2 * rng.random(1003) ** 3  # crowded near 0.8
    y = rng.random(1003)
    bins = quantile_bins(x, y, n_bins=20)
    counts = np.asarray(bins["count"])
    assert len(counts) == 20 and counts.sum() == 1003 and counts.min() >= 50 and counts.max() <= 51
    for k, (lo, hi) in enumerate(zip(bins["x_lo"], bins["x_hi"], strict=True)):
        inside = (x >= lo) & (x <= hi)
        assert inside.sum() == counts[k]
        assert bins["mean_x"][k] == pytest.approx(x[inside].mean())
        assert bins["mean_y"][k] == pytest.approx(y[inside].mean())
    assert bins["x_lo"][0] == x.min() and bins["x_hi"][-1] == x.max()
    few = quantile_bins(x[:12], y[:12], n_bins=20, min_count=5)  # never a bin of fewer than 5
    assert few["count"] == [6, 6]
    assert quantile_bins(x[:0], y[:0])["count"] == []


def test_the_gradient_plot_is_scaled_to_its_points(tmp_path, monkeypatch):
    """Cosines in 0.8-1.0 fill the x-axis (not -1..1), and the mean line runs through the
    points: one vertex per quantile bin, inside the data's range."""
    figures = []
    real = gradients_mod.new_figure
    monkeypatch.setattr(gradients_mod, "new_figure", lambda *a, **k: figures.append(real(*a, **k)) or figures[-1])
    g = torch.Generator().manual_seed(0)
    w = torch.randn(1, 8, generator=g, dtype=torch.float64) + 0.08 * torch.randn(64, 8, generator=g,
                                                                                 dtype=torch.float64)
    labels = torch.arange(64) % 4
    results = gradient_analysis(w, labels, temperature=T)
    cos = torch.cat([r.cosine for r in results]).numpy()
    assert cos.min() > 0.8  # a batch whose points sit at high cosine, as after training
    plot_gradient_magnitudes(results, tmp_path / "grad.png", n_bins=20)
    for ax in figures[0].axes:
        lo, hi = ax.get_xlim()
        assert lo > 0.75 and hi <= 1.0 + 0.02 and hi - lo < 0.3
        (line,) = ax.get_lines()
        xs = line.get_xdata()
        assert len(xs) == 20 and cos.min() <= xs.min() and xs.max() <= cos.max()
