"""Fixtures that write tiny data sets in their real on-disk formats into temporary folders.

Every writer returns the arrays it wrote, so tests compare what the loaders read with an
independent record of the truth.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
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


_reconstruct = np.zeros(1).__reduce__()[0]  # numpy's array rebuilder, whatever its module


class Py2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle wrote the real CIFAR files (protocol 2): ``bytes`` and
    ``str`` become Python 2 ``str`` (BINSTRING opcodes), numpy's array rebuilder is named by its
    numpy-1 path ``numpy.core.multiarray._reconstruct``."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj) -> None:
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        n = len(raw)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str

    def save_global(self, obj, name=None) -> None:
        if obj is _reconstruct:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


CIFAR_LAYOUTS = ("py2", "py3", "bin")


def write_cifar(
    root: Path,
    hundred: bool = False,
    per_batch: int = 20,
    n_test: int = 30,
    seed: int = 0,
    layout: str = "py2",
) -> dict:
    """CIFAR files of random images; the same content for every ``layout`` with the same seed.

    ``py2``: the python version as the originals are (Python 2 pickles, see `Py2Pickler`);
    ``py3``: the same dicts saved by Python 3 ``pickle.dumps(protocol=2)`` with ``bytes`` keys;
    ``bin``: the binary version (records of label byte(s) + 3072 channel-planar pixels).
    Each batch dict holds ``data`` (uint8 [n, 3072]: 1024 R, 1024 G, 1024 B), the labels
    (CIFAR-100: ``fine_labels`` and ``coarse_labels``), ``filenames`` and ``batch_label``.
    """
    rng = np.random.default_rng(seed)
    classes = 100 if hundred else 10
    files = ["train"] if hundred else [f"data_batch_{k}" for k in range(1, 6)]
    sizes = [per_batch * (5 if hundred else 1)] * len(files)
    batches = [*zip(files, sizes, strict=True), ("test" if hundred else "test_batch", n_test)]
    names = [f"class{c}" for c in range(classes)]
    coarse_names = [f"super{c}" for c in range(20)]
    sub = {"bin": ("cifar-100-binary", "cifar-10-batches-bin"),
           "py2": ("cifar-100-python", "cifar-10-batches-py")}
    folder = root / sub.get(layout, sub["py2"])[0 if hundred else 1]
    folder.mkdir(parents=True)
    written = {"train": [], "test": []}
    for k, (name, n) in enumerate(batches):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.permutation(balanced_labels(n, classes))
        coarse = rng.integers(0, 20, n)
        if layout == "bin":
            heads = [coarse, labels] if hundred else [labels]
            rows = np.concatenate([np.stack(heads, 1).astype(np.uint8), data], axis=1)
            (folder / f"{name}.bin").write_bytes(rows.tobytes())
        else:
            entry = {b"batch_label": f"batch {k + 1}".encode(), b"data": data,
                     b"filenames": [f"img_{k}_{i}.png".encode() for i in range(n)]}
            entry |= ({b"fine_labels": labels.tolist(), b"coarse_labels": coarse.tolist()} if hundred
                      else {b"labels": labels.tolist()})
            (folder / name).write_bytes(_dump(entry, layout))
        written["test" if name.startswith("test") else "train"].append(
            (data.reshape(n, 3, 32, 32), labels)
        )
    if layout == "bin":
        if hundred:
            (folder / "fine_label_names.txt").write_text("\n".join(names) + "\n")
            (folder / "coarse_label_names.txt").write_text("\n".join(coarse_names) + "\n")
        else:
            (folder / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    else:
        raw = [x.encode() for x in names]
        meta = ({b"fine_label_names": raw, b"coarse_label_names": [x.encode() for x in coarse_names]}
                if hundred else {b"label_names": raw, b"num_cases_per_batch": per_batch, b"num_vis": 3072})
        (folder / ("meta" if hundred else "batches.meta")).write_bytes(_dump(meta, layout))
    return {
        s: tuple(np.concatenate(p) for p in zip(*v, strict=True)) for s, v in written.items()
    } | {"names": names, "folder": folder}


def _dump(obj, layout: str) -> bytes:
    return py2_pickle(obj) if layout == "py2" else pickle.dumps(obj, protocol=2)


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
    from supcon.data import mnist

    monkeypatch.delenv("SUPCON_DATA", raising=False)
    monkeypatch.setattr(mnist, "DEBIAN_DIRS", {})


@pytest.fixture
def fmt():
    """The writers above (test modules cannot import conftest under importlib mode)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        write_idx=write_idx,
        write_mnist_like=write_mnist_like,
        write_cifar=write_cifar,
        cifar_layouts=CIFAR_LAYOUTS,
        py2_pickle=py2_pickle,
        write_svhn=write_svhn,
        write_stl10=write_stl10,
        write_folder=write_folder,
        colours=CLASS_COLOURS,
    )
