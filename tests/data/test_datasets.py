"""Registered data sets build from files written in their real formats; splits and resolution."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from supcon.data import DataError, list_datasets, load_dataset, mnist, stratified_split
from supcon.data.digits import load_digits

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def _rows(images: torch.Tensor) -> set[bytes]:
    return {im.numpy().tobytes() for im in images}


def _check_splits(splits, train_images, train_labels, test_images, test_labels, val_fraction):
    """Train+val is the written train set (split as the splitter says); test is kept as written."""
    keep, held = stratified_split(torch.as_tensor(train_labels), val_fraction, 0)
    assert torch.equal(splits.train.images, torch.as_tensor(train_images)[keep])
    assert torch.equal(splits.val.images, torch.as_tensor(train_images)[held])
    assert torch.equal(splits.train.labels, torch.as_tensor(train_labels, dtype=torch.long)[keep])
    assert torch.equal(splits.test.images, torch.as_tensor(test_images))
    assert torch.equal(splits.test.labels, torch.as_tensor(test_labels, dtype=torch.long))
    assert splits.train.images.dtype == torch.uint8


def test_registry_names():
    assert {"fashion-mnist", "mnist", "cifar10", "cifar100", "svhn", "stl10", "digits"} <= set(
        list_datasets()
    )


@pytest.mark.parametrize(
    "name, sub, gz",
    [
        ("fashion-mnist", "fashion-mnist", True),
        ("fashion-mnist", "FashionMNIST/raw", False),
        ("mnist", "MNIST/raw", False),
        ("mnist", "mnist", True),
    ],
)
def test_mnist_family_layouts(tmp_path, no_env, fmt, name, sub, gz):
    written = fmt.write_mnist_like(tmp_path / sub, gz=gz)
    s = load_dataset(name, data_dir=tmp_path, download=False, val_fraction=0.25)
    (tri, trl), (tei, tel) = written["train"], written["t10k"]
    _check_splits(s, tri[:, None], trl, tei[:, None], tel, 0.25)
    assert (s.info.channels, s.info.image_size, s.info.num_classes) == (1, 28, 10)
    assert len(s.info.class_names) == 10


def test_flat_idx_files_need_a_named_folder(tmp_path, no_env, fmt):
    """Flat idx files are the same for MNIST and Fashion-MNIST: only a named folder counts."""
    fmt.write_mnist_like(tmp_path, gz=True)
    with pytest.raises(DataError, match="data set fashion-mnist not found"):
        load_dataset("fashion-mnist", data_dir=tmp_path, download=False)
    fmt.write_mnist_like(tmp_path / "x" / "fashion-mnist", gz=True)
    assert (
        len(
            load_dataset(
                "fashion-mnist", data_dir=tmp_path / "x" / "fashion-mnist", download=False
            ).test
        )
        == 20
    )


@pytest.mark.parametrize("layout", ["py2", "bin"])  # python (pickled) and binary versions
@pytest.mark.parametrize("hundred", [False, True])
def test_cifar(tmp_path, no_env, fmt, hundred, layout):
    w = fmt.write_cifar(tmp_path, hundred=hundred, layout=layout)
    s = load_dataset(
        "cifar100" if hundred else "cifar10", data_dir=tmp_path, download=False, val_fraction=0.1
    )
    _check_splits(s, w["train"][0], w["train"][1], w["test"][0], w["test"][1], 0.1)
    assert s.info.class_names == tuple(w["names"])
    assert (s.info.channels, s.info.image_size, s.info.num_classes) == (
        3,
        32,
        100 if hundred else 10,
    )


def test_svhn(tmp_path, no_env, fmt):
    w = fmt.write_svhn(tmp_path / "svhn")
    s = load_dataset("svhn", data_dir=tmp_path, download=False, val_fraction=0.2)
    _check_splits(s, *w["train"], *w["test"], 0.2)  # labels 10 -> 0 and [H, W, C, n] handled
    assert (s.info.channels, s.info.image_size) == (3, 32)


def test_stl10(tmp_path, no_env, fmt):
    w = fmt.write_stl10(tmp_path)
    s = load_dataset("stl10", data_dir=tmp_path, download=False, val_fraction=0.1)
    _check_splits(s, *w["train"], *w["test"], 0.1)
    assert s.info.image_size == 96 and s.info.class_names[0] == "airplane"


def test_digits_rule_and_fixed_test_split():
    from sklearn.datasets import load_digits as sk

    src = load_digits([], None)
    raw = sk().images
    expected = np.kron(np.rint(raw * 255 / 16), np.ones((4, 4))).astype(
        np.uint8
    )  # 8x8 -> 32x32 blocks
    assert torch.equal(src.train.images[:, 0], torch.from_numpy(expected))
    a, b = load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    assert torch.equal(a.test.images, b.test.images)  # the test split does not follow the seed
    assert not torch.equal(a.val.labels, b.val.labels) or not torch.equal(
        a.val.images, b.val.images
    )
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert len(a.test) == round(0.2 * 1797)
    assert (a.info.channels, a.info.image_size, a.info.num_classes) == (1, 32, 10)


def test_splits_disjoint_stratified_reproducible(tmp_path, no_env, fmt):
    fmt.write_cifar(tmp_path, per_batch=40)
    s1 = load_dataset("cifar10", data_dir=tmp_path, download=False, val_fraction=0.2, seed=3)
    s2 = load_dataset("cifar10", data_dir=tmp_path, download=False, val_fraction=0.2, seed=3)
    s3 = load_dataset("cifar10", data_dir=tmp_path, download=False, val_fraction=0.2, seed=4)
    tr, va, te = _rows(s1.train.images), _rows(s1.val.images), _rows(s1.test.images)
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert torch.equal(s1.val.images, s2.val.images)
    assert not torch.equal(s1.val.images, s3.val.images)
    counts = torch.bincount(s1.val.labels, minlength=10)
    assert torch.equal(counts, torch.full((10,), 4))  # 20 per class * 0.2


def test_stratified_split_counts():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 7 + [3] * 1)
    keep, held = stratified_split(labels, 0.1, seed=0)
    assert torch.equal(torch.sort(torch.cat([keep, held])).values, torch.arange(88))
    assert held.numel() == round(0.1 * 88)
    per_class = torch.bincount(labels[held], minlength=4).tolist()
    assert (
        per_class[0] == 5 and per_class[1] == 3 and per_class[3] == 0
    )  # lone sample stays in train
    keep0, held0 = stratified_split(labels, 0.0, seed=0)
    assert held0.numel() == 0 and keep0.numel() == 88
    with pytest.raises(DataError, match="fraction"):
        stratified_split(labels, 1.0, seed=0)


def test_resolution_order(tmp_path, monkeypatch, fmt):
    for name, value in (("given", 10), ("env", 20), ("debian", 30)):
        fmt.write_mnist_like(tmp_path / name / "fashion-mnist", gz=True, fill=value)
    monkeypatch.setattr(
        mnist, "DEBIAN_DIRS", {"fashion-mnist": (tmp_path / "debian" / "fashion-mnist",)}
    )
    monkeypatch.setenv("SUPCON_DATA", str(tmp_path / "env"))

    def first_pixel(**kw) -> int:
        return int(load_dataset("fashion-mnist", download=False, **kw).test.images[0, 0, 0, 0])

    assert first_pixel(data_dir=tmp_path / "given") == 10
    assert first_pixel() == 20
    monkeypatch.delenv("SUPCON_DATA")
    assert first_pixel() == 30


def test_missing_set_names_the_folders_searched(tmp_path, no_env):
    with pytest.raises(DataError, match=f"cifar10 not found in {tmp_path}"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


@pytest.mark.parametrize(
    "name, hint",
    [
        ("fashion-mnst", "did you mean 'fashion-mnist'"),
        ("cifar1000", "did you mean 'cifar100'"),
        ("imagenet-21k", "registered: cifar10"),
    ],
)
def test_unknown_name_suggests(name, hint, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=hint):
        load_dataset(name)


def test_name_spelling_is_forgiving(tmp_path, no_env, fmt):
    fmt.write_cifar(tmp_path)
    assert load_dataset("CIFAR-10", data_dir=tmp_path, download=False).info.name == "cifar10"


def test_truncated_idx_file(tmp_path, no_env, fmt):
    folder = tmp_path / "fashion-mnist"
    fmt.write_mnist_like(folder, gz=False)
    path = folder / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=f"idx file {path}"):
        load_dataset("fashion-mnist", data_dir=tmp_path, download=False)


def test_info_statistics_are_the_train_split_moments(tmp_path, no_env, fmt):
    fmt.write_cifar(tmp_path)
    s = load_dataset("cifar10", data_dir=tmp_path, download=False)
    x = s.train.images.double() / 255
    assert np.allclose(s.info.mean, x.mean(dim=(0, 2, 3)).numpy(), atol=1e-6)
    assert np.allclose(s.info.std, x.std(dim=(0, 2, 3), unbiased=False).numpy(), atol=1e-6)


@pytest.mark.skipif(
    not DEBIAN.is_dir() or os.environ.get("SUPCON_DATA"), reason="no Debian Fashion-MNIST"
)
def test_real_debian_fashion_mnist():
    s = load_dataset("fashion-mnist", download=False)
    assert (len(s.train), len(s.val), len(s.test)) == (54000, 6000, 10000)
    assert abs(s.info.mean[0] - 0.286) < 0.002 and abs(s.info.std[0] - 0.353) < 0.002
    assert torch.equal(torch.bincount(s.test.labels), torch.full((10,), 1000))
