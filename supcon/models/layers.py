"""Small building blocks shared by the encoders: normalisation choice and residual zero-init."""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

NORMS = ("batch", "group", "none")


def norm_factory(norm: str) -> Callable[[int], nn.Module]:
    """Return ``channels -> normalisation layer`` for ``norm`` in :data:`NORMS`.

    ``"group"`` uses 32 groups (or the largest divisor of the channel count below that);
    ``"none"`` gives identities, so a forward pass has no cross-sample coupling (needed to make
    micro-batched gradients exactly equal to full-batch ones).

    Raises:
        ValueError: ``norm`` not in :data:`NORMS`.
    """
    if norm == "batch":
        return nn.BatchNorm2d
    if norm == "group":
        return lambda channels: nn.GroupNorm(math.gcd(32, channels), channels)
    if norm == "none":
        return lambda channels: nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def zero_init_residuals(model: nn.Module) -> None:
    """Zero the last layer of every residual branch so each block starts as the identity.

    Goyal et al. (2017): the last norm's scale is set to 0. Without a norm layer the last conv's
    weights are zeroed instead (as in Fixup), which also keeps deep norm-free nets finite.
    """
    from torchvision.models.resnet import BasicBlock, Bottleneck

    for module in model.modules():
        if isinstance(module, Bottleneck):
            _zero_last(module.bn3, module.conv3)
        elif isinstance(module, BasicBlock):
            _zero_last(module.bn2, module.conv2)


def _zero_last(norm: nn.Module, conv: nn.Conv2d) -> None:
    weight = getattr(norm, "weight", None)
    nn.init.zeros_(weight if weight is not None else conv.weight)


def init_conv(conv: nn.Conv2d) -> None:
    """He init (fan-out, ReLU), the same as torchvision's ResNets use for their convs."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
