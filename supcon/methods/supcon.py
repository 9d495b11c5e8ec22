"""SupCon (Khosla et al., 2020): labelled views of the same class attract, others repel."""

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


class SupCon:
    """Turn a labelled multi-view batch into the SupCon loss.

    Args:
        temperature: tau of the loss (the paper's default 0.1).
        variant: ``"out"`` (L_out, the paper's) or ``"in"``.
        head: projection head kind, ``"mlp"`` or ``"linear"``.
        feat_dim: size of the projection z.
        positives_cap: keep at most this many random positives per anchor (None: all).
        contrast_mode: ``"all"`` views are anchors, or only view 0 (``"one"``).

    Raises:
        ValueError: an option the loss or head would refuse (checked here, not at the first
            step).
    """

    name = "supcon"
    multi_view = True

    def __init__(
        self,
        temperature: float = 0.1,
        variant: str = "out",
        head: str = "mlp",
        feat_dim: int = 128,
        positives_cap: int | None = None,
        contrast_mode: str = "all",
    ) -> None:
        check_contrastive_options(temperature, head, feat_dim, variant, contrast_mode)
        if positives_cap is not None and (
            isinstance(positives_cap, bool)
            or not isinstance(positives_cap, int)
            or positives_cap < 1
        ):
            raise ValueError(f"positives_cap must be None or an int >= 1, got {positives_cap!r}")
        self.temperature, self.variant, self.contrast_mode = temperature, variant, contrast_mode
        self.head, self.feat_dim, self.positives_cap = head, feat_dim, positives_cap

    def build_model(self, encoder: nn.Module, num_classes: int | None = None) -> ContrastiveModel:
        """Encoder + projection head; ``num_classes`` is unused (no classifier in stage 1)."""
        head = ProjectionHead(num_features(encoder), kind=self.head, out_dim=self.feat_dim)
        return ContrastiveModel(encoder, head)

    def __call__(self, model: nn.Module, images: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """images ``[B, V, C, H, W]``, labels ``[B]`` -> ``{"loss", "features" [B, F]}``.

        All B*V views go through ``model`` in one pass (so BatchNorm sees them together).

        Raises:
            ValueError: ``labels`` is None, ``images`` is not 5-D, or the loss rejects its input.
        """
        if labels is None:
            raise ValueError("supcon: labels are required (use the simclr method without labels)")
        batch, views = check_views(images, self.name)
        r, z = model(images.flatten(0, 1))  # [B*V, F], [B*V, D], sample-major
        loss = self.loss_from_embeddings(z.unflatten(0, (batch, views)), labels)
        return {"loss": loss, "features": r.unflatten(0, (batch, views))[:, 0].detach()}

    def embed(self, model: nn.Module, images: Tensor) -> Tensor:
        """Normalised projections of a flat batch: ``[N, C, H, W] -> [N, D]``."""
        return model(images)[1]

    def loss_from_embeddings(self, z: Tensor, labels: Tensor) -> Tensor:
        """SupCon loss of ``z`` ``[B, V, D]`` (or ``[N, D]``) with ``labels`` ``[B]``, in float32."""
        with full_precision(z.device):
            return supcon_loss(
                z.float(),
                labels,
                temperature=self.temperature,
                variant=self.variant,
                contrast_mode=self.contrast_mode,
                positives_cap=self.positives_cap,
            )
