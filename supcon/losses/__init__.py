"""Losses: the public SupCon loss (:mod:`.supcon`), its input checks (:mod:`._inputs`), its exact
O(N)-memory tiled computation (:mod:`._tiled`, private) and the loss against a queue of keys
(:mod:`.queue`)."""

from ._inputs import CONTRAST_MODES, VARIANTS, check_options
from .queue import queue_supcon_loss
from .supcon import IMPLS, TILED_MIN_VIEWS, SupConLoss, supcon_loss

__all__ = ["CONTRAST_MODES", "IMPLS", "TILED_MIN_VIEWS", "VARIANTS", "SupConLoss", "check_options",
           "queue_supcon_loss", "supcon_loss"]
