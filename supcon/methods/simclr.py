"""SimCLR (Chen et al., 2020): the SupCon loss with each sample's own views as its only positives."""

from __future__ import annotations

from torch import Tensor, nn

from ..losses import supcon_loss
from ..models.heads import ProjectionHead
from .base import (
    ContrastiveModel,
    check_contrastive_options,
    check_views,
    full_precision,
    num_features,
)


class SimCLR:
    """Turn a multi-view batch into SimCLR's NT-Xent loss; labels are ignored.

    Args:
        temperature: tau of the loss (0.5, as in the reference recipes).
        head: projection head kind, ``"mlp"`` or ``"linear"``.
        feat_dim: size of the projection z.

    Raises:
        ValueError: an option the loss or head would refuse.
    """

    name = "simclr"
    multi_view = True

    def __init__(self, temperature: float = 0.5, head: str = "mlp", feat_dim: int = 128) -> None:
        check_contrastive_options(temperature, head, feat_dim)
        self.temperature, self.head, self.feat_dim = temperature, head, feat_dim

    def build_model(self, encoder: nn.Module, num_classes: int | None = None) -> ContrastiveModel:
        """Encoder + projection head; ``num_classes`` is unused."""
        head = ProjectionHead(num_features(encoder), kind=self.head, out_dim=self.feat_dim)
        return ContrastiveModel(encoder, head)

    def __call__(
        self, model: nn.Module, images: Tensor, labels: Tensor | None = None
    ) -> dict[str, Tensor]:
        """images ``[B, V, C, H, W]`` -> ``{"loss", "features" [B, F]}``; one forward pass.

        Raises:
            ValueError: ``images`` is not ``[B, V, C, H, W]``.
        """
        batch, views = check_views(images, self.name)
        r, z = model(images.flatten(0, 1))  # [B*V, F], [B*V, D], sample-major
        loss = self.loss_from_embeddings(z.unflatten(0, (batch, views)))
        return {"loss": loss, "features": r.unflatten(0, (batch, views))[:, 0].detach()}

    def embed(self, model: nn.Module, images: Tensor) -> Tensor:
        """Normalised projections of a flat batch: ``[N, C, H, W] -> [N, D]``."""
        return model(images)[1]

    def loss_from_embeddings(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """NT-Xent of ``z`` ``[B, V, D]`` (views of one sample are positives), in float32."""
        with full_precision(z.device):
            return supcon_loss(z.float(), temperature=self.temperature)
