"""A small ResNet for CPU training on small images (Fashion-MNIST 28x28, CIFAR 32x32).

A 3x3 stride-1 stem at full resolution, then one stage per width built from torchvision's
BasicBlock, then global average pooling. By default every stage halves the resolution
(28 -> 14 -> 7 -> 4): 0.31M parameters and 10.5M multiply-adds per 28x28 image, 3.5x fewer than
keeping the first stage at full resolution (``strides=(1, 2, 2)``), which is what lets it train
Fashion-MNIST on two CPU cores.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock

from ..checks import check_int, is_int
from .layers import init_conv, norm_factory, zero_init_residuals
from .registry import register_encoder


class SmallResNet(nn.Module):
    """Basic-block ResNet: ``[B, C, H, W] -> [B, widths[-1]]``.

    Args:
        in_channels: image channels (1 for Fashion-MNIST).
        widths: channels of each stage.
        blocks: residual blocks per stage (same length as ``widths``).
        strides: stride of each stage's first block (same length as ``widths``).
        norm: ``"batch"``, ``"group"`` or ``"none"`` (see :func:`~.layers.norm_factory`).
        zero_init_residual: start every residual branch at zero (identity blocks).
        stem_stride: stride of the stem convolution; 2 halves the resolution before any
            stage, which removes the full-resolution activations (the slowest part of a CPU step).

    Raises:
        ValueError: ``widths`` empty, ``blocks``/``strides`` of another length, a value that is
            not an int >= 1, or an unknown ``norm``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        widths: Sequence[int] = (32, 64, 128),
        blocks: Sequence[int] = (1, 1, 1),
        strides: Sequence[int] = (2, 2, 2),
        norm: str = "batch",
        zero_init_residual: bool = False,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        widths, blocks, strides = _check_stages(widths, blocks, strides)
        check_int("stem_stride", stem_stride)
        make_norm = norm_factory(norm)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, stride=stem_stride, padding=1, bias=False),
            make_norm(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages, channels = [], widths[0]
        for width, count, stride in zip(widths, blocks, strides, strict=True):
            stages.append(_stage(channels, width, count, stride, make_norm))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = channels
        self._init(zero_init_residual)

    def _init(self, zero_init_residual: bool) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                init_conv(module)
        if zero_init_residual:
            zero_init_residuals(self)

    def forward(self, x: Tensor) -> Tensor:
        """Images ``[B, C, H, W]`` -> pooled representations ``[B, num_features]``."""
        x = self.stages(self.stem(x))  # [B, widths[-1], H', W']
        return torch.flatten(self.pool(x), 1)


def _stage(in_ch: int, out_ch: int, count: int, stride: int, make_norm) -> nn.Sequential:
    downsample = None
    if stride != 1 or in_ch != out_ch:
        downsample = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), make_norm(out_ch)
        )
    layers = [BasicBlock(in_ch, out_ch, stride, downsample, norm_layer=make_norm)]
    layers += [BasicBlock(out_ch, out_ch, norm_layer=make_norm) for _ in range(count - 1)]
    return nn.Sequential(*layers)


def _check_stages(widths, blocks, strides) -> tuple[list[int], list[int], list[int]]:
    for arg, values in (("widths", widths), ("blocks", blocks), ("strides", strides)):
        if not isinstance(values, (list, tuple)):
            raise ValueError(f"{arg} must be a list of ints, got {values!r}")
    widths, blocks, strides = list(widths), list(blocks), list(strides)
    if not widths or not all(is_int(w) for w in widths):
        raise ValueError(f"widths must be a non-empty list of ints >= 1, got {widths!r}")
    for arg, values in (("blocks", blocks), ("strides", strides)):
        if len(values) != len(widths) or not all(is_int(v) for v in values):
            raise ValueError(
                f"{arg} must be {len(widths)} ints >= 1 (one per width), got {values!r}"
            )
    return widths, blocks, strides


@register_encoder("small-resnet")
def small_resnet(
    in_channels: int = 3,
    widths: Sequence[int] = (32, 64, 128),
    blocks: Sequence[int] = (1, 1, 1),
    strides: Sequence[int] = (2, 2, 2),
    norm: str = "batch",
    zero_init_residual: bool = False,
    stem_stride: int = 1,
) -> SmallResNet:
    """The first CPU encoder (see :class:`SmallResNet`)."""
    return SmallResNet(in_channels, widths, blocks, strides, norm, zero_init_residual, stem_stride)


@register_encoder("small-resnet-s2")
def small_resnet_s2(
    in_channels: int = 3,
    widths: Sequence[int] = (32, 64, 128),
    blocks: Sequence[int] = (1, 1, 1),
    strides: Sequence[int] = (1, 2, 2),
    norm: str = "batch",
    zero_init_residual: bool = False,
    stem_stride: int = 2,
) -> SmallResNet:
    """The default CPU encoder: ``small-resnet`` with a stride-2 stem (28 -> 14 -> 14 -> 7 -> 4).

    Slightly fewer parameters (0.31M) and about the same multiply-adds as ``small-resnet``, but no
    activation at full resolution: 2x the training steps per CPU-second, and the best SupCon
    accuracy per CPU-minute of the candidates in benchmarks/RESULTS.md ("Encoder search").
    """
    return SmallResNet(in_channels, widths, blocks, strides, norm, zero_init_residual, stem_stride)
