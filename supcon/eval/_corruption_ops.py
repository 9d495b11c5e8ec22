"""The corruption operations. Each takes float images ``x [B, C, H, W]`` in [0, 1], the
severity's parameters ``p`` and a CPU ``torch.Generator`` ``g``, and returns float images (the
caller clips and quantises). Spatial parameters are given for 32-px images and scaled by
``min(H, W) / 32`` here; see :mod:`supcon.eval.corruptions` for the table.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor
from torchvision.io import decode_jpeg, encode_jpeg

from supcon.eval import _filters


def _scale(x: Tensor) -> float:
    return min(x.shape[-2:]) / 32.0


def _randn(x: Tensor, g: torch.Generator) -> Tensor:
    return torch.randn(x.shape, generator=g, dtype=x.dtype)


# --- noise ----------------------------------------------------------------------------------


def gaussian_noise(x: Tensor, std: float, g: torch.Generator) -> Tensor:
    return x + std * _randn(x, g)


def shot_noise(x: Tensor, photons: float, g: torch.Generator) -> Tensor:
    """Poisson photon noise: fewer photons per unit intensity, more noise."""
    return torch.poisson(x * photons, generator=g) / photons


def impulse_noise(x: Tensor, amount: float, g: torch.Generator) -> Tensor:
    """Salt and pepper: a fraction ``amount`` of values set to 0 or 1 with equal odds."""
    u = torch.rand(x.shape, generator=g, dtype=x.dtype)
    x = torch.where(u < amount / 2, torch.ones_like(x), x)
    return torch.where((u >= amount / 2) & (u < amount), torch.zeros_like(x), x)


def speckle_noise(x: Tensor, std: float, g: torch.Generator) -> Tensor:
    """Multiplicative Gaussian noise: bright pixels get noisier."""
    return x + x * std * _randn(x, g)


# --- blur -----------------------------------------------------------------------------------


def gaussian_blur(x: Tensor, sigma: float, g: torch.Generator) -> Tensor:
    return _filters.gaussian_blur(x, sigma * _scale(x))


def defocus_blur(x: Tensor, p: tuple[float, float], g: torch.Generator) -> Tensor:
    """Disk (out-of-focus lens) kernel of radius ``p[0]``, anti-aliased with sigma ``p[1]``."""
    s = _scale(x)
    kernel = _filters.disk_kernel(p[0] * s, max(p[1] * s, 0.05))
    return _filters.filter_per_image(x, kernel.expand(x.shape[0], *kernel.shape))


def motion_blur(x: Tensor, p: tuple[float, float], g: torch.Generator) -> Tensor:
    """One-sided Gaussian smear of length ``p[0]`` (sigma ``p[1]``) at a random angle in ±45°."""
    s = _scale(x)
    angles = torch.rand(x.shape[0], generator=g) * 90 - 45
    return _filters.filter_per_image(x, _filters.motion_kernels(p[0] * s, p[1] * s, angles))


def zoom_blur(x: Tensor, max_zoom: float, g: torch.Generator) -> Tensor:
    """Average of the image and its centre zooms 1.00, 1.01, ... < ``max_zoom`` (bilinear)."""
    steps = max(1, round((max_zoom - 1) / 0.01))
    zooms = _filters.mean_of_zooms(x, [1 + 0.01 * i for i in range(steps)])
    return (x + steps * zooms) / (steps + 1)


def glass_blur(x: Tensor, p: tuple[float, int, int], g: torch.Generator) -> Tensor:
    """Blur, then ``p[2]`` rounds of local pixel scrambling within ±``p[1]`` px, then blur."""
    sigma, delta, rounds = p[0] * _scale(x), p[1], p[2]
    x = _filters.gaussian_blur(x, sigma)
    b, c, h, w = x.shape
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    for _ in range(rounds):
        dy = torch.randint(-delta, delta + 1, (b, h, w), generator=g)
        dx = torch.randint(-delta, delta + 1, (b, h, w), generator=g)
        src = (rows + dy).clamp(0, h - 1) * w + (cols + dx).clamp(0, w - 1)  # [B, H, W]
        x = x.reshape(b, c, h * w).gather(2, src.view(b, 1, h * w).expand(b, c, h * w))
        x = x.view(b, c, h, w)
    return _filters.gaussian_blur(x, sigma)


# --- weather --------------------------------------------------------------------------------


def _fractal_noise(b: int, h: int, w: int, decay: float, g: torch.Generator) -> Tensor:
    """Cloud-like noise ``[B, 1, H, W]`` in [0, 1]: octaves of upsampled random grids whose
    amplitude falls by ``decay`` per octave (a stand-in for the diamond-square plasma fractal)."""
    octaves = max(1, math.ceil(math.log2(max(h, w))))
    total = torch.zeros(b, 1, h, w)
    for k in range(octaves):
        n = 2 ** (k + 1) + 1
        grid = torch.rand(b, 1, n, n, generator=g) * 2 - 1
        up = torch.nn.functional.interpolate(grid, size=(h, w), mode="bilinear", align_corners=True)
        total += up / decay**k
    lo = total.amin(dim=(1, 2, 3), keepdim=True)
    hi = total.amax(dim=(1, 2, 3), keepdim=True)
    return (total - lo) / (hi - lo).clamp(min=1e-8)


def fog(x: Tensor, p: tuple[float, float], g: torch.Generator) -> Tensor:
    """Add ``p[0]`` times a fractal haze (smoothness ``p[1]``), then rescale to keep the max."""
    b, _, h, w = x.shape
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    x = x + p[0] * _fractal_noise(b, h, w, p[1], g).to(x)
    return x * peak / (peak + p[0])


# --- digital / photometric ------------------------------------------------------------------


def contrast(x: Tensor, factor: float, g: torch.Generator) -> Tensor:
    """Pull every value towards the image mean by ``factor``."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * factor + mean


