"""Dataset types shared by every loader: the error type, `DatasetInfo`, `Splits`, `ImageDataset`.

An `ImageDataset` yields ``(image, label)`` with ``image`` a ``uint8 [C, H, W]`` tensor and
``label`` an ``int``; ``.labels`` is an ``int64 [n]`` tensor. Small sets live in memory as one
uint8 tensor (`TensorImageDataset`); large image folders decode on demand (`folder.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset


class DataError(ValueError):
    """Bad data on disk or a bad data argument; the message names the file, folder or name."""


def object_length(items: Any, what: str, item_kind: str) -> int:
    """``len(items)`` of a user's list or map-style Dataset, which must not be empty.

    Raises:
        DataError: ``items`` has no ``len()`` or is empty (``what`` names the argument and
            ``item_kind`` the items it should hold, e.g. ``"(image, label)"``).
    """
    try:
        n = len(items)
    except TypeError:
        raise DataError(f"{what}: {type(items).__name__} has no len(); give a list or map-style Dataset "
                        f"of {item_kind} items") from None
    if n == 0:
        raise DataError(f"{what} is empty")
    return n


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and the transforms need to know about a data set.

    ``image_size`` is the square side the transforms output; ``mean``/``std`` are per channel in
    [0, 1] units, measured on the training split. ``modality`` is ``"image"`` or ``"text"`` (text:
    strings, read by a text encoder with its own tokenizer; no channels, size or statistics: 0, 0,
    (), ()).
    """

    name: str
    channels: int
    image_size: int
    num_classes: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    modality: str = "image"


class ImageDataset(Dataset):
    """Base class: ``(uint8 [C, H, W] image, int label)`` items plus ``.labels`` (int64 ``[n]``).

    ``.targets`` is None, or (a folder read with a ``labels_csv``, a text file with a ``labels``
    column) each item's label set as a float32 0/1 ``[n, C]`` multi-hot matrix, which ``subset``
    carries along.
    """

    labels: Tensor
    targets: Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.numel())

    def get_batch(self, indices: Sequence[int]) -> tuple[Tensor | list[Tensor], Tensor]:
        """Images for ``indices`` (a stacked tensor when sizes agree, else a list) and labels."""
        raise NotImplementedError

    def subset(self, indices: Tensor) -> ImageDataset:
        """A new dataset holding the items at ``indices`` (in that order)."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        images, labels = self.get_batch([index])
        return images[0], int(labels[0])


class TensorImageDataset(ImageDataset):
    """All images in memory as one uint8 tensor ``[N, C, H, W]``; labels int64 ``[N]``; optional
    ``targets`` ``[N, C]`` (label sets, see `ImageDataset`).

    Raises:
        DataError: ``images`` is not uint8 ``[N, C, H, W]``, or the label (or target) count
            differs from N.
    """

    def __init__(self, images: Tensor, labels: Tensor, targets: Tensor | None = None) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise DataError(
                f"images: expected uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}"
            )
        labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        if labels.numel() != images.shape[0]:
            raise DataError(f"labels: {labels.numel()} labels for {images.shape[0]} images")
        if targets is not None and targets.shape[0] != images.shape[0]:
            raise DataError(f"targets: {targets.shape[0]} label sets for {images.shape[0]} images")
        self.images = images.contiguous()
        self.labels = labels
        self.targets = targets

    def get_batch(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return self.images[idx], self.labels[idx]

    def subset(self, indices: Tensor) -> TensorImageDataset:
        idx = torch.as_tensor(indices, dtype=torch.int64)
        targets = None if self.targets is None else self.targets[idx]
        return TensorImageDataset(self.images[idx], self.labels[idx], targets)


@dataclass
class Splits:
    """Train / validation / test datasets (validation carved from train) and their info."""

    train: ImageDataset
    val: ImageDataset
    test: ImageDataset
    info: DatasetInfo


@dataclass
class SourceData:
    """What a loader read from disk, before the validation split: ``test`` is None when the
    source has no test split of its own (one is then carved from ``train``)."""

    train: ImageDataset
    test: ImageDataset | None
    class_names: tuple[str, ...]
    channels: int
    image_size: int
    target_names: tuple[str, ...] = ()
    """Names of the columns of ``train.targets`` (label sets from a ``labels_csv``, or a text
    file's ``labels`` column), else ()."""
    val: ImageDataset | None = None
    """The source's own validation split (a text folder's ``val`` file); None: carved from train."""
    modality: str = "image"
    """``image`` or ``text`` (see `DatasetInfo`)."""


def _mix64(x: int) -> int:
    """SplitMix64 finaliser: spreads nearby integers over all 64 bits."""
    mask = (1 << 64) - 1
    x = (x + 0x9E3779B97F4A7C15) & mask
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
    return x ^ (x >> 31)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed that is a fixed function of the integer ``parts`` (order matters)."""
    h = 0
    for p in parts:
        h = _mix64(h ^ (int(p) & ((1 << 64) - 1)))
    return h >> 1


def stratified_split(labels: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Split indices into ``(keep, held)`` with ``held`` ~ ``fraction`` of every class.

    The total held-out count is ``round(fraction * n)``, shared between classes by largest
    remainder so class proportions match; every class keeps at least one sample. Both index
    tensors are sorted. A fixed function of ``(labels, fraction, seed)``.

    Raises:
        DataError: ``fraction`` outside [0, 1).
    """
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"split fraction must be in [0, 1), got {fraction}")
    classes, counts = torch.unique(labels, return_counts=True)
    ideal = counts.double() * fraction
    take = ideal.floor().long()
    short = int(round(fraction * labels.numel())) - int(take.sum())
    if short > 0:  # largest remainders first; ties go to the lower class id
        order = torch.argsort(ideal - take.double(), descending=True, stable=True)
        take[order[:short]] += 1
    take = torch.minimum(take, (counts - 1).clamp(min=0))
    gen = torch.Generator().manual_seed(derive_seed(seed, 0x5EED))
    held = []
    for c, k in zip(classes.tolist(), take.tolist(), strict=True):
        members = torch.nonzero(labels == c).flatten()
        held.append(members[torch.randperm(members.numel(), generator=gen)[:k]])
    held_idx = torch.sort(torch.cat(held)).values if held else torch.zeros(0, dtype=torch.long)
    keep_mask = torch.ones(labels.numel(), dtype=torch.bool)
    keep_mask[held_idx] = False
    return torch.nonzero(keep_mask).flatten(), held_idx


