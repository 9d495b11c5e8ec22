"""SimCLR (Chen et al., 2020): the SupCon loss with each sample's own views as its only positives."""

from __future__ import annotations

from torch import Tensor

from ..losses import supcon_loss
from .contrastive import ContrastiveMethod


class SimCLR(ContrastiveMethod):
    """Turn a multi-view batch into SimCLR's NT-Xent loss; labels are ignored (the step is
    :meth:`ContrastiveMethod.__call__ <supcon.methods.contrastive.ContrastiveMethod.__call__>`).

    Args:
        temperature: tau of the loss (0.5, as in the reference recipes).
        head: projection head kind, ``"mlp"`` or ``"linear"``.
        feat_dim: size of the projection z.

    Raises:
        ValueError: an option the loss or head would refuse.
    """

    name = "simclr"

    def __init__(self, temperature: float = 0.5, head: str = "mlp", feat_dim: int = 128) -> None:
        super().__init__(temperature, head, feat_dim)

    def loss(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """NT-Xent of float32 ``z`` ``[B, V, D]`` (views of one sample are positives)."""
        return supcon_loss(z, temperature=self.temperature)
