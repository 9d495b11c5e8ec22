"""Cross-entropy baseline: the same encoder trained end to end with a linear classifier."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..models.heads import LinearClassifier
from .base import ClassifierModel, is_view_batch, num_features


class CrossEntropy:
    """Turn a labelled single-view batch into the cross-entropy loss.

    Args:
        label_smoothing: in [0, 1); passed to ``F.cross_entropy``.

    Raises:
        ValueError: ``label_smoothing`` outside [0, 1).
    """

    name = "ce"
    multi_view = False

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if (
            isinstance(label_smoothing, bool)
            or not isinstance(label_smoothing, (int, float))
            or not (0.0 <= label_smoothing < 1.0)
        ):
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def build_model(self, encoder: nn.Module, num_classes: int) -> ClassifierModel:
        """Encoder + ``LinearClassifier(num_features, num_classes)``."""
        return ClassifierModel(encoder, LinearClassifier(num_features(encoder), num_classes))

    def __call__(self, model: nn.Module, images: Tensor, labels: Tensor, *,
                 micro_batch_size: int | None = None, grad_scale: float = 1.0) -> dict[str, Tensor]:
        """images ``[B, C, H, W]`` or ``[B, 1, C, H, W]`` (or a batch of texts), labels ``[B]`` ->
        ``{"loss", "features" [B, F], "logits" [B, K]}`` (features and logits detached); the
        loop does the backward pass (``grad_scale`` is unused).

        Raises:
            ValueError: images of another shape, labels not integer ``[B]`` in ``[0, K)``, or a
                ``micro_batch_size`` (gradient caching is for the contrastive methods).
        """
        if micro_batch_size is not None:
            raise ValueError("ce: micro_batch_size (gradient caching) is for supcon/simclr; "
                             "lower the batch size instead")
        images = _single_view(images)
        r, logits = model(images)
        _check_labels(labels, logits)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        return {"loss": loss, "features": r.detach(), "logits": logits.detach()}

    def after_step(self) -> None:
        """Called after every optimizer step; nothing to do."""


def _single_view(images: Tensor) -> Tensor | list:
    if is_view_batch(images) and images.shape[1] == 1:  # texts, one view each
        return images.flat()
    if isinstance(images, Tensor) and images.dim() == 5 and images.shape[1] == 1:
        return images[:, 0]
    if not isinstance(images, Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"ce: images must be [B, C, H, W] or [B, 1, C, H, W], got {shape}")
    return images


def _check_labels(labels: Tensor, logits: Tensor) -> None:
    batch, classes = logits.shape
    if not isinstance(labels, Tensor) or labels.shape != (batch,):
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"ce: labels must have shape [{batch}], got {shape}")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"ce: labels must be integers, got dtype {labels.dtype}")
    if labels.numel() and not (0 <= int(labels.min()) and int(labels.max()) < classes):
        raise ValueError(
            f"ce: labels must be in [0, {classes}), got range "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
