"""The Supervised Contrastive loss (Khosla et al., 2020), with SimCLR's NT-Xent as the no-label case.

Notation used in comments: B samples, V views each, N = B*V views in all, D feature size,
Na anchors (N when contrast_mode="all", B when "one"). Views are laid out view-major, so
row n of the flattened features is view n // B of sample n % B; anchors are the first Na rows.
"""

from __future__ import annotations

import logging
import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_int
from . import _tiled

logger = logging.getLogger(__name__)

VARIANTS = ("out", "in")
CONTRAST_MODES = ("all", "one")
IMPLS = ("auto", "dense", "tiled")
# impl="auto" takes the tiled path from this many views (N = B * V) on: on 2 CPU cores it was
# 1.6x faster than the dense path at N = 1024 (3x at 4096), and it needs O(N) memory, not O(N^2).
TILED_MIN_VIEWS = 1024


def supcon_loss(
    features: Tensor,
    labels: Tensor | None = None,
    mask: Tensor | None = None,
    *,
    temperature: float = 0.1,
    variant: str = "out",
    contrast_mode: str = "all",
    positives_cap: int | None = None,
    generator: torch.Generator | None = None,
    impl: str = "auto",
) -> Tensor:
    """Supervised contrastive loss, averaged over anchors that have at least one positive.

    Args:
        features: ``[B, V, D]`` (B samples, V views) or ``[N, D]`` (one view each). L2-normalised
            here, so the scale of each row does not matter.
        labels: ``[B]`` integer class of each sample. Views of samples with equal labels are
            positives of one another.
        mask: ``[B, B]`` 0/1 (or bool) matrix; ``mask[i, j]`` says the views of sample j are
            positives for the views of sample i. Give ``labels`` or ``mask``, never both. With
            neither, each sample's other views are its only positives (SimCLR's NT-Xent).
        temperature: tau in ``exp(z_i . z_j / tau)``; no other rescaling is applied.
        variant: ``"out"`` (L_out, the paper's: mean over positives outside the log) or ``"in"``.
        contrast_mode: ``"all"`` (every view is an anchor) or ``"one"`` (only view 0 is).
        positives_cap: keep at most this many positives per anchor, drawn uniformly at random
            per anchor and call, the anchor's own other views among them with no priority (the
            paper's supplementary Table 5; docs/loss.md); dropped positives leave the
            denominator as well.
        generator: random source for ``positives_cap``.
        impl: ``"dense"`` builds the [Na, N] logits; ``"tiled"`` computes the same value and
            gradients block by block in O(N) memory (see :mod:`supcon.losses._tiled`); ``"auto"`` picks
            tiled from ``TILED_MIN_VIEWS`` (1024) views on. The tiled path declines
            ``positives_cap`` and temperatures below 1/650 (it falls back to dense, warning if
            ``"tiled"`` was asked for). The tiled gradient is not itself differentiable:
            a backward with ``create_graph=True`` raises ``RuntimeError``; use ``"dense"``.

    Returns:
        A scalar float32 (float64 for float64 input) tensor. Anchors with no positive are left out
        of the mean; if none has one the result is 0.0 and its gradient is zero.

    Raises:
        ValueError: on wrong shapes, dtypes, non-finite features or unknown options; the message
            names the argument and what was seen.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    tiled_dtype = _tiled_dtype(impl, features, temperature, positives_cap)
    if tiled_dtype is not None:
        return _supcon_tiled(features, labels, mask, temperature, variant, contrast_mode,
                             tiled_dtype)
    z, pos = _prepare(features, labels, mask, temperature, variant, contrast_mode, positives_cap)
    num_anchors = pos.shape[0]
    keep_in_denominator = None
    if positives_cap is not None:
        pos, dropped = _cap_positives(pos, positives_cap, generator)
        keep_in_denominator = ~dropped

    has_positive = pos.any(dim=1)
    if not bool(has_positive.any()):
        return _attached_zero(features)
    anchor_rows = has_positive.nonzero().squeeze(1)
    pos = pos[anchor_rows]  # [Na', N]
    if keep_in_denominator is not None:
        keep_in_denominator = keep_in_denominator[anchor_rows]

    # Similarities in float32 (float64 for float64 input) even under autocast: bf16 logits / tau
    # lose about 1% of the loss at small temperatures, and this product is cheap next to the encoder.
    compute_dtype = _result_dtype(features)
    with torch.autocast(z.device.type, enabled=False):
        zc = z.to(compute_dtype)
        logits = (zc[:num_anchors][anchor_rows] @ zc.T) / temperature  # [Na', N]
    per_anchor = _loss_from_logits(logits, pos, anchor_rows, keep_in_denominator, variant)
    return per_anchor.mean()


def _result_dtype(features: Tensor) -> torch.dtype:
    return torch.float64 if features.dtype == torch.float64 else torch.float32


def _attached_zero(features: Tensor) -> Tensor:
    """0.0 that stays attached to the graph, so backward() works and gives zero gradients."""
    return features.sum().to(_result_dtype(features)) * 0.0


def _tiled_dtype(impl, features, temperature, positives_cap) -> torch.dtype | None:
    """The dtype the tiled path would compute in, or None when the dense path must run."""
    if impl == "dense" or not isinstance(features, Tensor) or features.dim() not in (2, 3):
        return None  # malformed input: let _prepare raise the usual error
    views = features.shape[0] * (features.shape[1] if features.dim() == 3 else 1)
    if impl == "auto" and views < TILED_MIN_VIEWS:
        return None
    declined = None
    if positives_cap is not None:
        declined = "positives_cap (a per-anchor random subset)"
    elif not (isinstance(temperature, (int, float)) and temperature > 0):
        return None  # invalid: _prepare raises
    elif (dtype := _tiled.compute_dtype(features.dtype, float(temperature))) is None:
        declined = f"temperature={temperature} (exp would underflow)"
    if declined is None:
        return dtype
    if impl == "tiled":
        warnings.warn(f"impl='tiled' cannot serve {declined}; using the dense path", stacklevel=3)
    logger.debug("tiled SupCon loss declines %s; using the dense path", declined)
    return None


def _supcon_tiled(features, labels, mask, temperature, variant, contrast_mode, dtype) -> Tensor:
    """The tiled path: same validation and result as the dense one, no [Na, N] tensors."""
    _check_features_and_options(features, temperature, variant, contrast_mode, None)
    if features.dim() == 2:
        features = features.unsqueeze(1)
    batch, views, _ = features.shape
    labels, mask = _check_positives(labels, mask, batch, features.device)
    z = F.normalize(features.transpose(0, 1).reshape(batch * views, -1), dim=1).to(dtype)
    num_anchors = batch if contrast_mode == "one" else batch * views
    # In `dtype` even under autocast, as the dense path: bf16 counts positives exactly only up to 256.
    with torch.autocast(z.device.type, enabled=False):
        pos = _tiled.Positives(batch, views, labels, mask, z.device, dtype)
        if not bool((pos.counts(dtype)[:num_anchors] > 0).any()):
            return _attached_zero(features)
        loss = _tiled.tiled_supcon_loss(z, pos, num_anchors, float(temperature), variant)
    return loss.to(torch.float64 if features.dtype == torch.float64 else torch.float32)


def _loss_from_logits(
    logits: Tensor, pos: Tensor, self_cols: Tensor, keep: Tensor | None, variant: str
) -> Tensor:
    """Per-anchor loss from anchor-vs-all logits; every row has at least one positive."""
    excluded = torch.zeros_like(pos)
    excluded[torch.arange(len(self_cols), device=pos.device), self_cols] = True
    if keep is not None:
        excluded |= ~keep
    # log of the softmax denominator over A(i): every other (non-dropped) view.
    log_denominator = torch.logsumexp(logits.masked_fill(excluded, -math.inf), dim=1)
    num_pos = pos.sum(dim=1).to(logits.dtype)
    if variant == "out":
        mean_pos_logit = torch.where(pos, logits, torch.zeros_like(logits)).sum(dim=1) / num_pos
        return log_denominator - mean_pos_logit
    log_mean_pos = torch.logsumexp(logits.masked_fill(~pos, -math.inf), dim=1) - num_pos.log()
    return log_denominator - log_mean_pos


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


def _prepare(features, labels, mask, temperature, variant, contrast_mode, positives_cap):
    """Validate arguments; return normalised views ``z`` [N, D] and the positives mask [Na, N]."""
    _check_features_and_options(features, temperature, variant, contrast_mode, positives_cap)
    if features.dim() == 2:
        features = features.unsqueeze(1)  # [N, D] -> [N, 1, D]
    batch, views, _ = features.shape
    same = _positive_pairs(labels, mask, batch, features.device)  # [B, B] bool

    # view-major flattening: row v*B + b holds view v of sample b
    z = F.normalize(features.transpose(0, 1).reshape(batch * views, -1), dim=1)
    num_anchors = batch if contrast_mode == "one" else batch * views
    sample_of = torch.arange(batch * views, device=features.device) % batch
    pos = same[sample_of[:num_anchors]][:, sample_of]  # [Na, N]
    pos[torch.arange(num_anchors), torch.arange(num_anchors)] = False  # never its own positive
    return z, pos


def _check_features_and_options(features, temperature, variant, contrast_mode, positives_cap):
    """Raise ValueError on bad features or options (everything but labels/mask)."""
    if not isinstance(features, Tensor):
        raise ValueError(f"features must be a torch.Tensor, got {type(features).__name__}")
    if features.dim() not in (2, 3):
        raise ValueError(
            f"features must be [B, V, D] or [N, D], got shape {tuple(features.shape)}"
        )
    if not features.is_floating_point():
        raise ValueError(f"features must be floating point, got dtype {features.dtype}")
    if features.numel() == 0:
        raise ValueError(f"features must not be empty, got shape {tuple(features.shape)}")
    if not bool(torch.isfinite(features).all()):
        raise ValueError(
            f"features contain NaN or inf (shape {tuple(features.shape)}); check the encoder "
            "output or lower the learning rate"
        )
    check_options(temperature=temperature, variant=variant, contrast_mode=contrast_mode,
                  positives_cap=positives_cap)


def check_options(*, temperature: float = 0.1, variant: str = "out", contrast_mode: str = "all",
                  positives_cap: int | None = None) -> None:
    """The loss's option checks (the methods run them at construction, before any batch).

    Raises:
        ValueError: an unknown ``variant`` or ``contrast_mode``, a ``temperature`` that is not a
            positive finite number, or a ``positives_cap`` that is not None or an int >= 1.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if contrast_mode not in CONTRAST_MODES:
        raise ValueError(f"contrast_mode must be one of {CONTRAST_MODES}, got {contrast_mode!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    check_int("positives_cap", positives_cap, allow_none=True)


def _positive_pairs(labels, mask, batch: int, device) -> Tensor:
    """[B, B] bool: are sample j's views positives of sample i's?"""
    labels, mask = _check_positives(labels, mask, batch, device)
    if labels is not None:
        return labels[:, None] == labels[None, :]
    if mask is not None:
        return mask
    return torch.eye(batch, dtype=torch.bool, device=device)


def _check_positives(labels, mask, batch: int, device) -> tuple[Tensor | None, Tensor | None]:
    """Validate labels/mask; return them on ``device`` (mask as bool), None where not given."""
    if labels is not None and mask is not None:
        raise ValueError("pass labels or mask, not both")
    if labels is not None:
        if not isinstance(labels, Tensor):
            raise ValueError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
        if labels.dim() != 1 or labels.shape[0] != batch:
            raise ValueError(
                f"labels must have shape [{batch}] to match features, got {tuple(labels.shape)}"
            )
        if labels.is_floating_point() or labels.is_complex():
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
        return labels.to(device), None
    if mask is not None:
        if not isinstance(mask, Tensor):
            raise ValueError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
        if mask.shape != (batch, batch):
            raise ValueError(
                f"mask must have shape [{batch}, {batch}] to match features, got {tuple(mask.shape)}"
            )
        if mask.dtype != torch.bool:
            bad = mask[(mask != 0) & (mask != 1)]
            if bad.numel():
                raise ValueError(f"mask must hold only 0/1 (or bool) values, found {bad[0].item()!r}")
        return None, mask.to(device=device, dtype=torch.bool)
    return None, None


class SupConLoss(torch.nn.Module):
    """``nn.Module`` wrapper of :func:`supcon_loss`; options are fixed at construction.

    Args:
        temperature: tau (0.1, the paper's).
        variant: ``"out"`` (L_out) or ``"in"`` (L_in).
        contrast_mode: ``"all"`` (every view is an anchor) or ``"one"`` (only view 0).
        positives_cap: keep at most this many random positives per anchor (None: all).

    The options are checked at the first call, which raises ``ValueError`` as
    :func:`supcon_loss` does. ``impl`` is always ``"auto"``.
    """

    def __init__(
        self,
        temperature: float = 0.1,
        variant: str = "out",
        contrast_mode: str = "all",
        positives_cap: int | None = None,
    ) -> None:
        super().__init__()
        self.temperature = temperature
        self.variant = variant
        self.contrast_mode = contrast_mode
        self.positives_cap = positives_cap

    def forward(
        self, features: Tensor, labels: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        """:func:`supcon_loss` of ``features`` ``[B, V, D]`` or ``[N, D]`` with ``labels`` ``[B]``
        or ``mask`` ``[B, B]`` (neither: SimCLR); returns a scalar."""
        return supcon_loss(
            features,
            labels,
            mask,
            temperature=self.temperature,
            variant=self.variant,
            contrast_mode=self.contrast_mode,
            positives_cap=self.positives_cap,
        )

    def extra_repr(self) -> str:
        """The options, shown by ``print(module)``."""
        return (
            f"temperature={self.temperature}, variant={self.variant!r}, "
            f"contrast_mode={self.contrast_mode!r}, positives_cap={self.positives_cap}"
        )
