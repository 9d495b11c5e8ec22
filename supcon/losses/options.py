"""The SupCon loss's options, defined once: their defaults and their valid values.

Torch-free, so that :mod:`supcon.config` (read before torch is imported) checks ``loss.*`` against
the very lists the loss checks; the loss, the methods and the config take their defaults from
here, and ``tests/test_loss_options.py`` holds docs/loss.md's option table to them.
"""

from __future__ import annotations

TEMPERATURE = 0.1
"""tau of the SupCon loss: the paper's."""
SIMCLR_TEMPERATURE = 0.5
"""tau of SimCLR's NT-Xent in the reference recipes: the simclr method's default."""
QUEUE_MOMENTUM = 0.999
"""EMA factor of the momentum encoder whose keys fill the queue (:mod:`.queue`; MoCo's)."""

VARIANTS = ("out", "in")
"""L_out (the mean over positives outside the log, the paper's) or L_in; the first is the default."""
CONTRAST_MODES = ("all", "one")
"""Anchors: every view, or only view 0 of each sample; the first is the default."""
LABEL_OVERLAPS = ("any", "jaccard")
"""Weight of a positive pair under multi-hot labels; the first is the default."""
IMPLS = ("auto", "dense", "tiled")
"""How the loss is computed (same value): picked by size, the dense matrix, or O(N)-memory tiles."""

VARIANT, CONTRAST_MODE, LABEL_OVERLAP, IMPL = VARIANTS[0], CONTRAST_MODES[0], LABEL_OVERLAPS[0], IMPLS[0]
