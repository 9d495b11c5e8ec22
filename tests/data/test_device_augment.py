"""data.augment_on_device: the batch augmented after the move equals the loader's, seed for seed."""

from __future__ import annotations

import pytest
import torch

from supcon.config import build_config
from supcon.data import (
    AugmentedDataset,
    DatasetInfo,
    DeviceAugment,
    MultiView,
    TensorImageDataset,
    build_loader,
    build_transform,
    to_device,
)
from supcon.engine import train_job

# The option is meant for GPUs: where one is present the batch is augmented there too. Its kernels
# (resampling, blur, colour) round differently from the CPU's, so there the images agree to float
# rounding; on the CPU they are the same tensor.
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def _assert_same_images(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    if got.device.type == "cpu":
        assert torch.equal(got, want)
    else:
        torch.testing.assert_close(got.cpu(), want, rtol=0, atol=1e-3)


def _base(channels: int, side: int, n: int = 40) -> tuple[TensorImageDataset, DatasetInfo]:
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, channels, side, side), dtype=torch.uint8, generator=g)
    info = DatasetInfo("toy", channels, side, 4, ("a", "b", "c", "d"), (0.5,) * channels,
                       (0.25,) * channels)
    return TensorImageDataset(images, torch.arange(n) % 4), info


def _batches(transform, base, defer: bool, epoch: int):
    data = AugmentedDataset(base, transform, seed=7, defer=defer)
    loader = build_loader(data, batch_size=16, shuffle=True, drop_last=True, seed=7, num_workers=0)
    loader.set_epoch(epoch)
    return list(loader)


@pytest.mark.parametrize("policy, views, channels, side, params", [
    ("simaugment", 2, 1, 28, {}),
    ("simaugment", 2, 3, 32, {"blur": True}),  # colour jitter, greyscale and blur on 3 channels
    ("crop-flip", 1, 3, 32, {}),               # one view: a plain policy, no MultiView
    ("simaugment", 3, 1, 28, {"crop_scale": [0.5, 1.0]}),
])  # fmt: skip
@pytest.mark.parametrize("device", DEVICES)
def test_deferred_batches_equal_the_loaders(policy, views, channels, side, params, device):
    base, info = _base(channels, side)
    transform = build_transform(policy, info, **params)
    if views > 1:
        transform = MultiView(transform, views)
    augment = DeviceAugment(transform)
    for epoch in (0, 1):
        loaded = _batches(transform, base, False, epoch)
        deferred = _batches(transform, base, True, epoch)
        assert len(loaded) == len(deferred) == 2
        for (want, want_labels), batch in zip(loaded, deferred, strict=True):
            assert batch[0].dtype == torch.uint8 and batch[0].shape == (16, channels, side, side)
            images, labels = to_device(batch, torch.device(device), augment)
            assert torch.equal(labels.cpu(), want_labels)
            _assert_same_images(images, want)


def test_defer_needs_a_batched_policy():
    base, _ = _base(1, 28)
    with pytest.raises(ValueError, match="defer=True needs a batched policy transform"):
        AugmentedDataset(base, lambda image: image.float(), defer=True)


def test_the_train_job_option_feeds_the_same_first_batch():
    dotted = ["data.name=digits", "data.num_workers=0", "train.batch_size=32",
              "model.encoder_options={widths: [8], blocks: [1], strides: [2]}"]
    plain = train_job.build(build_config(None, dotted=dotted))
    deferred = train_job.build(build_config(None, dotted=[*dotted, "data.augment_on_device=true"]))
    assert plain.augment is None and deferred.augment is not None
    want = to_device(next(iter(plain.loader)), plain.device)
    got = to_device(next(iter(deferred.loader)), deferred.device, deferred.augment)
    assert torch.equal(want[1], got[1])
    _assert_same_images(got[0], want[0].cpu())  # device auto: the GPU where there is one


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("device", DEVICES)
def test_augmentation_under_autocast_equals_the_loaders(dtype, device):
    # The training loop moves (and so augments) its batch inside autocast: the blur's convolution
    # must still run in float32, as in the loader, and give the same images.
    base, info = _base(3, 32)
    transform = MultiView(build_transform("simaugment", info, blur=True), 2)  # blurs 1 view in 2
    want, _ = _batches(transform, base, False, 0)[0]
    batch = _batches(transform, base, True, 0)[0]
    with torch.autocast(device, dtype=dtype):
        images, _ = to_device(batch, torch.device(device), DeviceAugment(transform))
    _assert_same_images(images, want)  # float32, as the loader's
