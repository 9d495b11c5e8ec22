"""The Supervised Contrastive loss (Khosla et al., 2020), with SimCLR's NT-Xent as the no-label case.

Notation used in comments: B samples, V views each, N = B*V views in all, D feature size,
Na anchors (N when contrast_mode="all", B when "one"). Views are laid out view-major, so
row n of the flattened features is view n // B of sample n % B; anchors are the first Na rows.
With ``gather=True`` the contrasts are the views of every rank (Bt = world_size * B samples,
still view-major) and the anchors this rank's views; reference rows (``ref_features``, K of
them) come after the views. Positives carry a weight w in (0, 1] (1 unless a real-valued mask or
``label_overlap="jaccard"`` says otherwise); the formula is in docs/loss.md.
"""

from __future__ import annotations

import logging
import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import distributed as dist
from . import _tiled
from ._inputs import (
    _check_features_and_options,
    _check_positives,
    _check_refs,
    _check_same_shapes,
    _Refs,
    check_options,
)
from .options import CONTRAST_MODE, IMPL, IMPLS, LABEL_OVERLAP, TEMPERATURE, VARIANT

logger = logging.getLogger(__name__)

# impl="auto" takes the tiled path from this many views (N = B * V) on: on 2 CPU cores it was
# 1.6x faster than the dense path at N = 1024 (3x at 4096), and it needs O(N) memory, not O(N^2).
TILED_MIN_VIEWS = 1024
# Rows of a multi-hot label matrix compared at a time (a [chunk, B] float32 product: 128 MB at
# B = 32768).
_OVERLAP_CHUNK = 1024


