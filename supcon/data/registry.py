"""`load_dataset`: a registered name or an image folder -> train / val / test splits + info.

Where registered sets are looked for, in order: ``data_dir``, ``$SUPCON_DATA``, Debian's
``/usr/share/datasets/<name>`` (Fashion-MNIST), then torchvision's download into the first of
``data_dir``, ``$SUPCON_DATA``, ``~/.cache/supcon/data`` (only with ``download=True``).
A registered name wins over a folder of the same name; write ``./digits`` for the folder.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

from ..checks import is_object_name
from .base import DataError, DatasetInfo, SourceData, Splits, carve_splits, channel_stats
from .cifar import load_cifar10, load_cifar100
from .digits import load_digits
from .folder import load_folder
from .mnist import load_fashion_mnist, load_mnist
from .sources import env_root
from .svhn_stl10 import load_stl10, load_svhn
from .text import TEXT, is_text_source, load_text, text_info

logger = logging.getLogger(__name__)

REGISTRY: dict[str, Callable[..., SourceData]] = {
    "fashion-mnist": load_fashion_mnist,
    "mnist": load_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "svhn": load_svhn,
    "stl10": load_stl10,
    "digits": load_digits,
}
DEFAULT_CACHE = Path("~/.cache/supcon/data")


def list_datasets() -> list[str]:
    """The registered data set names."""
    return sorted(REGISTRY)


def _key(name: str) -> str:
    return re.sub(r"[-_ ]", "", name.lower())


def is_registered(name: str) -> bool:
    """Whether ``name`` spells a registered data set (case, ``-``, ``_`` and spaces ignored);
    such a name wins over a folder of the same name."""
    return _registered(name) is not None


def _registered(name: str) -> str | None:
    """The registered name that ``name`` spells (case, ``-`` and ``_`` ignored), if any."""
    return next((n for n in REGISTRY if _key(n) == _key(name)), None)


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.startswith((".", "~"))


def _unknown(name: str) -> DataError:
    close = difflib.get_close_matches(_key(name), [_key(n) for n in REGISTRY], n=1, cutoff=0.5)
    hint = f"did you mean '{_registered(close[0])}'? " if close else ""
    return DataError(
        f"unknown data set '{name}' and no folder of that name; {hint}"
        f"registered: {', '.join(list_datasets())}; or give a folder path"
    )


def _read_source(
    name_or_path: str | Path,
    data_dir: str | Path | None,
    strict: bool,
    download: bool,
    image_size: int | None,
    labels_csv: str | Path | None = None,
) -> tuple[str, SourceData]:
    text = str(name_or_path)
    if is_object_name(text):
        raise DataError(f"data set {text!r} was your own Dataset, given to supcon.train in Python; nothing "
                        "can read it back from its name: pass it again (supcon.train(train_set=...))")
    name = None if isinstance(name_or_path, Path) else _registered(text)
    if name is None:
        path = Path(text).expanduser()
        if is_text_source(path):
            if labels_csv is not None:
                raise DataError(f"data.labels_csv is for image folders; {path} holds texts (give their label "
                                "sets in a labels column of the text files)")
            return path.name or text, load_text(path)
        if path.exists() or _looks_like_path(text) or isinstance(name_or_path, Path):
            return path.name or text, load_folder(path, strict=strict, image_size=image_size,
                                                  labels_csv=labels_csv)
        raise _unknown(text)
    if labels_csv is not None:
        raise DataError(f"data.labels_csv is for image folders; {name} is a registered data set "
                        "(write its images to a folder, or build multi-hot labels in your own loop)")
    roots = [Path(data_dir).expanduser()] if data_dir is not None else []
    env = env_root()
    roots += [env] if env is not None else []
    target = (roots[0] if roots else DEFAULT_CACHE.expanduser()) if download else None
    logger.debug("loading %s (extra roots: %s; download to: %s if not found)", name, roots, target)
    return name, REGISTRY[name](roots, target)


def load_dataset(
    name_or_path: str | Path,
    *,
    data_dir: str | Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    strict: bool = False,
    download: bool = True,
    test_fraction: float = 0.2,
    image_size: int | None = None,
    labels_csv: str | Path | None = None,
) -> Splits:
    """Load a registered data set or an ImageFolder-layout folder as `Splits`.

    Args:
        name_or_path: a name from `list_datasets` or a folder (``class/*.png``, optionally under
            ``train/`` and ``test/``, or ``train/`` and ``val/`` as ImageNet: the test split); or
            text data: a folder with ``train.csv`` / ``train.jsonl`` (and ``test``, ``val``), or
            one such file (:mod:`supcon.data.text`).
        data_dir: first folder to search for registered sets (see the module docstring).
        val_fraction: share of the training split held out (stratified, seeded) as validation,
            so model selection never looks at the test split. 0 gives an empty validation set.
        seed: seeds the validation split (and nothing else).
        strict: raise on an unreadable image file instead of skipping it with a warning.
        download: let torchvision download a registered set that is found nowhere.
        test_fraction: share carved (stratified, fixed seed) as the test split when the source
            has none (``digits``, folders without ``test/``).
        image_size: side the transforms output; default: the set's own (folders: median shorter
            side, at most 224).
        labels_csv: folders only: a CSV of ``file,labels`` giving each training image a label
            set, kept as ``train.targets`` (``[n, C]`` multi-hot; see
            :mod:`supcon.data.label_sets`), carried through the validation split.

    Raises:
        DataError: unknown name (with the closest registered one), missing path, bad files, a
            bad ``labels_csv`` or one given for a registered set.
    """
    name, src = _read_source(name_or_path, data_dir, strict, download, image_size, labels_csv)
    train, val, test = carve_splits(src.train, src.test, src.val, test_fraction=test_fraction,
                                    val_fraction=val_fraction, seed=seed)
    if src.modality == TEXT:
        return Splits(train=train, val=val, test=test, info=text_info(name, src.class_names))
    mean, std = channel_stats(train)
    info = DatasetInfo(
        name=name,
        channels=src.channels,
        image_size=int(image_size or src.image_size),
        num_classes=len(src.class_names),
        class_names=tuple(src.class_names),
        mean=mean,
        std=std,
    )
    return Splits(train=train, val=val, test=test, info=info)
