"""Your own `Dataset` objects as supcon data: items ``(image, label)`` -> `Splits`.

An image may be a PIL image, a ``[C, H, W]`` / ``[H, W]`` tensor or an ``[H, W, C]`` / ``[H, W]``
numpy array, uint8 (0..255) or float (0..1); a label an int (or a 0-d tensor / numpy integer).
Images are raw, not yet augmented or normalised: supcon applies its own augmentation and the
training split's channel statistics, so a float image outside [0, 1] (a dataset that already
normalises) is refused. Every image is made ``channels x size x size`` uint8 like an image
folder's files: 3 channels if any image of the train, test or validation set is in colour, else 1
(1 <-> 3 channels by the rules of :mod:`.images`), shorter side resized, centre crop.

A dataset whose images fit in ``IN_MEMORY_BYTES`` is read once into memory (fast, and worker
processes need not pickle it); a larger one is read item by item at each epoch. Either way the
labels are the items' own: a larger set's are read in one pass over its items, except where
``.targets`` is known to hold them (a torchvision data set's own ``__getitem__`` without a
``target_transform``); that pass also finds its channels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..checks import object_name
from .base import (
    DataError,
    DatasetInfo,
    ImageDataset,
    Splits,
    TensorImageDataset,
    carve_splits,
    channel_stats,
    object_length,
)
from .images import fit_square, is_gray_mode, pil_to_tensor
from .text import is_text_items, text_splits_from_objects

log = logging.getLogger(__name__)

IN_MEMORY_BYTES = 2 << 30  # read a dataset into memory when its uint8 images fit in this
MAX_SIDE = 224  # the default image size is the first image's shorter side, at most this


def splits_from_objects(train_set: Any, test_set: Any = None, val_set: Any = None, *, val_fraction: float = 0.1,
                        seed: int = 0, image_size: int | None = None, test_fraction: float = 0.2) -> Splits:
    """Train / validation / test splits from your datasets, as :func:`~.registry.load_dataset` makes them.

    Args:
        train_set: the training items (``(str, label)`` items are texts:
            :func:`~.text.text_splits_from_objects`).
        test_set: the test items; None carves ``test_fraction`` of ``train_set`` (stratified, fixed seed).
        val_set: the validation items; None carves ``val_fraction`` of the training items
            (stratified, seeded by ``seed``), so model selection never sees the test split.
        image_size: the side every image is made; None: the first training image's shorter side
            (at most 224). The channels are 3 if any image of any set is in colour, else 1.

    Raises:
        DataError: an empty dataset, an item that is not ``(image, label)``, an image of another
            kind, a float image outside [0, 1], a negative or non-integer label.
    """
    _length(train_set, "train_set")
    if is_text_items(train_set):  # (str, label) items: texts for a text encoder
        return text_splits_from_objects(train_set, test_set, val_set, name=object_name(train_set),
                                        val_fraction=val_fraction, seed=seed, test_fraction=test_fraction)
    first = _image(_item(train_set, 0, "train_set")[0], None, None, "train_set", 0)
    size = int(image_size or min(min(first.shape[-2:]), MAX_SIDE))
    train, test, val = (None if items is None else dataset_from_items(items, None, size, what)
                        for items, what in ((train_set, "train_set"), (test_set, "test_set"), (val_set, "val_set")))
    # as an image folder's files: one colour image anywhere makes every split colour
    channels = max(_channels(d) for d in (train, test, val) if d is not None)
    train, test, val = (None if d is None else _with_channels(d, channels) for d in (train, test, val))
    train, val, test = carve_splits(train, test, val, test_fraction=test_fraction, val_fraction=val_fraction,
                                    seed=seed)
    num_classes = 1 + max(int(d.labels.max()) for d in (train, val, test) if len(d))
    mean, std = channel_stats(train)
    info = DatasetInfo(name=object_name(train_set), channels=channels, image_size=size, num_classes=num_classes,
                       class_names=_class_names(train_set, num_classes), mean=mean, std=std)
    return Splits(train=train, val=val, test=test, info=info)


def dataset_from_items(dataset: Any, channels: int | None, size: int, what: str = "dataset") -> ImageDataset:
    """``dataset``'s items as an `ImageDataset` of uint8 ``[channels, size, size]`` images
    (``channels`` None: 3 if any of its images is in colour, else 1), labelled with the items' labels.

    Raises:
        DataError: as :func:`splits_from_objects` (``what`` names the argument).
    """
    n = _length(dataset, what)
    # the first image's channels size the decision; colour found later may enlarge an in-memory set
    guess = channels or int(_image(_item(dataset, 0, what)[0], None, None, what, 0).shape[0])
    if n * guess * size * size <= IN_MEMORY_BYTES:
        return _read_all(dataset, n, channels, size, what)
    labels, found = _scan(dataset, n, what, need_channels=channels is None)
    channels = channels or found
    log.info("%s: %d images of %dx%dx%d do not fit in memory; reading them at every epoch",
             what, n, channels, size, size)
    return ItemsDataset(dataset, labels, channels, size, what)


def _read_all(dataset: Any, n: int, channels: int | None, size: int, what: str) -> TensorImageDataset:
    """Every item in memory; with ``channels`` None, grey until the first colour image."""
    images = None
    labels = torch.empty(n, dtype=torch.int64)
    for i in range(n):
        image, label = _item(dataset, i, what)
        pixels = _image(image, channels, size, what, i)
        if images is None:
            images = torch.empty(n, pixels.shape[0], size, size, dtype=torch.uint8)
        elif pixels.shape[0] > images.shape[1]:  # the first colour image: the grey ones so far get 3 channels
            images = torch.cat([images[:i].expand(-1, 3, -1, -1), images.new_empty(n - i, 3, size, size)])
        images[i] = pixels  # a grey image after a colour one: its channel repeated, as _image does
        labels[i] = _label(label, what, i)
    return TensorImageDataset(images, labels)


class ItemsDataset(ImageDataset):
    """A dataset read item by item (converted as the module says); ``indices`` selects a subset."""

    def __init__(self, items: Any, labels: Tensor, channels: int, size: int, what: str,
                 indices: Tensor | None = None) -> None:
        self.items, self.channels, self.size, self.what = items, channels, size, what
        self.indices = torch.arange(len(labels)) if indices is None else indices
        self.labels = labels

    def get_batch(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.int64)
        images = [_image(_item(self.items, int(j), self.what)[0], self.channels, self.size, self.what, int(j))
                  for j in self.indices[idx].tolist()]
        return torch.stack(images), self.labels[idx]

    def subset(self, indices: Tensor) -> ItemsDataset:
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return ItemsDataset(self.items, self.labels[idx], self.channels, self.size, self.what, self.indices[idx])


def _length(dataset: Any, what: str) -> int:
    return object_length(dataset, what, "(image, label)")


def _item(dataset: Any, index: int, what: str) -> tuple[Any, Any]:
    item = dataset[index]
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise DataError(f"{what}[{index}] is a {type(item).__name__}; items must be (image, label) pairs")
    return item[0], item[1]


def _image(image: Any, channels: int | None, size: int | None, what: str, index: int) -> Tensor:
    """One image as uint8 ``[channels, size, size]`` (``None``: keep its own channels / size)."""
    where = f"{what}[{index}]"
    if isinstance(image, Image.Image):
        want = channels or (1 if is_gray_mode(image.mode) else 3)
        out = pil_to_tensor(image, want)
    else:
        if isinstance(image, np.ndarray):
            array = torch.from_numpy(np.ascontiguousarray(image))
            tensor = array[None] if array.dim() == 2 else array.permute(2, 0, 1) if array.dim() == 3 else array
        elif isinstance(image, Tensor):
            tensor = image.detach().cpu()
            tensor = tensor[None] if tensor.dim() == 2 else tensor
        else:
            raise DataError(f"{where}: the image is a {type(image).__name__}; give a PIL image, a tensor or a numpy array")
        if tensor.dim() != 3 or tensor.shape[0] not in (1, 3):
            raise DataError(f"{where}: image of shape {tuple(image.shape)}; expected [C, H, W] tensors or "
                            "[H, W, C] arrays with 1 or 3 channels (or [H, W])")
        out = _to_uint8(tensor, where)
        want = channels or out.shape[0]
        if want == 3 and out.shape[0] == 1:
            out = out.expand(3, -1, -1)
        elif want == 1 and out.shape[0] == 3:  # ITU-R 601-2 luma, as PIL's convert("L")
            luma = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
            out = (out.float() * luma).sum(0, keepdim=True).round().to(torch.uint8)
    return out if size is None else fit_square(out, size).contiguous()


def _to_uint8(tensor: Tensor, where: str) -> Tensor:
    if tensor.dtype == torch.uint8:
        return tensor
    if tensor.is_floating_point():
        low, high = float(tensor.min()), float(tensor.max())
        if low < 0.0 or high > 1.0:
            raise DataError(f"{where}: a float image with values in [{low:.3g}, {high:.3g}], not [0, 1]; give raw "
                            "images (no Normalize): supcon augments and normalises them itself")
        return (tensor * 255.0).round().to(torch.uint8)
    if tensor.dtype == torch.bool or tensor.min() < 0 or tensor.max() > 255:
        raise DataError(f"{where}: an integer image must hold 0..255, got {tensor.dtype} in "
                        f"[{int(tensor.min())}, {int(tensor.max())}]")
    return tensor.to(torch.uint8)


def _label(label: Any, what: str, index: int) -> int:
    if isinstance(label, Tensor) and label.numel() == 1 and not label.is_floating_point():
        label = label.item()
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)) or label < 0:
        raise DataError(f"{what}[{index}]: the label is {label!r}; labels must be class indices 0..K-1 "
                        "(ints; for label sets use an image folder with data.labels_csv)")
    return int(label)


def _scan(dataset: Any, n: int, what: str, need_channels: bool) -> tuple[Tensor, int]:
    """The items' labels and (``need_channels``) their channels, 3 if any image is in colour, in
    one pass over the items; it stops at the first colour image when ``.targets`` holds the labels."""
    targets = _known_targets(dataset, n, what)
    labels, channels = [], 1
    for i in range(n):
        if targets is not None and (channels == 3 or not need_channels):
            break
        image, label = _item(dataset, i, what)
        if need_channels and channels == 1:
            channels = int(_image(image, None, None, what, i).shape[0])
        if targets is None:
            labels.append(_label(label, what, i))
    return (targets if targets is not None else torch.tensor(labels, dtype=torch.int64)), channels


def _known_targets(dataset: Any, n: int, what: str) -> Tensor | None:
    """``dataset.targets`` where they are provably its items' labels: a torchvision data set read by
    torchvision's own ``__getitem__`` (which returns ``targets[i]``) and no ``target_transform``."""
    from torchvision.datasets import VisionDataset

    targets = getattr(dataset, "targets", None)
    own = isinstance(dataset, VisionDataset) and type(dataset).__getitem__.__module__.startswith("torchvision.")
    if not own or getattr(dataset, "target_transform", None) is not None or targets is None or len(targets) != n:
        return None
    return torch.tensor([_label(t, f"{what}.targets", i) for i, t in enumerate(targets)], dtype=torch.int64)


def _channels(dataset: ImageDataset) -> int:
    return dataset.images.shape[1] if isinstance(dataset, TensorImageDataset) else dataset.channels


def _with_channels(dataset: ImageDataset, channels: int) -> ImageDataset:
    """``dataset`` with ``channels`` (only 1 -> 3 happens: a grey set beside a colour one)."""
    if _channels(dataset) == channels:
        return dataset
    if isinstance(dataset, TensorImageDataset):
        return TensorImageDataset(dataset.images.expand(-1, channels, -1, -1), dataset.labels)
    return ItemsDataset(dataset.items, dataset.labels, channels, dataset.size, dataset.what, dataset.indices)


def _class_names(dataset: Any, num_classes: int) -> tuple[str, ...]:
    names = getattr(dataset, "classes", None)
    if isinstance(names, (list, tuple)) and len(names) == num_classes and all(isinstance(c, str) for c in names):
        return tuple(names)
    return tuple(str(i) for i in range(num_classes))
