"""Fixtures that write tiny data sets in their real on-disk formats into temporary folders.

Every writer returns the arrays it wrote, so tests compare what the loaders read with an
independent record of the truth.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    """idx format: 0, 0, type 0x08 (ubyte), ndim, big-endian int32 dims, then the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def balanced_labels(n: int, classes: int) -> np.ndarray:
    return np.arange(n) % classes


def write_mnist_like(
    folder: Path,
    gz: bool,
    n_train: int = 40,
    n_test: int = 20,
    fill: int | None = None,
    seed: int = 0,
) -> dict:
    """Four idx files (train/t10k images and labels) of 28x28 images in ``folder``."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = (
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
            if fill is None
            else np.full((n, 28, 28), fill, np.uint8)
        )
        labels = balanced_labels(n, 10).astype(np.uint8)
        write_idx(folder / f"{split}-images-idx3-ubyte", images, gz)
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels, gz)
        out[split] = (images, labels)
    return out


def write_cifar(
    root: Path, hundred: bool = False, per_batch: int = 20, n_test: int = 30, seed: int = 0
) -> dict:
    """CIFAR python batches: dicts of ``data`` (rows of 1024 R, 1024 G, 1024 B) and labels."""
    rng = np.random.default_rng(seed)
    classes = 100 if hundred else 10
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    key = "fine_labels" if hundred else "labels"
    files = ["train"] if hundred else [f"data_batch_{k}" for k in range(1, 6)]
    sizes = [per_batch * (5 if hundred else 1)] * len(files)
    written = {"train": [], "test": []}
    for name, n in [*zip(files, sizes, strict=True), ("test" if hundred else "test_batch", n_test)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.permutation(balanced_labels(n, classes)).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, key: labels, "coarse_labels": [0] * n}, f)
        written["test" if name.startswith("test") else "train"].append(
            (data.reshape(n, 3, 32, 32), np.array(labels))
        )
    names = [f"class{c}" for c in range(classes)]
    meta = {"fine_label_names": names} if hundred else {"label_names": names}
    with open(folder / ("meta" if hundred else "batches.meta"), "wb") as f:
        pickle.dump(meta, f)
    return {
        s: tuple(np.concatenate(p) for p in zip(*v, strict=True)) for s, v in written.items()
    } | {"names": names}


def write_svhn(folder: Path, n_train: int = 30, n_test: int = 20, seed: int = 0) -> dict:
    """SVHN .mat files: X is [32, 32, 3, n] and y is [n, 1] with the digit 0 stored as 10."""
    sio = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        digits = balanced_labels(n, 10)
        stored = np.where(digits == 0, 10, digits).reshape(n, 1).astype(np.uint8)
        sio.savemat(folder / f"{split}_32x32.mat", {"X": images.transpose(2, 3, 1, 0), "y": stored})
        out[split] = (images, digits)
    return out


def write_stl10(root: Path, n_train: int = 20, n_test: int = 10, seed: int = 0) -> dict:
    """STL-10 binaries: images stored column-major ([n, 3, W, H] bytes), labels 1..10."""
    rng = np.random.default_rng(seed)
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        labels = balanced_labels(n, 10)
        (folder / f"{split}_X.bin").write_bytes(images.transpose(0, 1, 3, 2).tobytes())
        (folder / f"{split}_y.bin").write_bytes((labels + 1).astype(np.uint8).tobytes())
        out[split] = (images, labels)
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    return out


CLASS_COLOURS = {"ant": (200, 30, 30), "bee": (30, 200, 30), "cat": (30, 30, 200)}


def write_folder(
    root: Path,
    per_class: int = 6,
    size: tuple[int, int] = (20, 16),
    classes=CLASS_COLOURS,
    ext: str = "png",
) -> Path:
    """``root/<class>/<k>.<ext>`` solid-colour RGB images; the colour encodes the class."""
    for name, colour in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            Image.new("RGB", size, colour).save(root / name / f"{k}.{ext}")
    return root


@pytest.fixture
def no_env(monkeypatch):
    """No $SUPCON_DATA and no Debian folder, so only what a test writes can be found."""
    from supcon.data import torchvision_sets

    monkeypatch.delenv("SUPCON_DATA", raising=False)
    monkeypatch.setattr(torchvision_sets, "DEBIAN_DIRS", {})


@pytest.fixture
def fmt():
    """The writers above (test modules cannot import conftest under importlib mode)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        write_idx=write_idx,
        write_mnist_like=write_mnist_like,
        write_cifar=write_cifar,
        write_svhn=write_svhn,
        write_stl10=write_stl10,
        write_folder=write_folder,
        colours=CLASS_COLOURS,
    )
