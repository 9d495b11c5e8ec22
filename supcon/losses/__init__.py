"""Losses: the public SupCon loss (:mod:`.supcon`), its options' defaults and valid values
(:mod:`.options`), its input checks (:mod:`._inputs`), its exact O(N)-memory tiled computation
(:mod:`._tiled`, private) and the loss against a queue of keys (:mod:`.queue`).

Importing the package does not import torch (:mod:`supcon.config` reads the options before torch
is needed); the loss functions are imported on first use.
"""

from __future__ import annotations

import importlib

from .options import CONTRAST_MODES, IMPLS, LABEL_OVERLAPS, TEMPERATURE, VARIANTS

_LAZY = {"SupConLoss": ".supcon", "supcon_loss": ".supcon", "TILED_MIN_VIEWS": ".supcon",
         "check_options": "._inputs", "queue_supcon_loss": ".queue"}

__all__ = ["CONTRAST_MODES", "IMPLS", "LABEL_OVERLAPS", "TEMPERATURE", "TILED_MIN_VIEWS", "VARIANTS",
           "SupConLoss", "check_options", "queue_supcon_loss", "supcon_loss"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
