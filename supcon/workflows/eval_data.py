"""The data an evaluation runs on: the run's own splits, or another data set adapted to the encoder.

Transfer rule (``supcon eval --data OTHER``): every image of OTHER is converted to the encoder's
channel count (grey -> RGB by repeating the channel; RGB -> grey by the ITU-R 601-2 luma
``0.299 R + 0.587 G + 0.114 B``, rounded), then resized so its shorter side is the encoder's image
size and centre-cropped to a square (antialiased, as the evaluation transform does), and
normalised with the *encoder's* training mean/std, since those are the inputs it was trained on.
The splits of OTHER (train / val / test) are made exactly as `supcon train` would make them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..config import Config
from ..data import DatasetInfo, ImageDataset, Splits, build_transform, eval_loader, load_dataset
from ..data.images import fit_square
from ..engine.progress import Phase
from ..eval.knn import extract_features
from ..run_folder import RunError
from .runs import Run

LUMA = (0.299, 0.587, 0.114)
TRANSFER_RULE = (
    "images converted to the encoder's channels (grey->RGB: channel repeated; RGB->grey: "
    "luma 0.299R+0.587G+0.114B), shorter side resized to the encoder's image size and "
    "centre-cropped, normalised with the encoder's training mean/std; a new linear head is "
    "fitted on the target's train split and chosen on its val split"
)
TEXT_TRANSFER_RULE = ("texts read by the encoder's own tokenizer; a new linear head is fitted on the target's "
                      "train split and chosen on its val split")


def to_channels(images: Tensor, channels: int) -> Tensor:
    """uint8 ``[..., C, H, W]`` (C = 1 or 3) -> uint8 ``[..., channels, H, W]`` by the rule above.

    Raises:
        ValueError: a conversion other than 1 <-> 3 channels.
    """
    have = images.shape[-3]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return images.expand(*images.shape[:-3], 3, *images.shape[-2:]).contiguous()
    if have == 3 and channels == 1:
        w = torch.tensor(LUMA, dtype=torch.float32).reshape(3, 1, 1)
        grey = (images.float() * w).sum(dim=-3, keepdim=True)
        return grey.round_().clamp_(0, 255).to(torch.uint8)
    raise ValueError(f"images: cannot convert {have} channel(s) to {channels}")


class ChannelAdapted(ImageDataset):
    """``base`` with every image converted by :func:`to_channels` (same labels, same order)."""

    def __init__(self, base: ImageDataset, channels: int) -> None:
        self.base, self.channels, self.labels = base, channels, base.labels

    def get_batch(self, indices: Sequence[int]) -> tuple[Tensor | list[Tensor], Tensor]:
        images, labels = self.base.get_batch(indices)
        if isinstance(images, Tensor):
            return to_channels(images, self.channels), labels
        return [to_channels(im, self.channels) for im in images], labels

    def subset(self, indices: Tensor) -> ChannelAdapted:
        return ChannelAdapted(self.base.subset(indices), self.channels)


@dataclass
class Target:
    """Splits and info the encoder reads (channels, size and normalisation are the encoder's)."""

    splits: Splits
    info: DatasetInfo
    transfer: dict | None  # None: the run's own data

    @property
    def slug(self) -> str:
        return slug(self.info.name)


def slug(name: str) -> str:
    """A folder-safe form of a data set name or path."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).name or name).strip("-") or "data"


def is_same_data(run: Run, data: str | None) -> bool:
    """True when ``data`` (a ``--data`` value) names the data set the run was trained on."""
    if data is None:
        return True
    own = run.cfg.data.name
    if data == own:
        return True
    a, b = Path(data).expanduser(), Path(own).expanduser()
    return a.exists() and b.exists() and a.resolve() == b.resolve()


def load_target(run: Run, data: str | None = None, data_dir: str | None = None) -> Target:
    """The run's own splits (``data`` None or the same set) or ``data`` adapted for transfer.

    Raises:
        RunError: ``data`` holds texts for an image run, or images for a text run.
    """
    cfg = run.cfg
    if is_same_data(run, data):
        splits = load_dataset(cfg.data.name, data_dir=data_dir or cfg.data.data_dir,
                              val_fraction=cfg.data.val_fraction, seed=cfg.train.seed,
                              strict=cfg.data.strict, image_size=cfg.data.image_size)
        return Target(splits, splits.info, None)
    splits = load_dataset(data, data_dir=data_dir, val_fraction=cfg.data.val_fraction,
                          seed=cfg.train.seed)
    if run.modality != splits.info.modality:
        raise RunError(f"--data {data} holds {splits.info.modality}s but the run's encoder reads {run.modality}s")
    if run.modality != "image":  # texts need no adapting: the encoder tokenises them itself
        return Target(splits, splits.info, {"from": cfg.data.name, "to": data, "num_classes": splits.info.num_classes,
                                            "rule": TEXT_TRANSFER_RULE})
    meta, src = run.meta, splits.info
    info = DatasetInfo(name=src.name, channels=int(meta["in_channels"]),
                       image_size=int(meta["image_size"]), num_classes=src.num_classes,
                       class_names=src.class_names, mean=tuple(meta["mean"]), std=tuple(meta["std"]))
    adapted = Splits(*(ChannelAdapted(s, info.channels) for s in (splits.train, splits.val, splits.test)),
                     info=info)
    transfer = {"from": cfg.data.name, "to": data, "source_channels": src.channels,
                "source_image_size": src.image_size, "encoder_channels": info.channels,
                "encoder_image_size": info.image_size, "num_classes": info.num_classes,
                "rule": TRANSFER_RULE}
    return Target(adapted, info, transfer)


def check_same_data(run: Run, reference: Run) -> None:
    """mCE compares errors on the same images: the reference must share the run's data set.

    Raises:
        RunError: the two runs were trained on different data sets.
    """
    if reference.cfg.data.name != run.cfg.data.name:
        raise RunError(f"reference {reference.path} was trained on {reference.cfg.data.name!r} "
                       f"but run_dir on {run.cfg.data.name!r}; mCE needs a reference on the same data")


def features(encoder: nn.Module, target: Target, cfg: Config, device: torch.device | str, *,
             bars: bool = False, phase: str = "features") -> dict[str, tuple[Tensor, Tensor]]:
    """Encoder representations ``(feats [n, F], labels [n])`` of every split (no augmentation),
    with the progress of a :class:`~supcon.engine.progress.Phase` named ``phase``."""
    encoder = encoder.to(device)
    loaders = {name: eval_loader(getattr(target.splits, name), target.info, batch_size=cfg.linear.batch_size,
                                 seed=cfg.train.seed) for name in ("train", "val", "test")}
    sizes = ", ".join(f"{len(getattr(target.splits, name))} {name}" for name in loaders)
    with Phase(phase, sum(len(loader) for loader in loaders.values()), "batches",
               detail=f"encoder over {sizes} samples", bars=bars) as progress:
        return {name: extract_features(encoder, progress.iterate(loader), device)
                for name, loader in loaders.items()}


def uint8_images(dataset: ImageDataset, indices: Tensor, size: int) -> Tensor:
    """uint8 ``[n, C, size, size]`` of ``dataset[indices]``, resized/cropped like the eval transform."""
    images, _ = dataset.get_batch(indices.tolist())
    if isinstance(images, Tensor) and images.shape[-2:] == (size, size):
        return images
    return torch.stack([fit_square(im, size) for im in images])


def preprocess_fn(info: DatasetInfo) -> Callable[[Tensor], Tensor]:
    """uint8 ``[B, C, S, S]`` -> the normalised float batch the encoder reads (eval transform)."""
    policy = build_transform("none", info, train=False)

    def preprocess(batch: Tensor) -> Tensor:
        return policy.apply(batch, torch.empty(batch.shape[0], 0, dtype=torch.float64))

    return preprocess
