"""SupCon of the current batch against a queue of keys (the momentum-queue variant's loss).

It is :func:`~.supcon.supcon_loss` on the concatenation of the current views and the keys, with a
positives mask whose rows of the keys are empty, so only the current views are anchors.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .supcon import supcon_loss


def queue_supcon_loss(
    z: Tensor,
    labels: Tensor,
    keys: Tensor,
    key_labels: Tensor,
    *,
    temperature: float = 0.1,
    variant: str = "out",
    contrast_mode: str = "all",
    positives_cap: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """SupCon loss of the current views' anchors against the current views plus queued keys.

    ``z`` ``[B, V, D]`` current views, ``labels`` ``[B]``; ``keys`` ``[K, D]`` (K may be 0) with
    ``key_labels`` ``[K]``. Anchors are all current views (``contrast_mode="all"``) or view 0
    (``"one"``); each anchor's positives are the other current views and the keys with its
    label, its denominator every other view and every key. Computed as :func:`supcon_loss` on
    the ``[B*V + K, D]`` concatenation (views view-major, then keys) with a positives mask whose
    rows of non-anchors are empty, on the dense path (only anchor rows of the logits are built;
    the mask itself takes ``(B*V + K)^2`` bytes). With an empty queue it equals
    ``supcon_loss(z, labels, ...)``.

    ``temperature``, ``variant``, ``positives_cap`` and ``generator`` are as in
    :func:`supcon_loss` (the cap draws among views and keys alike).

    Raises:
        ValueError: ``z`` not ``[B, V, D]``, ``labels`` not ``[B]``, ``keys``/``key_labels``
            not ``[K, D]``/``[K]``, or anything :func:`supcon_loss` rejects.
    """
    if not isinstance(z, Tensor) or z.dim() != 3:
        raise ValueError(f"z must be [B, V, D], got {tuple(z.shape) if isinstance(z, Tensor) else z!r}")
    batch, views, dim = z.shape
    if not isinstance(labels, Tensor) or labels.shape != (batch,):
        raise ValueError(f"labels must have shape [{batch}], got {getattr(labels, 'shape', labels)}")
    if keys.dim() != 2 or keys.shape[1] != dim or key_labels.shape != keys.shape[:1]:
        raise ValueError(f"keys must be [K, {dim}] with key_labels [K], got {tuple(keys.shape)} "
                         f"and {tuple(key_labels.shape)}")
    current = z.transpose(0, 1).reshape(batch * views, dim)  # view-major, as supcon_loss lays out
    features = torch.cat([current, keys.to(device=z.device, dtype=z.dtype)])  # [M, D]
    every_label = torch.cat([labels.repeat(views), key_labels.to(labels.device)]).to(z.device)
    anchors = torch.zeros(features.shape[0], dtype=torch.bool, device=z.device)
    anchors[: batch if contrast_mode == "one" else batch * views] = True
    mask = anchors[:, None] & (every_label[:, None] == every_label[None, :])  # [M, M]
    return supcon_loss(features, mask=mask, temperature=temperature, variant=variant,
                       contrast_mode="all" if contrast_mode == "one" else contrast_mode,
                       positives_cap=positives_cap, generator=generator, impl="dense")