def supcon_loss(
    features: Tensor,
    labels: Tensor | None = None,
    mask: Tensor | None = None,
    *,
    temperature: float = TEMPERATURE,
    variant: str = VARIANT,
    contrast_mode: str = CONTRAST_MODE,
    positives_cap: int | None = None,
    generator: torch.Generator | None = None,
    impl: str = IMPL,
    label_overlap: str = LABEL_OVERLAP,
    ref_features: Tensor | None = None,
    ref_labels: Tensor | None = None,
    ref_mask: Tensor | None = None,
    gather: bool = False,
) -> Tensor:
    """Supervised contrastive loss, averaged over anchors that have at least one positive.

    Args:
        features: ``[B, V, D]`` (B samples, V views) or ``[N, D]`` (one view each). L2-normalised
            here, so the scale of each row does not matter.
        labels: ``[B]`` integer class of each sample: views of samples with equal labels are
            positives of one another. Or ``[B, C]`` multi-hot (0/1 or bool; every row needs a 1):
            samples sharing at least one label are positives, weighted by ``label_overlap``.
        mask: ``[B, B]`` matrix of weights in [0, 1] (bool, 0/1 or real); ``mask[i, j] > 0`` makes
            the views of sample j positives of the views of sample i, with that weight. Give
            ``labels`` or ``mask``, never both. With neither, each sample's other views are its
            only positives (SimCLR's NT-Xent).
        temperature: tau in ``exp(z_i . z_j / tau)``; no other rescaling is applied.
        variant: ``"out"`` (L_out, the paper's: mean over positives outside the log) or ``"in"``.
        contrast_mode: ``"all"`` (every view is an anchor) or ``"one"`` (only view 0 is).
        positives_cap: keep at most this many positives per anchor, drawn uniformly at random
            per anchor and call, the anchor's own other views among them with no priority (the
            paper's supplementary Table 5; docs/loss.md); dropped positives leave the
            denominator as well.
        generator: random source for ``positives_cap``.
        impl: ``"dense"`` builds the [Na, N] logits; ``"tiled"`` computes the same value and
            gradients block by block in O(N) memory (see :mod:`supcon.losses._tiled`); ``"auto"``
            picks tiled from ``TILED_MIN_VIEWS`` (1024) views on. The tiled path serves labels
            (also multi-hot with ``label_overlap="any"``), 0/1 masks and SimCLR; it declines
            ``positives_cap``, real-valued mask weights, ``label_overlap="jaccard"`` with
            multi-hot labels, ``ref_features``, ``gather=True`` and temperatures below 1/650 (it
            falls back to dense, warning if ``"tiled"`` was asked for). The tiled gradient is not
            itself differentiable: a backward with ``create_graph=True`` raises
            ``RuntimeError``; use ``"dense"``.
        label_overlap: weight of a positive pair under multi-hot ``labels``: ``"any"`` (1 when
            the two samples share a label) or ``"jaccard"`` (shared labels / labels of either,
            ``|Y_i & Y_j| / |Y_i | Y_j|``). With ``[B]`` labels both give 1 for equal labels.
        ref_features: ``[K, D]`` extra contrasts (a queue or memory bank): never anchors, but
            in every anchor's denominator, and positives as ``ref_labels``/``ref_mask`` say.
            Not gathered under ``gather=True``: give every rank the same set. K may be 0.
        ref_labels: labels of ``ref_features`` in the form of ``labels`` (``[K]`` or
            ``[K, C]``); required when ``labels`` is given with ``ref_features``.
        ref_mask: ``[B, K]`` weights in [0, 1] of the references for each sample; required when
            ``mask`` is given with ``ref_features``. Without labels or mask the references are
            negatives only (as in MoCo).
        gather: contrast this rank's anchors against the views of every rank of the initialised
            ``torch.distributed`` process group (gathered with gradients; labels are gathered too,
            and a ``mask`` is then ``[B, world_size * B]``: this rank's samples against every
            rank's, in rank order). Every rank must pass the same shapes. The value returned on
            each rank is ``world_size * (sum of L(i) over this rank's anchors) / (anchors with a
            positive on all ranks)``: its mean over ranks is the single-process loss of the
            concatenated batch, and after DDP averages the gradients over ranks they equal the
            single-process gradients (docs/loss.md).

    Returns:
        A scalar float32 (float64 for float64 input) tensor. Anchors with no positive are left out
        of the mean; if none has one the result is 0.0 and its gradient is zero.

    Raises:
        ValueError: on wrong shapes, dtypes, non-finite features, mask weights outside [0, 1], a
            multi-hot row with no label, ``ref_features`` of another feature size, ``gather=True``
            without an initialised process group, or unknown options; the message names the
            argument and what was seen.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    _check_features_and_options(features, temperature, variant, contrast_mode, positives_cap)
    check_options(label_overlap=label_overlap)
    if not isinstance(gather, bool):
        raise ValueError(f"gather must be True or False, got {gather!r}")
    if gather and not dist.is_distributed():
        raise ValueError("gather=True needs an initialised torch.distributed process group "
                         "(torch.distributed.init_process_group, e.g. under torchrun); none is")
    if features.dim() == 2:
        features = features.unsqueeze(1)  # [N, D] -> [N, 1, D]
    batch, views, dim = features.shape
    world = dist.world_size() if gather else 1
    labels, mask = _check_positives(labels, mask, batch, world * batch, features.device)
    refs = _check_refs(ref_features, ref_labels, ref_mask, labels, mask, batch, dim, features.device)

    tiled_dtype = _tiled_dtype(impl, batch * views, features.dtype, temperature,
                               _tiled_declines(positives_cap, labels, mask, label_overlap, refs, gather))
    if tiled_dtype is not None:
        return _supcon_tiled(features, labels, mask, label_overlap, temperature, variant,
                             contrast_mode, tiled_dtype)
    return _supcon_dense(features, labels, mask, label_overlap, refs, temperature, variant,
                         contrast_mode, positives_cap, generator, gather)


def _result_dtype(features: Tensor) -> torch.dtype:
    return torch.float64 if features.dtype == torch.float64 else torch.float32


def _attached_zero(features: Tensor, refs: _Refs | None = None) -> Tensor:
    """+0.0 attached to the graph of ``features`` (and the reference rows): backward() works and
    gives them zero gradients.

    Every element is multiplied by zero before anything is summed: the inputs are finite (checked),
    so each product is exactly 0 and no sum can overflow, as ``features.sum() * 0`` does (NaN once
    the sum passes fp16's 65504 or float32's 3.4e38).
    """
    dtype = _result_dtype(features)
    zero = features.new_zeros((), dtype=dtype)  # + (-0.0) below gives +0.0
    for part in (features, None if refs is None else refs.features):
        if part is not None:
            zero = zero + (part.to(dtype) * 0).sum()
    return zero


def _tiled_declines(positives_cap, labels, mask, label_overlap, refs, gather) -> str | None:
    """Why the tiled path cannot serve these options, or None when it can."""
    if positives_cap is not None:
        return "positives_cap (a per-anchor random subset)"
    if gather:
        return "gather=True"
    if refs is not None:
        return "ref_features"
    if labels is not None and labels.dim() == 2 and label_overlap == "jaccard":
        return "label_overlap='jaccard' (weighted positives)"
    if mask is not None and mask.dtype != torch.bool:
        return "a mask with weights between 0 and 1"
    return None


def _tiled_dtype(impl, views, dtype, temperature, declined) -> torch.dtype | None:
    """The dtype the tiled path would compute in, or None when the dense path must run."""
    if impl == "dense" or (impl == "auto" and views < TILED_MIN_VIEWS):
        return None
    if declined is None and (tiled := _tiled.compute_dtype(dtype, float(temperature))) is not None:
        return tiled
    if declined is None:
        declined = f"temperature={temperature} (exp would underflow)"
    if impl == "tiled":
        warnings.warn(f"impl='tiled' cannot serve {declined}; using the dense path", stacklevel=3)
    logger.debug("tiled SupCon loss declines %s; using the dense path", declined)
    return None


def _supcon_tiled(features, labels, mask, label_overlap, temperature, variant, contrast_mode,
                  dtype) -> Tensor:
    """The tiled path: the same result as the dense one, no [Na, N] tensors."""
    batch, views, _ = features.shape
    if labels is not None and labels.dim() == 2:  # multi-hot, "any": a [B, B] bool mask
        labels, mask = None, _overlap(labels, labels, "any").bool()
    z = F.normalize(features.transpose(0, 1).reshape(batch * views, -1), dim=1).to(dtype)
    num_anchors = batch if contrast_mode == "one" else batch * views
    # In `dtype` even under autocast, as the dense path: bf16 counts positives exactly only up to 256.
    with torch.autocast(z.device.type, enabled=False):
        pos = _tiled.Positives(batch, views, labels, mask, z.device, dtype)
        if not bool((pos.counts(dtype)[:num_anchors] > 0).any()):
            return _attached_zero(features)
        loss = _tiled.tiled_supcon_loss(z, pos, num_anchors, float(temperature), variant)
    return loss.to(_result_dtype(features))


def _supcon_dense(features, labels, mask, label_overlap, refs, temperature, variant,
                  contrast_mode, positives_cap, generator, gather) -> Tensor:
    """The dense path: anchor-vs-contrast logits, positives weighted, any option."""
    batch, views, dim = features.shape
    device = features.device
    world, offset = (dist.world_size(), dist.rank() * batch) if gather else (1, 0)
    z = F.normalize(features, dim=2)  # [B, V, D]
    if gather:
        _check_same_shapes(features, labels, refs)
        z = dist.gather_with_grad(z.contiguous())  # [Bt, V, D], rank order
        if labels is not None:
            labels = dist.gather(labels)
    total = world * batch
    weights = _sample_weights(labels, mask, label_overlap, offset, batch, total, device)  # [B, Bt]

    # view-major rows: view v of global sample s is row v * Bt + s; anchors are ours
    anchor_views = views if contrast_mode == "all" else 1
    anchor_sample = torch.arange(batch, device=device).repeat(anchor_views)  # [Na]
    anchor_rows = (torch.arange(anchor_views, device=device)[:, None] * total
                   + offset + torch.arange(batch, device=device)).reshape(-1)  # [Na]
    column_sample = torch.arange(views * total, device=device) % total
    w = weights[anchor_sample][:, column_sample]  # [Na, V*Bt]
    w[torch.arange(len(anchor_rows), device=device), anchor_rows] = False  # never its own positive
    contrasts = z.transpose(0, 1).reshape(views * total, dim)
    if refs is not None:
        ref_w = _ref_weights(refs, labels, mask, label_overlap, offset, batch, device)  # [B, K]
        if ref_w.dtype != w.dtype:  # one of them weighted: both as weights
            w, ref_w = w.to(torch.float64), ref_w.to(torch.float64)
        w = torch.cat([w, ref_w[anchor_sample]], dim=1)  # [Na, V*Bt + K]
        contrasts = torch.cat([contrasts, F.normalize(refs.features, dim=1).to(contrasts.dtype)])

    keep_in_denominator = None
    if positives_cap is not None:
        kept, dropped = _cap_positives(w != 0, positives_cap, generator)
        w = w & kept if w.dtype == torch.bool else w * kept
        keep_in_denominator = ~dropped
    has_positive = (w != 0).any(dim=1)
    count = has_positive.sum()
    if gather:  # every rank takes part in the all_reduce, whatever its own anchors have
        total_count = count.to(torch.float64)
        torch.distributed.all_reduce(total_count)
        if int(count) == 0:
            return _attached_zero(z, refs)  # through the gathered tensor: backward joins its all_reduce
    elif int(count) == 0:
        return _attached_zero(features, refs)
    valid = has_positive.nonzero().squeeze(1)
    w = w[valid]
    if keep_in_denominator is not None:
        keep_in_denominator = keep_in_denominator[valid]

    # Similarities in float32 (float64 for float64 input) even under autocast: bf16 logits / tau
    # lose about 1% of the loss at small temperatures, and this product is cheap next to the encoder.
    compute_dtype = _result_dtype(features)
    with torch.autocast(device.type, enabled=False):
        zc = contrasts.to(compute_dtype)
        logits = (zc[anchor_rows[valid]] @ zc.T) / temperature  # [Na', M]
        w = w if w.dtype == torch.bool else w.to(compute_dtype)
        per_anchor = _loss_from_logits(logits, w, anchor_rows[valid], keep_in_denominator, variant)
    if gather:
        return per_anchor.sum() * world / total_count.to(compute_dtype)
    return per_anchor.mean()


def _loss_from_logits(
    logits: Tensor, w: Tensor, self_cols: Tensor, keep: Tensor | None, variant: str
) -> Tensor:
    """Per-anchor loss from anchor-vs-contrast logits and positive weights ``w`` (same shape:
    bool for 0/1 weights, else the logits' dtype); every row has a positive somewhere."""
    excluded = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
    excluded[torch.arange(len(self_cols), device=logits.device), self_cols] = True
    if keep is not None:
        excluded |= ~keep
    # log of the softmax denominator over A(i): every other (non-dropped) view.
    log_denominator = torch.logsumexp(logits.masked_fill(excluded, -math.inf), dim=1)
    if w.dtype == torch.bool:
        num_pos = w.sum(dim=1).to(logits.dtype)
        if variant == "out":
            return log_denominator - torch.where(w, logits, torch.zeros_like(logits)).sum(dim=1) / num_pos
        return log_denominator - (torch.logsumexp(logits.masked_fill(~w, -math.inf), dim=1) - num_pos.log())
    total_weight = w.sum(dim=1)
    if variant == "out":  # sum_p w_ip s_ip / sum_p w_ip
        return log_denominator - (w * logits).sum(dim=1) / total_weight
    # log( sum_p w_ip exp(s_ip) / sum_p w_ip ); w = 0 gives log 0 = -inf, which drops out
    log_weighted = torch.logsumexp(logits + w.log(), dim=1) - total_weight.log()
    return log_denominator - log_weighted


def _overlap(a: Tensor, b: Tensor, how: str) -> Tensor:
    """Weights ``[len(a), len(b)]`` between multi-hot rows: 1 where they share a label ("any") or
    their Jaccard index ("jaccard"); computed a few rows of ``a`` at a time."""
    a, b = a.to(torch.float32), b.to(torch.float32)  # label counts: exact below 2^24
    b_sizes = b.sum(dim=1)
    parts = []
    for rows in a.split(_OVERLAP_CHUNK):
        shared = rows @ b.T
        if how == "any":
            parts.append(shared > 0)
        else:
            union = rows.sum(dim=1)[:, None] + b_sizes[None, :] - shared
            parts.append(shared.to(torch.float64) / union.to(torch.float64))
    return torch.cat(parts)


def _sample_weights(labels, mask, label_overlap, offset, batch, total, device) -> Tensor:
    """``[B, Bt]`` weight of sample j (every rank's) as a positive of our sample i: bool for
    0/1 weights, float64 otherwise."""
    ours = slice(offset, offset + batch)
    if labels is not None and labels.dim() == 1:
        return labels[ours, None] == labels[None, :]
    if labels is not None:
        return _overlap(labels[ours], labels, label_overlap)
    if mask is not None:
        return mask
    return (torch.arange(batch, device=device)[:, None] + offset
            == torch.arange(total, device=device)[None, :])


def _ref_weights(refs: _Refs, labels, mask, label_overlap, offset, batch, device) -> Tensor:
    """``[B, K]`` weight of each reference row as a positive of our sample i."""
    ours = slice(offset, offset + batch)
    if labels is not None and labels.dim() == 1:
        return labels[ours, None] == refs.labels[None, :]
    if labels is not None:
        return _overlap(labels[ours], refs.labels, label_overlap)
    if mask is not None:
        return refs.mask
    return torch.zeros(batch, refs.features.shape[0], dtype=torch.bool, device=device)


def _cap_positives(pos: Tensor, cap: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Keep at most ``cap`` random positives per row; return (kept, dropped) boolean masks."""
    if cap >= pos.shape[1]:
        return pos, torch.zeros_like(pos)
    scores = torch.rand(pos.shape, generator=generator, device="cpu").to(pos.device)
    scores = scores.masked_fill(~pos, -1.0)
    chosen = torch.zeros_like(pos)
    chosen.scatter_(1, scores.topk(cap, dim=1).indices, True)
    kept = pos & chosen
    return kept, pos & ~kept


class SupConLoss(torch.nn.Module):
    """``nn.Module`` wrapper of :func:`supcon_loss`; options are fixed at construction.

    Args:
        temperature: tau (by default the paper's).
        variant: ``"out"`` (L_out) or ``"in"`` (L_in).
        contrast_mode: ``"all"`` (every view is an anchor) or ``"one"`` (only view 0).
        positives_cap: keep at most this many random positives per anchor (None: all).
        label_overlap: ``"any"`` or ``"jaccard"``: the weight of a positive under multi-hot labels.
        gather: contrast against the views of every rank of the process group (see
            :func:`supcon_loss` for what each rank then returns).

    ``impl`` is always ``"auto"``; the defaults and valid values are those of
    :mod:`supcon.losses.options`.

    Raises:
        ValueError: an option :func:`supcon_loss` would refuse (checked here, before any batch).
    """

    def __init__(
        self,
        temperature: float = TEMPERATURE,
        variant: str = VARIANT,
        contrast_mode: str = CONTRAST_MODE,
        positives_cap: int | None = None,
        label_overlap: str = LABEL_OVERLAP,
        gather: bool = False,
    ) -> None:
        super().__init__()
        check_options(temperature=temperature, variant=variant, contrast_mode=contrast_mode,
                      positives_cap=positives_cap, label_overlap=label_overlap)
        if not isinstance(gather, bool):
            raise ValueError(f"gather must be True or False, got {gather!r}")
        self.temperature = temperature
        self.variant = variant
        self.contrast_mode = contrast_mode
        self.positives_cap = positives_cap
        self.label_overlap = label_overlap
        self.gather = gather

    def forward(
        self,
        features: Tensor,
        labels: Tensor | None = None,
        mask: Tensor | None = None,
        *,
        ref_features: Tensor | None = None,
        ref_labels: Tensor | None = None,
        ref_mask: Tensor | None = None,
    ) -> Tensor:
        """:func:`supcon_loss` of ``features`` ``[B, V, D]`` or ``[N, D]`` with ``labels`` ``[B]``
        (or ``[B, C]`` multi-hot) or ``mask`` ``[B, B]`` (neither: SimCLR), against the optional
        reference rows ``ref_features`` ``[K, D]`` (with ``ref_labels`` or ``ref_mask``);
        returns a scalar."""
        return supcon_loss(
            features,
            labels,
            mask,
            temperature=self.temperature,
            variant=self.variant,
            contrast_mode=self.contrast_mode,
            positives_cap=self.positives_cap,
            label_overlap=self.label_overlap,
            ref_features=ref_features,
            ref_labels=ref_labels,
            ref_mask=ref_mask,
            gather=self.gather,
        )

    def extra_repr(self) -> str:
        """The options, shown by ``print(module)``."""
        text = (
            f"temperature={self.temperature}, variant={self.variant!r}, "
            f"contrast_mode={self.contrast_mode!r}, positives_cap={self.positives_cap}"
        )
        if self.label_overlap != LABEL_OVERLAP:
            text += f", label_overlap={self.label_overlap!r}"
        return text + (", gather=True" if self.gather else "")
