"""The tiled SupCon loss (supcon.losses._tiled) against the dense path and a loop written from the paper.

The dense path of ``supcon_loss`` is the ground truth: the tiled one must give the same value and
gradients (float64 to 1e-9 relative, float32 to 1e-5) over the whole option grid, at sizes that
cross the auto threshold and with blocks small enough that every kind of block (diagonal, off-
diagonal, ragged last one, straddling the last anchor) occurs.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.testing import assert_close
from torch.utils._python_dispatch import TorchDispatchMode

from supcon.losses import _tiled, supcon_loss
from supcon.losses import supcon as loss_module

TOL = {torch.float64: 1e-9, torch.float32: 1e-5}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tiles: one thread is faster, and immune to thread barriers on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def small_tiles(monkeypatch):
    """Blocks of at most 7 views and an auto threshold of 40 views: tiny inputs cross both."""
    monkeypatch.setattr(_tiled, "CPU_BLOCK", 7)
    monkeypatch.setattr(_tiled, "CPU_BLOCK_ONE_THREAD", 7)
    monkeypatch.setattr(_tiled, "MASK_CHUNK", 5)
    monkeypatch.setattr(loss_module, "TILED_MIN_VIEWS", 40)


def _positives(kind: str, batch: int, g: torch.Generator):
    """(labels, mask) for one positives kind; masks may be asymmetric with a zero diagonal."""
    labels = torch.randint(0, 4, (batch,), generator=g)
    if kind == "labels":
        return labels, None
    if kind == "mask":
        return None, labels[:, None] == labels[None, :]
    if kind == "asym-mask":
        return None, (torch.rand(batch, batch, generator=g) < 0.3).float()
    return None, None  # SimCLR


def _value_and_grad(features, labels, mask, **kw):
    f = features.detach().clone().requires_grad_(True)
    loss = supcon_loss(f, labels, mask, **kw)
    loss.backward()
    return loss.detach(), f.grad


def _assert_same(a, b, dtype):
    """Values to ``TOL`` relative; gradients to ``TOL`` relative to their largest entry."""
    (va, ga), (vb, gb) = a, b
    tol = TOL[dtype]
    assert va.dtype == vb.dtype
    assert_close(vb, va, rtol=tol, atol=0.0)
    assert_close(gb, ga, rtol=tol, atol=tol * float(ga.abs().max()))


GRID = list(enumerate(itertools.product(
    ("out", "in"), ("all", "one"), ("labels", "mask", "asym-mask", "none"), (1, 2, 3)
)))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("seed,options", GRID)
def test_auto_tiled_equals_dense_over_option_grid(small_tiles, dtype, seed, options):
    variant, contrast_mode, kind, views = options
    g = torch.Generator().manual_seed(seed)
    for batch in (11, 41 // views + 1):  # N below, then above the (patched) threshold
        labels, mask = _positives(kind, batch, g)
        features = torch.randn(batch, views, 5, generator=g, dtype=dtype) * 3
        if views == 1:
            features = features[:, 0]  # also the [N, D] form
        tau = (0.05, 0.1, 0.3, 1.0)[seed % 4]
        kw = dict(temperature=tau, variant=variant, contrast_mode=contrast_mode)
        dense = _value_and_grad(features, labels, mask, impl="dense", **kw)
        if dense[0] == 0:  # no anchor has a positive: nothing to compare (tested below)
            continue
        _assert_same(dense, _value_and_grad(features, labels, mask, impl="auto", **kw), dtype)
        _assert_same(dense, _value_and_grad(features, labels, mask, impl="tiled", **kw), dtype)


def test_auto_switches_at_the_threshold(small_tiles, monkeypatch):
    calls = []
    real = _tiled.tiled_supcon_loss
    monkeypatch.setattr(_tiled, "tiled_supcon_loss", lambda *a, **k: calls.append(1) or real(*a, **k))
    labels = torch.arange(20) % 3
    supcon_loss(torch.randn(19, 2, 4), labels[:19])  # 38 views: dense
    assert calls == []
    supcon_loss(torch.randn(20, 2, 4), labels)  # 40 views: tiled
    assert calls == [1]
    supcon_loss(torch.randn(20, 2, 4), labels, impl="dense")
    supcon_loss(torch.randn(3, 2, 4), labels[:3], impl="tiled")
    assert calls == [1, 1]


def _paper_loss(z: torch.Tensor, sample: list[int], same, anchors: int, tau: float, variant: str):
    """Mean over anchors with positives of L_out / L_in, one anchor at a time (paper, eq. 2/3)."""
    terms = []
    for i in range(anchors):
        others = [a for a in range(len(sample)) if a != i]
        positives = [p for p in others if same(sample[i], sample[p])]
        if not positives:
            continue
        log_den = torch.logsumexp(torch.stack([z[i] @ z[a] / tau for a in others]), 0)
        logits = torch.stack([z[i] @ z[p] / tau for p in positives])
        if variant == "out":
            terms.append(log_den - logits.mean())
        else:
            terms.append(log_den - (torch.logsumexp(logits, 0) - math.log(len(positives))))
    return torch.stack(terms).mean()


@pytest.mark.parametrize("variant", ["out", "in"])
@pytest.mark.parametrize("contrast_mode", ["all", "one"])
def test_tiled_matches_loop_from_the_paper(small_tiles, variant, contrast_mode):
    g = torch.Generator().manual_seed(1)
    batch, views = 9, 3
    mask = torch.rand(batch, batch, generator=g) < 0.4  # asymmetric on purpose
    mask[0] = False  # sample 0's views have no positive: left out of the mean, still contrasts
    features = torch.randn(batch, views, 6, generator=g, dtype=torch.float64, requires_grad=True)
    loss = supcon_loss(features, mask=mask, temperature=0.2, variant=variant,
                       contrast_mode=contrast_mode, impl="tiled")
    (grad,) = torch.autograd.grad(loss, features)

    f = features.detach().clone().requires_grad_(True)
    z = torch.nn.functional.normalize(f.transpose(0, 1).reshape(batch * views, -1), dim=1)
    sample = [n % batch for n in range(batch * views)]
    anchors = batch if contrast_mode == "one" else batch * views
    ref = _paper_loss(z, sample, lambda i, j: bool(mask[i, j]), anchors, 0.2, variant)
    (ref_grad,) = torch.autograd.grad(ref, f)
    assert_close(loss, ref, rtol=1e-12, atol=0.0)
    assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("variant", ["out", "in"])
def test_tiled_gradcheck(small_tiles, variant):
    g = torch.Generator().manual_seed(2)
    features = torch.randn(8, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 2, 1, 1, 3, 0])
    assert torch.autograd.gradcheck(
        lambda f: supcon_loss(f, labels, temperature=0.5, variant=variant, impl="tiled"),
        (features,),
    )


@pytest.mark.parametrize("variant", ["out", "in"])
@pytest.mark.parametrize("kind", ["labels", "asym-mask"])
def test_custom_backward_gradcheck_on_unit_rows(small_tiles, variant, kind):
    """The autograd.Function alone, so no normalisation projects its errors away."""
    g = torch.Generator().manual_seed(8)
    labels, mask = _positives(kind, 10, g)
    z = torch.nn.functional.normalize(torch.randn(20, 3, generator=g, dtype=torch.float64), dim=1)
    pos = _tiled.Positives(10, 2, labels, mask, z.device, torch.float64)
    assert torch.autograd.gradcheck(
        lambda x: _tiled.tiled_supcon_loss(x, pos, 15, 0.5, variant, block=6),
        (z.requires_grad_(True),),
    )


def test_no_positive_gives_differentiable_zero(small_tiles):
    features = torch.randn(50, 4, requires_grad=True)  # one view each, all labels distinct
    loss = supcon_loss(features, torch.arange(50), impl="tiled")
    loss.backward()
    assert loss.item() == 0.0 and loss.dtype == torch.float32
    assert torch.equal(features.grad, torch.zeros_like(features))


@pytest.mark.parametrize("kw", [dict(positives_cap=2), dict(temperature=0.001)])
def test_declined_options_fall_back_to_dense(small_tiles, kw):
    g = torch.Generator().manual_seed(4)
    features = torch.randn(30, 2, 8, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (30,), generator=g)
    dense = supcon_loss(features, labels, impl="dense", generator=torch.Generator().manual_seed(0),
                        **kw)
    with pytest.warns(UserWarning, match="dense path"):
        tiled = supcon_loss(features, labels, impl="tiled",
                            generator=torch.Generator().manual_seed(0), **kw)
    assert torch.equal(dense, tiled)


def test_small_temperature_float32_runs_in_float64_and_matches(small_tiles):
    assert _tiled.compute_dtype(torch.float32, 0.1) == torch.float32
    assert _tiled.compute_dtype(torch.float32, 0.02) == torch.float32
    assert _tiled.compute_dtype(torch.float32, 0.01) == torch.float64
    assert _tiled.compute_dtype(torch.float64, 0.001) is None
    g = torch.Generator().manual_seed(5)
    # Both views of every sample equal: s_ij = 1/tau = 100 for them, and exp(100) overflows
    # float32 (max ~exp(88.7)); the dense path survives through its max-shifted logsumexp.
    features = torch.randn(30, 1, 8, generator=g).expand(30, 2, 8).contiguous()
    labels = torch.randint(0, 3, (30,), generator=g)
    kw = dict(temperature=0.01)
    _assert_same(_value_and_grad(features, labels, None, impl="dense", **kw),
                 _value_and_grad(features, labels, None, impl="tiled", **kw), torch.float32)


def test_bfloat16_input(small_tiles):
    g = torch.Generator().manual_seed(6)
    features = torch.randn(30, 2, 16, generator=g)
    labels = torch.randint(0, 3, (30,), generator=g)
    tiled = supcon_loss(features.bfloat16(), labels, impl="tiled")
    assert tiled.dtype == torch.float32
    assert_close(tiled, supcon_loss(features, labels, impl="dense"), rtol=2e-2, atol=0.0)


class _LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an aten op returns."""

    largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("kind", ["labels", "none"])
