"""Augmentation stages that work on a whole batch at once, each sample with its own parameters.

A stage declares ``n_uniforms``, the number of U(0, 1) draws it needs per image, and maps
``(x, u)`` to the augmented batch, ``u`` being ``[N, n_uniforms]`` float64. All randomness
comes through ``u``, so a sample's result depends only on its own row of ``u`` (never on the
other samples in the batch): the batched and one-image paths agree. The first stage turns uint8
``[N, C, H, W]`` (or a list of ``[C, H, W]`` of any sizes) into float ``[N, C, S, S]`` in [0, 1];
later stages keep that form. The semantics follow torchvision's transforms v2 (same parameter
distributions and colour formulas); the speed comes from one vectorised call per batch instead
of a dozen small calls per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from .images import fit_square

_ATTEMPTS = 10  # RandomResizedCrop's rejection-sampling tries, as in torchvision
_GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


def to_float(images: Tensor | list[Tensor]) -> list[Tensor] | Tensor:
    """uint8 (0..255) -> float32 in [0, 1]; floating input is taken to be in [0, 1] already."""
    if isinstance(images, list):
        return [to_float(im) for im in images]
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()


def _sizes(images: Tensor | list[Tensor]) -> tuple[Tensor, Tensor]:
    if isinstance(images, Tensor):
        n, h, w, dev = images.shape[0], images.shape[-2], images.shape[-1], images.device
        return (torch.full((n,), h, dtype=torch.float64, device=dev),
                torch.full((n,), w, dtype=torch.float64, device=dev))
    hw = torch.tensor([im.shape[-2:] for im in images], dtype=torch.float64).reshape(-1, 2)
    return hw[:, 0], hw[:, 1]


def crop_boxes(H: Tensor, W: Tensor, u: Tensor, scale, ratio) -> Tensor:
    """RandomResizedCrop boxes ``[N, 4]`` (top, left, height, width) from ``u [N, 22]``:
    the first valid of 10 (area, log-aspect) tries, else the central crop clamped to ``ratio``."""
    area = H * W
    target = area[:, None] * (scale[0] + u[:, :_ATTEMPTS] * (scale[1] - scale[0]))
    log_r = math.log(ratio[0]) + u[:, _ATTEMPTS : 2 * _ATTEMPTS] * (
        math.log(ratio[1]) - math.log(ratio[0])
    )
    aspect = torch.exp(log_r)
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    ok = (w > 0) & (h > 0) & (w <= W[:, None]) & (h <= H[:, None])
    first = torch.argmax(ok.to(torch.int8), dim=1, keepdim=True)
    any_ok = ok.any(dim=1)
    in_ratio = W / H
    fb_w = torch.where(
        in_ratio < ratio[0], W, torch.where(in_ratio > ratio[1], torch.round(H * ratio[1]), W)
    )
    fb_h = torch.where(in_ratio < ratio[0], torch.round(W / ratio[0]), H)
    w = torch.where(any_ok, w.gather(1, first)[:, 0], fb_w)
    h = torch.where(any_ok, h.gather(1, first)[:, 0], fb_h)
    top = torch.where(any_ok, torch.floor(u[:, -2] * (H - h + 1)), torch.floor((H - h) / 2))
    left = torch.where(any_ok, torch.floor(u[:, -1] * (W - w + 1)), torch.floor((W - w) / 2))
    return torch.stack([top, left, h, w], dim=1)


def _grid_crop(x: Tensor, boxes: Tensor, flip: Tensor, size: int) -> Tensor:
    """Bilinear resize of each box of float ``x [N, C, H, W]`` to ``size``, mirrored where
    ``flip``; matches ``interpolate(..., align_corners=False)`` for boxes no larger than size."""
    H, W = x.shape[-2:]
    top, left, h, w = boxes.unbind(1)
    # Output pixel centres in [-1, 1]; the box maps to them by a per-sample scale and shift.
    out = (torch.arange(size, dtype=torch.float64, device=x.device) * 2 + 1) / size - 1
    gx = torch.where(flip, -w / W, w / W)[:, None] * out + ((2 * left + w) / W - 1)[:, None]
    gy = (h / H)[:, None] * out + ((2 * top + h) / H - 1)[:, None]
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    return F.grid_sample(
        x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=False
    )


class ResizedCropFlip:
    """RandomResizedCrop(size, scale, ratio) + horizontal flip with probability ``flip_p``.

    Boxes no larger than ``size`` go through one ``grid_sample`` per batch; boxes that must be
    shrunk use torchvision's antialiased ``resized_crop``, one image at a time.
    """

    n_uniforms = 2 * _ATTEMPTS + 3

    def __init__(
        self, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip_p: float = 0.5
    ) -> None:
        self.size, self.scale, self.ratio, self.flip_p = size, tuple(scale), tuple(ratio), flip_p

    def __call__(self, images: Tensor | list[Tensor], u: Tensor) -> Tensor:
        H, W = _sizes(images)
        boxes = crop_boxes(H, W, u[:, :-1], self.scale, self.ratio)
        flip = u[:, -1] < self.flip_p
        small = (boxes[:, 2] <= self.size) & (boxes[:, 3] <= self.size)
        if isinstance(images, Tensor) and bool(small.all()):
            return _grid_crop(to_float(images), boxes, flip, self.size)
        out = []
        for k, im in enumerate(images):
            x = to_float(im)[None]
            if small[k]:
                out.append(_grid_crop(x, boxes[k : k + 1], flip[k : k + 1], self.size)[0])
                continue
            t, le, h, w = (int(v) for v in boxes[k].tolist())
            y = TF.resized_crop(x[0], t, le, h, w, [self.size, self.size], antialias=True)
            out.append(y.flip(-1) if flip[k] else y)
        return torch.stack(out)


def _square(images: Tensor | list[Tensor], size: int) -> Tensor:
    """Images as float ``[N, C, size, size]`` (resized/centre-cropped where they are not)."""
    if isinstance(images, Tensor) and images.shape[-2:] == (size, size):
        return to_float(images)
    return torch.stack([to_float(fit_square(im, size)) for im in images])


class ResizeCenter:
    """Deterministic: shorter side to ``size``, centre crop (a no-op at the right size)."""

    n_uniforms = 0

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, images: Tensor | list[Tensor], u: Tensor) -> Tensor:
        return _square(images, self.size)


class PadCropFlip:
    """Zero-pad by ``padding``, take a random ``size x size`` window, flip with ``flip_p``
    (the classic CIFAR recipe). Exact pixel copies: no interpolation."""

    n_uniforms = 3

    def __init__(self, size: int, padding: int, flip_p: float = 0.5) -> None:
        self.size, self.padding, self.flip_p = size, padding, flip_p

    def __call__(self, images: Tensor | list[Tensor], u: Tensor) -> Tensor:
        x = _square(images, self.size)
        p, s = self.padding, self.size
        xp = F.pad(x, (p, p, p, p))
        top = torch.floor(u[:, 0] * (2 * p + 1)).long()
        left = torch.floor(u[:, 1] * (2 * p + 1)).long()
        steps = torch.arange(s, device=x.device)
        rows = (top[:, None] + steps)[:, :, None]  # [N, S, 1]
        cols = left[:, None] + steps  # [N, S]
        cols = torch.where((u[:, 2] < self.flip_p)[:, None], cols.flip(1), cols)[:, None, :]
        n = torch.arange(x.shape[0], device=x.device)[:, None, None]
        return xp.permute(0, 2, 3, 1)[n, rows, cols].permute(0, 3, 1, 2).contiguous()
