"""What stage 1 of `supcon train` is made of, built from a Config: data splits, method, model
(wrapped for DDP / compiled as configured), the online probe, the augmented training set and its
loader."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import distributed as dist
from ..config import Config, is_text_encoder
from ..data import (
    AugmentedDataset,
    DeviceAugment,
    MultiView,
    Splits,
    build_loader,
    build_transform,
    load_dataset,
)
from ..data.text import TEXT, TextViews
from ..methods import Method, create_method
from ..models import LinearClassifier, adopt_encoder, adopt_text_encoder, create_encoder
from .compilation import maybe_compile
from .cpu_memory import process_is_ours, retain_freed_memory

log = logging.getLogger("supcon")


@dataclass
class Components:
    """Everything stage 1 needs, built from a Config."""

    splits: Any
    method: Method
    model: nn.Module
    probe: nn.Module | None
    train_data: AugmentedDataset | TextViews
    loader: Any
    device: torch.device
    train_model: nn.Module | None = None
    """What the training step calls: ``model`` in DDP under torchrun, else ``model`` itself."""
    augment: DeviceAugment | None = None
    """Finishes deferred batches on the device (``data.augment_on_device``)."""

    def __post_init__(self) -> None:
        if self.train_model is None:
            self.train_model = self.model


def build(cfg: Config, encoder: nn.Module | None = None, splits: Splits | None = None) -> Components:
    """Data, model, method and loader for stage 1 (deterministic given ``cfg.train.seed``).

    ``encoder`` and ``splits`` replace the ones ``cfg`` names (your own module and datasets,
    see :func:`supcon.train`); the encoder is trained in place.

    Raises:
        ValueError: the device is unavailable, ``train.batch_size`` exceeds the training split
            (:func:`fit_batch` lowers it first in the train job), or the data set, encoder or
            method rejects its options (DataError, ValueError).
    """
    torch.manual_seed(cfg.train.seed)
    device = dist.resolve_device(cfg.train.device)
    if device.type == "cpu" and process_is_ours():  # process-wide for good: the `supcon` command's only
        retain_freed_memory()  # no page faults on every step's activations
    if splits is None:
        splits = load_splits(cfg)
    info = splits.info
    label_sets = label_sets_in_batches(cfg, splits)
    method = method_from_config(cfg, label_sets=label_sets)
    if encoder is None:
        check_modality(cfg, info.modality)
        encoder = create_encoder(cfg.model.encoder, in_channels=info.channels, image_size=info.image_size,
                                 **cfg.model.encoder_options)
    elif info.modality == TEXT:
        encoder = adopt_text_encoder(encoder)
    else:
        encoder = adopt_encoder(encoder, info.channels, info.image_size)
    model = method.build_model(encoder, info.num_classes).to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_model = dist.wrap_model(model, device, sync_bn=cfg.train.sync_bn)
    model = dist.unwrap(train_model)  # SyncBatchNorm conversion may replace the root
    train_model = maybe_compile(train_model, cfg.train.compile, device)
    probe = None
    # with label sets the batches carry those, not classes: no online probe
    if method.multi_view and cfg.train.online_probe and not label_sets:
        probe = LinearClassifier(encoder.num_features, info.num_classes).to(device)
    train_data, augment = _training_set(cfg, splits, method, label_sets)
    loader = build_loader(train_data, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True,
                          seed=cfg.train.seed, per_class=cfg.data.per_class,
                          num_workers=cfg.data.num_workers, rank=dist.rank(), world_size=dist.world_size())
    if len(loader) == 0:  # fit_batch lowers a batch the split cannot fill; a caller may have skipped it
        raise ValueError(f"train.batch_size={cfg.train.batch_size} is larger than the training split "
                         f"({len(splits.train)} images); lower it")
    return Components(splits, method, model, probe, train_data, loader, device, train_model, augment)


def label_sets_in_batches(cfg: Config, splits: Splits) -> bool:
    """Whether the training batches carry label sets (``[B, C]``, the rows of ``splits.train.targets``:
    an image folder's ``data.labels_csv``, a text file's ``labels`` column) instead of classes:
    for method supcon only; the other methods train on the classes.

    Raises:
        ValueError: label sets with ``loss.memory`` (a text file's; an image folder's
            ``data.labels_csv`` is refused with it by the config).
    """
    if cfg.method != "supcon" or getattr(splits.train, "targets", None) is None:
        return False
    if cfg.loss.memory:
        raise ValueError("the training data's label sets cannot be combined with loss.memory (the queue keeps one "
                         "label per key): set loss.memory=0, or drop the labels column")
    return True


def _training_set(cfg: Config, splits: Splits, method: Method, label_sets: bool) -> tuple[Any, DeviceAugment | None]:
    """The training split as the loader reads it: augmented images (views from the policy) or
    texts (views from the encoder's dropout), yielding label sets when ``label_sets``; and the
    device augmentation, if deferred."""
    if splits.info.modality == TEXT:
        check_text_options(cfg)
        return TextViews(splits.train, cfg.data.n_views, targets=label_sets), None
    transform = build_transform(cfg.data.augmentation, splits.info, train=True, **cfg.data.augmentation_options)
    if cfg.data.n_views > 1 or method.multi_view:
        transform = MultiView(transform, cfg.data.n_views)
    train_data = AugmentedDataset(splits.train, transform, seed=cfg.train.seed,
                                  targets=label_sets,
                                  defer=cfg.data.augment_on_device)
    return train_data, DeviceAugment(transform) if cfg.data.augment_on_device else None


def check_modality(cfg: Config, modality: str) -> None:
    """The encoder ``cfg`` names must read what the data hold (texts or images).

    Raises:
        ValueError: text data with an image encoder, or a text encoder with images.
    """
    reads_text = is_text_encoder(cfg.model.encoder)
    if modality == TEXT and not reads_text:
        raise ValueError(f"data {cfg.data.name} holds texts but model.encoder={cfg.model.encoder} reads images; "
                         "give a text encoder: model.encoder=transformers:<folder>")
    if reads_text and modality != TEXT:
        raise ValueError(f"model.encoder={cfg.model.encoder} reads texts but data {cfg.data.name} holds images; "
                         "give an image encoder (e.g. small-resnet) or text data (a folder with train.csv)")


def check_text_options(cfg: Config) -> None:
    """Options that only images have are refused for text data.

    Raises:
        ValueError: an augmentation policy or ``data.augment_on_device`` with text data.
    """
    if cfg.data.augmentation != "none":
        raise ValueError(f"data.augmentation={cfg.data.augmentation} is an image policy; a text's views are "
                         "dropout views: set data.augmentation=none")
    if cfg.data.augment_on_device:
        raise ValueError("data.augment_on_device is for images; set it to false for text data")


def method_from_config(cfg: Config, label_sets: bool = False) -> Method:
    """The method ``cfg.method`` with the options ``cfg`` implies (``loss.*`` and
    ``model.head``/``feat_dim``; ``memory``/``momentum`` when ``loss.memory > 0``;
    ``label_overlap`` with ``data.labels_csv`` or ``label_sets``, see
    :func:`label_sets_in_batches`): the only place that knows which options each method takes
    from a config.

    Raises:
        ValueError: the method rejects an option (a config passed through
            :func:`supcon.config.build_config` is already checked).
    """
    return create_method(cfg.method, **_method_options(cfg, label_sets))


def _method_options(cfg: Config, label_sets: bool) -> dict[str, Any]:
    if cfg.method == "ce":
        return {"label_smoothing": cfg.loss.label_smoothing}
    options = {"temperature": cfg.loss.temperature, "head": cfg.model.head, "feat_dim": cfg.model.feat_dim}
    if cfg.method == "ce+supcon":
        options.update(supcon_weight=cfg.loss.supcon_weight, variant=cfg.loss.variant,
                       positives_cap=cfg.loss.positives_cap, label_smoothing=cfg.loss.label_smoothing)
    if cfg.method == "supcon":
        options.update(variant=cfg.loss.variant, positives_cap=cfg.loss.positives_cap,
                       contrast_mode=cfg.loss.contrast_mode)
        if label_sets or cfg.data.labels_csv is not None:  # label sets: how positives are weighted
            options.update(label_overlap=cfg.loss.label_overlap)
        if cfg.loss.memory:  # the momentum-queue variant
            options.update(memory=cfg.loss.memory, momentum=cfg.loss.momentum)
    return options


def load_splits(cfg: Config) -> Splits:
    """The train/val/test splits of the data set or folder ``cfg.data`` names.

    Raises:
        DataError: the data set or folder cannot be read (see :func:`supcon.data.load_dataset`).
    """
    return load_dataset(cfg.data.name, data_dir=cfg.data.data_dir, val_fraction=cfg.data.val_fraction,
                        seed=cfg.train.seed, strict=cfg.data.strict, image_size=cfg.data.image_size,
                        labels_csv=cfg.data.labels_csv)


def fit_batch(cfg: Config, n_train: int, world_size: int = 1) -> Config:
    """``cfg`` with ``train.batch_size`` lowered to the largest batch ``n_train`` images fill on
    each of ``world_size`` processes (an epoch's last partial batch is dropped, so a larger batch
    would give no step at all); ``cfg`` itself when it already fits. A lowered batch is logged in
    one line; ``train.micro_batch_size`` follows it down. Class-balanced batches
    (``data.per_class``) always give a step and are left as they are.

    Raises:
        ValueError: fewer than 2 training images per process (no batch to contrast or normalise).
    """
    batch, per_process = cfg.train.batch_size, n_train // world_size
    if cfg.data.per_class is not None or batch <= per_process:
        return cfg
    if per_process < 2:
        raise ValueError(f"the training split ({n_train} images) gives {per_process} per process on "
                         f"{world_size} process(es); a batch needs at least 2: "
                         "add images or use fewer processes")
    micro = cfg.train.micro_batch_size
    train = dataclasses.replace(cfg.train, batch_size=per_process,
                                micro_batch_size=None if micro is None else min(micro, per_process))
    if dist.is_main():
        log.warning("train.batch_size=%d is larger than the training split (%d images%s): training with "
                    "train.batch_size=%d (set it with --batch-size or train.batch_size=N)", batch, n_train,
                    f" over {world_size} processes" if world_size > 1 else "", per_process)
    return dataclasses.replace(cfg, train=train)
