"""Label sets for the images of a folder, from a CSV: the multi-label targets of the SupCon loss.
(Texts carry theirs in a ``labels`` column of their own files: :mod:`supcon.data.text`, which
reads them with :func:`label_set` and :func:`multi_hot_matrix`.)

The file has one row per image, ``file,labels``: the image's path relative to the data folder,
written as it is under that folder (``sneaker/001.png``, or ``train/sneaker/001.png`` with a
``train/`` split), then its labels separated by ``;`` (``footwear;sneaker``). A first row
``file,labels`` is a header; blank lines and lines starting with ``#`` are skipped. Every
training image needs a row with at least one label; rows of test images are allowed and unused.
The labels of the whole file, sorted, are the columns of the multi-hot matrix.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import torch
from torch import Tensor

from .base import DataError

log = logging.getLogger(__name__)

SEPARATOR = ";"


def resolve_csv(labels_csv: str | Path, root: Path) -> Path:
    """The CSV's path: as given when absolute, else relative to the data folder ``root``.

    Raises:
        DataError: there is no such file.
    """
    path = Path(labels_csv).expanduser()
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise DataError(f"data.labels_csv: {path} is not a file (a relative path is read from the "
                        f"data folder {root})")
    return path


def read_label_sets(path: Path) -> dict[str, tuple[str, ...]]:
    """``{relative file path: its labels}`` from the CSV at ``path`` (format: module docstring).

    Raises:
        DataError: a row that is not ``file,labels``, a file without labels, or a file twice.
    """
    table: dict[str, tuple[str, ...]] = {}
    with path.open(newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            if number == 1 and [c.strip().lower() for c in row] == ["file", "labels"]:
                continue
            where = f"data.labels_csv: {path} line {number}"
            if len(row) != 2:
                raise DataError(f"{where}: expected 2 columns file,labels (labels separated by "
                                f"'{SEPARATOR}'), got {len(row)}: {','.join(row)!r}")
            key = _key(row[0])
            labels = split_labels(row[1])
            if not labels:
                raise DataError(f"{where}: {row[0].strip()!r} has no label; every image needs one")
            if key in table:
                raise DataError(f"{where}: {row[0].strip()!r} is listed twice")
            table[key] = labels
    if not table:
        raise DataError(f"data.labels_csv: {path} lists no image")
    return table


def split_labels(text: str) -> tuple[str, ...]:
    """The labels of ``"a;b"``: stripped, in order, blanks and repeats dropped."""
    return tuple(dict.fromkeys(s.strip() for s in text.split(SEPARATOR) if s.strip()))


def label_set(value: object, where: str) -> tuple[str, ...]:
    """The labels of one ``labels`` value of a text file: a string of names separated by ``;``
    or a list of names; ``()`` for none (an empty string or list, or null).

    Raises:
        DataError: another kind of value (``where`` names the file and line).
    """
    if value is None:
        return ()
    if isinstance(value, str):
        return split_labels(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(dict.fromkeys(v.strip() for v in value if v.strip()))
    raise DataError(f"{where}: 'labels' is {value!r}; give a list of label names or one string of names "
                    f"separated by '{SEPARATOR}'")


def multi_hot_matrix(sets: list[tuple[str, ...]]) -> tuple[Tensor, tuple[str, ...]]:
    """float32 0/1 ``[n, C]``: row k marks the labels of ``sets[k]`` among the sorted names of all
    ``sets`` (the columns), returned with it."""
    names = tuple(sorted({label for labels in sets for label in labels}))
    column = {name: k for k, name in enumerate(names)}
    matrix = torch.zeros(len(sets), len(names))
    for k, labels in enumerate(sets):
        matrix[k, [column[label] for label in labels]] = 1.0
    return matrix, names


def _key(file: str) -> str:
    key = Path(file.strip()).as_posix()
    return key[2:] if key.startswith("./") else key


def multi_hot(
    train_files: list[Path], other_files: list[Path], root: Path, table: dict[str, tuple[str, ...]],
    path: Path,
) -> tuple[dict[Path, Tensor], tuple[str, ...]]:
    """Each training file's float32 0/1 row over the sorted labels of ``table``, and those labels.

    ``other_files`` (test images) may have rows; rows naming no image at all are reported once
    in a warning.

    Raises:
        DataError: a training image has no row.
    """
    names = tuple(sorted({label for labels in table.values() for label in labels}))
    column = {name: k for k, name in enumerate(names)}
    rows, missing = {}, []
    for file in train_files:
        labels = table.get(file.relative_to(root).as_posix())
        if labels is None:
            missing.append(file)
            continue
        row = torch.zeros(len(names))
        row[[column[label] for label in labels]] = 1.0
        rows[file] = row
    if missing:
        raise DataError(f"data.labels_csv: {len(missing)} training image(s) have no row in {path} "
                        f"(first: {missing[0].relative_to(root).as_posix()}); add a file,labels row "
                        "for each")
    known = {f.relative_to(root).as_posix() for f in [*train_files, *other_files]}
    unused = [key for key in table if key not in known]
    if unused:
        log.warning("%d row(s) of %s name no image of %s (first: %s)", len(unused), path, root, unused[0])
    return rows, names
