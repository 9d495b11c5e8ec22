"""Registered data sets read from their real on-disk formats, plus scikit-learn's digits.

Each ``load_*`` takes the folders to search (in order) and a folder to download into (None: no
download) and returns `SourceData` with uint8 images in memory. SVHN and STL-10 are read by
torchvision's own dataset classes with the md5 check reduced to "the file exists" (so a user's
copy or a test's tiny file is accepted; a damaged file fails to parse and is reported).
MNIST-style idx files are parsed here because torchvision does not read the ``.gz`` files that
Debian's ``dataset-fashion-mnist`` installs. CIFAR is read in `cifar.py` (torchvision's reader
unpickles its files).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets as tvd

from .base import DataError, SourceData, TensorImageDataset
from .images import describe

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


def _not_found(name: str, searched: Sequence[Path]) -> DataError:
    where = ", ".join(str(p) for p in searched) or "no folder (no --data-dir, no $SUPCON_DATA)"
    return DataError(
        f"data set {name} not found in {where}; give --data-dir or $SUPCON_DATA, or allow download"
    )


def _download(name: str, target: Path, fetch: Callable[[], object]) -> None:
    """Run a torchvision download; any failure (offline, proxy, disk) becomes one `DataError`."""
    try:
        fetch()
    except Exception as exc:  # urllib, ssl, OSError and torchvision's RuntimeError alike
        apt = " (or apt-get install dataset-fashion-mnist)" if name == "fashion-mnist" else ""
        raise DataError(
            f"data set {name} is not on disk and downloading it into {target} failed "
            f"({describe(exc)}); put its files in --data-dir or $SUPCON_DATA{apt}, see docs/data.md"
        ) from exc


# ----------------------------------------------------------------------------- idx (MNIST family)
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


# ------------------------------------------------------------------- torchvision-read data sets
class _SVHN(tvd.SVHN):
    split_list = {k: [url, f, None] for k, (url, f, _) in tvd.SVHN.split_list.items()}


class _STL10(tvd.STL10):
    def _check_integrity(self) -> bool:  # the unlabeled part is not needed here
        files = [f for f, _ in self.train_list[:2] + self.test_list]
        return all((Path(self.root) / self.base_folder / f).is_file() for f in files)


def _find_dir(
    roots: Sequence[Path],
    marker: Callable[[Path], bool],
    subdirs: Sequence[str] = (),
    base: str = "",
) -> Path | None:
    """First folder (a root, one of its ``subdirs``, or its parent when the root is ``base``
    itself) for which ``marker`` holds."""
    for root in roots:
        cands = [root / s for s in subdirs] + [root] + ([root.parent] if root.name == base else [])
        for cand in cands:
            if marker(cand):
                return cand
    return None


def _read(name: str, folder: Path, make: Callable[[bool], tvd.VisionDataset]) -> tuple:
    try:
        return make(True), make(False)
    except Exception as exc:  # scipy and numpy errors alike mean "damaged file"
        raise DataError(f"could not read {name} files in {folder}: {describe(exc)}; "
                        "replace the damaged files") from exc


def _to_source(train, test, names, size: int, hwc: bool) -> SourceData:
    def tensor(ds) -> TensorImageDataset:
        x = torch.from_numpy(np.ascontiguousarray(ds.data))
        x = x.permute(0, 3, 1, 2) if hwc else x
        labels = getattr(ds, "targets", None)
        labels = ds.labels if labels is None else labels
        return TensorImageDataset(
            x.contiguous(), torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        )

    return SourceData(tensor(train), tensor(test), tuple(str(n) for n in names), 3, size)


def load_svhn(roots: Sequence[Path], download_to: Path | None) -> SourceData:
    """SVHN (32x32 RGB, digits 0-9; the ``extra`` split is not used) from ``*_32x32.mat``.

    Raises:
        DataError: the files are found nowhere (and no download), or cannot be parsed.
    """
    marker = lambda d: (d / "train_32x32.mat").is_file() and (d / "test_32x32.mat").is_file()  # noqa: E731
    root = _find_dir(roots, marker, ("svhn", "SVHN"))
    if root is None and download_to is not None:
        root = download_to / "svhn"
        _download("svhn", root, lambda: [tvd.SVHN(str(root), split=s, download=True)
                                         for s in ("train", "test")])
    if root is None:
        raise _not_found("svhn", [r / "svhn" for r in roots])
    train, test = _read("svhn", root, lambda t: _SVHN(str(root), split="train" if t else "test"))
    return _to_source(train, test, [str(d) for d in range(10)], 32, hwc=False)


def load_stl10(roots: Sequence[Path], download_to: Path | None) -> SourceData:
    """STL-10 labelled part (96x96 RGB, 10 classes) from ``stl10_binary``.

    Raises:
        DataError: the files are found nowhere (and no download), or cannot be parsed.
    """
    marker = lambda d: (d / "stl10_binary" / "train_X.bin").is_file()  # noqa: E731
    root = _find_dir(roots, marker, base="stl10_binary")
    if root is None and download_to is not None:
        _download("stl10", download_to, lambda: tvd.STL10(str(download_to), split="train", download=True))
        root = download_to
    if root is None:
        raise _not_found("stl10", [r / "stl10_binary" for r in roots])
    train, test = _read("stl10", root, lambda t: _STL10(str(root), split="train" if t else "test"))
    names = getattr(train, "classes", None) or _STL10_CLASSES
    return _to_source(train, test, names, 96, hwc=False)


_STL10_CLASSES = (
    "airplane",
    "bird",
    "car",
    "cat",
    "deer",
    "dog",
    "horse",
    "monkey",
    "ship",
    "truck",
)


def load_digits(roots: Sequence[Path], download_to: Path | None) -> SourceData:
    """scikit-learn's bundled 8x8 digits (1797 images, values 0..16), always available.

    Each value v becomes ``round(v * 255 / 16)`` and each pixel a 4x4 block (nearest-neighbour
    upscaling to 32x32), so the images are exact and need no interpolation choice. There is no
    official test split: one is carved from these images.
    """
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = torch.from_numpy(np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8))
    x = x.repeat_interleave(4, dim=1).repeat_interleave(4, dim=2)[:, None].contiguous()
    train = TensorImageDataset(x, torch.from_numpy(bunch.target.astype(np.int64)))
    return SourceData(train, None, tuple(str(d) for d in range(10)), 1, 32)


def env_root() -> Path | None:
    """``$SUPCON_DATA`` as a path, if set and non-empty."""
    value = os.environ.get("SUPCON_DATA", "").strip()
    return Path(value).expanduser() if value else None
