"""scikit-learn's bundled 8x8 digits as a registered data set (always available; for smoke tests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .base import SourceData, TensorImageDataset


def load_digits(roots: Sequence[Path], download_to: Path | None) -> SourceData:
    """scikit-learn's bundled 8x8 digits (1797 images, values 0..16), always available.

    Each value v becomes ``round(v * 255 / 16)`` and each pixel a 4x4 block (nearest-neighbour
    upscaling to 32x32), so the images are exact and need no interpolation choice. There is no
    official test split: one is carved from these images.
    """
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = torch.from_numpy(np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8))
    x = x.repeat_interleave(4, dim=1).repeat_interleave(4, dim=2)[:, None].contiguous()
    train = TensorImageDataset(x, torch.from_numpy(bunch.target.astype(np.int64)))
    return SourceData(train, None, tuple(str(d) for d in range(10)), 1, 32)
