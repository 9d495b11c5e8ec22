"""SVHN and STL-10, read by torchvision's own dataset classes with the md5 check reduced to "the
file exists" (so a user's copy or a test's tiny file is accepted; a damaged file fails to parse
and is reported). Each ``load_*`` takes the folders to search and a folder to download into.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets as tvd

from .base import DataError, SourceData, TensorImageDataset
from .images import describe
from .sources import _download, _not_found


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
