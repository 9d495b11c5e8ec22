"""`supcon.train` with your own objects: Datasets of PIL images / tensors / arrays read exactly as
the registered data set they hold, a run equal to the one made from names, your own module
trained in place and loaded back in a fresh process, exact resume, and one-line errors."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from sklearn.datasets import load_digits
from torch import nn

import supcon
from supcon.config import ConfigError
from supcon.data import DataError, load_dataset, splits_from_objects

ROOT = Path(__file__).parents[1]
DIGITS = load_digits()
# the registered digits set, written independently: 0..16 -> 0..255, each pixel a 4x4 block
PIXELS = np.kron(np.rint(DIGITS.images * 255 / 16).astype(np.uint8), np.ones((1, 4, 4), dtype=np.uint8))


class Items(torch.utils.data.Dataset):
    """``(image, label)`` items with the image in one of the forms a user may hold."""

    def __init__(self, kind: str, indices=None, label_kind: str = "int") -> None:
        self.kind, self.label_kind = kind, label_kind
        self.indices = np.arange(len(DIGITS.target)) if indices is None else indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        j = self.indices[i]
        pixels, label = PIXELS[j], int(DIGITS.target[j])
        image = {"pil": lambda: Image.fromarray(pixels),
                 "pil-rgb": lambda: Image.fromarray(np.repeat(pixels[..., None], 3, axis=2)),
                 "uint8-chw": lambda: torch.from_numpy(pixels)[None],
                 "float-hw": lambda: torch.from_numpy(pixels).float() / 255,
                 "array-hwc": lambda: pixels[..., None]}[self.kind]()
        return image, {"int": label, "tensor": torch.tensor(label), "numpy": np.int64(label)}[self.label_kind]


class TinyNet(nn.Module):
    """``[B, 1, 32, 32] -> [B, 16]``."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1),
                                  nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x):
        return self.body(x)


@pytest.mark.parametrize("kind,label_kind", [("pil", "int"), ("pil-rgb", "tensor"), ("uint8-chw", "numpy"),
                                             ("float-hw", "int"), ("array-hwc", "int")])
def test_a_dataset_of_objects_gives_the_registered_sets_splits(kind, label_kind):
    ours = splits_from_objects(Items(kind, label_kind=label_kind), val_fraction=0.1, seed=3)
    reference = load_dataset("digits", val_fraction=0.1, seed=3)
    channels = 3 if kind == "pil-rgb" else 1  # an RGB image stays RGB, as in an image folder
    for split in ("train", "val", "test"):
        a, b = getattr(ours, split), getattr(reference, split)
        assert torch.equal(a.images, b.images.expand(-1, channels, -1, -1)), split
        assert torch.equal(a.labels, b.labels), split
    assert ours.info.channels == channels and ours.info.image_size == 32
    assert (ours.info.mean, ours.info.std, ours.info.class_names) == (
        reference.info.mean * channels, reference.info.std * channels, reference.info.class_names)
    assert ours.info.name == "object:Items"


def test_given_test_and_val_sets_are_used_as_they_are():
    order = np.random.default_rng(0).permutation(len(DIGITS.target))
    train, val, test = Items("pil", order[:1000]), Items("pil", order[1000:1300]), Items("pil", order[1300:])
    splits = splits_from_objects(train, test, val, image_size=16)
    assert [len(splits.train), len(splits.val), len(splits.test)] == [1000, 300, 497]
    assert torch.equal(splits.test.labels, torch.as_tensor(DIGITS.target[order[1300:]]))
    assert splits.test.images.shape[1:] == (1, 16, 16)  # resized like a folder's images
    first = torch.nn.functional.interpolate(torch.from_numpy(PIXELS[order[1300]])[None, None].float(), size=16,
                                            mode="bilinear", antialias=True, align_corners=False)
    assert (splits.test.images[0].float() - first[0].round()).abs().max() <= 1


