"""torchvision ResNets as encoders: CIFAR-stem ResNet-18/34/50/101 and ImageNet ResNet-50..200.

The blocks are torchvision's; only the stem changes (CIFAR: 3x3 conv, stride 1, no max-pool, as
in the paper's CIFAR experiments) and the classifier is dropped, so ``forward`` returns the
pooled representation ``[B, 512 * expansion]``. Parameter names match torchvision's (minus
``fc``). Nothing is pretrained and nothing downloads.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from .layers import init_conv, norm_factory, zero_init_residuals
from .registry import register_encoder

# name -> (block, blocks per stage); resnet200 is He et al.'s (2016b), absent from torchvision.
_ARCHS: dict[str, tuple[type[nn.Module], list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
    "resnet200": (Bottleneck, [3, 24, 36, 3]),
}


class ResNetEncoder(ResNet):
    """torchvision ``ResNet`` without ``fc``: ``[B, C, H, W] -> [B, num_features]``.

    Args:
        arch: a key of ``_ARCHS`` (``"resnet18"`` ... ``"resnet200"``).
        in_channels: image channels.
        stem: ``"cifar"`` (3x3 stride-1 conv, no max-pool) or ``"imagenet"`` (7x7 stride-2 conv
            followed by a 3x3 stride-2 max-pool).
        norm: ``"batch"``, ``"group"`` or ``"none"``.
        zero_init_residual: start every residual branch at zero.

    Raises:
        ValueError: unknown ``stem`` or ``norm``. (An unknown ``arch`` is a KeyError; use the
            registry names through :func:`~.registry.create_encoder`.)
    """

    def __init__(
        self,
        arch: str,
        in_channels: int = 3,
        stem: str = "cifar",
        norm: str = "batch",
        zero_init_residual: bool = False,
    ) -> None:
        block, layers = _ARCHS[arch]
        super().__init__(block, layers, norm_layer=norm_factory(norm))
        self.num_features = 512 * block.expansion
        self.fc = nn.Identity()
        if stem == "cifar":
            self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        elif stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        else:
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
        init_conv(self.conv1)
        if zero_init_residual:
            zero_init_residuals(self)


def _register(name: str, arch: str, stem: str) -> None:
    def factory(
        in_channels: int = 3, norm: str = "batch", zero_init_residual: bool = False
    ) -> ResNetEncoder:
        return ResNetEncoder(arch, in_channels, stem, norm, zero_init_residual)

    factory.__doc__ = f"{arch} with the {stem} stem (see :class:`ResNetEncoder`)."
    register_encoder(name)(factory)


for _arch in ("resnet18", "resnet34", "resnet50", "resnet101"):
    _register(_arch, _arch, "cifar")
for _arch in ("resnet50", "resnet101", "resnet152", "resnet200"):
    _register(f"imagenet-{_arch}", _arch, "imagenet")
