"""Data: registered data sets, image folders and text files, augmentation policies, multi-view
batches, a class-balanced sampler and the DataLoader that ties them together (docs/internals.md)."""

from .base import (
    DataError,
    DatasetInfo,
    ImageDataset,
    Splits,
    TensorImageDataset,
    derive_seed,
    stratified_split,
)
from .folder import FileImageDataset
from .loader import EpochDataLoader, build_loader, eval_loader
from .objects import splits_from_objects
from .registry import list_datasets, load_dataset
from .sampler import EpochBatchSampler
from .text import TextBatch, TextDataset, TextViews
from .transforms import POLICIES, Policy, build_transform
from .views import AugmentedDataset, DeviceAugment, MultiView, to_device

__all__ = [
    "POLICIES",
    "AugmentedDataset",
    "DeviceAugment",
    "DataError",
    "DatasetInfo",
    "EpochBatchSampler",
    "EpochDataLoader",
    "FileImageDataset",
    "ImageDataset",
    "MultiView",
    "Policy",
    "Splits",
    "TensorImageDataset",
    "TextBatch",
    "TextDataset",
    "TextViews",
    "build_loader",
    "build_transform",
    "to_device",
    "derive_seed",
    "eval_loader",
    "list_datasets",
    "load_dataset",
    "splits_from_objects",
    "stratified_split",
]
