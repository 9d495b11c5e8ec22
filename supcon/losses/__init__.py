"""Losses: the public SupCon loss (:mod:`.supcon`), its exact O(N)-memory tiled computation
(:mod:`._tiled`, private) and the loss against a queue of keys (:mod:`.queue`)."""

from .queue import queue_supcon_loss
from .supcon import (
           CONTRAST_MODES,
           IMPLS,
           TILED_MIN_VIEWS,
           VARIANTS,
           SupConLoss,
           check_options,
           supcon_loss,
)

__all__ = ["CONTRAST_MODES", "IMPLS", "TILED_MIN_VIEWS", "VARIANTS", "SupConLoss", "check_options",
           "queue_supcon_loss", "supcon_loss"]
