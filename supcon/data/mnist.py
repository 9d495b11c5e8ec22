"""MNIST and Fashion-MNIST, read from their idx files (raw or gzipped).

The idx files are parsed here because torchvision does not read the ``.gz`` files that Debian's
``dataset-fashion-mnist`` installs. Each ``load_*`` takes the folders to search (in order) and a
folder to download into (None: no download) and returns `SourceData` with uint8 images in memory.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets as tvd

from .base import DataError, SourceData, TensorImageDataset
from .images import describe
from .sources import _download, _not_found

DEBIAN_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}
_IDX_STEMS = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Folder layouts (relative to a search root) in which each set is recognised.
_LAYOUTS = {
    "fashion-mnist": ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "FashionMNIST"),
    "mnist": ("mnist", "MNIST/raw", "MNIST"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file of unsigned bytes (raw or ``.gz``): labels ``[n]`` or images ``[n, h, w]``.

    Raises:
        DataError: unreadable file, a header that is not unsigned-byte idx, or a size that does
            not match the header.
    """
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise DataError(f"unreadable idx file {path}: {describe(exc)}; "
                        "replace it with the original file") from exc
    if len(data) < 8 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or data[3] not in (1, 3):
        raise DataError(f"{path} is not an idx file of unsigned bytes (bad header {data[:4]!r}); "
                        "replace it with the original file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim)]
    start = 4 + 4 * ndim
    if len(data) != start + int(np.prod(dims)):
        raise DataError(f"idx file {path} holds {len(data) - start} bytes, header says {dims} "
                        "(truncated?); replace it with the original file")
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(dims)


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _idx_dirs(name: str, roots: Sequence[Path]) -> list[Path]:
    """Candidate folders: each root's known sub-layouts, and the root itself when it is named
    after the set (flat idx files are otherwise ambiguous between MNIST and Fashion-MNIST)."""
    out = []
    for root in roots:
        out += [root / sub for sub in _LAYOUTS[name]]
        if root.name in {s.split("/")[0] for s in _LAYOUTS[name]} or (
            root.name == "raw" and root.parent.name in _LAYOUTS[name]
        ):
            out.append(root)
    return out + list(DEBIAN_DIRS.get(name, ()))


def _read_idx_split(folder: Path, train: bool) -> TensorImageDataset:
    img_path, lab_path = (_idx_file(folder, s) for s in _IDX_STEMS[train])
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"idx files in {folder}: images {images.shape} do not match labels {labels.shape}"
        )
    return TensorImageDataset(
        torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.astype(np.int64))
    )


def _load_idx_set(
    name: str, tv_class: type, roots: Sequence[Path], download_to: Path | None
) -> SourceData:
    candidates = _idx_dirs(name, roots)
    found = next(
        (d for d in candidates if all(_idx_file(d, s) for s in sum(_IDX_STEMS.values(), ()))), None
    )
    if found is None and download_to is not None:
        # torchvision downloads and unpacks into <root>/<Class>/raw
        _download(name, download_to, lambda: [tv_class(str(download_to), train=t, download=True)
                                              for t in (True, False)])
        found = download_to / tv_class.__name__ / "raw"
    if found is None:
        raise _not_found(name, candidates)
    train, test = _read_idx_split(found, True), _read_idx_split(found, False)
    return SourceData(train, test, tuple(tv_class.classes), 1, 28)


def load_fashion_mnist(roots: Sequence[Path], download_to: Path | None) -> SourceData:
    """Fashion-MNIST (28x28 grey, 10 classes) from idx files, raw or gzipped.

    Looked for under each root as ``fashion-mnist/``, ``fashion_mnist/``, ``FashionMNIST/raw/``
    or ``FashionMNIST/`` (or the root itself when it has one of those names), then in Debian's
    ``/usr/share/datasets/fashion-mnist``. Raises `DataError` when found nowhere.
    """
    return _load_idx_set("fashion-mnist", tvd.FashionMNIST, roots, download_to)


def load_mnist(roots: Sequence[Path], download_to: Path | None) -> SourceData:
    """MNIST (28x28 grey, 10 classes) from idx files, raw or gzipped, under each root as
    ``mnist/``, ``MNIST/raw/`` or ``MNIST/``. Raises `DataError` when found nowhere."""
    return _load_idx_set("mnist", tvd.MNIST, roots, download_to)