def brightness(x: Tensor, shift: float, g: torch.Generator) -> Tensor:
    """Add ``shift`` to the HSV value V = max over channels, keeping hue and saturation.

    With H and S fixed every channel is proportional to V, so the exact HSV round trip is a
    per-pixel rescaling; for one channel V is the pixel itself (x + shift).
    """
    v = x.amax(dim=1, keepdim=True)
    v_new = (v + shift).clamp(max=1.0)
    ratio = torch.where(v > 0, v_new / v.clamp(min=1e-12), torch.zeros_like(v))
    return torch.where(v > 0, x * ratio, v_new.expand_as(x))


def saturate(x: Tensor, p: tuple[float, float], g: torch.Generator) -> Tensor:
    """Set HSV saturation S to ``S * p[0] + p[1]`` (clipped), keeping hue and value.

    In HSV every channel is ``V - V*S*f(hue)``, so scaling S scales ``V - x``. Grayscale images
    have no saturation; for them we apply the luminance analogue: each pixel's distance from the
    image mean is scaled by ``p[0]`` and pushed out by ``p[1]`` (an over-contrast).
    """
    a, b = p
    if x.shape[1] == 1:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        d = x - mean
        return mean + d * a + torch.sign(d) * b
    v = x.amax(dim=1, keepdim=True)
    s = torch.where(v > 0, (v - x.amin(dim=1, keepdim=True)) / v.clamp(min=1e-12), 0 * v)
    s_new = (s * a + b).clamp(0, 1)
    ratio = torch.where(s > 0, s_new / s.clamp(min=1e-12), torch.zeros_like(s))
    return v - (v - x) * ratio


def pixelate(x: Tensor, fraction: float, g: torch.Generator) -> Tensor:
    """Box-downsample to ``fraction`` of the side, then blow back up into blocks (nearest)."""
    h, w = x.shape[-2:]
    small = (max(1, int(h * fraction)), max(1, int(w * fraction)))
    x = torch.nn.functional.interpolate(x, size=small, mode="area")
    return torch.nn.functional.interpolate(x, size=(h, w), mode="nearest")


def jpeg_compression(x: Tensor, quality: int, g: torch.Generator) -> Tensor:
    """Round trip through JPEG at ``quality`` (torchvision's libjpeg), one image at a time."""
    images = list(x.mul(255).round().clamp(0, 255).to(torch.uint8).unbind(0))
    with warnings.catch_warnings():
        # torchvision >= 0.29 flags its image codecs as deprecated (moving to torchcodec)
        warnings.simplefilter("ignore", DeprecationWarning)
        decoded = decode_jpeg(encode_jpeg(images, quality=quality))
    return torch.stack(decoded).to(x.dtype) / 255


def elastic_transform(x: Tensor, p: tuple[float, float], g: torch.Generator) -> Tensor:
    """Warp by a smooth random displacement field with RMS ``p[0]`` px and smoothness ``p[1]`` px.

    The field is uniform noise blurred by a Gaussian of sigma ``p[1]`` and rescaled so its RMS
    is exactly ``p[0]``: the severity then controls the displacement directly.
    """
    s = _scale(x)
    b, _, h, w = x.shape
    field = torch.rand(b, 2, h, w, generator=g, dtype=x.dtype) * 2 - 1
    field = _filters.gaussian_blur(field, p[1] * s)
    rms = field.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp(min=1e-8)
    field = field / rms * (p[0] * s)
    return _filters.displace(x, field[:, 0], field[:, 1])
