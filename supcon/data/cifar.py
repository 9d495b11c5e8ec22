"""CIFAR-10 and CIFAR-100 from their official files, read with numpy (nothing is unpickled freely).

Two layouts are recognised in a root (the binary one wins when a root holds both):

- the binary version, ``cifar-10-batches-bin/`` (``data_batch_1..5.bin``, ``test_batch.bin``,
  ``batches.meta.txt``) and ``cifar-100-binary/`` (``train.bin``, ``test.bin``,
  ``fine_label_names.txt``, ``coarse_label_names.txt``). A record is 1 label byte (CIFAR-100:
  a coarse then a fine label byte) and 3072 pixel bytes, channel-planar: 1024 R, 1024 G, 1024 B,
  each 32 rows of 32;
- the python version, ``cifar-10-batches-py/`` (``data_batch_1..5``, ``test_batch``,
  ``batches.meta``) and ``cifar-100-python/`` (``train``, ``test``, ``meta``): pickled dicts with
  ``data`` (uint8 ``[n, 3072]``, the same pixel order) and ``labels`` / ``fine_labels``, read by
  the restricted unpickler of `safe_pickle` (numpy arrays and lists only).

A download (torchvision's md5-checked archive, only with ``download_to``) gives the python one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets as tvd

from .base import DataError, SourceData, TensorImageDataset
from .safe_pickle import load_cifar_pickle, text_list
from .sources import _download, _not_found

PIXELS = 3 * 32 * 32  # bytes of one image


@dataclass(frozen=True)
class _Layout:
    """Where one CIFAR set keeps its files, in both versions."""

    name: str
    num_classes: int
    bin_dir: str
    bin_train: tuple[str, ...]
    bin_test: str
    bin_names: str
    label_bytes: int  # CIFAR-100 records start with coarse then fine label
    py_dir: str
    py_train: tuple[str, ...]
    py_test: str
    py_meta: str
    py_labels: str
    py_names: str
    archive: type  # torchvision class: downloads the python version (md5-checked)


CIFAR10 = _Layout("cifar10", 10, "cifar-10-batches-bin", tuple(f"data_batch_{k}.bin" for k in range(1, 6)),
                  "test_batch.bin", "batches.meta.txt", 1, "cifar-10-batches-py",
                  tuple(f"data_batch_{k}" for k in range(1, 6)), "test_batch", "batches.meta",
                  "labels", "label_names", tvd.CIFAR10)
CIFAR100 = _Layout("cifar100", 100, "cifar-100-binary", ("train.bin",), "test.bin",
                   "fine_label_names.txt", 2, "cifar-100-python", ("train",), "test", "meta",
                   "fine_labels", "fine_label_names", tvd.CIFAR100)


def read_cifar_bin(path: Path, label_bytes: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch: images uint8 ``[n, 3, 32, 32]`` and labels int64 ``[n]`` (the last
    label byte of each record: CIFAR-10's label, CIFAR-100's fine label).

    Raises:
        DataError: the file is missing or unreadable, empty, not a whole number of records, or
            holds a label outside ``0..num_classes-1`` (CIFAR-100: a coarse label outside 0..19).
    """
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read CIFAR file {path}: {exc.strerror or exc}; put the original file "
                        "there") from None
    record = label_bytes + PIXELS
    if raw.size == 0 or raw.size % record:
        raise DataError(f"CIFAR file {path} holds {raw.size} bytes, not a whole number of "
                        f"{record}-byte records (truncated?); replace it with the original file")
    rows = raw.reshape(-1, record)
    labels = rows[:, label_bytes - 1].astype(np.int64)
    _check_labels(path, labels, num_classes)
    if label_bytes == 2:
        _check_labels(path, rows[:, 0], 20, "coarse ")
    return rows[:, label_bytes:].reshape(-1, 3, 32, 32), labels


def _check_labels(path: Path, labels: np.ndarray, num_classes: int, kind: str = "") -> None:
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        k = int(np.argmax(bad))
        raise DataError(f"CIFAR file {path}: record {k} has {kind}label {int(labels[k])}, outside "
                        f"0..{num_classes - 1}; replace it with the original file")


