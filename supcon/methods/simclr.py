"""SimCLR (Chen et al., 2020): the SupCon loss with each sample's own views as its only positives."""

from __future__ import annotations

from ..losses import SupConLoss
from ..losses.options import SIMCLR_TEMPERATURE
from ..models.heads import HEAD_KINDS
from .contrastive import ContrastiveMethod


class SimCLR(ContrastiveMethod):
    """Turn a multi-view batch into SimCLR's NT-Xent loss; labels are ignored (the step is
    :meth:`ContrastiveMethod.__call__ <supcon.methods.contrastive.ContrastiveMethod.__call__>`).

    Args:
        temperature: tau of its :class:`~supcon.losses.SupConLoss` (``criterion``), by default
            the reference recipes' (``SIMCLR_TEMPERATURE``).
        head: projection head kind, ``"mlp"`` or ``"linear"``.
        feat_dim: size of the projection z.

    Raises:
        ValueError: an option the loss or head would refuse.
    """

    name = "simclr"

    def __init__(self, temperature: float = SIMCLR_TEMPERATURE, head: str = HEAD_KINDS[0],
                 feat_dim: int = 128) -> None:
        super().__init__(SupConLoss(temperature), head, feat_dim)
