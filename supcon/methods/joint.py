"""ce+supcon: cross-entropy and SupCon on the same batch, ``loss = CE + lambda * SupCon`` (the
joint objective of Gunel et al., ICLR 2021, for fine-tuning pretrained encoders).

The model is the encoder with both a linear classifier (on the representation r) and a
projection head (z). Every view of the batch is a classified sample: CE is the mean over all
B*V views; SupCon is the loss of the views' embeddings ``[B, V, D]`` with the batch's labels
(gathered over processes as in the contrastive step). With one view, SupCon's positives are the
other samples of the class in the batch. The run is evaluated like ce: with its own classifier.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from .. import distributed as dist
from ..losses.options import TEMPERATURE, VARIANT
from ..models.heads import HEAD_KINDS, LinearClassifier, ProjectionHead
from .base import check_views, flat_views, full_precision, num_features
from .ce import CrossEntropy, _check_labels
from .supcon import SupCon


class JointModel(nn.Module):
    """Encoder + projection head + classifier: ``[N, ...] -> (r [N, F], (z [N, D], logits [N, K]))``."""

    def __init__(self, encoder: nn.Module, head: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.encoder, self.head, self.classifier = encoder, head, classifier

    def forward(self, images: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``[N, C, H, W]`` (or N texts) -> ``(r [N, F], (z [N, D], logits [N, K]))``."""
        r = self.encoder(images)
        return r, (self.head(r), self.classifier(r))


class CrossEntropySupCon:
    """``CE + supcon_weight * SupCon`` on the same batch (see the module docstring).

    Args:
        temperature, variant, head, feat_dim, positives_cap: SupCon's (:class:`SupCon`).
        supcon_weight: lambda, the weight of the SupCon term (>= 0; 0 is plain ce).
        label_smoothing: CE's (:class:`CrossEntropy`).

    Raises:
        ValueError: an option SupCon or CE refuses, or a negative ``supcon_weight``.
    """

    name = "ce+supcon"
    multi_view = False  # it has its own classifier: no online probe, no linear stage
    needs_labels = True

    def __init__(self, temperature: float = TEMPERATURE, supcon_weight: float = 1.0, head: str = HEAD_KINDS[0],
                 feat_dim: int = 128, variant: str = VARIANT, positives_cap: int | None = None,
                 label_smoothing: float = 0.0) -> None:
        if isinstance(supcon_weight, bool) or not isinstance(supcon_weight, (int, float)) or not supcon_weight >= 0:
            raise ValueError(f"supcon_weight must be a number >= 0, got {supcon_weight!r}")
        self.supcon = SupCon(temperature, variant=variant, head=head, feat_dim=feat_dim,
                             positives_cap=positives_cap)
        self.ce = CrossEntropy(label_smoothing)
        self.supcon_weight = float(supcon_weight)

    def build_model(self, encoder: nn.Module, num_classes: int) -> JointModel:
        """Encoder + SupCon's projection head + ``LinearClassifier(num_features, num_classes)``."""
        dim = num_features(encoder)
        return JointModel(encoder, ProjectionHead(dim, kind=self.supcon.head, out_dim=self.supcon.feat_dim),
                          LinearClassifier(dim, num_classes))

    def __call__(self, model: nn.Module, images: Tensor, labels: Tensor, *,
                 micro_batch_size: int | None = None, grad_scale: float = 1.0) -> dict[str, Any]:
        """images ``[B, V, C, H, W]``, ``[B, C, H, W]`` (one view) or a batch of texts, labels
        ``[B]`` -> ``{"loss", "ce_loss", "supcon_loss", "features" [B, F] (view 0), "logits"}``
        (all but ``loss`` detached); the loop does the backward pass.

        Raises:
            ValueError: images of another shape, labels not integer ``[B]`` in ``[0, K)``, or a
                ``micro_batch_size`` (gradient caching is for supcon/simclr).
        """
        if micro_batch_size is not None:
            raise ValueError("ce+supcon: micro_batch_size (gradient caching) is for supcon/simclr; "
                             "lower the batch size instead")
        if isinstance(images, Tensor) and images.dim() == 4:
            images = images.unsqueeze(1)  # one view per image
        batch, views = check_views(images, self.name)
        r, (z, logits) = model(flat_views(images))  # sample-major: [B*V, ...]
        repeated = labels.repeat_interleave(views) if isinstance(labels, Tensor) else labels
        _check_labels(repeated, logits)
        with full_precision(z.device):
            ce = F.cross_entropy(logits.float(), repeated, label_smoothing=self.ce.label_smoothing)
            z_all = dist.gather_with_grad(z.float()).unflatten(0, (-1, views))  # [W*B, V, D]
            supcon = self.supcon.loss(z_all, dist.gather(labels))
        first = r.detach().unflatten(0, (batch, views))[:, 0]
        return {"loss": ce + self.supcon_weight * supcon, "ce_loss": ce.detach(), "supcon_loss": supcon.detach(),
                "features": first, "logits": logits.detach()}

    def after_step(self) -> None:
        """Called after every optimizer step; nothing to do."""
