"""SupCon (Khosla et al., 2020): labelled views of the same class attract, others repel."""

from __future__ import annotations

from torch import Tensor

from ..losses import supcon_loss
from .contrastive import ContrastiveMethod


class SupCon(ContrastiveMethod):
    """Turn a labelled multi-view batch into the SupCon loss (the step is
    :meth:`ContrastiveMethod.__call__ <supcon.methods.contrastive.ContrastiveMethod.__call__>`).

    Args:
        temperature: tau of the loss (the paper's default 0.1).
        variant: ``"out"`` (L_out, the paper's) or ``"in"``.
        head: projection head kind, ``"mlp"`` or ``"linear"``.
        feat_dim: size of the projection z.
        positives_cap: keep at most this many random positives per anchor (None: all).
        contrast_mode: ``"all"`` views are anchors, or only view 0 (``"one"``).
        label_overlap: with ``[B, C]`` multi-hot labels (label sets), the weight of a positive:
            ``"any"`` or ``"jaccard"`` (see :func:`supcon_loss`).

    Raises:
        ValueError: an option the loss or head would refuse (checked here, not at the first
            step).
    """

    name = "supcon"
    needs_labels = True

    def __init__(
        self,
        temperature: float = 0.1,
        variant: str = "out",
        head: str = "mlp",
        feat_dim: int = 128,
        positives_cap: int | None = None,
        contrast_mode: str = "all",
        label_overlap: str = "any",
    ) -> None:
        super().__init__(temperature, head, feat_dim, variant=variant, contrast_mode=contrast_mode,
                         positives_cap=positives_cap, label_overlap=label_overlap)
        self.variant, self.contrast_mode, self.positives_cap = variant, contrast_mode, positives_cap
        self.label_overlap = label_overlap

    def loss(self, z: Tensor, labels: Tensor | None) -> Tensor:
        """SupCon loss of float32 ``z`` ``[B, V, D]`` (or ``[N, D]``) with ``labels`` ``[B]`` (or
        ``[B, C]`` label sets)."""
        return supcon_loss(
            z,
            labels,
            temperature=self.temperature,
            variant=self.variant,
            contrast_mode=self.contrast_mode,
            positives_cap=self.positives_cap,
            label_overlap=self.label_overlap,
        )