def test_memory_is_linear_in_views(monkeypatch, kind):
    """No op of forward or backward makes a tensor bigger than max(N * D, block^2)."""
    monkeypatch.setattr(_tiled, "CPU_BLOCK", 64)
    monkeypatch.setattr(_tiled, "CPU_BLOCK_ONE_THREAD", 64)
    batch, views, dim = 300, 2, 16
    features = torch.randn(batch, views, dim, requires_grad=True)
    labels = torch.randint(0, 10, (batch,)) if kind == "labels" else None
    with _LargestTensor() as mode:
        supcon_loss(features, labels, impl="tiled").backward()
    assert mode.largest <= batch * views * dim
    with _LargestTensor() as dense_mode:  # the same probe does see the dense path's N^2
        supcon_loss(features, labels, impl="dense").backward()
    assert dense_mode.largest >= (batch * views) ** 2


def test_default_blocks_at_the_default_threshold():
    """Real block size, a ragged last block, ``impl="auto"`` at ``TILED_MIN_VIEWS`` views."""
    g = torch.Generator().manual_seed(7)
    batch = loss_module.TILED_MIN_VIEWS // 2 + 3
    features = torch.randn(batch, 2, 8, generator=g)
    labels = torch.randint(0, 50, (batch,), generator=g)
    _assert_same(_value_and_grad(features, labels, None, impl="dense"),
                 _value_and_grad(features, labels, None, impl="auto"), torch.float32)


