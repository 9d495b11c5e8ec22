"""Which corruptions a training augmentation imitates, and why.

A model trained with an augmentation that performs (nearly) the same operation as a corruption
has seen that corruption during training; its robustness to it says little about robustness to
*unseen* shifts. A study therefore reports mCE twice: over every corruption, and over the
corruptions that no augmentation used in training imitates (:func:`unimitated`).

The table follows the policies of ``supcon.data.transforms``:

- ``simaugment``: colour jitter (brightness, contrast, saturation factors in [0.6, 1.4], hue
  ±0.1; p = 0.8; grey images get brightness and contrast only) and, from 64 px, Gaussian blur.
  It imitates ``brightness``, ``contrast`` (severity 1's factor 0.75 lies inside the jitter's
  range), ``fog`` (a haze added, then the image rescaled: lower contrast and lifted darks, what
  contrast and brightness jitter do), ``saturate`` (RGB: saturation jitter; grey: the corruption's
  luminance analogue stretches the distance from the mean, a contrast change), and from 64 px
  ``gaussian_blur`` and ``defocus_blur``.
- ``autoaugment``, ``randaugment``: their Brightness, Contrast/AutoContrast, Color (RGB) and
  Sharpness operations imitate ``brightness``, ``contrast``, ``fog``, ``saturate`` and, through
  Sharpness factors below 1 (a blend with a 3x3 smoothed copy), ``gaussian_blur`` and
  ``defocus_blur``.
- ``stacked-randaugment``: the union of randaugment's and simaugment's.
- ``crop-flip`` and ``none``: nothing (translations, crops and flips are not corruptions here).

No policy imitates the noises, motion/zoom/glass blur, pixelate, JPEG or the elastic transform.
"""

from __future__ import annotations

from collections.abc import Iterable

from supcon.eval.corruptions import CORRUPTIONS

_JITTER = {
    "brightness": "colour jitter: brightness factor in [0.6, 1.4]",
    "contrast": "colour jitter: contrast factor in [0.6, 1.4] (severity 1's 0.75 lies inside)",
    "fog": "haze + rescale lowers contrast and lifts dark pixels, as contrast/brightness jitter do",
}
_SATURATE_RGB = "colour jitter: saturation factor in [0.6, 1.4]"
_SATURATE_GREY = "on grey images saturate stretches the distance from the mean: a contrast change"
_BLUR = "Gaussian blur (p = 0.5, from 64 px)"
_OPS = {
    "brightness": "Brightness operation",
    "contrast": "Contrast / AutoContrast operations",
    "fog": "Contrast operation below 1 lowers contrast, as fog's haze does",
    "gaussian_blur": "Sharpness below 1 blends with a 3x3 smoothed copy (a mild blur)",
    "defocus_blur": "Sharpness below 1 blends with a 3x3 smoothed copy (a mild blur)",
}
_SATURATE_OPS_RGB = "Color operation (saturation)"
_SATURATE_OPS_GREY = "Contrast operation (on grey images saturate is a contrast change)"
POLICIES = ("simaugment", "autoaugment", "randaugment", "stacked-randaugment", "crop-flip", "none")


def imitated_by(policy: str, *, channels: int = 1, image_size: int = 28) -> dict[str, str]:
    """``{corruption: why}`` for the corruptions that ``policy`` imitates on images of
    ``channels`` (1 or 3) and side ``image_size`` (the policy's blur starts at 64 px).

    Raises:
        ValueError: unknown policy, or ``channels`` not 1 or 3.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown augmentation policy {policy!r}; known: {', '.join(POLICIES)}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    grey = channels == 1
    if policy == "simaugment":
        out = {**_JITTER, "saturate": _SATURATE_GREY if grey else _SATURATE_RGB}
        if image_size >= 64:
            out.update(gaussian_blur=_BLUR, defocus_blur=_BLUR)
        return out
    if policy in ("autoaugment", "randaugment"):
        return {**_OPS, "saturate": _SATURATE_OPS_GREY if grey else _SATURATE_OPS_RGB}
    if policy == "stacked-randaugment":
        ops = imitated_by("randaugment", channels=channels, image_size=image_size)
        sim = imitated_by("simaugment", channels=channels, image_size=image_size)
        return {c: "; ".join(dict.fromkeys(x for x in (ops.get(c), sim.get(c)) if x)) for c in {**ops, **sim}}
    return {}


def imitated(policies: Iterable[str], *, channels: int = 1, image_size: int = 28) -> dict[str, dict[str, str]]:
    """``{corruption: {policy: why}}`` over several policies, in the corruption table's order.

    Raises:
        ValueError: an unknown policy, or ``channels`` not 1 or 3.
    """
    by_policy = {p: imitated_by(p, channels=channels, image_size=image_size) for p in dict.fromkeys(policies)}
    out: dict[str, dict[str, str]] = {}
    for name in CORRUPTIONS:
        reasons = {p: why[name] for p, why in by_policy.items() if name in why}
        if reasons:
            out[name] = reasons
    return out


def unimitated(policies: Iterable[str], names: Iterable[str] | None = None, *, channels: int = 1,
               image_size: int = 28) -> list[str]:
    """The corruptions of ``names`` (default: all, in table order) that none of ``policies`` imitates.

    Raises:
        ValueError: an unknown policy, or ``channels`` not 1 or 3.
    """
    seen = imitated(policies, channels=channels, image_size=image_size)
    return [c for c in (CORRUPTIONS if names is None else names) if c not in seen]
