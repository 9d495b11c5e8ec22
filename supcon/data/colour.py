"""Batched colour stages: colour jitter (random order per sample), random greyscale, blur.

Formulas are torchvision's (float images in [0, 1]): brightness scales, contrast blends with the
mean grey level, saturation blends with the grey image, hue rotates H in HSV; grey uses weights
(0.2989, 0.587, 0.114). On 1-channel images saturation, hue and greyscale are identities (as in
torchvision), so grey data sets get brightness and contrast jitter only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .augment import _GRAY


def grey(x: Tensor) -> Tensor:
    """``[N, 3, H, W]`` -> ``[N, 1, H, W]`` luma."""
    return (x[:, 0] * _GRAY[0] + x[:, 1] * _GRAY[1] + x[:, 2] * _GRAY[2])[:, None]


def _blend(a: Tensor, b: Tensor, ratio: Tensor) -> Tensor:
    r = ratio.to(a.dtype)[:, None, None, None]
    return (r * a + (1 - r) * b).clamp_(0, 1)


def brightness(x: Tensor, f: Tensor) -> Tensor:
    """Scale ``x [N, C, H, W]`` (in [0, 1]) by ``f [N]`` per sample, clipped to [0, 1]."""
    return (x * f.to(x.dtype)[:, None, None, None]).clamp_(0, 1)


def contrast(x: Tensor, f: Tensor) -> Tensor:
    """Blend ``x [N, C, H, W]`` with its mean grey level by ``f [N]`` (1 = unchanged)."""
    lum = grey(x) if x.shape[1] == 3 else x
    return _blend(x, lum.mean(dim=(1, 2, 3), keepdim=True), f)


def saturation(x: Tensor, f: Tensor) -> Tensor:
    """Blend RGB ``x [N, 3, H, W]`` with its grey image by ``f [N]``; identity on 1 channel."""
    return _blend(x, grey(x), f) if x.shape[1] == 3 else x


def hue(x: Tensor, f: Tensor) -> Tensor:
    """Rotate the hue of RGB ``x`` by ``f`` (in turns, per sample) through HSV."""
    if x.shape[1] != 3:
        return x
    r, g, b = x.unbind(1)
    v, vmax_at = x.max(dim=1)
    delta = v - x.min(dim=1).values
    s = torch.where(v > 0, delta / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    h = torch.where(
        vmax_at == 0,
        ((g - b) / safe) % 6,
        torch.where(vmax_at == 1, (b - r) / safe + 2, (r - g) / safe + 4),
    )
    h = torch.where(delta > 0, h / 6, torch.zeros_like(h))
    h = (h + f.to(x.dtype)[:, None, None]) % 1.0
    h6 = h * 6
    sector = torch.floor(h6).long() % 6
    frac = h6 - torch.floor(h6)
    p, q, t = v * (1 - s), v * (1 - s * frac), v * (1 - s * (1 - frac))
    table = torch.stack(
        [
            torch.stack([v, q, p, p, t, v]),  # red per sector
            torch.stack([t, v, v, q, p, p]),  # green
            torch.stack([p, p, t, v, v, q]),  # blue
        ]
    )  # [3, 6, N, H, W]
    idx = sector[None, None].expand(3, 1, *sector.shape)
    return table.gather(1, idx)[:, 0].permute(1, 0, 2, 3).contiguous()


_OPS = (brightness, contrast, saturation, hue)


class ColorJitterGrey:
    """ColorJitter(b, c, s, h) with probability ``p`` (ops in a random order per sample), then
    random greyscale with probability ``grey_p``. ``u`` columns: apply, 4 factors, 4 order keys,
    greyscale."""

    n_uniforms = 10

    def __init__(
        self, b: float, c: float, s: float, h: float, p: float = 0.8, grey_p: float = 0.2
    ) -> None:
        self.ranges = [
            (max(0.0, 1 - b), 1 + b),
            (max(0.0, 1 - c), 1 + c),
            (max(0.0, 1 - s), 1 + s),
            (-h, h),
        ]
        self.enabled = [b > 0, c > 0, s > 0, h > 0]
        self.p, self.grey_p = p, grey_p

    def __call__(self, x: Tensor, u: Tensor) -> Tensor:
        apply = u[:, 0] < self.p
        lo = torch.tensor([r[0] for r in self.ranges], dtype=u.dtype, device=u.device)
        hi = torch.tensor([r[1] for r in self.ranges], dtype=u.dtype, device=u.device)
        factors = lo + u[:, 1:5] * (hi - lo)
        order = torch.argsort(u[:, 5:9], dim=1)
        x = x.clone()
        for slot in range(4):
            for op, fn in enumerate(_OPS):
                sel = apply & (order[:, slot] == op)
                if self.enabled[op] and bool(sel.any()):
                    x[sel] = fn(x[sel], factors[sel, op])
        to_grey = u[:, 9] < self.grey_p
        if x.shape[1] == 3 and bool(to_grey.any()):
            x[to_grey] = grey(x[to_grey]).expand(-1, 3, -1, -1)
        return x


def blur_kernel_size(size: int) -> int:
    """About 10% of the image side, odd, at least 3 (SimCLR's rule)."""
    return max(3, int(0.1 * size) // 2 * 2 + 1)


class GaussianBlur:
    """Gaussian blur with sigma ~ U(sigma) with probability ``p``; reflect padding, separable."""

    n_uniforms = 2

    def __init__(self, kernel_size: int, sigma=(0.1, 2.0), p: float = 0.5) -> None:
        self.k, self.sigma, self.p = kernel_size, tuple(sigma), p

    def __call__(self, x: Tensor, u: Tensor) -> Tensor:
        sel = u[:, 0] < self.p
        if not bool(sel.any()):
            return x
        sigma = self.sigma[0] + u[sel, 1] * (self.sigma[1] - self.sigma[0])
        half = (self.k - 1) / 2
        t = torch.linspace(-half, half, self.k, dtype=torch.float64, device=x.device)
        w = torch.exp(-0.5 * (t[None] / sigma[:, None]) ** 2)
        w = (w / w.sum(1, keepdim=True)).to(x.dtype)  # [M, k]
        y = x[sel]
        m, c, hh, ww = y.shape
        weight = w.repeat_interleave(c, dim=0)  # one kernel per (sample, channel)
        pad = self.k // 2
        z = F.pad(y.reshape(1, m * c, hh, ww), (pad, pad, pad, pad), mode="reflect")
        z = F.conv2d(z, weight[:, None, None, :], groups=m * c)
        z = F.conv2d(z, weight[:, None, :, None], groups=m * c)
        x = x.clone()
        x[sel] = z.reshape(m, c, hh, ww)
        return x
