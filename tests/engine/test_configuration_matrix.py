"""Every combination of the options a user can set for stage 1 trains, on CPU: precision {fp32, bf16,
fp16} x micro-batches (gradient caching) {off, on} x ``data.augment_on_device`` {off, on} x
``--memory`` (``loss.memory``) {0, N} x method {supcon, simclr, ce}.

Most of these paths are taken only on a GPU (fp16 loss scaling, device-side augmentation under
autocast), so they are run here the way a user's config takes them: ``build_config`` ->
``run_training`` (components, the training loop, its autocast and GradScaler, checkpoints, the
linear stage), for two optimizer steps of a tiny encoder on 64 px colour images, the size from
which SimAugment blurs. A combination the config refuses is skipped, after checking that the refusal
is one line naming the option the method cannot take (micro-batches or the queue; precision and
device augmentation are never refused).
"""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from supcon.config import METHODS, PRECISIONS, ConfigError, build_config
from supcon.data import DatasetInfo, Splits, TensorImageDataset, build_transform
from supcon.data.colour import GaussianBlur
from supcon.engine import train_job
from supcon.engine.checkpoint import load_checkpoint
from supcon.models import create_encoder

SIDE, BATCH, MICRO, MEMORY = 64, 4, 2, 16
INFO = DatasetInfo("toy", 3, SIDE, 2, ("a", "b"), (0.5,) * 3, (0.25,) * 3)
# Every method the config accepts (a new one joins the matrix by itself).
COMBINATIONS = list(itertools.product(PRECISIONS, (None, MICRO), (False, True), (0, MEMORY), METHODS))
# and, where there is a GPU, the same on it (the paths these options were made for)
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
# The options each of the original methods cannot take (the config refuses them).
REFUSED_KEYS = {"supcon": set(), "simclr": {"loss.memory"}, "ce": {"train.micro_batch_size", "loss.memory"}}


def _config(precision: str, micro: int | None, on_device: bool, memory: int, method: str, device: str = "cpu"):
    dotted = [f"train.precision={precision}", f"data.augment_on_device={str(on_device).lower()}",
              f"loss.memory={memory}", f"train.batch_size={BATCH}", "train.epochs=1", f"train.device={device}",
              "data.num_workers=0", "linear.epochs=1", "optim.warmup_epochs=0",
              "data.augmentation=simaugment"]  # ce too: the policy that blurs
    if micro is not None:
        dotted.append(f"train.micro_batch_size={micro}")
    return build_config(None, overrides={"method": method}, dotted=dotted)


def _splits() -> Splits:
    """Two batches of training images (two steps per epoch), two classes."""
    g = torch.Generator().manual_seed(0)

    def part(n: int) -> TensorImageDataset:
        images = torch.randint(0, 256, (n, 3, SIDE, SIDE), dtype=torch.uint8, generator=g)
        return TensorImageDataset(images, torch.arange(n) % 2)

    return Splits(part(2 * BATCH), part(4), part(4), INFO)


def _id(combination) -> str:
    precision, micro, on_device, memory, method = combination
    return "-".join([precision, f"micro{micro or 0}", "device" if on_device else "loader", f"memory{memory}", method])


def test_the_images_are_blurred():
    # The device augmentation under autocast failed in the blur: the matrix must run it.
    assert any(isinstance(stage, GaussianBlur) for stage in build_transform("simaugment", INFO).stages)


@pytest.mark.parametrize("method", sorted(REFUSED_KEYS))
@pytest.mark.parametrize("key", ["train.micro_batch_size", "loss.memory"])
def test_the_config_refuses_exactly_what_a_method_cannot_take(method, key):
    micro, memory = (MICRO, 0) if key == "train.micro_batch_size" else (None, MEMORY)
    if key not in REFUSED_KEYS[method]:
        _config("fp32", micro, False, memory, method)
        return
    with pytest.raises(ConfigError) as error:
        _config("fp32", micro, False, memory, method)
    assert "\n" not in str(error.value) and key in str(error.value)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("combination", COMBINATIONS, ids=map(_id, COMBINATIONS))
def test_two_steps_train_or_the_config_refuses_in_one_line(combination, device, tmp_path):
    precision, micro, on_device, memory, method = combination
    try:
        cfg = _config(*combination, device=device)
    except ConfigError as error:  # only an option the method cannot take, named in one line
        message = str(error)
        keys = {k for k, on in (("train.micro_batch_size", micro), ("loss.memory", memory)) if on}
        assert "\n" not in message and any(key in message for key in keys), message
        pytest.skip(f"refused: {message}")
    torch.manual_seed(0)
    # 8 channels: below 8 input channels oneDNN's (AVX2) strided 1x1 convolution writes past its
    # buffer in the channels-last backward pass (the train job's default memory format).
    encoder = create_encoder("small-resnet", in_channels=3, widths=(8,), blocks=(1,), strides=(4,), stem_stride=2)
    initial = {name: p.detach().clone().to(device) for name, p in encoder.named_parameters()}
    results = train_job.run_training(cfg, tmp_path, encoder=encoder, splits=_splits())
    assert results["steps"] == 2
    epochs = [r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
              if r["stage"] == "pretrain_epoch"]
    assert len(epochs) == 1 and math.isfinite(epochs[0]["loss"])  # the mean of the two steps' losses
    changed = [name for name, p in encoder.named_parameters() if not torch.equal(p.detach(), initial[name])]
    assert changed, "no parameter changed in two optimizer steps"
    assert all(bool(torch.isfinite(p).all()) for p in encoder.parameters())
    if memory:  # the momentum queue received every view of both batches
        queued = load_checkpoint(tmp_path / "checkpoint.pt")["model"]["queue.count"]
        assert int(queued) == 2 * BATCH * cfg.data.n_views