def read_cifar_pickle(path: Path, labels_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One python-version batch (restricted unpickling): images uint8 ``[n, 3, 32, 32]`` and
    labels int64 ``[n]`` from its ``data`` and ``labels_key`` entries.

    Raises:
        DataError: the file is refused or unreadable (`safe_pickle.load_cifar_pickle`), lacks an
            entry, holds ``data`` that is not uint8 ``[n, 3072]``, a label count other than n, or
            a label outside ``0..num_classes-1``.
    """
    batch = load_cifar_pickle(path)
    missing = [k for k in ("data", labels_key) if k not in batch]
    if missing:
        raise DataError(f"CIFAR file {path} has no {missing[0]!r} entry (keys: {sorted(map(str, batch))}); "
                        "replace it with the original file")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        seen = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"CIFAR file {path}: data is {seen}, expected uint8 [n, {PIXELS}]; "
                        "replace it with the original file")
    try:
        labels = np.asarray(batch[labels_key], dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"CIFAR file {path}: {labels_key} is not a list of integers; replace it with "
                        "the original file") from None
    if labels.size != data.shape[0]:
        raise DataError(f"CIFAR file {path}: {labels.size} labels for {data.shape[0]} images; "
                        "replace it with the original file")
    _check_labels(path, labels, num_classes)
    return data.reshape(-1, 3, 32, 32), labels


def _names(path: Path, names: list[str], num_classes: int) -> tuple[str, ...]:
    if len(names) != num_classes:
        raise DataError(f"CIFAR label names file {path} lists {len(names)} names, expected "
                        f"{num_classes}; replace it with the original file")
    return tuple(names)


def _read_names_txt(path: Path, num_classes: int) -> tuple[str, ...]:
    try:
        lines = path.read_text(encoding="latin-1").splitlines()
    except OSError as exc:
        raise DataError(f"cannot read CIFAR label names {path}: {exc.strerror or exc}; put the "
                        "original file there") from None
    return _names(path, [s.strip() for s in lines if s.strip()], num_classes)


def _dataset(parts: list[tuple[np.ndarray, np.ndarray]]) -> TensorImageDataset:
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return TensorImageDataset(torch.from_numpy(images), torch.from_numpy(labels))


def _read_binary(layout: _Layout, folder: Path) -> SourceData:
    def read(name: str) -> tuple[np.ndarray, np.ndarray]:
        return read_cifar_bin(folder / name, layout.label_bytes, layout.num_classes)

    train = _dataset([read(n) for n in layout.bin_train])
    test = _dataset([read(layout.bin_test)])
    names = _read_names_txt(folder / layout.bin_names, layout.num_classes)
    return SourceData(train, test, names, 3, 32)


def _read_python(layout: _Layout, folder: Path) -> SourceData:
    def read(name: str) -> tuple[np.ndarray, np.ndarray]:
        return read_cifar_pickle(folder / name, layout.py_labels, layout.num_classes)

    train = _dataset([read(n) for n in layout.py_train])
    test = _dataset([read(layout.py_test)])
    meta_path = folder / layout.py_meta
    meta = load_cifar_pickle(meta_path)
    if layout.py_names not in meta:
        raise DataError(f"CIFAR file {meta_path} has no {layout.py_names!r} entry; replace it with "
                        "the original file")
    names = _names(meta_path, text_list(meta[layout.py_names]), layout.num_classes)
    return SourceData(train, test, names, 3, 32)


def _find(layout: _Layout, roots: Sequence[Path]) -> tuple[Path, bool] | None:
    """``(folder, is_binary)`` of the first root holding either version (binary first); a root
    may also be the set's folder itself."""
    for root in roots:
        for sub, binary in ((layout.bin_dir, True), (layout.py_dir, False)):
            for folder in (root / sub, root if root.name == sub else None):
                if folder is not None and folder.is_dir():
                    return folder, binary
    return None


def _load(layout: _Layout, roots: Sequence[Path], download_to: Path | None) -> SourceData:
    found = _find(layout, roots)
    if found is None and download_to is not None:
        _download(layout.name, download_to, lambda: _fetch_archive(layout.archive, download_to))
        found = download_to / layout.py_dir, False
    if found is None:
        raise _not_found(layout.name, [r / d for r in roots for d in (layout.bin_dir, layout.py_dir)])
    folder, binary = found
    return _read_binary(layout, folder) if binary else _read_python(layout, folder)


def _fetch_archive(cls: type, target: Path) -> None:
    """torchvision's md5-checked download and unpacking of the python version, without building
    the torchvision dataset (its constructor unpickles the batches)."""
    fetcher = cls.__new__(cls)
    fetcher.root = str(target)
    fetcher.download()


def load_cifar10(roots: Sequence[Path], download_to: Path | None) -> SourceData:
    """CIFAR-10 (32x32 RGB, 10 classes) from ``cifar-10-batches-bin`` (preferred) or
    ``cifar-10-batches-py`` in a root (module docstring).

    Raises:
        DataError: found nowhere (and no download), or a file is missing, damaged or refused.
    """
    return _load(CIFAR10, roots, download_to)


def load_cifar100(roots: Sequence[Path], download_to: Path | None) -> SourceData:
    """CIFAR-100 (32x32 RGB, 100 fine classes) from ``cifar-100-binary`` (preferred) or
    ``cifar-100-python`` in a root (module docstring).

    Raises:
        DataError: found nowhere (and no download), or a file is missing, damaged or refused.
    """
    return _load(CIFAR100, roots, download_to)
