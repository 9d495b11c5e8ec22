"""Small image-filtering helpers for the corruptions, on float images ``[B, C, H, W]``.

Borders are reflected (as OpenCV/scikit-image do for the ImageNet-C corruptions) when the image
is large enough for it, else replicated.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def pad(x: Tensor, radius: int) -> Tensor:
    """Pad ``radius`` pixels on every side; reflect when possible (needs radius < H and W)."""
    if radius <= 0:
        return x
    mode = "reflect" if radius < min(x.shape[-2:]) else "replicate"
    return F.pad(x, (radius, radius, radius, radius), mode=mode)


def gaussian_kernel1d(sigma: float, radius: int | None = None) -> Tensor:
    """Normalised 1-D Gaussian ``[2r+1]`` with ``r = ceil(3 sigma)`` unless given."""
    if radius is None:
        radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of every channel; ``sigma <= 0`` returns ``x``."""
    if sigma <= 0:
        return x
    radius = min(max(1, math.ceil(3 * sigma)), max(1, min(x.shape[-2:]) - 1))
    k = gaussian_kernel1d(sigma, radius).to(x)
    b, c, h, w = x.shape
    y = pad(x.reshape(b * c, 1, h, w), radius)
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    y = F.conv2d(y, k.view(1, 1, -1, 1))
    return y.reshape(b, c, h, w)


def filter_per_image(x: Tensor, kernels: Tensor) -> Tensor:
    """Correlate image b (all channels) with its own kernel ``kernels[b]`` ``[B, K, K]`` (K odd)."""
    b, c, h, w = x.shape
    size = kernels.shape[-1]
    weight = kernels.to(x).repeat_interleave(c, dim=0).unsqueeze(1)  # [B*C, 1, K, K]
    radius = size // 2
    if radius >= min(h, w):  # crop the kernel so the padding stays valid
        cut = radius - (min(h, w) - 1)
        weight = weight[..., cut:-cut, cut:-cut]
        weight = weight / weight.sum(dim=(-2, -1), keepdim=True)
        radius = weight.shape[-1] // 2
    y = F.conv2d(pad(x.reshape(1, b * c, h, w), radius), weight, groups=b * c)
    return y.reshape(b, c, h, w)


def disk_kernel(radius: float, alias_sigma: float, supersample: int = 8) -> Tensor:
    """Defocus kernel: a filled disk of ``radius`` px, anti-aliased by a small Gaussian.

    Each tap is the fraction of its pixel covered by the disk (estimated on a
    ``supersample x supersample`` grid), so the kernel grows smoothly with the radius even
    below one pixel, where a 0/1 disk would jump from a single tap to a cross.
    """
    r = max(1, math.ceil(radius)) + 1
    sub = (torch.arange(supersample, dtype=torch.float32) + 0.5) / supersample - 0.5
    t = (torch.arange(-r, r + 1, dtype=torch.float32)[:, None] + sub[None, :]).reshape(-1)
    inside = ((t[:, None] ** 2 + t[None, :] ** 2) <= radius**2).float()
    n = 2 * r + 1
    disk = inside.view(n, supersample, n, supersample).mean(dim=(1, 3))
    if disk.sum() == 0:  # radius below the sub-pixel grid: a point
        disk[r, r] = 1.0
    disk = disk / disk.sum()
    return _smooth2d(disk, gaussian_kernel1d(alias_sigma, r))


def _smooth2d(k: Tensor, g: Tensor) -> Tensor:
    """Convolve a small 2-D kernel with the separable Gaussian ``g`` (zero padding, same size)."""
    r = g.numel() // 2
    y = F.conv2d(k[None, None], g.view(1, 1, 1, -1), padding=(0, r))
    y = F.conv2d(y, g.view(1, 1, -1, 1), padding=(r, 0))[0, 0]
    return y / y.sum()


def motion_kernels(radius: float, sigma: float, angles_deg: Tensor) -> Tensor:
    """One-sided motion-blur kernels ``[B, K, K]``: Gaussian weights along a ray at each angle.

    Like ImageMagick's motion blur: the pixel at distance i along the ray gets weight
    ``exp(-i^2 / (2 sigma^2))``, i = 0..radius, so the image smears in one direction.
    """
    r = max(1, math.ceil(radius))
    steps = torch.arange(r + 1, dtype=torch.float32)
    weights = torch.exp(-0.5 * (steps / sigma) ** 2)
    theta = torch.deg2rad(angles_deg.float())[:, None]  # [B, 1]
    rows = (r + torch.round(steps * torch.sin(theta))).long()  # [B, r+1]
    cols = (r + torch.round(steps * torch.cos(theta))).long()
    size = 2 * r + 1
    kernels = torch.zeros(angles_deg.numel(), size * size)
    kernels.scatter_add_(1, rows * size + cols, weights.expand_as(rows).contiguous())
    kernels = kernels / kernels.sum(dim=1, keepdim=True)
    return kernels.view(-1, size, size)


def zoom_matrix(size: int, factor: float) -> Tensor:
    """``[size, size]`` 1-D bilinear resampling matrix that zooms into the centre by ``factor``.

    Output pixel i (centre at ``u = (2i + 1) / size - 1`` in [-1, 1] coordinates) reads the input
    at ``u / factor``, with edge pixels repeated beyond the border, as ``grid_sample`` with
    ``align_corners=False, padding_mode="border"`` would; zooming is separable, so an image
    zooms as ``A @ X @ A.T``.
    """
    u = (2 * torch.arange(size, dtype=torch.float64) + 1) / size - 1
    src = (((u / factor) + 1) * size - 1) / 2  # source pixel coordinate
    src = src.clamp(0, size - 1)
    lo = src.floor().long()
    hi = (lo + 1).clamp(max=size - 1)
    frac = src - lo
    m = torch.zeros(size, size, dtype=torch.float64)
    rows = torch.arange(size)
    m.index_put_((rows, lo), 1 - frac, accumulate=True)
    m.index_put_((rows, hi), frac, accumulate=True)
    return m


def mean_of_zooms(x: Tensor, factors: list[float]) -> Tensor:
    """Mean over ``factors`` of the centre zooms of ``x`` ``[B, C, H, W]``, as one contraction."""
    h, w = x.shape[-2:]
    rows = torch.stack([zoom_matrix(h, f) for f in factors]).to(x.dtype)  # [Z, H, H]
    cols = torch.stack([zoom_matrix(w, f) for f in factors]).to(x.dtype)  # [Z, W, W]
    return torch.einsum("zih,bchw,zjw->bcij", rows, x, cols) / len(factors)


def displace(x: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
    """Sample ``x`` at ``(col + dx, row + dy)``; displacements ``[B, H, W]`` in pixels."""
    b, _, h, w = x.shape
    rows = torch.arange(h, dtype=x.dtype).view(1, h, 1)
    cols = torch.arange(w, dtype=x.dtype).view(1, 1, w)
    # pixel centres -> [-1, 1] with align_corners=False
    gx = (2 * (cols + dx) + 1) / w - 1
    gy = (2 * (rows + dy) + 1) / h - 1
    grid = torch.stack([gx.expand(b, h, w), gy.expand(b, h, w)], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
