"""Augmentation policies by name: `build_transform(policy, info, train=True, **params)`.

A policy maps ``uint8 [C, H, W]`` to ``float32 [C, S, S]`` normalised with ``info.mean/std``
(``S = info.image_size``), and can do a whole batch in one go (`Policy.apply`); see
``augment.py`` for how per-sample randomness stays independent of the batch.

Policies (train=True); every one works on 1- and 3-channel images:
- ``simaugment``: the paper's SimCLR-style policy: RandomResizedCrop(S, crop_scale), flip,
  colour jitter (0.4, 0.4, 0.4, 0.1) * strength with p=0.8, greyscale p=0.2, and Gaussian blur
  (p=0.5, kernel ~10% of S) when S >= 64. Grey images get brightness/contrast jitter only.
- ``autoaugment``: crop + flip, then torchvision's AutoAugment (CIFAR-10 policy for S <= 64,
  ImageNet policy above).
- ``randaugment``: crop + flip, then torchvision's RandAugment(num_ops, magnitude).
- ``stacked-randaugment``: crop + flip, RandAugment, then SimAugment's colour jitter, greyscale
  and blur (RandAugment stacked on SimAugment, as the paper describes).
- ``crop-flip`` (the cross-entropy baseline's): pad by S/8 + random S crop + flip for S <= 64,
  RandomResizedCrop + flip above.
- ``none``: resize/centre-crop to S only.
``crop_scale`` defaults to (0.2, 1) for S <= 64 (the reference repo's CIFAR recipe) and
(0.08, 1) above (the paper's ImageNet recipe). ``train=False`` gives the evaluation transform
(resize + centre crop + normalise) whatever the policy.
"""

from __future__ import annotations

import difflib

import torch
from torch import Tensor
from torchvision.transforms import v2

from .augment import PadCropFlip, ResizeCenter, ResizedCropFlip
from .base import DataError, DatasetInfo
from .colour import ColorJitterGrey, GaussianBlur, blur_kernel_size

POLICIES = ("simaugment", "autoaugment", "randaugment", "stacked-randaugment", "crop-flip", "none")
_PARAMS = {
    "strength": 1.0,
    "jitter_p": 0.8,
    "grey_p": 0.2,
    "blur": None,
    "crop_scale": None,
    "flip_p": 0.5,
    "magnitude": 9,
    "num_ops": 2,
    "padding": None,
}


