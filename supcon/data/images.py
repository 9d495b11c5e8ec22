"""Decoding one image file to a uint8 ``[C, H, W]`` tensor, whatever its mode.

Conversion rules (so that no mode is silently mangled):
- 16-bit and 32-bit integer greyscale (``I;16*``, ``I``) are read as 0..65535 and scaled by 1/257
  (PIL's own ``convert("L")`` clips them at 255 instead).
- float greyscale (``F``) is taken as 0..1 when its maximum is <= 1, else as 0..255, and clipped.
- alpha (``RGBA``, ``LA``, palette with transparency) is composited over black.
- palette, bilevel, CMYK, YCbCr, ... go through PIL's ``convert`` to ``L`` or ``RGB``.
- greyscale -> 3 channels repeats the channel; RGB -> 1 channel uses the ITU-R 601-2 luma weights
  (0.299, 0.587, 0.114), as PIL and torchvision do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from .base import DataError

IMAGE_EXTENSIONS = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".bmp",
        ".gif",
        ".tif",
        ".tiff",
        ".webp",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
    }
)
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F"})
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def is_gray_mode(mode: str) -> bool:
    """True for PIL modes that hold one intensity channel (plus maybe alpha)."""
    return mode in _GRAY_MODES or mode.startswith("I;16")


def _with_alpha_over_black(arr: np.ndarray) -> np.ndarray:
    """``[H, W, C+1]`` uint8 with alpha last -> ``[H, W, C]`` composited over black."""
    color, alpha = arr[..., :-1].astype(np.float32), arr[..., -1:].astype(np.float32)
    return np.rint(color * alpha / 255.0).astype(np.uint8)


def _to_array(img: Image.Image) -> np.ndarray:
    """Any PIL image -> uint8 ``[H, W, 1]`` (grey) or ``[H, W, 3]`` (colour)."""
    mode = img.mode
    if mode == "I" or mode.startswith("I;16"):
        wide = np.asarray(img).astype(np.float64)
        return np.rint(np.clip(wide, 0, 65535) / 257.0).astype(np.uint8)[..., None]
    if mode == "F":
        flt = np.asarray(img).astype(np.float64)
        scale = 255.0 if flt.size and np.nanmax(flt) <= 1.0 else 1.0
        return np.rint(np.clip(np.nan_to_num(flt) * scale, 0, 255)).astype(np.uint8)[..., None]
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("LA", "La", "PA"):
        img = img.convert("LA")
    elif mode not in ("L", "RGB", "RGBA"):
        img = img.convert("L" if is_gray_mode(mode) else "RGB")
    arr = np.asarray(img)
    if img.mode in ("RGBA", "LA"):
        return _with_alpha_over_black(arr)
    return arr[..., None] if arr.ndim == 2 else arr


def pil_to_tensor(img: Image.Image, channels: int) -> Tensor:
    """Convert a decoded PIL image to uint8 ``[channels, H, W]`` (see the module rules)."""
    arr = _to_array(img)
    if channels == 1 and arr.shape[-1] == 3:
        arr = np.rint(arr.astype(np.float32) @ _LUMA).astype(np.uint8)[..., None]
    elif channels == 3 and arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


def read_header(path: Path, verify: bool = False) -> tuple[int, int, str]:
    """``(width, height, mode)`` from the file header; ``verify`` also checks the file body
    where the format allows (PNG checksums). Raises whatever PIL raises."""
    with Image.open(path) as img:
        size, mode = img.size, img.mode
        if verify:
            img.verify()
    return size[0], size[1], mode


def read_image(path: Path | str, channels: int) -> Tensor:
    """Decode ``path`` fully to uint8 ``[channels, H, W]`` (1 or 3 channels, module rules).

    Raises:
        DataError: the file cannot be opened or decoded (the message names it).
    """
    try:
        with Image.open(path) as img:
            img.load()
            return pil_to_tensor(img, channels)
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, ... for bad files
        raise DataError(f"unreadable image file {path}: {describe(exc)}") from exc


def describe(exc: BaseException) -> str:
    """One line naming an exception, for messages."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def fit_square(image: Tensor, size: int) -> Tensor:
    """Resize so the shorter side is ``size`` (antialiased), then centre-crop to ``size x size``."""
    h, w = image.shape[-2:]
    if (h, w) == (size, size):
        return image
    if min(h, w) != size:
        image = TF.resize(image, [size], antialias=True)
    return TF.center_crop(image, [size, size])
