"""Text data for text encoders: a folder of ``train.csv`` and ``test.csv`` (optional ``val.csv``),
the same as ``.jsonl``, one such file, or your own ``(text, label)`` items; and the batches a
text encoder reads.

Files. A CSV's first row names its columns, two of which must be ``text`` and ``label`` (others
are ignored); a JSONL file holds one JSON object per line with those keys. Blank lines are
skipped; an empty text or label is an error that names the file and line. Labels are class names
(the classes are the training file's names, sorted) or integers (sorted by value, so labels
0..K-1 keep their numbers). A test or validation label the training file lacks is an error.

Label sets. An optional ``labels`` column gives each training text a set of labels for the SupCon
loss (method supcon; other methods train on ``label``): in a CSV the names separated by ``;``
(``food;warm``), in JSONL a list of names (``["food", "warm"]``) or the same string. When the
training file has the column (JSONL: any of its objects has the key), every training row needs
at least one label there; the columns of the multi-hot ``train.targets`` ``[n, C]`` are the
sorted names of the training file's label sets, and splits carved from it keep their rows.
``label`` stays the class of the class-balanced sampler and of the linear evaluation. Label sets
in test and validation files are allowed and ignored. Your own ``(text, label)`` items take no
label sets.

Splits. A folder's ``test`` file is the test split; without one, and for a single file, the test
split is carved as for an image folder without ``test/`` (stratified, fixed seed), and the
validation split is the ``val`` file or carved from the training split (seeded by the run's seed):
:func:`supcon.data.load_dataset` does both, for images and texts alike.

Batches. A text item is a string. The loader gives ``(TextBatch, labels)``: the B texts of the
batch and the number of views of each. A text encoder's views are dropout views (SimCSE): in
train mode it encodes each text V times with fresh dropout masks. Nothing random happens here,
so a resumed run reads exactly the batches an uninterrupted one reads.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..checks import check_int
from .base import (
    DataError,
    DatasetInfo,
    ImageDataset,
    SourceData,
    Splits,
    carve_splits,
    object_length,
)
from .images import IMAGE_EXTENSIONS
from .label_sets import label_set, multi_hot_matrix

SUFFIXES = (".csv", ".jsonl")
SPLIT_FILES = ("train", "test", "val")
TEXT = "text"  # the modality of a text data set (DatasetInfo.modality)
LABEL_SETS = "labels"  # the optional column of label sets
_ABSENT = object()  # a row without the labels column (JSONL: key)


class TextDataset(ImageDataset):
    """Texts and their labels: the `ImageDataset` contract with strings for images
    (``get_batch`` gives a list of strings; ``.labels`` int64 ``[n]``; optional ``.targets``).

    Raises:
        DataError: the number of labels (or label sets) differs from the number of texts.
    """

    def __init__(self, texts: Sequence[str], labels: Tensor, targets: Tensor | None = None) -> None:
        self.texts = list(texts)
        self.labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        self.targets = targets
        if len(self.texts) != self.labels.numel():
            raise DataError(f"labels: {self.labels.numel()} labels for {len(self.texts)} texts")
        if targets is not None and targets.shape[0] != len(self.texts):
            raise DataError(f"targets: {targets.shape[0]} label sets for {len(self.texts)} texts")

    def get_batch(self, indices: Sequence[int]) -> tuple[list[str], Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return [self.texts[i] for i in idx.tolist()], self.labels[idx]

    def subset(self, indices: Tensor) -> TextDataset:
        idx = torch.as_tensor(indices, dtype=torch.int64)
        targets = None if self.targets is None else self.targets[idx]
        return TextDataset([self.texts[i] for i in idx.tolist()], self.labels[idx], targets)


@dataclass(frozen=True)
class TextBatch(Sequence):
    """The B texts of a batch, each to be encoded ``views`` times: a text encoder's ``[B, V, ...]``.

    It is a sequence of its B texts (what an encoder reads for one view); :meth:`flat` repeats
    them for the views, sample-major as a flattened ``[B, V, C, H, W]`` image batch.
    """

    texts: tuple[str, ...]
    views: int = 1

    @property
    def shape(self) -> tuple[int, int]:
        """``(B, V)``."""
        return len(self.texts), self.views

    def flat(self) -> list[str]:
        """The ``B * V`` texts the encoder reads: each text ``views`` times in a row."""
        return [text for text in self.texts for _ in range(self.views)]

    def to(self, device: Any = None, non_blocking: bool = False) -> TextBatch:
        """Itself: a text encoder tokenises and moves its tokens to its own device."""
        return self

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index):
        return self.texts[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self.texts)


class TextViews(Dataset):
    """A text split as the loader reads it: ``(text, label)`` items collated into
    ``(TextBatch, labels)`` batches with ``n_views`` views per text.

    Args:
        base: the split.
        n_views: views per text (the encoder's dropout makes them differ).
        targets: yield each item's label set (a row of ``base.targets``) instead of its class.

    Raises:
        ValueError: ``n_views`` not an int >= 1; ``targets`` while ``base`` has no label sets.
    """

    def __init__(self, base: TextDataset, n_views: int = 1, targets: bool = False) -> None:
        check_int("n_views", n_views)
        if targets and getattr(base, "targets", None) is None:
            raise ValueError("targets=True: the texts have no label sets (.targets)")
        self.base, self.n_views, self.targets = base, n_views, targets

    @property
    def labels(self) -> Tensor:
        """The classes, ``[n]`` (what class-balanced batches are drawn by)."""
        return self.base.labels

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        """Nothing changes with the epoch (the views come from the encoder's dropout)."""

    def __getitem__(self, index: int) -> tuple[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[str, Any]]:
        """The items at ``indices``, fetched in one call."""
        texts, labels = self.base.get_batch([int(i) for i in indices])
        rows = self.base.targets[torch.as_tensor(indices)].unbind(0) if self.targets else labels.tolist()
        return list(zip(texts, rows, strict=True))

    def collate(self, items: list[tuple[str, Any]]) -> tuple[TextBatch, Tensor]:
        """``(TextBatch of the texts, labels [B] or label sets [B, C])``: the loader's batch."""
        texts, labels = zip(*items, strict=True)
        stacked = torch.stack(labels) if self.targets else torch.tensor(labels, dtype=torch.int64)
        return TextBatch(tuple(texts), self.n_views), stacked


def is_text_source(path: str | Path) -> bool:
    """Whether ``path`` is text data: a ``.csv`` / ``.jsonl`` file, or a folder holding
    ``train.csv`` or ``train.jsonl``."""
    path = Path(path).expanduser()
    if path.is_file():
        return path.suffix.lower() in SUFFIXES
    return path.is_dir() and any((path / f"train{s}").is_file() for s in SUFFIXES)


def load_text(path: str | Path) -> SourceData:
    """Read a text folder or file (see the module docstring for every rule).

    Raises:
        DataError: no ``text``/``label`` columns, an empty text or label, a malformed JSON line,
            a single class, a test or validation label the training file lacks, two files of
            one split (``train.csv`` and ``train.jsonl``), or with a ``labels`` column a training
            row without a label there or a JSONL value that is no list of names or string.
    """
    root = Path(path).expanduser()
    files = {"train": root} if root.is_file() else {name: _split_file(root, name) for name in SPLIT_FILES}
    read = {name: _read(file) for name, file in files.items() if file is not None}
    rows = {name: split_rows for name, (split_rows, _) in read.items()}
    names, index = class_index([label for _, label in rows["train"]], files["train"])
    label_sets = _label_sets(files["train"], read["train"][1])  # those of test and val: ignored
    targets, target_names = multi_hot_matrix(label_sets) if label_sets is not None else (None, ())
    sets = {name: _dataset(split_rows, index, files[name], targets if name == "train" else None)
            for name, split_rows in rows.items()}
    return SourceData(sets["train"], sets.get("test"), names, channels=0, image_size=0,
                      target_names=target_names, val=sets.get("val"), modality=TEXT)


def _split_file(root: Path, name: str) -> Path | None:
    found = [root / f"{name}{s}" for s in SUFFIXES if (root / f"{name}{s}").is_file()]
    if len(found) > 1:
        raise DataError(f"{root} holds both {found[0].name} and {found[1].name}; keep one {name} file")
    return found[0] if found else None


def read_rows(path: Path) -> list[tuple[str, Any]]:
    """``(text, label)`` of every row of a ``.csv`` or ``.jsonl`` file, in file order.

    Raises:
        DataError: as :func:`load_text`, naming the file and line.
    """
    return _read(path)[0]


def _read(path: Path) -> tuple[list[tuple[str, Any]], list[tuple[int, Any]]]:
    """:func:`read_rows` and each row's line and raw ``labels`` value (``_ABSENT`` without one)."""
    reader = _jsonl_rows if path.suffix.lower() == ".jsonl" else _csv_rows
    rows, raw_sets = [], []
    for line, text, label, raw in reader(path):
        where = f"{path} line {line}"
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: empty text; fill it or remove the row")
        if label is None or isinstance(label, bool) or not isinstance(label, (str, int)) or str(label).strip() == "":
            raise DataError(f"{where}: the label is {label!r}; give a class name or an integer")
        rows.append((text, label.strip() if isinstance(label, str) else label))
        raw_sets.append((line, raw))
    if not rows:
        raise DataError(f"{path} holds no rows")
    return rows, raw_sets


def _label_sets(path: Path, raw_sets: list[tuple[int, Any]]) -> list[tuple[str, ...]] | None:
    """The label set of every row of a training file; None when it has no ``labels`` column
    (JSONL: no object has the key).

    Raises:
        DataError: a row without a label, or a JSONL value that is no list of names or string,
            naming the file and line.
    """
    if all(raw is _ABSENT for _, raw in raw_sets):
        return None
    sets = []
    for line, raw in raw_sets:
        labels = () if raw is _ABSENT else label_set(raw, f"{path} line {line}")
        if not labels:
            raise DataError(f"{path} line {line}: no label in '{LABEL_SETS}'; with that column every training "
                            "row needs at least one (names separated by ';')")
        sets.append(labels)
    return sets


def _csv_rows(path: Path) -> Iterator[tuple[int, Any, Any, Any]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        if TEXT not in columns or "label" not in columns:
            raise DataError(f"{path}: the first row names the columns {columns}; it needs 'text' and 'label' "
                            "(e.g. text,label)")
        reader.fieldnames = columns
        for row in reader:
            if any((v or "").strip() for v in row.values() if isinstance(v, str)):
                sets = (row.get(LABEL_SETS) or "") if LABEL_SETS in columns else _ABSENT
                yield reader.line_num, row.get(TEXT), row.get("label"), sets


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any, Any, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except ValueError as err:
                raise DataError(f"{path} line {line}: not JSON ({err})") from None
            if not isinstance(row, dict) or TEXT not in row or "label" not in row:
                raise DataError(f'{path} line {line}: expected an object with "text" and "label", got {raw.strip()[:60]!r}')
            yield line, row[TEXT], row["label"], row.get(LABEL_SETS, _ABSENT)


def class_index(labels: Sequence[Any], where: Any) -> tuple[tuple[str, ...], dict[str, int]]:
    """The class names (sorted: by value when every label is an integer) and name -> index.

    Raises:
        DataError: fewer than two classes (``where`` names the source).
    """
    keys = {str(label).strip() for label in labels}
    numeric = all(key.lstrip("-").isdigit() for key in keys)
    names = tuple(sorted(keys, key=int) if numeric else sorted(keys))
    if len(names) < 2:
        raise DataError(f"{where}: every text has the label {names[0]!r}; need at least 2 classes")
    return names, {name: i for i, name in enumerate(names)}


def _dataset(rows: list[tuple[str, Any]], index: dict[str, int], where: Any,
             targets: Tensor | None = None) -> TextDataset:
    labels = []
    for text_row, (_, label) in enumerate(rows):
        key = str(label).strip()
        if key not in index:
            raise DataError(f"{where}: row {text_row + 1} has the label {key!r}, which the training data "
                            f"lacks (classes: {', '.join(index)})")
        labels.append(index[key])
    return TextDataset([text for text, _ in rows], torch.tensor(labels, dtype=torch.int64), targets)


def text_info(name: str, class_names: Sequence[str]) -> DatasetInfo:
    """The `DatasetInfo` of a text data set (no channels, size or pixel statistics)."""
    return DatasetInfo(name=name, channels=0, image_size=0, num_classes=len(class_names),
                       class_names=tuple(class_names), mean=(), std=(), modality=TEXT)


def is_text_items(dataset: Any) -> bool:
    """Whether your dataset's first item is a ``(str, label)`` pair (text, not an image)."""
    try:
        item = dataset[0]
    except Exception:  # noqa: BLE001  (the image reader reports what is wrong with the dataset)
        return False
    return isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)


def text_splits_from_objects(train_set: Any, test_set: Any = None, val_set: Any = None, *, name: str,
                             val_fraction: float = 0.1, seed: int = 0, test_fraction: float = 0.2) -> Splits:
    """Splits of your ``(text, label)`` items, carved as :func:`~.registry.load_dataset` carves.

    Labels are ints (class indices 0..K-1, as for images) or class names (strings, sorted).

    Raises:
        DataError: an empty dataset, an item that is not ``(str, label)``, an empty text, a label
            of another kind, or a single class.
    """
    rows = {what: _object_rows(items, what) for what, items in
            (("train_set", train_set), ("test_set", test_set), ("val_set", val_set)) if items is not None}
    all_labels = [label for split in rows.values() for _, label in split]
    if all(isinstance(label, int) for label in all_labels):  # class indices, as for images
        names = tuple(str(i) for i in range(1 + max(all_labels)))
        if len({label for _, label in rows["train_set"]}) < 2:
            raise DataError("train_set: every text has the same label; need at least 2 classes")
        index = {n: i for i, n in enumerate(names)}
    else:
        names, index = class_index([label for _, label in rows["train_set"]], "train_set")
    sets = {what: _dataset(split, index, what) for what, split in rows.items()}
    train, test, val = sets["train_set"], sets.get("test_set"), sets.get("val_set")
    train, val, test = carve_splits(train, test, val, test_fraction=test_fraction, val_fraction=val_fraction,
                                    seed=seed)
    return Splits(train=train, val=val, test=test, info=text_info(name, names))


def _object_rows(items: Any, what: str) -> list[tuple[str, Any]]:
    n = object_length(items, what, "(text, label)")
    rows = []
    for i in range(n):
        item = items[i]
        if not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[0], str):
            raise DataError(f"{what}[{i}] is {type(item).__name__} {str(item)[:40]!r}; text items are (str, label) pairs")
        text, label = item
        if not text.strip():
            raise DataError(f"{what}[{i}]: empty text; give every item some text")
        if Path(text).suffix.lower() in IMAGE_EXTENSIONS and not any(c.isspace() for c in text):
            raise DataError(f"{what}[{i}] is the str {text!r}, which looks like a file path; a str item is a text "
                            "(for a text encoder): for images give a PIL image, a tensor or an array (open the file)")
        if hasattr(label, "item") and getattr(label, "ndim", 1) == 0:
            label = label.item()  # a 0-d tensor or numpy scalar
        if isinstance(label, bool) or not isinstance(label, (int, str)) or (isinstance(label, int) and label < 0):
            raise DataError(f"{what}[{i}]: the label is {label!r}; give a class index 0..K-1 or a class name")
        rows.append((text, label))
    return rows
