"""Training methods: small objects that turn a batch into ``{"loss": ..., "features": ...}``.

Every method follows the contract :class:`~.base.Method`; ``create_method(name, **options)``
builds one; names are ``supcon``, ``simclr`` and ``ce``. ``supcon`` with a ``memory`` option is
the momentum-queue variant (:class:`MemorySupCon`).
"""

from __future__ import annotations

import difflib
import inspect

from .base import BACKWARD_DONE, ClassifierModel, ContrastiveModel, Method
from .ce import CrossEntropy
from .contrastive import ContrastiveMethod
from .memory import KeyQueue, MemorySupCon, MomentumModel
from .simclr import SimCLR
from .supcon import SupCon

METHODS: dict[str, type] = {"supcon": SupCon, "simclr": SimCLR, "ce": CrossEntropy}


def list_methods() -> list[str]:
    """Names accepted by :func:`create_method`."""
    return list(METHODS)


def create_method(name: str, **options) -> Method:
    """Build the method ``name`` with its ``options`` (see each class for the valid ones).

    ``create_method("supcon", memory=N, momentum=m)`` gives :class:`MemorySupCon`.

    Raises:
        ValueError: unknown method (closest names suggested) or unknown option (valid listed).
    """
    cls = METHODS.get(name)
    if cls is None:
        close = difflib.get_close_matches(str(name), list(METHODS), n=1, cutoff=0.4)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown method {name!r}{hint} (choices: {', '.join(METHODS)})")
    if cls is SupCon and "memory" in options:
        cls = MemorySupCon
    valid = [p for p in inspect.signature(cls).parameters]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"method {name!r} got unknown option(s) {unknown}; valid options: {valid}")
    return cls(**options)


__all__ = [
    "BACKWARD_DONE",
    "METHODS",
    "ClassifierModel",
    "ContrastiveMethod",
    "ContrastiveModel",
    "CrossEntropy",
    "KeyQueue",
    "MemorySupCon",
    "Method",
    "MomentumModel",
    "SimCLR",
    "SupCon",
    "create_method",
    "list_methods",
]
