"""SupCon (Khosla et al., 2020): labelled views of the same class attract, others repel."""

from __future__ import annotations

from ..losses import SupConLoss
from ..losses.options import CONTRAST_MODE, LABEL_OVERLAP, TEMPERATURE, VARIANT
from ..models.heads import HEAD_KINDS
from .contrastive import ContrastiveMethod


class SupCon(ContrastiveMethod):
    """Turn a labelled multi-view batch into the SupCon loss (the step is
    :meth:`ContrastiveMethod.__call__ <supcon.methods.contrastive.ContrastiveMethod.__call__>`).

    Args:
        temperature, variant, contrast_mode, positives_cap, label_overlap: the options of its
            :class:`~supcon.losses.SupConLoss` (``criterion``), with the loss's defaults (the
            paper's: tau 0.1, L_out, every view an anchor).
        head: projection head kind, ``"mlp"`` or ``"linear"``.
        feat_dim: size of the projection z.

    Raises:
        ValueError: an option the loss or head would refuse (checked here, not at the first
            step).
    """

    name = "supcon"
    needs_labels = True

    def __init__(
        self,
        temperature: float = TEMPERATURE,
        variant: str = VARIANT,
        head: str = HEAD_KINDS[0],
        feat_dim: int = 128,
        positives_cap: int | None = None,
        contrast_mode: str = CONTRAST_MODE,
        label_overlap: str = LABEL_OVERLAP,
    ) -> None:
        super().__init__(SupConLoss(temperature, variant, contrast_mode, positives_cap, label_overlap),
                         head, feat_dim)
