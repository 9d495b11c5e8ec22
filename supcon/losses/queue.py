"""SupCon of the current batch against a queue of keys (the momentum-queue variant's loss).

It is :func:`~.supcon.supcon_loss` with the keys as ``ref_features``: only the current views are
anchors, the keys are extra contrasts (and positives where their labels match).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .options import CONTRAST_MODE, TEMPERATURE, VARIANT
from .supcon import supcon_loss


def queue_supcon_loss(
    z: Tensor,
    labels: Tensor,
    keys: Tensor,
    key_labels: Tensor,
    *,
    temperature: float = TEMPERATURE,
    variant: str = VARIANT,
    contrast_mode: str = CONTRAST_MODE,
    positives_cap: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """SupCon loss of the current views' anchors against the current views plus queued keys.

    ``z`` ``[B, V, D]`` current views, ``labels`` ``[B]``; ``keys`` ``[K, D]`` (K may be 0) with
    ``key_labels`` ``[K]``. Anchors are all current views (``contrast_mode="all"``) or view 0
    (``"one"``); each anchor's positives are the other current views and the keys with its
    label, its denominator every other view and every key. This is
    ``supcon_loss(z, labels, ref_features=keys, ref_labels=key_labels, ...)``, the same value as
    :func:`supcon_loss` on the ``[B*V + K, D]`` concatenation with a mask whose rows of the keys
    are empty. With an empty queue it equals ``supcon_loss(z, labels, ...)``.

    ``temperature``, ``variant``, ``positives_cap`` and ``generator`` are as in
    :func:`supcon_loss` (the cap draws among views and keys alike).

    Raises:
        ValueError: anything :func:`supcon_loss` rejects (``z``, ``labels``, ``keys`` as
            ``ref_features``, ``key_labels`` as ``ref_labels``).
    """
    return supcon_loss(z, labels, temperature=temperature, variant=variant,
                       contrast_mode=contrast_mode, positives_cap=positives_cap,
                       generator=generator, ref_features=keys, ref_labels=key_labels)
