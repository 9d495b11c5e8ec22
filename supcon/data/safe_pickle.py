"""Reading the CIFAR "python version" pickles without running code from them.

A pickle can import and call anything (``os.system`` included), so the batches are read by
`CifarUnpickler`, whose ``find_class`` hands out only what the real files need to rebuild their
numpy arrays and refuses every other import. The original files were written by Python 2's
``cPickle`` (protocol 2): dicts whose keys and strings are Python 2 ``str``, read here with
``encoding="latin1"`` (the one that also restores numpy's raw array bytes), and arrays rebuilt by
``numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b"b")`` plus a ``numpy.dtype``.
A copy re-saved by Python 3 with protocol 2 stores each ``bytes`` object as
``_codecs.encode(text, "latin1")``, which is allowed with that encoding only.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .base import DataError
from .images import describe

try:  # numpy >= 2 moved the module; files name either path
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct


def _dtype(spec: Any, *args: Any) -> np.dtype:
    """``numpy.dtype`` restricted to plain numbers: an object dtype would let the array's
    contents be arbitrary Python objects."""
    dtype = np.dtype(spec, *args)
    if dtype.kind not in "biuf" or dtype.hasobject:
        raise pickle.UnpicklingError(f"array dtype {dtype} is not a plain numeric type")
    return dtype


def _latin1_encode(text: Any, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol 2 uses it for ``bytes``: latin-1 text only."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not a bytes literal")
    return text.encode("latin-1")


ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class CifarUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves only the names in `ALLOWED` (module docstring).

    ``path`` is only used to name the file in the refusal message.
    """

    def __init__(self, file: BinaryIO, path: Path | str) -> None:
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        """The allowed object for ``module.name``.

        Raises:
            DataError: any other name (the file asks to import something a CIFAR batch never
                holds, so it is not one and nothing of it is run).
        """
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise DataError(f"refusing to load {self.path}: it asks to import {module}.{name}, which "
                            "a CIFAR batch never holds; use the original files") from None

    def persistent_load(self, pid: Any) -> Any:
        """Persistent ids never occur in CIFAR files.

        Raises:
            DataError: always.
        """
        raise DataError(f"refusing to load {self.path}: it uses persistent ids, which a CIFAR "
                        "batch never holds; use the original files")


def load_cifar_pickle(path: Path) -> dict[str, Any]:
    """One CIFAR python-version file as a dict with ``str`` keys (``bytes`` keys and strings
    of a Python 3 copy are decoded as latin-1, as the Python 2 originals are).

    Raises:
        DataError: the file is missing or unreadable, asks for anything but numpy arrays
            (nothing of it is run), or does not hold a dict.
    """
    try:
        with path.open("rb") as file:
            obj = CifarUnpickler(file, path).load()
    except DataError:
        raise
    except OSError as exc:
        raise DataError(f"cannot read CIFAR file {path}: {exc.strerror or describe(exc)}; put the original "
                        "file there") from None
    except Exception as exc:  # UnpicklingError, EOFError, numpy's ValueError... all mean damaged
        raise DataError(f"could not read {path}: {describe(exc)}; replace it with the original file") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path} holds a {type(obj).__name__}, not a CIFAR dict; "
                        "replace it with the original file")
    return {_text(k): v for k, v in obj.items()}


def _text(value: Any) -> Any:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def text_list(value: Any) -> list[str]:
    """A list of label names (``str`` or latin-1 ``bytes``) as ``str``."""
    return [str(_text(v)) for v in value]
