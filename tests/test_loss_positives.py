"""Positives beyond one label per image, and contrasts beyond the batch, in ``supcon_loss``:
real-valued mask weights, ``[B, C]`` multi-hot labels (``label_overlap`` "any" / "jaccard") and
a reference set (``ref_features`` with ``ref_labels`` / ``ref_mask``), against a loop over anchors
written from the weighted formula of docs/loss.md:

    A(i) = every other view of the batch, and every reference row
    w_ia = weight of a as a positive of i (0: a negative), P(i) = {a in A(i): w_ia > 0}
    L_out(i) = -sum_{p in P(i)} w_ip log( exp(s_ip) / sum_{a in A(i)} exp(s_ia) ) / sum_p w_ip
    L_in(i)  = -log( sum_{p in P(i)} w_ip exp(s_ip) / sum_p w_ip / sum_{a in A(i)} exp(s_ia) )

with s_ia = z_i.z_a / t, and the loss the mean of L(i) over anchors with a non-empty P(i). The
weights come from Python sets (multi-hot rows as sets of label ids), sharing nothing with the
matrix code under test.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from supcon.losses import SupConLoss, supcon_loss
from supcon.losses import supcon as loss_module

VARIANTS = ("out", "in")
MODES = ("all", "one")


def loop_loss(features, weight, *, temperature, variant="out", contrast_mode="all", refs=None,
              ref_weight=None):
    """The weighted loss, one anchor at a time in float64; None when no anchor has a positive.

    ``weight(i, j)`` is the weight of sample j's views as positives of sample i's views;
    ``ref_weight(i, k)`` that of reference row k. Views are ``(sample, view)`` pairs.
    """
    x = features.to(torch.float64)
    x = x.unsqueeze(1) if x.dim() == 2 else x
    samples, views, _ = x.shape
    z = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    r = None if refs is None else refs.to(torch.float64) / torch.linalg.vector_norm(
        refs.to(torch.float64), dim=-1, keepdim=True)
    anchors = [(b, v) for v in (range(views) if contrast_mode == "all" else [0]) for b in range(samples)]
    losses = []
    for i in anchors:
        others = [(z[b, v], weight(i[0], b)) for b in range(samples) for v in range(views) if (b, v) != i]
        if r is not None:
            others += [(r[k], ref_weight(i[0], k)) for k in range(r.shape[0])]
        logits = torch.stack([z[i] @ other / temperature for other, _ in others])
        w = [float(wt) for _, wt in others]
        if sum(w) == 0:
            continue
        log_den = torch.log(torch.exp(logits).sum())
        pos = [(logits[a], w[a]) for a in range(len(w)) if w[a] > 0]
        total = sum(wt for _, wt in pos)
        if variant == "out":
            losses.append(-sum(wt * (s - log_den) for s, wt in pos) / total)
        else:
            losses.append(-torch.log(sum(wt * torch.exp(s) for s, wt in pos) / total / torch.exp(log_den)))
    return torch.stack(losses).mean() if losses else None


def sets_of(multi_hot: torch.Tensor) -> list[set[int]]:
    return [set(torch.nonzero(row).flatten().tolist()) for row in multi_hot]


def overlap_weight(a: set, b: set, how: str) -> float:
    if how == "any":
        return float(bool(a & b))
    return len(a & b) / len(a | b)


def multi_hot(rows: list[list[int]], classes: int) -> torch.Tensor:
    out = torch.zeros(len(rows), classes, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, row] = 1
    return out


# Samples 0..5: 6 has a label nobody else has (no positive with one view).
LABEL_SETS = [[0, 1], [1], [2, 3], [0, 2, 3], [4], [1, 2], [5]]
Y = multi_hot(LABEL_SETS, 6)


def _check(ours_fn, ref_fn, x, *extra):
    """Values and gradients of ours and the loop agree (w.r.t. ``x`` and any ``extra`` tensors)."""
    leaves = [t.detach().clone().requires_grad_() for t in (x, *extra)]
    ours = ours_fn(*leaves)
    grads = torch.autograd.grad(ours, leaves)
    ref_leaves = [t.detach().clone().requires_grad_() for t in (x, *extra)]
    ref = ref_fn(*ref_leaves)
    ref_grads = torch.autograd.grad(ref, ref_leaves)
    assert_close(ours, ref.detach(), rtol=1e-9, atol=1e-12)
    for got, want in zip(grads, ref_grads, strict=True):
        assert_close(got, want, rtol=1e-8, atol=1e-11)


# ----------------------------------------------------------------------------- weights


@pytest.mark.parametrize("contrast_mode", MODES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("views", [1, 2, 3])
def test_real_valued_mask_equals_the_weighted_loop(views, variant, contrast_mode):
    g = torch.Generator().manual_seed(10 * views)
    x = torch.randn(6, views, 5, generator=g, dtype=torch.float64)
    mask = torch.rand(6, 6, generator=g, dtype=torch.float64)
    mask[mask < 0.4] = 0  # some negatives
    mask[1, 2] = 1.0  # exact 1s mixed in
    mask[4] = 0  # a sample with no positive but its own... none at all
    opts = dict(temperature=0.3, variant=variant, contrast_mode=contrast_mode)
    _check(lambda f: supcon_loss(f, mask=mask, **opts),
           lambda f: loop_loss(f, lambda i, j: mask[i, j].item(), **opts), x)


@pytest.mark.parametrize("contrast_mode", MODES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("how", ["any", "jaccard"])
@pytest.mark.parametrize("views", [1, 2])
def test_multi_hot_labels_equal_the_loop(views, how, variant, contrast_mode):
    g = torch.Generator().manual_seed(views)
    x = torch.randn(len(Y), views, 4, generator=g, dtype=torch.float64)
    sets = sets_of(Y)
    opts = dict(temperature=0.2, variant=variant, contrast_mode=contrast_mode)
    for labels in (Y, Y.bool(), Y.float()):  # any 0/1 dtype
        _check(lambda f, y=labels: supcon_loss(f, y, label_overlap=how, **opts),
               lambda f: loop_loss(f, lambda i, j: overlap_weight(sets[i], sets[j], how), **opts), x)


@pytest.mark.parametrize("how", ["any", "jaccard"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_one_hot_rows_equal_integer_labels(how, variant):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(7, 2, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 2, 2, 1, 0, 3, 2])
    one_hot = torch.nn.functional.one_hot(labels)
    assert_close(supcon_loss(x, one_hot, label_overlap=how, variant=variant),
                 supcon_loss(x, labels, variant=variant), rtol=1e-13, atol=0)


def test_uniform_weights_give_the_binary_loss_and_weights_reweight_positives():
    # Scaling every weight by the same factor changes nothing (the weights are normalised)...
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, 2, 3, generator=g, dtype=torch.float64)
    binary = (torch.rand(5, 5, generator=g) < 0.5) | torch.eye(5, dtype=torch.bool)
    for variant in VARIANTS:
        assert_close(supcon_loss(x, mask=binary * 0.3, variant=variant),
                     supcon_loss(x, mask=binary, variant=variant), rtol=1e-13, atol=0)
    # ...and by hand: z0 = z1 = e1, z2 = e2, one view each, t = 1, w_01 = 1, w_02 = 1/3.
    # A(0) = {1, 2}: log-denominator log(e + 1); L_out(0) = log(e + 1) - (1*1 + 1/3*0) / (4/3).
    feats = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    mask = torch.tensor([[0, 1, 1 / 3], [0, 0, 0], [0, 0, 0]], dtype=torch.float64)
    want = math.log(math.e + 1) - 0.75
    assert_close(supcon_loss(feats, mask=mask, temperature=1.0).item(), want, rtol=1e-14, atol=0)
    # L_in(0) = log(e + 1) - log((e + 1/3) / (4/3))
    want_in = math.log(math.e + 1) - math.log((math.e + 1 / 3) / (4 / 3))
    assert_close(supcon_loss(feats, mask=mask, temperature=1.0, variant="in").item(), want_in,
                 rtol=1e-14, atol=0)


def test_zero_weights_everywhere_give_a_differentiable_zero():
    x = torch.randn(4, 2, 3, requires_grad=True)
    loss = supcon_loss(x, mask=torch.zeros(4, 4))
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(x.grad) == 0


def test_positives_cap_keeps_weights_of_the_kept_positives():
    # With a cap at least the largest positive count nothing is dropped: the weighted loss.
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 2, 4, generator=g, dtype=torch.float64)
    mask = torch.rand(6, 6, generator=g, dtype=torch.float64)
    assert_close(supcon_loss(x, mask=mask, positives_cap=12), supcon_loss(x, mask=mask), rtol=1e-13, atol=0)
    capped = supcon_loss(x, mask=mask, positives_cap=1, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(capped)


# ----------------------------------------------------------------------------- references


@pytest.mark.parametrize("contrast_mode", MODES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", ["labels", "multi_hot", "mask", "none"])
def test_ref_features_equal_the_loop_and_the_concatenation(kind, variant, contrast_mode):
    g = torch.Generator().manual_seed(len(kind))
    batch, views, k = 5, 2, 4
    x = torch.randn(batch, views, 3, generator=g, dtype=torch.float64)
    refs = torch.randn(k, 3, generator=g, dtype=torch.float64)
    opts = dict(temperature=0.25, variant=variant, contrast_mode=contrast_mode)
    if kind == "labels":
        labels, ref_labels = torch.tensor([0, 1, 0, 2, 3]), torch.tensor([1, 4, 3, 0])
        args, ref_args = {"labels": labels}, {"ref_labels": ref_labels}
        weight = lambda i, j: float(labels[i] == labels[j])  # noqa: E731
        ref_weight = lambda i, j: float(labels[i] == ref_labels[j])  # noqa: E731
    elif kind == "multi_hot":
        labels, ref_labels = Y[:batch], multi_hot([[5], [0, 3], [1, 2], [4, 1]], 6)
        s, rs = sets_of(labels), sets_of(ref_labels)
        args, ref_args = {"labels": labels, "label_overlap": "jaccard"}, {"ref_labels": ref_labels}
        weight = lambda i, j: overlap_weight(s[i], s[j], "jaccard")  # noqa: E731
        ref_weight = lambda i, j: overlap_weight(s[i], rs[j], "jaccard")  # noqa: E731
    elif kind == "mask":
        mask = torch.rand(batch, batch, generator=g, dtype=torch.float64)
        ref_mask = (torch.rand(batch, k, generator=g) < 0.5).double()
        args, ref_args = {"mask": mask}, {"ref_mask": ref_mask}
        weight = lambda i, j: mask[i, j].item()  # noqa: E731
        ref_weight = lambda i, j: ref_mask[i, j].item()  # noqa: E731
    else:  # SimCLR: the references are negatives only
        args, ref_args = {}, {}
        weight = lambda i, j: float(i == j)  # noqa: E731
        ref_weight = lambda i, j: 0.0  # noqa: E731
    _check(lambda f, r: supcon_loss(f, ref_features=r, **args, **ref_args, **opts),
           lambda f, r: loop_loss(f, weight, refs=r, ref_weight=ref_weight, **opts), x, refs)

    # the loss on [views (view-major); references] with a mask whose rows of non-anchors are empty
    rows = torch.cat([x.transpose(0, 1).reshape(batch * views, 3), refs])
    sample = torch.arange(batch * views) % batch
    full = torch.zeros(batch * views + k, batch * views + k, dtype=torch.float64)
    for a in range(batch if contrast_mode == "one" else batch * views):
        for c in range(batch * views):
            full[a, c] = weight(sample[a], sample[c])
        for c in range(k):
            full[a, batch * views + c] = ref_weight(sample[a], c)
    concat = supcon_loss(rows, mask=full, temperature=0.25, variant=variant)
    assert_close(supcon_loss(x, ref_features=refs, **args, **ref_args, **opts), concat, rtol=1e-12, atol=0)


def test_an_empty_reference_set_changes_nothing():
    x, labels = torch.randn(6, 2, 4), torch.tensor([0, 1, 0, 2, 1, 0])
    got = supcon_loss(x, labels, ref_features=torch.zeros(0, 4), ref_labels=torch.zeros(0, dtype=torch.long))
    assert_close(got, supcon_loss(x, labels), rtol=1e-6, atol=0)


def test_references_give_positives_to_anchors_that_had_none():
    # Every class a singleton, one view: no positive in the batch, but the bank has class 2.
    x = torch.randn(3, 4, dtype=torch.float64)
    assert supcon_loss(x, torch.arange(3)).item() == 0.0
    bank, bank_labels = torch.randn(2, 4, dtype=torch.float64), torch.tensor([2, 7])
    loss = supcon_loss(x, torch.arange(3), ref_features=bank, ref_labels=bank_labels, temperature=0.5)
    want = loop_loss(x, lambda i, j: float(i == j), temperature=0.5, refs=bank,
                     ref_weight=lambda i, k: float(i == bank_labels[k]))
    assert_close(loss, want, rtol=1e-12, atol=0)


def test_the_module_takes_the_new_options_and_reference_rows():
    g = torch.Generator().manual_seed(8)
    x, refs = torch.randn(len(Y), 2, 4, generator=g), torch.randn(3, 4, generator=g)
    ref_y = multi_hot([[0], [1, 5], [3]], 6)
    module = SupConLoss(temperature=0.2, label_overlap="jaccard")
    assert_close(module(x, Y, ref_features=refs, ref_labels=ref_y),
                 supcon_loss(x, Y, temperature=0.2, label_overlap="jaccard", ref_features=refs,
                             ref_labels=ref_y), rtol=0, atol=0)
    assert "label_overlap='jaccard'" in repr(module) and "gather" not in repr(module)


# ----------------------------------------------------------------------------- the tiled path


@pytest.fixture
def small_tiles(monkeypatch):
    monkeypatch.setattr(loss_module, "TILED_MIN_VIEWS", 16)


def test_tiled_serves_multi_hot_any_and_binary_float_masks(small_tiles, monkeypatch):
    calls = []
    real = loss_module._tiled.tiled_supcon_loss
    monkeypatch.setattr(loss_module._tiled, "tiled_supcon_loss", lambda *a, **k: calls.append(1) or real(*a, **k))
    g = torch.Generator().manual_seed(9)
    x = torch.randn(len(Y), 3, 4, generator=g, dtype=torch.float64)
    for variant in VARIANTS:
        for kwargs in ({"labels": Y}, {"mask": (torch.rand(7, 7, generator=g) < 0.5).double()}):
            ours = supcon_loss(x, impl="auto", variant=variant, **kwargs)
            assert_close(ours, supcon_loss(x, impl="dense", variant=variant, **kwargs), rtol=1e-12, atol=0)
    assert len(calls) == 4


@pytest.mark.parametrize("kwargs", [
    {"labels": Y, "label_overlap": "jaccard"},
    {"mask": torch.full((7, 7), 0.5)},
    {"labels": torch.arange(7), "ref_features": torch.randn(2, 4), "ref_labels": torch.tensor([0, 1])},
], ids=["jaccard", "weighted mask", "ref_features"])
def test_tiled_declines_weights_and_references(small_tiles, kwargs):
    x = torch.randn(7, 3, 4)
    with pytest.warns(UserWarning, match="dense path"):
        tiled = supcon_loss(x, impl="tiled", **kwargs)
    assert_close(tiled, supcon_loss(x, impl="dense", **kwargs), rtol=0, atol=0)


# ----------------------------------------------------------------------------- bad input

F4 = torch.randn(4, 2, 3)
BAD = {
    "multi-hot all-zero row": ({"labels": multi_hot([[0], [1], [], [0, 1]], 2)}, r"labels: row 2 .*all zero"),
    "multi-hot with 2": ({"labels": torch.tensor([[1, 0], [2, 0], [0, 1], [1, 1]])},
                         r"labels: .*multi-hot.*0/1.*2"),
    "multi-hot wrong rows": ({"labels": torch.ones(3, 2)}, r"labels must have shape \[4\] or \[4, C\].*\(3, 2\)"),
    "label_overlap": ({"label_overlap": "cosine"}, r"label_overlap.*'cosine'"),
    "ref_features size": ({"ref_features": torch.randn(5, 8)}, r"ref_features must be \[K, 3\].*\(5, 8\)"),
    "ref_features 3-D": ({"ref_features": torch.randn(5, 2, 3)}, r"ref_features must be \[K, D\].*\(5, 2, 3\)"),
    "ref_features nan": ({"ref_features": torch.full((2, 3), math.nan)}, r"ref_features.*NaN"),
    "ref_labels missing": ({"labels": torch.arange(4), "ref_features": torch.randn(2, 3)}, r"ref_labels is required"),
    "ref_labels wrong length": ({"labels": torch.arange(4), "ref_features": torch.randn(2, 3),
                                 "ref_labels": torch.arange(3)}, r"ref_labels must have shape \[2\].*\(3,\)"),
    "ref_labels wrong columns": ({"labels": torch.eye(4), "ref_features": torch.randn(2, 3),
                                  "ref_labels": torch.ones(2, 5)}, r"ref_labels must have shape \[2, 4\]"),
    "ref_labels multi-hot for 1-D labels": ({"labels": torch.arange(4), "ref_features": torch.randn(2, 3),
                                             "ref_labels": torch.tensor([[1, 0], [0, 1]])},
                                            r"ref_labels must be \[2\] integers like labels \(4,\).*\(2, 2\)"),
    "ref_labels alone": ({"ref_labels": torch.arange(2)}, r"ref_labels was given without ref_features"),
    "ref_mask missing": ({"mask": torch.eye(4), "ref_features": torch.randn(2, 3)}, r"ref_mask is required"),
    "ref_mask shape": ({"mask": torch.eye(4), "ref_features": torch.randn(2, 3), "ref_mask": torch.ones(2, 4)},
                       r"ref_mask must have shape \[4, 2\].*\(2, 4\)"),
    "ref_mask above 1": ({"mask": torch.eye(4), "ref_features": torch.randn(2, 3), "ref_mask": torch.full((4, 2), 2.0)},
                         r"ref_mask weights must be in \[0, 1\].*2\.0"),
    "ref_labels without labels": ({"ref_features": torch.randn(2, 3), "ref_labels": torch.arange(2)},
                                  r"ref_labels / ref_mask need labels / mask"),
    "gather without a group": ({"gather": True}, r"gather=True needs an initialised torch.distributed process group"),
    "gather not bool": ({"gather": 1}, r"gather must be True or False, got 1"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_the_argument(case):
    kwargs, message = BAD[case]
    with pytest.raises(ValueError, match=message):
        supcon_loss(F4, **kwargs)
