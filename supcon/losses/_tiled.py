"""Exact SupCon loss in O(N * block) memory: the tiled path behind ``supcon_loss(impl="tiled")``.

Same notation as :mod:`supcon.losses`: N views laid out view-major (row n is view n // B of sample
n % B), the first Na rows are the anchors, s_ij = z_i . z_j / tau.

How it avoids the [Na, N] matrix:

* The similarity matrix is symmetric and the anchors are a prefix of the rows, so only blocks
  (I, J) with J >= I are visited. Each block's ``exp`` feeds the row sums of I and, transposed,
  the column sums of J: with k blocks per side the forward costs (k+1)/2k of an N x N x D
  product, the backward (recompute + the two gradient products) three times that; the dense
  path needs three whole products.
* The softmax sums need no running maximum: rows are unit vectors, so s_ij lies in
  [-1/tau, 1/tau], and for ``1/tau <= MAX_INV_TAU[dtype]`` plain ``exp(s_ij)`` can neither
  underflow nor overflow, even summed over 2^31 views. Small temperatures run in float64,
  tinier ones fall back to the dense path (see :func:`compute_dtype`).
* Positives come from sample-level structure, never an [N, N] mask: a block's positives compare
  the group ids (labels, or sample ids without labels) of its rows and columns, or index a
  user's [B, B] mask by sample id. In the forward, L_out's mean positive logit needs no block
  work: it is z_i . (class sum of its positives) / tau (or a [B, B] x [B, D] product for a
  mask); L_in's log-sum-exp over positives is accumulated per block. The backward subtracts
  the positive term per block element, as the dense path does (see ``backward``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

# Largest 1/tau for which exp(s), |s| <= 1/tau, stays a normal number in each dtype, also when
# 2^31 of them are summed: float32 normals span exp(-87.3) to exp(88.7), float64 exp(-708) to
# exp(709.8); ln(2^31) = 21.5.
MAX_INV_TAU = {torch.float32: 64.0, torch.float64: 650.0}
# Largest block side. On one CPU thread 512 (1 MB, stays in L2) was 10% faster than 1024 or
# 2048 at N = 16384; with more threads big blocks mean fewer parallel regions, each a thread
# barrier that costs milliseconds when the cores are shared. Small blocks also let the triangle
# skip more of the matrix: see default_block. GPUs want big tiles so that kernel launches do
# not dominate (not measured here: no GPU).
CPU_BLOCK_ONE_THREAD = 512
CPU_BLOCK = 2048
GPU_BLOCK = 8192
MASK_CHUNK = 4096  # rows of a user's [B, B] mask turned into floats at a time


def compute_dtype(dtype: torch.dtype, temperature: float) -> torch.dtype | None:
    """The dtype the tiled path computes in for ``dtype`` input, or None if it cannot be exact.

    float32 (and half) input computes in float32 when tau >= 1/64, else in float64; below
    tau = 1/650 even float64 could overflow and the caller must use the dense path.
    """
    base = torch.float64 if dtype == torch.float64 else torch.float32
    for candidate in (base, torch.float64):
        if 1.0 / temperature <= MAX_INV_TAU[candidate]:
            return candidate
    return None


def default_block(device: torch.device, n: int) -> int:
    """Block side for N views: up to the device's maximum, but keeping >= 8 blocks per side
    (the triangle then skips >= 44% of the matrix), and never below half the maximum."""
    if device.type != "cpu":
        largest = GPU_BLOCK
    else:
        largest = CPU_BLOCK if torch.get_num_threads() > 1 else CPU_BLOCK_ONE_THREAD
    return max(largest // 2, min(largest, n // 8))


class Positives:
    """Who is a positive of whom, from sample-level data, with no [N, N] matrix.

    Row n of the views belongs to sample n % B. Either every sample has a group (its label, or its
    own id for SimCLR) and same-group views are positives, or a [B, B] ``mask`` says it. A view is
    never its own positive.
    """

    def __init__(self, batch: int, views: int, labels: Tensor | None, mask: Tensor | None,
                 device: torch.device, dtype: torch.dtype) -> None:
        self.batch, self.views = batch, views
        self.sample = torch.arange(batch * views, device=device) % batch  # [N]
        self.mask = None
        if mask is not None:
            self.mask = mask.to(device=device, dtype=torch.bool)  # [B, B]
            self.self_pos = self.mask.diagonal().to(dtype)[self.sample]  # [N]
            self.symmetric = bool(torch.equal(self.mask, self.mask.T))
        else:
            if labels is None:
                labels = torch.arange(batch, device=device)
            groups = torch.unique(labels.to(device), return_inverse=True)[1]  # [B] in [0, K)
            self.group = groups[self.sample]  # [N]
            self.num_groups = int(groups.max()) + 1
            self.symmetric = True

    def row_sum(self, x: Tensor) -> Tensor:
        """``out[i] = sum of x[j] over the positives j of row i``; x is [N, F]."""
        if self.mask is None:
            return self._group_sum(x)
        per_sample = x.view(self.views, self.batch, -1).sum(0)  # [B, F]
        return self._mask_matmul(per_sample) - self.self_pos[:, None] * x

    def _mask_matmul(self, per_sample: Tensor) -> Tensor:
        """``(mask @ per_sample)[sample of each view]``, a few mask rows at a time in floats."""
        out = torch.cat([m.to(per_sample.dtype) @ per_sample for m in self.mask.split(MASK_CHUNK)])
        return out[self.sample]

    def _group_sum(self, x: Tensor) -> Tensor:
        totals = x.new_zeros(self.num_groups, x.shape[1]).index_add_(0, self.group, x)
        return totals[self.group] - x

    def block(self, rows: slice, cols: slice) -> Tensor:
        """Bool [len(rows), len(cols)]: is view ``cols[j]`` a positive of view ``rows[i]``?"""
        if self.mask is None:
            p = self.group[rows, None] == self.group[None, cols]
        else:
            p = self.mask[self.sample[rows, None], self.sample[None, cols]]
        if rows == cols:
            p.fill_diagonal_(False)  # a view is never its own positive
        return p

    def counts(self, dtype: torch.dtype) -> Tensor:
        """[N] number of positives of each view."""
        ones = torch.ones(self.sample.shape[0], 1, dtype=dtype, device=self.sample.device)
        return self.row_sum(ones).squeeze(1)


class _Blocks:
    """The upper-triangle blocks (I, J >= I) of the N x N similarity matrix that touch anchors."""

    def __init__(self, z: Tensor, num_anchors: int, temperature: float, block: int) -> None:
        self.z, self.na, self.block = z, num_anchors, block
        self.z_tau = z / temperature  # s_ij = z_tau[i] . z[j]: no pass over each block to scale
        side = min(block, z.shape[0])
        self.buf = torch.empty(side * side, dtype=z.dtype, device=z.device)

    def __iter__(self):
        n, b = self.z.shape[0], self.block
        for r0 in range(0, self.na, b):
            rows = slice(r0, min(r0 + b, n))
            for c0 in range(r0, n, b):
                yield rows, slice(c0, min(c0 + b, n))

    def exp(self, rows: slice, cols: slice) -> Tensor:
        """exp(s) on the block, with self-pairs set to 0 (they are never in A(i))."""
        shape = (rows.stop - rows.start, cols.stop - cols.start)
        e = self.buf[: shape[0] * shape[1]].view(shape)
        torch.mm(self.z_tau[rows], self.z[cols].T, out=e).exp_()
        if rows == cols:
            e.fill_diagonal_(0.0)
        return e


def _forward_sums(blocks: _Blocks, pos: Positives, want_pos: bool) -> tuple[Tensor, Tensor | None]:
    """Per view: sum over A(i) of exp(s_ij), and (L_in) the same over P(i)."""
    n, na = blocks.z.shape[0], blocks.na
    den = blocks.z.new_zeros(n)
    pden = blocks.z.new_zeros(n) if want_pos else None
    for rows, cols in blocks:
        e = blocks.exp(rows, cols)
        den[rows] += e.sum(1)
        transpose = cols != rows and cols.start < na  # the block's columns hold anchors too
        if transpose:
            den[cols] += e.sum(0)
        if pden is not None:
            p = pos.block(rows, cols)
            pden[rows] += (e * p).sum(1)
            if transpose:
                pden[cols] += (e * (p if pos.symmetric else pos.block(cols, rows).T)).sum(0)
    return den, pden


class _TiledSupCon(torch.autograd.Function):
    """Mean over valid anchors of the SupCon loss of unit rows ``z`` [N, D]; see module doc."""

    @staticmethod
    def forward(ctx, z: Tensor, pos: Positives, num_anchors: int, temperature: float,
                variant: str, block: int) -> Tensor:
        blocks = _Blocks(z, num_anchors, temperature, block)
        den, pden = _forward_sums(blocks, pos, want_pos=variant == "in")
        na = num_anchors
        counts = pos.counts(z.dtype)
        valid = counts > 0
        valid[na:] = False
        log_den = den.log()
        if variant == "out":
            pos_logit_sum = (z * pos.row_sum(z)).sum(1) / temperature  # sum_p s_ip
            per_anchor = log_den - pos_logit_sum / counts
        else:  # L_in: log(sum_A e) - log(mean_P e)
            per_anchor = log_den - pden.log() + counts.log()
        ctx.save_for_backward(z, den, pden if pden is not None else den, counts, valid)
        ctx.pos, ctx.na, ctx.tau, ctx.variant, ctx.block = pos, na, temperature, variant, block
        return per_anchor[valid].mean()

    @staticmethod
    def backward(ctx, grad: Tensor):
        # With create_graph=True the engine runs backward in grad mode; once_differentiable alone
        # would then return a gradient that silently lacks the loss's own curvature.
        if torch.is_grad_enabled():
            raise RuntimeError("the tiled SupCon loss is not twice differentiable: use "
                               "impl='dense' for create_graph=True / higher-order gradients")
        return _tiled_backward(ctx, grad)


@once_differentiable
def _tiled_backward(ctx, grad: Tensor):
    """Gradient of :class:`_TiledSupCon` w.r.t. ``z``, recomputing the blocks."""
    z, den, pden, counts, valid = ctx.saved_tensors
    pos = ctx.pos
    weight = torch.where(valid, grad / valid.sum(), 0.0)  # d loss / d per_anchor[i]

    def safe(x: Tensor) -> Tensor:  # avoids 0/0 on rows that are not valid anchors
        return torch.where(valid, x, 1.0)

    # dL/ds_ij = a_i e_ij - b_i p_ij e_ij (L_in) or a_i e_ij - b_i p_ij (L_out), e_ij =
    # exp(s_ij), p_ij = [j in P(i)]. The positive term is subtracted per element, as the
    # dense path does: for clustered features it nearly cancels the softmax term, and a
    # class-sum shortcut would lose that cancellation to float32 rounding.
    a = weight / safe(den)
    b = weight / safe(pden if ctx.variant == "in" else counts)
    dz = torch.zeros_like(z)
    blocks = _Blocks(z, ctx.na, ctx.tau, ctx.block)
    coef = torch.empty_like(blocks.buf)
    for rows, cols in blocks:
        e = blocks.exp(rows, cols)
        c = coef[: e.numel()].view(e.shape)
        p = pos.block(rows, cols)
        pt = p if pos.symmetric else pos.block(cols, rows).T
        torch.add(a[rows, None], a[None, cols], out=c)  # d/ds_ij + d/ds_ji, symmetric
        if ctx.variant == "in":
            c.addcmul_(p, b[rows, None], value=-1).addcmul_(pt, b[None, cols], value=-1)
            e.mul_(c)
        else:
            e.mul_(c)
            e.addcmul_(p, b[rows, None], value=-1).addcmul_(pt, b[None, cols], value=-1)
        dz[rows].addmm_(e, z[cols])
        if cols != rows:
            dz[cols].addmm_(e.T, z[rows])
    return dz.div_(ctx.tau), None, None, None, None, None


def tiled_supcon_loss(z: Tensor, pos: Positives, num_anchors: int, temperature: float,
                      variant: str, block: int | None = None) -> Tensor:
    """SupCon loss of unit rows ``z`` [N, D] (compute dtype) in O(N * block) memory.

    Equals the dense path of :func:`supcon.losses.supcon_loss` (values and gradients) whenever at
    least one anchor has a positive; the caller handles the no-positive case and the options
    this path declines (``positives_cap``, temperatures below :func:`compute_dtype`'s range).
    """
    if block is None:
        block = default_block(z.device, z.shape[0])
    return _TiledSupCon.apply(z.contiguous(), pos, num_anchors, temperature, variant, block)
