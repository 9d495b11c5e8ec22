"""Tests of ``supcon.losses`` against a naive reference written from the paper's equations.

The reference (``reference_loss``) is a Python loop over anchors in float64 that builds P(i) and
A(i) as Python sets of ``(sample, view)`` pairs, so it shares nothing with the vectorised,
view-major implementation under test except the formulas of docs/loss.md ("The formula"):

    L_out(i) = -(1/|P(i)|) sum_{p in P(i)} log( exp(z_i.z_p/t) / sum_{a in A(i)} exp(z_i.z_a/t) )
    L_in(i)  = -log( (1/|P(i)|) sum_{p in P(i)} exp(z_i.z_p/t) / sum_{a in A(i)} exp(z_i.z_a/t) )

and the loss is the mean over anchors with |P(i)| >= 1 (0 when there are none).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from supcon.losses import SupConLoss, supcon_loss

TEMPERATURES = (0.05, 0.1, 0.5, 1.0)
VARIANTS = ("out", "in")
CONTRAST_MODES = ("all", "one")
POSITIVE_KINDS = (
    "labels_mixed",  # a few classes plus a singleton class
    "labels_same",  # every sample in one class
    "labels_distinct",  # every class a singleton
    "mask_symmetric",  # float 0/1, not an equivalence relation
    "mask_nonsymmetric",  # int 0/1, mask[i, j] != mask[j, i] somewhere
    "mask_zero_diagonal",  # bool; a sample's own other views are not positives
    "none",  # SimCLR
)


# ----------------------------------------------------------------------------- reference


def reference_loss(
    features: torch.Tensor,
    labels: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    *,
    temperature: float,
    variant: str = "out",
    contrast_mode: str = "all",
    kept: dict[tuple[int, int], set[tuple[int, int]]] | None = None,
) -> torch.Tensor | None:
    """The loss straight from the paper, looping over anchors; None when no anchor has a positive.

    ``features`` is ``[B, V, D]`` or ``[N, D]``; views are named ``(sample, view)``. ``kept`` maps
    an anchor to the positives it keeps (``positives_cap``); the others leave P(i) and A(i) alike.
    Built from differentiable torch ops so autograd gives the reference gradient.
    """
    x = features.to(torch.float64)
    if x.dim() == 2:
        x = x.unsqueeze(1)
    n_samples, n_views, _ = x.shape
    views = [(b, v) for b in range(n_samples) for v in range(n_views)]
    z = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)

    label_list = None if labels is None else labels.tolist()
    mask_rows = None if mask is None else mask.tolist()

    def is_positive(i: int, j: int) -> bool:  # are sample j's views positives of sample i's?
        if label_list is not None:
            return label_list[i] == label_list[j]
        if mask_rows is not None:
            return bool(mask_rows[i][j])
        return i == j

    anchors = views if contrast_mode == "all" else [(b, 0) for b in range(n_samples)]
    losses = []
    for i in anchors:
        a_set = {a for a in views if a != i}
        p_set = {p for p in a_set if is_positive(i[0], p[0])}
        if kept is not None and i in kept:
            assert kept[i] <= p_set
            a_set -= p_set - kept[i]
            p_set = kept[i]
        if not p_set:
            continue
        a_list = sorted(a_set)
        z_a = z[[b for b, _ in a_list], [v for _, v in a_list]]  # [|A|, D]
        e = torch.exp(z_a @ z[i] / temperature)  # exp(z_i.z_a/t) for a in A(i)
        ratio = e[[a_list.index(p) for p in p_set]] / e.sum()  # for p in P(i)
        if variant == "out":
            losses.append(-torch.log(ratio).sum() / len(p_set))
        else:
            losses.append(-torch.log(ratio.sum() / len(p_set)))
    return torch.stack(losses).mean() if losses else None


def _positives(kind: str, batch: int, g: torch.Generator) -> tuple:
    """(labels, mask) for one of POSITIVE_KINDS."""
    if kind == "labels_mixed":
        labels = torch.randint(0, max(1, batch // 2), (batch,), generator=g)
        labels[-1] = batch  # a class of its own
        return labels, None
    if kind == "labels_same":
        return torch.zeros(batch, dtype=torch.long), None
    if kind == "labels_distinct":
        return torch.arange(batch), None
    if kind == "none":
        return None, None
    rand = torch.rand(batch, batch, generator=g) < 0.4
    if kind == "mask_nonsymmetric":
        rand[0, -1], rand[-1, 0] = True, batch == 1
        return None, rand.long()
    sym = rand | rand.T
    if kind == "mask_symmetric":
        return None, (sym | torch.eye(batch, dtype=torch.bool)).double()
    return None, sym & ~torch.eye(batch, dtype=torch.bool)


def _value_and_grad(fn, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = features.detach().clone().requires_grad_(True)
    value = fn(x)
    (grad,) = torch.autograd.grad(value, x)
    return value.detach(), grad


def _assert_zero_loss(fn, features: torch.Tensor) -> None:
    """No anchor has a positive: exactly 0.0, backward works, gradient exactly zero."""
    value, grad = _value_and_grad(fn, features)
    assert value.item() == 0.0
    assert torch.count_nonzero(grad) == 0


# ----------------------------------------------------------------------------- the grid


@pytest.mark.parametrize("contrast_mode", CONTRAST_MODES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", POSITIVE_KINDS)
@pytest.mark.parametrize("views", [1, 2, 3])
@pytest.mark.parametrize("batch", [1, 2, 5, 8])
def test_matches_naive_reference(batch, views, kind, variant, contrast_mode):
    g = torch.Generator().manual_seed(1000 * batch + 100 * views + POSITIVE_KINDS.index(kind))
    features = torch.randn(batch, views, 6, generator=g, dtype=torch.float64)
    labels, mask = _positives(kind, batch, g)
    forms = [features] + ([features[:, 0]] if views == 1 else [])  # and the [N, D] form
    for temperature, x in itertools.product(TEMPERATURES, forms):
        opts = dict(temperature=temperature, variant=variant, contrast_mode=contrast_mode)
        ours = _value_and_grad(lambda f, o=opts: supcon_loss(f, labels, mask, **o), x)
        x_ref = x.detach().clone().requires_grad_(True)
        ref = reference_loss(x_ref, labels, mask, **opts)
        if ref is None:
            _assert_zero_loss(lambda f, o=opts: supcon_loss(f, labels, mask, **o), x)
            continue
        (ref_grad,) = torch.autograd.grad(ref, x_ref)
        msg = f"t={temperature} shape={tuple(x.shape)}"
        assert_close(ours[0], ref.detach(), rtol=1e-7, atol=1e-15, msg=msg)
        assert_close(ours[1], ref_grad, rtol=1e-7, atol=1e-12, msg=msg)


# ----------------------------------------------------------------------------- analytic values


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("contrast_mode", CONTRAST_MODES)
@pytest.mark.parametrize("batch,views", [(2, 1), (3, 2), (5, 3), (8, 2)])
def test_identical_embeddings_give_log_n_minus_1(batch, views, contrast_mode, variant):
    # Every logit is 1/t, so each anchor's softmax is uniform over its N - 1 others:
    # L_out = -mean_p log(1/(N-1)) = log(N-1) and L_in = -log(|P|/|P| * 1/(N-1)) = log(N-1).
    g = torch.Generator().manual_seed(batch)
    direction = torch.randn(8, generator=g, dtype=torch.float64)
    scales = torch.rand(batch, views, 1, generator=g, dtype=torch.float64) + 0.1
    labels = torch.zeros(batch, dtype=torch.long)
    labels[batch // 2 :] = 1  # any labels with at least one positive pair
    for temperature in TEMPERATURES:
        loss = supcon_loss(
            scales * direction,
            labels,
            temperature=temperature,
            variant=variant,
            contrast_mode=contrast_mode,
        )
        assert_close(loss.item(), math.log(batch * views - 1), rtol=1e-12, atol=0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("views", [1, 2, 3])
def test_orthogonal_embeddings_closed_form(views, variant):
    # Sample b is the basis vector e_b (all its views identical), so z_i.z_a = 1 for a sample's
    # own views and 0 for every other sample's. For an anchor of a sample in a class of size c:
    #   |P| = V*c - 1 (V-1 own views with logit 1/t, V*(c-1) class-mates with logit 0),
    #   denominator = (V-1) e^{1/t} + V(B-1)                       (the other B-1 samples give e^0),
    #   L_out = log(denominator) - (V-1)/(t |P|),
    #   L_in  = log(denominator) - log( ((V-1) e^{1/t} + V(c-1)) / |P| ).
    # Anchors with |P| = 0 (V = 1, c = 1) are left out of the mean.
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    batch = len(labels)
    features = torch.eye(batch, dtype=torch.float64)[:, None, :].expand(batch, views, batch)
    for t in TEMPERATURES:
        expected = []
        for b in range(batch):
            c = int((labels == labels[b]).sum())
            n_pos = views * c - 1
            if n_pos == 0:
                continue
            log_den = math.log((views - 1) * math.exp(1 / t) + views * (batch - 1))
            if variant == "out":
                per_anchor = log_den - (views - 1) / (t * n_pos)
            else:
                per_anchor = log_den - math.log(
                    ((views - 1) * math.exp(1 / t) + views * (c - 1)) / n_pos
                )
            expected.append(per_anchor)  # the same for each of the V views of sample b
        loss = supcon_loss(features, labels, temperature=t, variant=variant)
        assert_close(loss.item(), sum(expected) / len(expected), rtol=1e-12, atol=0)


def test_hand_computed_three_points():
    # After normalising, z0 = z1 = (1, 0), z2 = (0, 1); labels (0, 0, 1), t = 1. Anchor 0:
    # P = {1}, A = {1, 2}, logits 1 and 0, so L = -log(e / (e + 1)) = log(1 + 1/e); anchor 1 the
    # same; anchor 2 has no positive and is left out of the mean.
    features = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    loss = supcon_loss(features, torch.tensor([0, 0, 1]), temperature=1.0)
    assert_close(loss.item(), math.log1p(math.exp(-1.0)), rtol=1e-14, atol=0)
    # With one positive per anchor L_in = L_out.
    loss_in = supcon_loss(features, torch.tensor([0, 0, 1]), temperature=1.0, variant="in")
    assert_close(loss_in.item(), math.log1p(math.exp(-1.0)), rtol=1e-14, atol=0)


def test_gradient_matches_paper_formula():
    # Only anchor 0 has positives (a one-row mask), so the loss is L_0 and z_0 enters only as its
    # anchor. Paper Sec. 3.2.3: dL_0/dz_0 = (1/t) [sum_p z_p (P_0p - 1/|P|) + sum_n z_n P_0n];
    # for unit-norm input w_0 = z_0 the gradient w.r.t. w_0 is (I - z_0 z_0^T) dL_0/dz_0.
    g = torch.Generator().manual_seed(7)
    z = F.normalize(torch.randn(6, 5, generator=g, dtype=torch.float64), dim=1)
    mask = torch.zeros(6, 6, dtype=torch.long)
    mask[0, [1, 2]] = 1
    t = 0.5
    _, grad = _value_and_grad(lambda f: supcon_loss(f, mask=mask, temperature=t), z)
    p_0 = torch.softmax(z[1:] @ z[0] / t, dim=0)  # P_0a over A(0) = {1..5}
    weights = p_0.clone()
    weights[:2] -= 1 / 2  # positives 1, 2
    d_z0 = (weights[:, None] * z[1:]).sum(0) / t
    expected = d_z0 - z[0] * (z[0] @ d_z0)
    assert_close(grad[0], expected, rtol=1e-10, atol=1e-14)


# ----------------------------------------------------------------------------- invariances


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("contrast_mode", CONTRAST_MODES)
@pytest.mark.parametrize("views", [2, 3])
def test_simclr_is_supcon_with_sample_ids(views, contrast_mode, variant):
    g = torch.Generator().manual_seed(views)
    features = torch.randn(6, views, 5, generator=g, dtype=torch.float64)
    opts = dict(temperature=0.2, variant=variant, contrast_mode=contrast_mode)
    simclr = supcon_loss(features, **opts)
    for ids in (torch.arange(6), torch.arange(6) * 3 + 1):  # any distinct labels will do
        assert_close(simclr, supcon_loss(features, ids, **opts), rtol=1e-14, atol=0)
    assert_close(simclr, supcon_loss(features, mask=torch.eye(6), **opts), rtol=1e-14, atol=0)


def test_simclr_equals_nt_xent_cross_entropy():
    # NT-Xent (SimCLR) with two views: cross-entropy of each view against its partner among the
    # 2B - 1 other views.
    g = torch.Generator().manual_seed(3)
    batch, t = 7, 0.3
    features = torch.randn(batch, 2, 4, generator=g, dtype=torch.float64)
    z = F.normalize(torch.cat([features[:, 0], features[:, 1]]), dim=1)  # [2B, D]
    logits = (z @ z.T / t).fill_diagonal_(-math.inf)
    target = (torch.arange(2 * batch) + batch) % (2 * batch)
    assert_close(
        supcon_loss(features, temperature=t), F.cross_entropy(logits, target), rtol=1e-12, atol=0
    )


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", ["labels_mixed", "mask_nonsymmetric"])
def test_permutation_invariance(kind, variant):
    g = torch.Generator().manual_seed(11)
    features = torch.randn(6, 3, 5, generator=g, dtype=torch.float64)
    labels, mask = _positives(kind, 6, g)
    perm = torch.randperm(6, generator=g)
    p_labels = None if labels is None else labels[perm]
    p_mask = None if mask is None else mask[perm][:, perm]
    for mode in CONTRAST_MODES:
        opts = dict(temperature=0.1, variant=variant, contrast_mode=mode)
        loss = supcon_loss(features, labels, mask, **opts)
        samples = supcon_loss(features[perm], p_labels, p_mask, **opts)
        dims = supcon_loss(features[:, :, torch.randperm(5, generator=g)], labels, mask, **opts)
        assert_close(samples, loss, rtol=1e-12, atol=0)
        assert_close(dims, loss, rtol=1e-12, atol=0)
    # Every view is an anchor in "all" mode, so the order of the views does not matter either.
    views = supcon_loss(features[:, [2, 0, 1]], labels, mask, temperature=0.1, variant=variant)
    assert_close(
        views,
        supcon_loss(features, labels, mask, temperature=0.1, variant=variant),
        rtol=1e-12,
        atol=0,
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_invariant_to_rescaling_rows(variant):
    g = torch.Generator().manual_seed(5)
    features = torch.randn(5, 2, 4, generator=g, dtype=torch.float64)
    scales = 10.0 ** (6 * torch.rand(5, 2, 1, generator=g, dtype=torch.float64) - 3)
    labels = torch.tensor([0, 1, 0, 1, 2])
    loss = supcon_loss(features, labels, variant=variant)
    assert_close(supcon_loss(features * scales, labels, variant=variant), loss, rtol=1e-12, atol=0)
    normalised = F.normalize(features, dim=-1)  # normalising again changes nothing
    assert_close(supcon_loss(normalised, labels, variant=variant), loss, rtol=1e-12, atol=0)


def test_inputs_not_modified():
    features = torch.randn(4, 2, 3)
    mask = torch.eye(4, dtype=torch.bool)
    labels = torch.tensor([0, 1, 0, 1])
    before = (features.clone(), mask.clone(), labels.clone())
    supcon_loss(features, mask=mask)
    supcon_loss(features, labels, positives_cap=1)
    for now, then in zip((features, mask, labels), before, strict=True):
        assert torch.equal(now, then)


# ----------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("contrast_mode", CONTRAST_MODES)
@pytest.mark.parametrize("kind", ["labels_mixed", "mask_nonsymmetric", "none"])
def test_gradcheck(kind, contrast_mode, variant):
    g = torch.Generator().manual_seed(2)
    features = torch.randn(3, 2, 4, generator=g, dtype=torch.float64, requires_grad=True)
    labels, mask = _positives(kind, 3, g)
    opts = dict(temperature=0.5, variant=variant, contrast_mode=contrast_mode)
    assert torch.autograd.gradcheck(lambda f: supcon_loss(f, labels, mask, **opts), (features,))


def test_gradcheck_with_positives_cap():
    features = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 0, 1])

    def loss(f: torch.Tensor) -> torch.Tensor:  # a fresh seeded generator: the same kept set
        gen = torch.Generator().manual_seed(0)
        return supcon_loss(f, labels, temperature=0.5, positives_cap=2, generator=gen)

    assert torch.autograd.gradcheck(loss, (features,))


# ----------------------------------------------------------------------------- no positives


@pytest.mark.parametrize(
    "shape,labels,mask",
    [
        ((4, 1, 3), torch.arange(4), None),  # singleton classes, one view
        ((4, 3), None, None),  # SimCLR on [N, D]: no other views
        ((1, 1, 3), torch.zeros(1, dtype=torch.long), None),
        ((3, 2, 3), None, torch.zeros(3, 3)),  # an all-zero mask, two views
        ((3, 1, 3), None, torch.eye(3, dtype=torch.bool)),  # only itself, and that never counts
    ],
)
@pytest.mark.parametrize("variant", VARIANTS)
def test_no_positives_gives_exact_zero(shape, labels, mask, variant):
    features = torch.randn(shape)
    for cap in (None, 1):
        _assert_zero_loss(
            lambda f, c=cap: supcon_loss(f, labels, mask, variant=variant, positives_cap=c),
            features,
        )


@pytest.mark.parametrize("path", ["dense", "tiled", "ref_features"])
@pytest.mark.parametrize("dtype,value", [(torch.float16, 50.0), (torch.float32, 1e38)], ids=["fp16", "fp32"])
def test_no_positives_zero_stays_exact_for_large_finite_features(path, dtype, value):
    # 64 x 128 fp16 features of 50 sum to 409,600, past fp16's largest 65,504; float32 rows of 1e38
    # sum past 3.4e38. The zero must not go through such a sum (inf * 0 is NaN).
    features = torch.full((64, 1, 128), value, dtype=dtype)
    kwargs = {"impl": "tiled" if path == "tiled" else "dense"}
    refs = torch.full((3, 128), value, dtype=dtype, requires_grad=True)
    if path == "ref_features":  # a queue whose keys share no label with the batch
        kwargs.update(ref_features=refs, ref_labels=torch.tensor([100, 101, 102]))
    x = features.clone().requires_grad_(True)
    loss = supcon_loss(x, torch.arange(64), **kwargs)
    loss.backward()
    assert loss.item() == 0.0 and math.copysign(1.0, loss.item()) == 1.0  # +0.0, not NaN nor -0.0
    assert loss.dtype == torch.float32
    assert torch.equal(x.grad, torch.zeros_like(x))
    if path == "ref_features":
        assert torch.equal(refs.grad, torch.zeros_like(refs))  # the keys are on the graph too


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("labels", [torch.tensor([0, 0, 1]), torch.arange(3)], ids=["pos", "nopos"])
def test_result_dtype(labels, dtype):
    # Documented: "a scalar float32 (float64 for float64 input)", with positives or without.
    loss = supcon_loss(torch.randn(3, 4).to(dtype), labels)
    assert loss.shape == ()
    assert loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)


# ----------------------------------------------------------------------------- positives_cap


@pytest.mark.parametrize("variant", VARIANTS)
def test_cap_at_least_max_positives_equals_no_cap(variant):
    g = torch.Generator().manual_seed(4)
    features = torch.randn(6, 2, 5, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 2])  # at most 3 * 2 - 1 = 5 positives per anchor
    uncapped = supcon_loss(features, labels, variant=variant)
    for cap in (5, 6, 11, 12, 100):  # from max |P| = 5 up to N - 1 = 11, N and beyond
        gen = torch.Generator().manual_seed(cap)
        capped = supcon_loss(features, labels, variant=variant, positives_cap=cap, generator=gen)
        assert_close(capped, uncapped, rtol=1e-14, atol=0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cap", [1, 2, 3, 4])
def test_cap_on_identical_embeddings(cap, variant):
    # All logits are equal, so which positives are kept does not matter: anchor i's softmax is
    # uniform over A(i) = kept positives + negatives, and L_out = L_in = log(min(cap, |P|) + |N|).
    # Were dropped positives left in the denominator, it would be log(|P| + |N|) = log(N - 1).
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    views = 2
    features = torch.ones(len(labels), views, 3)
    expected = []
    for lab in labels.tolist():
        n_pos = views * int((labels == lab).sum()) - 1
        n_neg = views * len(labels) - 1 - n_pos
        expected += [math.log(min(cap, n_pos) + n_neg)] * views
    loss = supcon_loss(features, labels, variant=variant, positives_cap=cap)
    assert_close(loss.item(), sum(expected) / len(expected), rtol=1e-6, atol=0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cap", [1, 2])
def test_cap_keeps_a_random_subset_of_exactly_min_k_positives(cap, variant):
    # Only anchors 0 (positives 1, 2, 3) and 4 (positives 0, 5) have positives (a one-way mask), so
    # there are few possible kept sets: the loss must equal the reference for exactly one kept set
    # with min(cap, |P|) positives per anchor (values and gradients), and the seeds must reach
    # every subset of anchor 0's positives.
    g = torch.Generator().manual_seed(9)
    features = torch.randn(6, 4, generator=g, dtype=torch.float64)
    mask = torch.zeros(6, 6, dtype=torch.long)
    mask[0, [1, 2, 3]] = 1
    mask[4, [0, 5]] = 1
    choices = {
        (a, 0): [set(c) for c in itertools.combinations([(p, 0) for p in ps], min(cap, len(ps)))]
        for a, ps in ((0, [1, 2, 3]), (4, [0, 5]))
    }
    references = []
    for kept0, kept4 in itertools.product(choices[(0, 0)], choices[(4, 0)]):
        kept = {(0, 0): kept0, (4, 0): kept4}
        x = features.clone().requires_grad_(True)
        ref = reference_loss(x, mask=mask, temperature=0.3, variant=variant, kept=kept)
        references.append((kept, ref.detach(), torch.autograd.grad(ref, x)[0]))

    seen = []
    for seed in range(30):
        gen = torch.Generator().manual_seed(seed)
        value, grad = _value_and_grad(
            lambda f, gen=gen: supcon_loss(
                f, mask=mask, temperature=0.3, variant=variant, positives_cap=cap, generator=gen
            ),
            features,
        )
        matches = [r for r in references if math.isclose(value, r[1], rel_tol=1e-9)]
        assert len(matches) == 1, f"seed {seed}: {value.item()} matches {len(matches)} kept sets"
        assert_close(grad, matches[0][2], rtol=1e-7, atol=1e-12)
        seen.append(frozenset(matches[0][0][(0, 0)]))
    assert set(seen) == {frozenset(c) for c in choices[(0, 0)]}


@pytest.mark.parametrize("variant", VARIANTS)
def test_cap_seeded_generator_is_reproducible(variant):
    features = torch.randn(6, 2, 5, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 0, 1, 1])

    def run(seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return supcon_loss(features, labels, variant=variant, positives_cap=2, generator=gen)

    assert torch.equal(run(3), run(3))
    assert len({run(seed).item() for seed in range(8)}) > 1  # the draw does depend on the seed


# ----------------------------------------------------------------------------- mixed precision


def _near_identical(batch: int, views: int, noise: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 1, 16, generator=g) + noise * torch.randn(batch, views, 16, generator=g)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("noise", [0.0, 1e-2, 1e-1])
def test_autocast_bfloat16_large_logits(noise, variant):
    # t = 0.01 puts logits near 100: exp(100) overflows float32, so this only stays finite if the
    # loss works in log space. Identical vectors (noise 0) must give log(N - 1) to float32
    # precision. Otherwise the bfloat16 matmul rounds z_i.z_a ~ 1 by ~2^-9, i.e. logits by ~0.2 at
    # t = 0.01; we measured up to 0.045 (1.6% of the loss) over seeds, so allow 0.1.
    features = _near_identical(8, 2, noise, seed=int(noise * 100))
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    reference = supcon_loss(features.double(), labels, temperature=0.01, variant=variant)
    x = features.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = supcon_loss(x, labels, temperature=0.01, variant=variant)
    loss.backward()
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    assert_close(loss.double(), reference, rtol=0, atol=1e-4 if noise == 0 else 0.1)


@pytest.mark.parametrize("temperature", [0.01, 0.001])
def test_float32_identical_vectors_tiny_temperature(temperature):
    # Logits of 100 and 1000 would overflow a naive exp; the exact answer is log(N - 1). float32
    # rounds each z_i.z_a by ~1e-7 (measured 3e-8/t on the loss), so allow 1e-6/t.
    x = torch.ones(5, 2, 3, requires_grad=True)
    loss = supcon_loss(x, torch.tensor([0, 0, 1, 1, 2]), temperature=temperature)
    loss.backward()
    assert_close(loss.item(), math.log(9), rtol=0, atol=1e-6 / temperature)
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_input(dtype):
    features = _near_identical(8, 2, 0.1, seed=1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    x = features.to(dtype).requires_grad_(True)
    try:
        loss = supcon_loss(x, labels, temperature=0.05)
        loss.backward()
    except RuntimeError as err:  # an op without a CPU kernel for this dtype
        pytest.skip(f"{dtype} not supported on CPU by this torch: {err}")
    reference = supcon_loss(features.double(), labels, temperature=0.05)
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    # half rounds z to 2^-11 (bfloat16: 2^-8) relative, logits by ~that / t; measured over seeds:
    # up to 1.2e-3 (float16) and 3.9e-3 (bfloat16).
    tol = 0.01 if dtype == torch.float16 else 0.03
    assert_close(loss.double(), reference, rtol=0, atol=tol)


# ----------------------------------------------------------------------------- metric-learning


@pytest.mark.parametrize("temperature", [0.07, 0.5])
@pytest.mark.parametrize("batch,views", [(6, 1), (6, 2), (5, 3)])
def test_matches_pytorch_metric_learning(batch, views, temperature):
    # pml's SupConLoss(t)(embeddings [N, D], labels [N]) normalises, softmaxes over all other rows,
    # takes the mean log-probability of the same-label rows and averages the per-anchor losses that
    # are non-zero (AvgNonZeroReducer), i.e. over anchors with a positive: our variant="out",
    # contrast_mode="all" on the views flattened to [B*V, D] with labels repeated. It returns 0 when
    # the batch has no negative pair at all (all labels equal), where ours does not: not compared.
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    g = torch.Generator().manual_seed(batch * views)
    features = torch.randn(batch, views, 8, generator=g, dtype=torch.float64)
    flat = features.transpose(0, 1).reshape(batch * views, 8)
    pml = pml_losses.SupConLoss(temperature=temperature)
    for labels in (torch.tensor([0, 1, 0, 2, 1, 3])[:batch], torch.arange(batch)):
        if views == 1 and len(set(labels.tolist())) == batch:
            continue  # no positives: both 0, nothing to compare
        expected = pml(flat, labels.repeat(views))
        assert_close(
            supcon_loss(features, labels, temperature=temperature), expected, rtol=1e-10, atol=0
        )
        if views == 1:
            assert_close(
                supcon_loss(flat, labels, temperature=temperature), expected, rtol=1e-10, atol=0
            )


# ----------------------------------------------------------------------------- bad input


def _nan_features() -> torch.Tensor:
    x = torch.randn(4, 2, 3)
    x[1, 0, 2] = math.nan
    return x


def _inf_features() -> torch.Tensor:
    x = torch.randn(4, 2, 3)
    x[3, 1, 0] = -math.inf
    return x


FEATURES = torch.randn(4, 2, 3)
BAD_INPUTS = {  # name: (features, kwargs, regex the message must match)
    "nan": (_nan_features(), {}, r"features.*NaN.*\(4, 2, 3\)"),
    "inf": (_inf_features(), {}, r"features.*inf.*\(4, 2, 3\)"),
    "rank 1": (torch.randn(5), {}, r"features.*\(5,\)"),
    "rank 4": (torch.randn(2, 2, 3, 4), {}, r"features.*\(2, 2, 3, 4\)"),
    "empty": (torch.randn(0, 2, 3), {}, r"features.*\(0, 2, 3\)"),
    "int features": (torch.ones(4, 2, 3, dtype=torch.long), {}, r"features.*int64"),
    "list features": ([[1.0, 2.0]], {}, r"features.*list"),
    "labels too short": (FEATURES, {"labels": torch.tensor([0, 1, 0])}, r"labels.*\[4\].*\(3,\)"),
    "labels too long [N, D]": (
        torch.randn(4, 3),
        {"labels": torch.arange(5)},
        r"labels.*\[4\].*\(5,\)",
    ),
    "labels 2-D": (FEATURES, {"labels": torch.zeros(4, 1, dtype=torch.long)}, r"labels.*\(4, 1\)"),
    "float labels": (FEATURES, {"labels": torch.zeros(4)}, r"labels.*float32"),
    "list labels": (FEATURES, {"labels": [0, 1, 0, 1]}, r"labels.*list"),
    "mask wrong shape": (FEATURES, {"mask": torch.ones(4, 3)}, r"mask.*\[4, 4\].*\(4, 3\)"),
    "mask 3x3 for 4": (FEATURES, {"mask": torch.eye(3)}, r"mask.*\[4, 4\].*\(3, 3\)"),
    "mask above 1": (FEATURES, {"mask": torch.eye(4) * 1.5}, r"mask.*\[0, 1\].*1\.5"),
    "mask with 2": (FEATURES, {"mask": torch.eye(4, dtype=torch.long) * 2}, r"mask.*\[0, 1\].*2"),
    "mask negative": (FEATURES, {"mask": -torch.eye(4)}, r"mask.*\[0, 1\].*-1\.0"),
    "mask nan": (FEATURES, {"mask": torch.full((4, 4), math.nan)}, r"mask.*\[0, 1\].*nan"),
    "labels and mask": (
        FEATURES,
        {"labels": torch.arange(4), "mask": torch.eye(4)},
        r"labels.*mask",
    ),
    "temperature 0": (FEATURES, {"temperature": 0.0}, r"temperature.*0\.0"),
    "temperature < 0": (FEATURES, {"temperature": -0.1}, r"temperature.*-0\.1"),
    "temperature nan": (FEATURES, {"temperature": math.nan}, r"temperature.*nan"),
    "temperature inf": (FEATURES, {"temperature": math.inf}, r"temperature.*inf"),
    "temperature str": (FEATURES, {"temperature": "0.1"}, r"temperature.*'0\.1'"),
    "temperature bool": (FEATURES, {"temperature": True}, r"temperature.*True"),
    "variant": (FEATURES, {"variant": "outside"}, r"variant.*'outside'"),
    "contrast_mode": (FEATURES, {"contrast_mode": "any"}, r"contrast_mode.*'any'"),
    "positives_cap 0": (FEATURES, {"positives_cap": 0}, r"positives_cap.*0"),
    "positives_cap < 0": (FEATURES, {"positives_cap": -2}, r"positives_cap.*-2"),
    "positives_cap float": (FEATURES, {"positives_cap": 1.5}, r"positives_cap.*1\.5"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_value_error(case):
    features, kwargs, message = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=message):
        supcon_loss(features, **kwargs)


def test_module_raises_too():
    with pytest.raises(ValueError, match=r"temperature.*-1"):
        SupConLoss(temperature=-1)(FEATURES)
    with pytest.raises(ValueError, match=r"labels.*\(3,\)"):
        SupConLoss()(FEATURES, torch.arange(3))


# ----------------------------------------------------------------------------- the module


@pytest.mark.parametrize("kind", ["labels_mixed", "mask_nonsymmetric", "none"])
def test_module_equals_function(kind):
    g = torch.Generator().manual_seed(6)
    features = torch.randn(5, 2, 4, generator=g, dtype=torch.float64)
    labels, mask = _positives(kind, 5, g)
    opts = dict(temperature=0.3, variant="in", contrast_mode="one")
    module = SupConLoss(**opts)
    assert_close(
        module(features, labels, mask), supcon_loss(features, labels, mask, **opts), rtol=0, atol=0
    )
    # With a cap the module draws from the global generator; seed it the same way for both.
    torch.manual_seed(0)
    capped = SupConLoss(positives_cap=1, **opts)(features, labels, mask)
    torch.manual_seed(0)
    expected = supcon_loss(features, labels, mask, positives_cap=1, **opts)
    assert_close(capped, expected, rtol=0, atol=0)
    assert list(module.parameters()) == [] and module.state_dict() == {}


def test_module_repr():
    text = repr(SupConLoss(temperature=0.07, variant="in", contrast_mode="one", positives_cap=3))
    assert text.startswith("SupConLoss(")
    for part in ("temperature=0.07", "variant='in'", "contrast_mode='one'", "positives_cap=3"):
        assert part in text


def test_cap_draws_the_anchors_own_other_view_like_any_positive():
    """docs/loss.md: with positives_cap=1 and |P(i)| = 8 (3 views, 3 images of the class) an
    anchor keeps a given view of its own image with probability 1/8 = 12.5%, and the page says so."""
    from supcon.losses.supcon import _cap_positives

    batch, views = 6, 3
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    view_sample = torch.arange(batch * views) % batch  # view-major rows, as the loss lays them out
    pos = labels[view_sample][:, None] == labels[view_sample][None, :]
    pos.fill_diagonal_(False)
    assert bool((pos.sum(1) == 8).all())
    own_next = (torch.arange(batch * views) + batch) % (batch * views)  # the same image's next view
    g = torch.Generator().manual_seed(0)
    draws = 4000
    kept = sum(_cap_positives(pos, 1, g)[0][torch.arange(batch * views), own_next].float().mean()
               for _ in range(draws)) / draws
    assert abs(float(kept) - 1 / 8) < 0.01  # 3 sigma of the mean of 72000 Bernoulli(1/8) draws
    doc = (Path(__file__).parents[1] / "docs" / "loss.md").read_text()
    assert "min(k, |P(i)|) / |P(i)|" in doc and "12.5%" in doc and "Table 5" in doc