def test_bad_impl_and_bad_input_raise(small_tiles):
    features = torch.randn(30, 2, 8)
    with pytest.raises(ValueError, match="impl"):
        supcon_loss(features, impl="fast")
    with pytest.raises(ValueError, match="labels"):
        supcon_loss(features, torch.arange(29), impl="tiled")
    with pytest.raises(ValueError, match="mask"):
        supcon_loss(features, mask=torch.full((30, 30), 2), impl="tiled")
    with pytest.raises(ValueError, match="NaN"):
        supcon_loss(features.masked_fill(features > 2, math.nan), impl="tiled")
    with pytest.raises(ValueError, match="temperature"):
        supcon_loss(features, temperature=math.inf, impl="tiled")


def test_create_graph_raises_instead_of_dropping_curvature(small_tiles):
    # Double backward through the tiled path would silently miss the loss's own second
    # derivative; the dense path supports it and is the documented way.
    z = torch.randn(12, 2, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.arange(12) % 3
    loss = supcon_loss(z, labels, impl="tiled")
    with pytest.raises(RuntimeError, match="impl='dense'"):
        torch.autograd.grad(loss, z, create_graph=True)
    (g,) = torch.autograd.grad(supcon_loss(z, labels, impl="dense"), z, create_graph=True)
    (gg,) = torch.autograd.grad(g.square().sum(), z)
    assert torch.isfinite(gg).all() and gg.abs().sum() > 0


def test_mask_positives_are_counted_in_float32_under_cpu_autocast():
    """bf16 holds integers exactly only up to 256: counting a mask's positives under autocast
    would round (565 -> 567 at B = 1024) and move the loss; the tiled path runs in float32, as
    the dense path does."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (1024,), generator=g)  # ~512 positives per anchor
    centres = torch.randn(2, 32, generator=g)  # positives alike: their mean logit weighs in the loss
    features = (centres[labels] + 0.5 * torch.randn(1024, 32, generator=g)).unsqueeze(1)
    mask = labels[:, None] == labels[None, :]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = supcon_loss(features, mask=mask, impl="tiled")
        dense = supcon_loss(features, mask=mask, impl="dense")
    assert mixed.dtype == dense.dtype == torch.float32
    assert_close(mixed, dense, rtol=TOL[torch.float32], atol=0)
    assert_close(mixed, supcon_loss(features, mask=mask, impl="tiled"), rtol=1e-6, atol=0)