def test_without_a_test_split_every_item_trains_and_no_test_score_is_made(tiny_config, tmp_path):
    order = np.random.default_rng(0).permutation(len(DIGITS.target))
    cfg = tiny_config("supcon")
    results = supcon.train(train_set=Items("pil", order[:1000]), val_set=Items("pil", order[1000:1300]), test=False,
                           config=cfg, out=tmp_path / "run", progress=False)
    assert "test_top1" not in results and "test_top5" not in results and results["val_top1"] > 0
    # steps count the whole train_set (a carved 20% test split would leave 800 items)
    assert results["steps"] == cfg.train.epochs * (1000 // cfg.train.batch_size) != cfg.train.epochs * (800 // cfg.train.batch_size)


def test_a_large_dataset_is_read_item_by_item_with_the_same_images(monkeypatch):
    import supcon.data.objects as objects

    monkeypatch.setattr(objects, "IN_MEMORY_BYTES", 1000)
    lazy = splits_from_objects(Items("pil"), val_fraction=0.1, seed=1)
    assert isinstance(lazy.train, objects.ItemsDataset)
    reference = load_dataset("digits", val_fraction=0.1, seed=1)
    images, labels = lazy.val.get_batch(range(len(lazy.val)))
    assert torch.equal(images, reference.val.images) and torch.equal(labels, reference.val.labels)
    assert lazy.info.mean == reference.info.mean  # from a seeded sample, which here covers every image


def _rgb(pixels: np.ndarray) -> np.ndarray:
    """A colour image with three different channels, made from a digit's grey pixels."""
    return np.stack([pixels, 255 - pixels, pixels // 2], axis=2)


class Mixed(torch.utils.data.Dataset):
    """Digits as PIL images: greyscale, except the positions in ``colour`` (RGB)."""

    def __init__(self, indices, colour=()) -> None:
        self.indices, self.colour = indices, set(colour)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        pixels = PIXELS[self.indices[i]]
        image = Image.fromarray(_rgb(pixels)) if i in self.colour else Image.fromarray(pixels)
        return image, int(DIGITS.target[self.indices[i]])

    def expected(self) -> torch.Tensor:
        """Every image as 3 channels, written independently: grey repeated, colour as it is."""
        rgb = [_rgb(PIXELS[j]) if i in self.colour else np.repeat(PIXELS[j][..., None], 3, axis=2)
               for i, j in enumerate(self.indices)]
        return torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("in_memory", [True, False])
@pytest.mark.parametrize("where", ["train_set", "test_set", "val_set"])
def test_one_colour_image_in_any_set_makes_every_split_colour(monkeypatch, where, in_memory):
    # as an image folder reads its files: 1 channel only if every image is grey, whatever comes first
    import supcon.data.objects as objects

    if not in_memory:
        monkeypatch.setattr(objects, "IN_MEMORY_BYTES", 1000)
    order = np.random.default_rng(0).permutation(len(DIGITS.target))
    sets = {"train_set": Mixed(order[:300]), "test_set": Mixed(order[300:400]), "val_set": Mixed(order[400:500])}
    sets[where].colour = {1, 7}  # item 0 stays grey
    splits = splits_from_objects(**sets)
    assert splits.info.channels == 3 and len(splits.info.mean) == 3
    for split, given in zip(("train", "test", "val"), sets.values(), strict=True):
        data = getattr(splits, split)
        images, labels = data.get_batch(range(len(data)))
        assert torch.equal(images, given.expected()), split
        assert torch.equal(labels, torch.as_tensor(DIGITS.target[given.indices])), split


def test_mixed_channels_are_read_alike_in_memory_and_item_by_item(monkeypatch):
    import supcon.data.objects as objects

    mixed = Mixed(np.arange(200), colour=range(3, 200, 5))
    in_memory = splits_from_objects(mixed, image_size=12, seed=2)
    monkeypatch.setattr(objects, "IN_MEMORY_BYTES", 1000)
    lazy = splits_from_objects(mixed, image_size=12, seed=2)
    assert isinstance(lazy.train, objects.ItemsDataset) and lazy.info == in_memory.info
    for split in ("train", "val", "test"):
        a, b = getattr(in_memory, split), getattr(lazy, split)
        assert torch.equal(a.images, b.get_batch(range(len(b)))[0]), split


class Merged(torch.utils.data.Dataset):
    """torchvision's convention: ``.targets`` holds the stored classes, and each item's label is
    ``target_transform`` of it (here: odd / even, 2 classes out of 10)."""

    def __init__(self) -> None:
        self.targets = [int(t) for t in DIGITS.target]
        self.target_transform = lambda y: y % 2

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        return Image.fromarray(PIXELS[i]), self.target_transform(self.targets[i])


@pytest.mark.parametrize("in_memory", [True, False])
def test_labels_are_the_items_own_whatever_the_size_of_the_set(monkeypatch, in_memory):
    import supcon.data.objects as objects

    if not in_memory:
        monkeypatch.setattr(objects, "IN_MEMORY_BYTES", 1000)
    splits = splits_from_objects(Merged(), seed=0)
    assert isinstance(splits.train, objects.ItemsDataset) != in_memory
    assert splits.info.num_classes == 2
    labels = torch.cat([splits.train.labels, splits.val.labels, splits.test.labels])
    assert torch.equal(torch.bincount(labels), torch.from_numpy(np.bincount(DIGITS.target % 2)))


@pytest.mark.parametrize("target_transform", [None, lambda y: 1 - y])
def test_a_torchvision_sets_targets_are_read_only_when_they_are_its_labels(monkeypatch, tmp_path, target_transform):
    # ImageFolder without a target_transform: .targets are its items' labels, so a large set need
    # not be read item by item before training; with one, the items' labels count
    import torchvision

    import supcon.data.objects as objects

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for k in range(3):
            Image.fromarray(_rgb(PIXELS[k])).save(tmp_path / cls / f"{k}.png")
    reads = []

    def loader(path):
        reads.append(path)
        return Image.open(path).convert("RGB")

    folder = torchvision.datasets.ImageFolder(tmp_path, loader=loader, target_transform=target_transform)
    monkeypatch.setattr(objects, "IN_MEMORY_BYTES", 1000)
    data = objects.dataset_from_items(folder, None, 16, "train_set")
    assert isinstance(data, objects.ItemsDataset) and data.channels == 3
    stored = torch.tensor([0, 0, 0, 1, 1, 1])
    assert torch.equal(data.labels, stored if target_transform is None else 1 - stored)
    assert len(reads) <= (2 if target_transform is None else 7)  # the first image: colour, so 3 channels


def test_training_on_objects_equals_training_on_the_registered_name(tiny_config, tmp_path):
    cfg = tiny_config("supcon")
    by_name = supcon.train(config=cfg, out=tmp_path / "name", progress=False)
    by_object = supcon.train(train_set=Items("pil"), config=cfg, out=tmp_path / "object", progress=False)
    for key in ("test_top1", "test_top5", "val_top1", "linear_best_epoch", "steps"):
        assert by_object[key] == by_name[key], key
    assert by_object["data"] == "object:Items"
    a, b = load_file(tmp_path / "name" / "encoder.safetensors"), load_file(tmp_path / "object" / "encoder.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_own_module_is_trained_in_place_and_loads_back_in_a_fresh_process(tiny_config, tmp_path):
    torch.manual_seed(0)
    net = TinyNet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    out = tmp_path / "run"
    results = supcon.train(encoder=net, train_set=Items("uint8-chw"), method="simclr", config=tiny_config("simclr"),
                           out=out, progress=False)
    assert results["encoder"] == "object:TinyNet" and net.num_features == 16
    saved = load_file(out / "encoder.safetensors")
    assert not torch.equal(saved["body.0.weight"], before["body.0.weight"])  # it was trained ...
    assert all(torch.equal(saved[k], v.cpu()) for k, v in net.state_dict().items())  # ... in place
    images = torch.rand(4, 1, 32, 32)
    expected = net.eval()(images)
    torch.save(images, tmp_path / "images.pt")
    # a process that imports only the module's own file and supcon.load_encoder
    (tmp_path / "mynet.py").write_text(
        "import torch\nfrom torch import nn\n" + _source(TinyNet))
    script = ("import sys, torch, supcon\nfrom mynet import TinyNet\n"
              f"enc = supcon.load_encoder({str(out)!r}, encoder=TinyNet())\n"
              f"torch.save(enc(torch.load({str(tmp_path / 'images.pt')!r}, weights_only=True)), 'features.pt')\n"
              "print(sorted(m for m in sys.modules if m.startswith('supcon.') and m.split('.')[1] in "
              "('engine', 'methods', 'data', 'api')))\n"
              f"try:\n    supcon.load_encoder({str(out)!r})\nexcept ValueError as err:\n    print(err)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "[]"  # nothing of the training code was imported
    assert "encoder=TinyNet(" in lines[1]
    assert torch.allclose(torch.load(tmp_path / "features.pt", weights_only=True), expected, atol=1e-6)
    meta = json.loads((out / "encoder.json").read_text())
    assert (meta["encoder"], meta["num_features"], meta["in_channels"]) == ("object:TinyNet", 16, 1)


def test_resume_with_objects_continues_exactly(tiny_config, tmp_path, interrupt):
    cfg = tiny_config("supcon", "train.checkpoint_every_steps=5")

    def run(out, **kwargs):
        torch.manual_seed(1)
        return supcon.train(encoder=TinyNet(), train_set=Items("pil"), config=cfg, out=out, progress=False, **kwargs)

    straight = run(tmp_path / "straight")
    stop = interrupt(3)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed", on_checkpoint=stop)
    assert stop.positions[-1]["step"] == 15
    resumed = run(tmp_path / "resumed", resume=True)
    for key in ("test_top1", "val_top1", "steps"):
        assert resumed[key] == straight[key], key
    a = load_file(tmp_path / "straight" / "encoder.safetensors")
    b = load_file(tmp_path / "resumed" / "encoder.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_progress_bars_only_on_a_terminal_else_a_line_per_epoch(tiny_config, tmp_path, monkeypatch, capsys, caplog):
    # from Python (a notebook's log, a script under nohup) stderr is often a file: bars there are
    # thousands of carriage-return redraws
    cfg = tiny_config("supcon", "train.epochs=1", "linear.epochs=1")
    caplog.set_level(logging.INFO, logger="supcon")
    supcon.train(config=cfg, out=tmp_path / "file")
    err = capsys.readouterr().err
    assert "\r" not in err and "it/s" not in err, err[-300:]
    assert any(r.getMessage().startswith("epoch 1/1  loss") for r in caplog.records)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    supcon.train(config=cfg, out=tmp_path / "terminal")
    assert "\r" in terminal.getvalue() and "pretrain" in terminal.getvalue()


def _source(cls) -> str:
    import inspect
    import textwrap

    return textwrap.dedent(inspect.getsource(cls))


class Broken(torch.utils.data.Dataset):
    def __init__(self, item):
        self.item = item

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return self.item


@pytest.mark.parametrize("item,message", [
    ((torch.rand(1, 8, 8) * 2 - 1, 0), "train_set[0]: a float image with values in"),
    (torch.zeros(1, 8, 8), "train_set[0] is a Tensor; items must be (image, label) pairs"),
    ((torch.zeros(1, 8, 8, dtype=torch.uint8), "cat"), "train_set[0]: the label is 'cat'"),
    ((torch.zeros(1, 8, 8, dtype=torch.uint8), 1.0), "the label is 1.0"),
    (("x.png", 0), "train_set[0] is the str 'x.png', which looks like a file path; a str item is a text"),
    ((torch.zeros(4, 8, 8, dtype=torch.uint8), 0), "train_set[0]: image of shape (4, 8, 8)"),
    ((torch.full((1, 8, 8), 300), 0), "an integer image must hold 0..255"),
])
def test_bad_items_are_named_in_one_line(item, message):
    with pytest.raises(DataError, match=None) as err:
        splits_from_objects(Broken(item))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_arguments_are_named_in_one_line(tiny_config, tmp_path):
    cfg = tiny_config("supcon")
    cases = [
        (dict(train_set=Items("pil"), weight_decay=0.1), ConfigError, "ambiguous setting 'weight_decay'"),
        (dict(train_set=Items("pil"), learning_rate=0.1), ConfigError, "unknown setting 'learning_rate'"),
        (dict(train_set="digits", test_set=Items("pil")), ConfigError, "test_set and val_set go with a Dataset"),
        (dict(train_set=Items("pil"), test_set=Items("pil"), test=False), ConfigError, "test_set with test=False"),
        (dict(encoder=nn.Conv2d(1, 4, 3), train_set=Items("pil")), ValueError, "not [B, F]"),
        (dict(encoder=TinyNet(), train_set=Items("pil"), **{"model.encoder_options": {"widths": [8]}}),
         ConfigError, "model.encoder_options configure a named encoder"),
        (dict(train_set=Broken(None)), DataError, "train_set[0] is a NoneType"),
    ]
    for kwargs, kind, message in cases:
        with pytest.raises(kind) as err:
            supcon.train(config=cfg, out=tmp_path / "x", progress=False, **kwargs)
        assert message in str(err.value), (kwargs, str(err.value))
        assert not (tmp_path / "x" / "checkpoint.pt").exists()
    classifier = TinyNet()
    classifier.num_features = 1000  # as a timm model with its classifier still attached declares
    with pytest.raises(ValueError, match="remove its classifier"):
        supcon.train(encoder=classifier, train_set=Items("pil"), config=cfg, out=tmp_path / "y", progress=False)


def test_object_runs_say_what_to_pass_when_read_by_name(tiny_config, tmp_path):
    from supcon.models import create_encoder

    with pytest.raises(ValueError, match=r"pass it again \(load_encoder\(run, encoder=TinyNet\(...\)\)\)"):
        create_encoder("object:TinyNet", in_channels=1)
    with pytest.raises(DataError, match="was your own Dataset"):
        load_dataset("object:Items")
