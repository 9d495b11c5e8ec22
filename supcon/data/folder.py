"""Image folders in ImageFolder layout: ``root/<class>/<image>``, optionally ``root/train`` +
``root/test`` (or, when there is no ``test/``, ``root/val`` as in ImageNet's layout: the test split).

Labels are the indices of the sorted class-folder names of the training folder; a test folder is
mapped by name, so a test folder missing a class never shifts labels. Hidden files are ignored;
other non-image files and unreadable images are skipped with one logged warning each that counts
them (``strict=True``, ``data.strict=true`` in a config, raises on the first unreadable image
instead). An empty class folder, a single
class, no images at all, or a test class unknown to the training folder is a `DataError`.

Folders that fit in ``MEMORY_LIMIT`` bytes at ``image_size`` are decoded once, resized (shorter
side to ``image_size``, centre crop) and held as one uint8 tensor; larger ones are decoded per
item at their own size (`FileImageDataset`), with only the header (and PNG checksums) verified
up front: a truncated JPEG there surfaces as a `DataError` naming the file when it is read.

A ``labels_csv`` gives the training images label sets (multi-hot ``targets``) on top of their
class folder: see :mod:`supcon.data.label_sets`.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .base import DataError, ImageDataset, SourceData, TensorImageDataset
from .images import IMAGE_EXTENSIONS, describe, fit_square, is_gray_mode, read_header, read_image
from .label_sets import multi_hot, read_label_sets, resolve_csv

log = logging.getLogger(__name__)

MEMORY_LIMIT = 2**30  # bytes of uint8 pixels a folder may take in memory
MAX_AUTO_SIZE = 224  # cap on the automatic image size


class FileImageDataset(ImageDataset):
    """Images decoded from files on every access, at their own size, as uint8 ``[C, H, W]``.

    ``get_batch`` returns a list of images (sizes may differ); an unreadable file raises
    `DataError` naming it.
    """

    def __init__(self, files: Sequence[str], labels: Tensor, channels: int,
                 targets: Tensor | None = None) -> None:
        self.files = list(files)
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        self.channels = channels
        self.targets = targets

    def get_batch(self, indices: Sequence[int]) -> tuple[list[Tensor], Tensor]:
        images = [read_image(self.files[int(i)], self.channels) for i in indices]
        return images, self.labels[torch.as_tensor(indices, dtype=torch.int64)]

    def subset(self, indices: Tensor) -> FileImageDataset:
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return FileImageDataset(
            [self.files[i] for i in idx.tolist()], self.labels[idx], self.channels,
            None if self.targets is None else self.targets[idx],
        )


@dataclass
class _Scan:
    """Files of one split: ``(path, label)`` pairs plus the trouble met on the way."""

    items: list[tuple[Path, int]] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    modes: list[str] = field(default_factory=list)


class _Trouble:
    """Collects skipped files so each kind is reported once, with a count."""

    def __init__(self, root: Path, strict: bool) -> None:
        self.root, self.strict = root, strict
        self.unreadable: list[str] = []
        self.non_images: list[Path] = []

    def bad_image(self, path: Path, exc: BaseException) -> None:
        if self.strict:
            raise DataError(f"unreadable image file {path}: {describe(exc)}; fix or delete it "
                            "(data.strict=false skips such files)") from exc
        self.unreadable.append(f"{path}: {describe(exc)}")

    def report(self) -> None:
        # logged, not warnings.warn: one line in the CLI's terms (also in train.log), no source line
        if self.non_images:
            log.warning("ignored %d non-image file(s) under %s (first: %s)", len(self.non_images), self.root,
                        self.non_images[0])
        if self.unreadable:
            log.warning("skipped %d unreadable image file(s) under %s (first: %s); data.strict=true stops at "
                        "the first one instead", len(self.unreadable), self.root, self.unreadable[0])


def _visible(path: Path, base: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(base).parts)


def _class_dirs(split_root: Path, trouble: _Trouble) -> list[Path]:
    entries = sorted(p for p in split_root.iterdir() if _visible(p, split_root))
    stray = [p for p in entries if p.is_file()]
    dirs = [p for p in entries if p.is_dir()]
    if not dirs:
        found = sum(p.suffix.lower() in IMAGE_EXTENSIONS for p in stray)
        raise DataError(
            f"no class folders under {split_root} ({found} image file(s) directly in it); "
            f"expected {split_root}/<class>/<image>.png|jpg|..."
        )
    trouble.non_images.extend(stray)
    return dirs


def _scan_split(split_root: Path, names: list[str], trouble: _Trouble, verify: bool) -> _Scan:
    """Headers of every image under ``split_root/<name>``; label = position in ``names``."""
    scan, empty = _Scan(), []
    for label, name in enumerate(names):
        class_dir = split_root / name
        if not class_dir.is_dir():
            continue
        files = sorted(p for p in class_dir.rglob("*") if p.is_file() and _visible(p, class_dir))
        images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
        trouble.non_images.extend(p for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS)
        found = 0
        for path in images:
            try:
                w, h, mode = read_header(path, verify=verify)
            except Exception as exc:  # any decoder failure means "unreadable"
                trouble.bad_image(path, exc)
                continue
            scan.items.append((path, label))
            scan.sizes.append((h, w))
            scan.modes.append(mode)
            found += 1
        if found == 0:
            what = "no readable images" if images else f"no images ({len(files)} other file(s))"
            empty.append(f"class folder {class_dir} has {what}")
    if empty and not scan.items:
        raise DataError(f"no images found under {split_root} (first: {empty[0]})")
    if empty:
        raise DataError(empty[0] + (f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""))
    return scan


def _decode_all(scan: _Scan, channels: int, size: int, trouble: _Trouble,
                targets: dict[Path, Tensor] | None = None) -> TensorImageDataset:
    """Decode and fit every image of ``scan`` into one ``[N, C, size, size]`` uint8 tensor
    (with the label sets of the images ``targets`` gives them for)."""
    images, labels, rows = [], [], []
    for path, label in scan.items:
        try:
            images.append(fit_square(read_image(path, channels), size))
        except DataError as exc:
            trouble.bad_image(path, exc.__cause__ or exc)
            continue
        labels.append(label)
        if targets is not None:
            rows.append(targets[path])
    if not images:
        raise DataError(f"no readable images under {trouble.root}")
    return TensorImageDataset(torch.stack(images), torch.tensor(labels, dtype=torch.int64),
                              torch.stack(rows) if targets is not None else None)


def _auto_size(sizes: list[tuple[int, int]]) -> int:
    """Median shorter side, capped at `MAX_AUTO_SIZE`."""
    return int(min(MAX_AUTO_SIZE, statistics.median_low(min(h, w) for h, w in sizes)))


def _split_roots(root: Path) -> tuple[Path, Path | None]:
    if not root.exists():
        raise DataError(f"data folder {root} does not exist; give an existing folder or a "
                        "registered data set name")
    if not root.is_dir():
        raise DataError(f"data path {root} is not a folder")
    if (root / "train").is_dir():  # test/, else ImageNet's val/, is the test split
        held = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
        return root / "train", held
    return root, None


def load_folder(
    path: str | Path, *, strict: bool = False, image_size: int | None = None,
    labels_csv: str | Path | None = None,
) -> SourceData:
    """Read an ImageFolder-layout folder (see the module docstring for every rule).

    With ``labels_csv`` (a CSV of ``file,labels`` rows, relative to the folder unless absolute;
    format in :mod:`supcon.data.label_sets`) the training images also get label sets:
    ``train.targets`` ``[n, C]`` multi-hot, ``target_names`` its columns.

    Raises:
        DataError: missing folder, no class folders, a single class, an empty class folder, a
            test class unknown to ``train/``, no readable images, (``strict``) an unreadable
            image file, or a missing or malformed ``labels_csv``.
    """
    root = Path(path).expanduser()
    train_root, test_root = _split_roots(root)
    trouble = _Trouble(root, strict)
    csv_path = resolve_csv(labels_csv, root) if labels_csv is not None else None
    names = [p.name for p in _class_dirs(train_root, trouble)]
    if len(names) < 2:
        raise DataError(f"only one class folder ({names[0]}) under {train_root}; need at least 2")
    test_names = [p.name for p in _class_dirs(test_root, trouble)] if test_root else []
    unknown = sorted(set(test_names) - set(names))
    if unknown:
        raise DataError(f"test class folder(s) {unknown} under {test_root} are not in {train_root}; "
                        "add them there or remove them from the test folder")
    train_scan = _scan_split(train_root, names, trouble, verify=True)
    test_scan = _scan_split(test_root, names, trouble, verify=True) if test_root else None
    targets, target_names = None, ()
    if csv_path is not None:
        trouble.non_images = [p for p in trouble.non_images if p != csv_path]
        targets, target_names = multi_hot([p for p, _ in train_scan.items],
                                          [p for p, _ in test_scan.items] if test_scan else [],
                                          root, read_label_sets(csv_path), csv_path)
    all_modes = train_scan.modes + (test_scan.modes if test_scan else [])
    channels = 1 if all(is_gray_mode(m) for m in all_modes) else 3
    size = image_size or _auto_size(train_scan.sizes)
    n_files = len(train_scan.items) + (len(test_scan.items) if test_scan else 0)
    if n_files * channels * size * size <= MEMORY_LIMIT:
        train = _decode_all(train_scan, channels, size, trouble, targets)
        test = _decode_all(test_scan, channels, size, trouble) if test_scan else None
        _check_classes(train, names, train_root)
    else:
        train = _lazy(train_scan, channels, targets)
        test = _lazy(test_scan, channels) if test_scan else None
    trouble.report()
    return SourceData(train, test, tuple(names), channels, size, target_names)


def _lazy(scan: _Scan, channels: int, targets: dict[Path, Tensor] | None = None) -> FileImageDataset:
    files = [str(p) for p, _ in scan.items]
    rows = torch.stack([targets[p] for p, _ in scan.items]) if targets is not None else None
    return FileImageDataset(files, torch.tensor([lab for _, lab in scan.items]), channels, rows)


def _check_classes(train: ImageDataset, names: list[str], train_root: Path) -> None:
    """After dropping truncated files, every class must still have an image."""
    present = set(train.labels.unique().tolist())
    for label, name in enumerate(names):
        if label not in present:
            raise DataError(f"class folder {train_root / name} has no readable images")