class Normalize:
    """``(x - mean) / std`` per channel of ``[N, C, S, S]``; a batched stage with no randomness."""

    n_uniforms = 0

    def __init__(self, mean, std) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32)[None, :, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[None, :, None, None]

    def __call__(self, x: Tensor, u: Tensor) -> Tensor:
        return (x - self.mean.to(x.device)) / self.std.to(x.device)


class PerImageV2:
    """Runs a torchvision v2 transform on each uint8 image, the global torch RNG seeded from the
    sample's own uniform (and restored afterwards, so the caller's random stream is untouched).

    A batched stage (``n_uniforms = 1``): ``(x float [N, C, S, S] in [0, 1], u [N, 1])`` -> same.
    """

    n_uniforms = 1

    def __init__(self, transform) -> None:
        self.transform = transform

    def __call__(self, x: Tensor, u: Tensor) -> Tensor:
        as_uint8 = (x * 255).round_().clamp_(0, 255).to(torch.uint8)
        gen = torch.default_generator  # v2 draws from the CPU default generator only
        state = gen.get_state()
        try:
            out = []
            for img, uk in zip(as_uint8, u[:, 0].tolist(), strict=True):
                gen.manual_seed(int(uk * 2**53))
                out.append(self.transform(img))
        finally:
            gen.set_state(state)
        return torch.stack(out).float().div_(255.0)


class Policy:
    """A named chain of batched stages: ``uint8 [C, H, W] -> float32 [C, S, S]``.

    Made by :func:`build_transform`. ``n_uniforms`` is the number of U(0, 1) draws per image that
    :meth:`apply` needs; all randomness comes through them.
    """

    def __init__(self, name: str, stages: list, info: DatasetInfo) -> None:
        self.name, self.stages, self.info = name, stages, info
        self.n_uniforms = sum(s.n_uniforms for s in stages)

    def __repr__(self) -> str:
        return f"Policy({self.name!r}, size={self.info.image_size}, channels={self.info.channels})"

    def __call__(self, image: Tensor) -> Tensor:
        """One image; the randomness is drawn from the global torch RNG (as v2 transforms do)."""
        u = torch.rand(1, self.n_uniforms, dtype=torch.float64)
        return self.apply(image[None], u)[0]

    def apply(self, images: Tensor | list[Tensor], u: Tensor) -> Tensor:
        """Images ``[N, C, H, W]`` (or a list of ``[C, H, W]``) with uniforms ``u [N, n_uniforms]``
        -> ``[N, C, S, S]``. Row k of the result depends only on image k and ``u[k]``.

        Raises:
            ValueError: images with another channel count than ``info.channels``, or ``u`` not
                ``[N, n_uniforms]``.
        """
        self._check(images, u)
        x, start = images, 0
        for stage in self.stages:
            x = stage(x, u[:, start : start + stage.n_uniforms])
            start += stage.n_uniforms
        return x

    def _check(self, images, u: Tensor) -> None:
        n = len(images)
        channels = (
            {int(im.shape[-3]) for im in images} if isinstance(images, list) else {images.shape[1]}
        )
        if channels != {self.info.channels} or (isinstance(images, Tensor) and images.dim() != 4):
            raise ValueError(
                f"images: expected {self.info.channels}-channel [C, H, W] images, got channels {sorted(channels)}"
            )
        if u.shape != (n, self.n_uniforms):
            raise ValueError(f"u: expected shape ({n}, {self.n_uniforms}), got {tuple(u.shape)}")


def _crop(size: int, p: dict) -> ResizedCropFlip:
    scale = p["crop_scale"] or ((0.2, 1.0) if size <= 64 else (0.08, 1.0))
    return ResizedCropFlip(size, scale=scale, flip_p=p["flip_p"])


def _colour(size: int, p: dict) -> list:
    s = p["strength"]
    stages = [
        ColorJitterGrey(0.4 * s, 0.4 * s, 0.4 * s, 0.1 * s, p=p["jitter_p"], grey_p=p["grey_p"])
    ]
    if p["blur"] if p["blur"] is not None else size >= 64:
        stages.append(GaussianBlur(blur_kernel_size(size)))
    return stages


def _stages(policy: str, size: int, p: dict) -> list:
    if policy == "simaugment":
        return [_crop(size, p), *_colour(size, p)]
    if policy == "autoaugment":
        aa = v2.AutoAugmentPolicy.CIFAR10 if size <= 64 else v2.AutoAugmentPolicy.IMAGENET
        return [_crop(size, p), PerImageV2(v2.AutoAugment(aa))]
    if policy in ("randaugment", "stacked-randaugment"):
        ra = PerImageV2(v2.RandAugment(num_ops=p["num_ops"], magnitude=p["magnitude"]))
        return [_crop(size, p), ra] + (_colour(size, p) if policy == "stacked-randaugment" else [])
    if policy == "crop-flip":
        if size <= 64:
            pad = size // 8 if p["padding"] is None else p["padding"]
            return [PadCropFlip(size, pad, flip_p=p["flip_p"])]
        return [_crop(size, p)]
    return [ResizeCenter(size)]


def build_transform(policy: str, info: DatasetInfo, *, train: bool = True, **params) -> Policy:
    """The named augmentation policy for ``info`` (see the module docstring).

    Args:
        policy: one of :data:`POLICIES`.
        info: the data set's `DatasetInfo` (image size, channels, mean/std).
        train: False gives the evaluation transform (resize + centre crop + normalise) whatever
            the policy.
        params: ``strength`` (colour jitter scale, 1.0 = 0.4/0.4/0.4/0.1), ``jitter_p`` (0.8),
            ``grey_p`` (0.2), ``blur`` (None: automatic, on from 64 px), ``crop_scale`` ((lo,
            hi) area fraction), ``flip_p`` (0.5), ``magnitude`` (9) and ``num_ops`` (2) of
            RandAugment, ``padding`` (crop-flip on small images; default S/8).

    Returns:
        A `Policy`: ``uint8 [C, H, W] -> float32 [C, S, S]`` (``Policy.apply`` for batches).

    Raises:
        DataError: unknown policy (closest suggested) or unknown parameter.
    """
    if policy not in POLICIES:
        close = difflib.get_close_matches(str(policy), POLICIES, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise DataError(
            f"unknown augmentation policy '{policy}'{hint} (known: {', '.join(POLICIES)})"
        )
    unknown = sorted(set(params) - set(_PARAMS))
    if unknown:
        raise DataError(f"unknown augmentation parameter(s) {unknown} (known: {sorted(_PARAMS)})")
    p = {**_PARAMS, **params}
    size = info.image_size
    stages = _stages(policy if train else "none", size, p)
    return Policy(policy if train else "eval", [*stages, Normalize(info.mean, info.std)], info)
