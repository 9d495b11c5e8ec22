"""Input checks of :func:`~.supcon.supcon_loss`: features, options, labels / masks and the
reference rows, each failing with a one-line ValueError that names the argument."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import distributed as dist
from ..checks import check_int
from .options import (
    CONTRAST_MODE,
    CONTRAST_MODES,
    LABEL_OVERLAP,
    LABEL_OVERLAPS,
    TEMPERATURE,
    VARIANT,
    VARIANTS,
)


@dataclass
class _Refs:
    """Validated reference rows: features ``[K, D]`` and their labels or mask (or neither)."""

    features: Tensor
    labels: Tensor | None
    mask: Tensor | None


def _check_same_shapes(features: Tensor, labels: Tensor | None, refs: _Refs | None) -> None:
    """gather=True: every rank must bring the same shapes (all_gather needs them)."""
    mine = [*features.shape, labels.shape[1] if labels is not None and labels.dim() == 2 else 0,
            -1 if refs is None else refs.features.shape[0]]
    every = dist.gather(torch.tensor([mine], device=features.device)).tolist()
    if any(row != mine for row in every):
        raise ValueError("gather=True needs the same features shape (and label columns, and "
                         f"ref_features count) on every rank; got [B, V, D, C, K] = {every}")


def _check_features_and_options(features, temperature, variant, contrast_mode, positives_cap):
    """Raise ValueError on bad features or options (everything but labels/mask)."""
    _check_float_tensor("features", features, (2, 3), "[B, V, D] or [N, D]")
    check_options(temperature=temperature, variant=variant, contrast_mode=contrast_mode,
                  positives_cap=positives_cap)


def check_options(*, temperature: float = TEMPERATURE, variant: str = VARIANT,
                  contrast_mode: str = CONTRAST_MODE, positives_cap: int | None = None,
                  label_overlap: str = LABEL_OVERLAP) -> None:
    """The loss's option checks (the methods run them at construction, before any batch).

    Raises:
        ValueError: an unknown ``variant`` or ``contrast_mode``, a ``temperature`` that is not a
            positive finite number, a ``positives_cap`` that is not None or an int >= 1, or an
            unknown ``label_overlap``.
    """
    if label_overlap not in LABEL_OVERLAPS:
        raise ValueError(f"label_overlap must be one of {LABEL_OVERLAPS}, got {label_overlap!r}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if contrast_mode not in CONTRAST_MODES:
        raise ValueError(f"contrast_mode must be one of {CONTRAST_MODES}, got {contrast_mode!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    check_int("positives_cap", positives_cap, allow_none=True)


def _check_float_tensor(name: str, x, dims: tuple[int, ...], form: str, empty_ok: bool = False) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in dims:
        raise ValueError(f"{name} must be {form}, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be floating point, got dtype {x.dtype}")
    if x.numel() == 0 and not empty_ok:
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(
            f"{name} contain NaN or inf (shape {tuple(x.shape)}); check the encoder "
            "output or lower the learning rate"
        )


def _check_positives(labels, mask, batch: int, total: int, device) -> tuple[Tensor | None, Tensor | None]:
    """Validate labels/mask; return them on ``device``, None where not given.

    ``total`` is the number of samples a mask's columns cover (``world_size * batch`` under
    gather). Labels come back as int64 ``[B]`` or float64 multi-hot ``[B, C]``; a mask as bool
    when it holds only 0/1, else float64 weights.
    """
    if labels is not None and mask is not None:
        raise ValueError("pass labels or mask, not both")
    if labels is not None:
        return _check_labels("labels", labels, batch, None, device), None
    if mask is not None:
        return None, _check_weights("mask", mask, (batch, total), device, gathered=total != batch)
    return None, None


def _check_labels(name: str, labels, rows: int, columns: int | None, device) -> Tensor:
    """``[rows]`` integer labels (int64) or ``[rows, C]`` multi-hot (float64; C = ``columns`` if
    given, else any); raise ValueError naming ``name`` otherwise."""
    if not isinstance(labels, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.is_complex():
        raise ValueError(f"{name} must be integers or multi-hot, got dtype {labels.dtype}")
    want_2d = columns is not None
    if labels.dim() == 1 and not want_2d:
        if labels.shape[0] != rows:
            raise ValueError(f"{name} must have shape [{rows}] to match, got {tuple(labels.shape)}")
        if labels.is_floating_point():
            raise ValueError(f"{name} must be integers, got dtype {labels.dtype}")
        return labels.to(device=device, dtype=torch.int64)
    if labels.dim() != 2 or labels.shape[0] != rows or (want_2d and labels.shape[1] != columns):
        form = f"[{rows}, {columns}] multi-hot" if want_2d else f"[{rows}] or [{rows}, C] multi-hot"
        raise ValueError(f"{name} must have shape {form} to match, got {tuple(labels.shape)}")
    if labels.shape[1] == 0:
        raise ValueError(f"{name}: a multi-hot matrix needs at least one column, got "
                         f"{tuple(labels.shape)}")
    hot = labels.to(torch.float64)
    bad = hot[(hot != 0) & (hot != 1)]
    if bad.numel():
        raise ValueError(f"{name}: a multi-hot matrix {tuple(labels.shape)} must hold only 0/1 "
                         f"(or bool), found {bad[0].item()!r}")
    empty = (hot.sum(dim=1) == 0).nonzero()
    if empty.numel():
        raise ValueError(f"{name}: row {int(empty[0])} of the multi-hot matrix "
                         f"{tuple(labels.shape)} is all zero ({empty.numel()} such row(s)); every "
                         "sample needs at least one label")
    return hot.to(device)


def _check_weights(name: str, mask, shape: tuple[int, int], device, gathered: bool = False) -> Tensor:
    """A ``shape`` matrix of weights in [0, 1]: bool if it holds only 0/1, else float64."""
    if not isinstance(mask, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if tuple(mask.shape) != shape:
        what = " (this rank's samples x every rank's, gather=True)" if gathered else ""
        raise ValueError(f"{name} must have shape [{shape[0]}, {shape[1]}]{what} to match features, "
                         f"got {tuple(mask.shape)}")
    if mask.dtype == torch.bool:
        return mask.to(device)
    if mask.is_complex():
        raise ValueError(f"{name} must hold real weights in [0, 1], got dtype {mask.dtype}")
    weights = mask.to(torch.float64)
    bad = weights[~((weights >= 0) & (weights <= 1))]  # NaN fails both
    if bad.numel():
        raise ValueError(f"{name} weights must be in [0, 1] (bool, 0/1 or real), found "
                         f"{bad[0].item()!r}")
    if bool(((weights == 0) | (weights == 1)).all()):
        return (weights == 1).to(device)
    return weights.to(device)


def _check_refs(ref_features, ref_labels, ref_mask, labels, mask, batch, dim, device) -> _Refs | None:
    """Validate the reference set against the batch's positives; None when there is none."""
    if ref_features is None:
        for name, value in (("ref_labels", ref_labels), ("ref_mask", ref_mask)):
            if value is not None:
                raise ValueError(f"{name} was given without ref_features")
        return None
    _check_float_tensor("ref_features", ref_features, (2,), "[K, D]", empty_ok=True)
    if ref_features.shape[1] != dim:
        raise ValueError(f"ref_features must be [K, {dim}] (the feature size of features), got "
                         f"{tuple(ref_features.shape)}")
    k = ref_features.shape[0]
    if labels is not None:
        if ref_mask is not None:
            raise ValueError("ref_mask goes with mask; with labels give ref_labels")
        if ref_labels is None:
            raise ValueError(f"ref_labels is required with labels and ref_features: the labels of "
                             f"the {k} reference rows")
        if labels.dim() == 1 and isinstance(ref_labels, Tensor) and ref_labels.dim() != 1:
            raise ValueError(f"ref_labels must be [{k}] integers like labels {tuple(labels.shape)}, got "
                             f"{tuple(ref_labels.shape)} (multi-hot ref_labels need multi-hot labels)")
        columns = labels.shape[1] if labels.dim() == 2 else None
        return _Refs(ref_features, _check_labels("ref_labels", ref_labels, k, columns, device), None)
    if mask is not None:
        if ref_labels is not None:
            raise ValueError("ref_labels goes with labels; with mask give ref_mask")
        if ref_mask is None:
            raise ValueError(f"ref_mask is required with mask and ref_features: [{batch}, {k}] "
                             "weights of the reference rows")
        return _Refs(ref_features, None, _check_weights("ref_mask", ref_mask, (batch, k), device))
    if ref_labels is not None or ref_mask is not None:
        raise ValueError("ref_labels / ref_mask need labels / mask for the batch; without either "
                         "the reference rows are negatives only")
    return _Refs(ref_features, None, None)