TEST_SEED = 0  # a carved test split is a property of the data, not of the run's seed


def carve_splits(train: ImageDataset, test: ImageDataset | None, val: ImageDataset | None, *,
                 test_fraction: float, val_fraction: float, seed: int) -> tuple[ImageDataset, ...]:
    """``(train, val, test)`` with the splits a data set lacks held out of ``train``, stratified:
    first a ``test_fraction`` test split (drawn with ``TEST_SEED``, the same for every run), then
    a ``val_fraction`` validation split of what is left (drawn with the run's ``seed``). Given
    splits are kept as they are.

    Raises:
        DataError: a fraction outside [0, 1).
    """
    if test is None:
        keep, held = stratified_split(train.labels, test_fraction, TEST_SEED)
        train, test = train.subset(keep), train.subset(held)
    if val is None:
        keep, held = stratified_split(train.labels, val_fraction, seed)
        train, val = train.subset(keep), train.subset(held)
    return train, val, test


def channel_stats(
    dataset: ImageDataset, max_items: int = 4096, seed: int = 0
) -> tuple[tuple, tuple]:
    """Per-channel mean and std in [0, 1] units: exact for in-memory sets (from a histogram of
    the 256 byte values), else over a seeded sample of at most ``max_items`` items.

    A channel with (near) zero spread gets std 1.0 so normalising never divides by zero.

    Raises:
        DataError: the dataset is empty.
    """
    n = len(dataset)
    if n == 0:
        raise DataError("cannot measure channel statistics of an empty training split")
    if isinstance(dataset, TensorImageDataset):
        images = [dataset.images]
    else:
        gen = torch.Generator().manual_seed(seed)
        pick = torch.randperm(n, generator=gen)[:max_items].tolist()
        images = [dataset[i][0][None] for i in pick]
    channels = images[0].shape[1]
    hist = torch.zeros(channels, 256, dtype=torch.float64)
    for chunk in images:
        for c in range(channels):
            hist[c] += torch.bincount(chunk[:, c].reshape(-1), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255.0
    count = hist.sum(1)
    mean = (hist * values).sum(1) / count
    var = (hist * values**2).sum(1) / count - mean**2
    std = var.clamp(min=0).sqrt()
    std = torch.where(std < 1e-6, torch.ones_like(std), std)
    return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())
