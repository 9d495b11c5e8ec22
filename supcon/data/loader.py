"""`build_loader`: dataset + `EpochBatchSampler` -> a DataLoader of ``(images, labels)`` batches;
`eval_loader`: the deterministic one over a split that evaluation reads.

Images are ``[B, V, C, S, S]`` for a `MultiView` transform, else ``[B, C, S, S]``. Each batch is
fetched and augmented with one call (`AugmentedDataset.__getitems__`), in the main process or in
``num_workers`` persistent worker processes; memory is pinned when CUDA is present. Call
`EpochDataLoader.set_epoch` (or the sampler's and the dataset's) before every epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from .base import DatasetInfo, ImageDataset, derive_seed
from .sampler import EpochBatchSampler
from .text import TEXT, TextViews
from .transforms import build_transform
from .views import AugmentedDataset


class _EpochTagged:
    """Wraps a batch sampler so each index travels as ``(epoch, index)``: worker processes then
    augment for the right epoch even though they hold a copy of the dataset made earlier."""

    def __init__(self, sampler: EpochBatchSampler) -> None:
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = self.sampler.epoch
        for batch in self.sampler:
            yield [(epoch, i) for i in batch]

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.sampler.set_epoch(epoch, start_batch)

    def __getattr__(self, name: str):
        if name == "sampler":  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.sampler, name)


class EpochDataLoader(DataLoader):
    """A DataLoader with one `set_epoch` for both its batch sampler and its dataset."""

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Fix the epoch's order and augmentations; skip ``start_batch`` batches (resume)."""
        self.batch_sampler.set_epoch(epoch, start_batch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


def build_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool = True,
    drop_last: bool = False,
    seed: int = 0,
    per_class: int | None = None,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool | None = None,
    prefetch_factor: int | None = None,
) -> EpochDataLoader:
    """Wire ``dataset`` (an `AugmentedDataset` or any dataset with ``.labels``) to batches.

    Args:
        dataset: yields ``(image, label)``; with ``.labels`` (``[n]`` ints) when ``per_class`` is
            used. An `AugmentedDataset` gets ``(epoch, index)`` keys (see the module docstring);
            a dataset with a ``collate`` method (texts: `TextViews`) makes its own batches.
        batch_size, shuffle, drop_last, seed, per_class, rank, world_size: as in
            `EpochBatchSampler` (defaults: shuffled, last batch kept, seed 0, plain batches,
            one process).
        num_workers: worker processes (0: load in the main process); > 0 starts persistent
            workers.
        pin_memory: defaults to "CUDA is available".
        prefetch_factor: batches each worker prepares ahead (torch's default when None).

    Returns:
        An `EpochDataLoader` of ``(images, labels)``: images float32 ``[B, V, C, S, S]`` for a
        `MultiView` transform, else ``[B, C, S, S]``; labels int64 ``[B]``. Call its
        ``set_epoch(epoch, start_batch)`` before every epoch.

    Raises:
        ValueError: ``per_class`` on a dataset without ``.labels``, ``num_workers < 0``, or any
            `EpochBatchSampler` check.
    """
    labels = getattr(dataset, "labels", None)
    if labels is None:
        if per_class is not None:
            raise ValueError("per_class: the dataset has no .labels to balance classes with")
        labels = torch.zeros(len(dataset), dtype=torch.long)
    if num_workers < 0:
        raise ValueError(f"num_workers: expected >= 0, got {num_workers}")
    sampler = EpochBatchSampler(
        labels,
        batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        seed=seed,
        per_class=per_class,
        rank=rank,
        world_size=world_size,
    )
    batches = _EpochTagged(sampler) if isinstance(dataset, AugmentedDataset) else sampler
    extra = {"prefetch_factor": prefetch_factor} if num_workers and prefetch_factor else {}
    return EpochDataLoader(
        dataset,
        batch_sampler=batches,
        # the loader's own seed draws (worker base seeds) come from here, not the global RNG
        generator=torch.Generator().manual_seed(derive_seed(seed, 0x10AD)),
        collate_fn=getattr(dataset, "collate", None),
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=num_workers > 0,
        **extra,
    )


def eval_loader(split: ImageDataset, info: DatasetInfo, *, batch_size: int, seed: int) -> EpochDataLoader:
    """Deterministic loader over ``split`` for feature extraction and testing: the evaluation
    transform (no augmentation), in order, in the main process, ``max(batch_size, 256)`` images a
    batch (features are cheap to extract; the batch size does not change them). Texts are read as
    they are, one view each."""
    if info.modality == TEXT:
        return build_loader(TextViews(split), batch_size=max(batch_size, 256), shuffle=False, seed=seed)
    data = AugmentedDataset(split, build_transform("none", info, train=False), seed=seed)
    return build_loader(data, batch_size=max(batch_size, 256), shuffle=False, drop_last=False,
                        seed=seed, num_workers=0)
