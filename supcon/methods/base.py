"""The method contract (:class:`Method`) and the pieces the methods share: the two model
wrappers and batch-shape helpers.

Each wrapper's ``forward`` does the whole computation, so that a wrapped model (DDP,
``torch.compile``) sees every call go through its own ``forward``.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ..checks import check_int

# A step that back-propagated its own loss (gradient caching) returns this key set to True; the
# training loop then only clips and steps.
BACKWARD_DONE = "backward_done"


class Method(Protocol):
    """What the train job needs of a training method (SupCon, SimCLR, the memory variant, CE).

    The train job knows methods only through this contract: it never asks for a method's name.
    """

    name: str
    """Registry name: ``supcon``, ``simclr``, ``ce`` or ``ce+supcon``."""
    multi_view: bool
    """True for the contrastive methods: batches are ``[B, V, C, H, W]`` (the train job makes the
    views), the model has no classifier, so the job trains the online probe during stage 1 and
    fits the linear stage after it. False: batches ``[B, C, H, W]`` (``[B, V, C, H, W]`` when
    ``data.n_views`` > 1: ce+supcon), and the model's ``classifier`` is the one evaluated. A text
    batch is a :class:`supcon.data.TextBatch` in either case."""

    def build_model(self, encoder: nn.Module, num_classes: int) -> nn.Module:
        """The stage-1 model around ``encoder`` (kept as ``.encoder``); its ``forward`` maps
        ``[N, C, H, W]`` to ``(r [N, F], outputs)``."""
        ...

    def __call__(self, model: nn.Module, images: Tensor, labels: Tensor | None, *,
                 micro_batch_size: int | None = None, grad_scale: float = 1.0) -> dict[str, Any]:
        """One step's ``{"loss", "features" [B, F] (detached, for the probe), ...}``. A result
        with ``BACKWARD_DONE: True`` was already back-propagated (gradient caching, with
        ``micro_batch_size`` images at a time and the backward multiplied by ``grad_scale``)."""
        ...

    def after_step(self) -> None:
        """Called after every optimizer step (the memory variant's momentum update)."""
        ...


class ContrastiveModel(nn.Module):
    """Encoder + projection head: ``[N, C, H, W] -> (r [N, F], z [N, D])``, z unit-norm."""

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``[N, C, H, W]`` -> ``(r [N, F], z [N, D])``."""
        r = self.encoder(images)
        return r, self.head(r)


class ClassifierModel(nn.Module):
    """Encoder + linear classifier: ``[N, C, H, W] -> (r [N, F], logits [N, K])``."""

    def __init__(self, encoder: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.classifier = classifier

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``[N, C, H, W]`` -> ``(r [N, F], logits [N, K])``."""
        r = self.encoder(images)
        return r, self.classifier(r)


def num_features(encoder: nn.Module) -> int:
    """The encoder's representation size (``.num_features``).

    Raises:
        ValueError: the encoder has no int ``num_features >= 1``.
    """
    dim = getattr(encoder, "num_features", None)
    check_int(f"the encoder's num_features ({type(encoder).__name__})", dim)
    return dim


def check_views(images: Tensor, method: str) -> tuple[int, int]:
    """Return (B, V) of a multi-view batch: ``[B, V, C, H, W]`` images, or a batch of texts
    (:class:`supcon.data.TextBatch`: its ``shape`` is ``(B, V)`` and ``flat()`` its B*V inputs).

    Raises:
        ValueError: ``images`` is neither (the message names ``method``).
    """
    if is_view_batch(images):
        return tuple(images.shape)
    if not isinstance(images, Tensor) or images.dim() != 5:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{method}: images must be [B, V, C, H, W] (multi-view), got {shape}")
    return images.shape[0], images.shape[1]


def flat_views(images: Tensor) -> Tensor | list:
    """The B*V inputs of a multi-view batch, sample-major: ``[B*V, C, H, W]`` images, or the list
    of texts (each text V times in a row) for a batch of texts."""
    return images.flat() if is_view_batch(images) else images.flatten(0, 1)


def split_rows(inputs: Tensor | list, size: int) -> list:
    """``inputs`` (a tensor's rows, or a list) in consecutive pieces of ``size``."""
    if isinstance(inputs, Tensor):
        return list(inputs.split(size))
    return [inputs[i:i + size] for i in range(0, len(inputs), size)]


def is_view_batch(images: object) -> bool:
    """Whether ``images`` is a multi-view batch that is not a tensor (a batch of texts)."""
    return not isinstance(images, Tensor) and hasattr(images, "flat") and len(getattr(images, "shape", ())) == 2


def full_precision(device: torch.device):
    """Context that turns autocast off, so the loss runs in float32 under mixed precision."""
    try:
        return torch.autocast(device.type, enabled=False)
    except RuntimeError:  # a device type autocast does not know: nothing to turn off
        return contextlib.nullcontext()
