"""The contrastive step, written once: SupCon, SimCLR and the memory variant only say how their
loss follows from the embeddings (and, for the memory variant, what happens around the step).

One step embeds every view of this rank's batch, gathers the embeddings of every rank with
gradients and computes the method's loss over the global batch ``[W*B, V, D]``, so the loss is
the single-process loss and, after DDP's gradient averaging, so is the update (see
:func:`supcon.distributed.gather_with_grad`). With micro-batches the backward pass is done here
by gradient caching (:mod:`.gradcache`), and the result says so with ``BACKWARD_DONE``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .. import distributed as dist
from ..checks import check_int
from ..losses import SupConLoss
from ..models.heads import HEAD_KINDS, ProjectionHead
from .base import (
    BACKWARD_DONE,
    ContrastiveModel,
    check_views,
    flat_views,
    full_precision,
    num_features,
)
from .gradcache import cached_backward, outputs_of


class ContrastiveMethod:
    """Base of the contrastive methods: an encoder + projection head model and the step.

    Subclasses set ``name`` and ``needs_labels`` and hand over the loss they compute, a
    :class:`~supcon.losses.SupConLoss` (``criterion``: its options are its own, checked when it is
    built, so a bad one fails at construction, not at the first step); the memory variant also
    overrides :meth:`loss`, :meth:`remember` and :meth:`after_step`.

    Raises:
        ValueError: an unknown ``head``, or ``feat_dim`` not an int >= 1.
    """

    name = "contrastive"
    multi_view = True
    needs_labels = False
    """Whether the loss needs class labels (SupCon) or makes its own positives (SimCLR)."""

    def __init__(self, criterion: SupConLoss, head: str = HEAD_KINDS[0], feat_dim: int = 128) -> None:
        if head not in HEAD_KINDS:
            raise ValueError(f"head must be one of {HEAD_KINDS}, got {head!r}")
        check_int("feat_dim", feat_dim)
        self.criterion, self.head, self.feat_dim = criterion, head, feat_dim

    def build_model(self, encoder: nn.Module, num_classes: int | None = None) -> ContrastiveModel:
        """Encoder + projection head; ``num_classes`` is unused (no classifier in stage 1)."""
        head = ProjectionHead(num_features(encoder), kind=self.head, out_dim=self.feat_dim)
        return ContrastiveModel(encoder, head)

    def __call__(self, model: nn.Module, images: Tensor, labels: Tensor | None = None, *,
                 micro_batch_size: int | None = None, grad_scale: float = 1.0) -> dict[str, Any]:
        """One step on this rank's batch ``images`` ``[B, V, C, H, W]`` with ``labels`` ``[B]``,
        against the global batch: ``{"loss", "features" [B, F] (view 0, detached), BACKWARD_DONE}``.

        Without ``micro_batch_size`` (or when it covers the batch) all B*V views go through
        ``model`` in one pass (so BatchNorm sees them together) and the returned loss still has
        to be back-propagated. With it, the backward pass is done here, ``micro_batch_size``
        images at a time (gradient caching), multiplied by ``grad_scale`` (the fp16 loss scale),
        and the detached loss is returned with ``BACKWARD_DONE: True``. Then the batch is given
        to :meth:`remember`.

        Raises:
            ValueError: ``images`` is not 5-D, ``labels`` is None for a method that needs them,
                or the loss rejects its input.
        """
        batch, views = check_views(images, self.name)
        if self.needs_labels and labels is None:
            raise ValueError(f"{self.name}: labels are required (use the simclr method without labels)")
        flat = flat_views(images)  # [B*V, C, H, W] (or B*V texts), sample-major
        all_labels = dist.gather(labels) if labels is not None else None
        cached = micro_batch_size is not None and micro_batch_size < batch

        def loss_fn(z: Tensor) -> Tensor:  # z [B*V, D] of this rank
            z_all = dist.gather_with_grad(z.float()).unflatten(0, (-1, views))  # [W*B, V, D]
            return self.loss_from_embeddings(z_all, all_labels)

        if cached:
            # The probe's features: the encoder's outputs of the pass without gradients (the
            # replay gives the same values).
            encoder = dist.unwrap(model).encoder
            with outputs_of(encoder, keep=lambda: not torch.is_grad_enabled()) as reps:
                loss = cached_backward(model, self.embed, loss_fn, flat, micro_batch_size * views,
                                       grad_scale=grad_scale)
            r = torch.cat(reps)
        else:
            r, z = model(flat)  # [B*V, F], [B*V, D]
            loss = loss_fn(z)
        self.remember(model, images, labels, micro_batch_size)
        return {"loss": loss, "features": r.detach().unflatten(0, (batch, views))[:, 0], BACKWARD_DONE: cached}

    def embed(self, model: nn.Module, images: Tensor) -> Tensor:
        """Normalised projections of a flat batch: ``[N, C, H, W] -> [N, D]``."""
        return model(images)[1]

    def loss_from_embeddings(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """The method's loss of ``z`` ``[B, V, D]`` with ``labels`` ``[B]``, in float32 (autocast
        off, whatever the training precision).

        Raises:
            ValueError: the loss rejects ``z`` or ``labels``.
        """
        with full_precision(z.device):
            return self.loss(z.float(), labels)

    def loss(self, z: Tensor, labels: Tensor | None) -> Tensor:
        """The criterion of float32 embeddings ``z`` ``[B, V, D]``, with ``labels`` ``[B]`` (or
        ``[B, C]`` label sets) when the method takes its positives from them, else without (each
        sample's own views are its only positives)."""
        return self.criterion(z, labels if self.needs_labels else None)

    def remember(self, model: nn.Module, images: Tensor, labels: Tensor | None,
                 chunk: int | None = None) -> None:
        """Called after each step's loss with its batch; nothing to keep here (see the memory
        variant)."""

    def after_step(self) -> None:
        """Called after every optimizer step; nothing to do here (see the memory variant)."""
