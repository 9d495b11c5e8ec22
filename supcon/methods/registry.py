"""The method registry: names -> classes and ``create_method`` (the method a config asks for is
built by :func:`supcon.engine.components.method_from_config`)."""

from __future__ import annotations

import difflib
import inspect

from .base import Method
from .ce import CrossEntropy
from .joint import CrossEntropySupCon
from .memory import MemorySupCon
from .simclr import SimCLR
from .supcon import SupCon

# name -> class, for the names of supcon.config.METHODS (tests/methods check that they agree)
METHOD_CLASSES: dict[str, type] = {"supcon": SupCon, "simclr": SimCLR, "ce": CrossEntropy,
                                   "ce+supcon": CrossEntropySupCon}


def list_methods() -> list[str]:
    """Names accepted by :func:`create_method`."""
    return list(METHOD_CLASSES)


def create_method(name: str, **options) -> Method:
    """Build the method ``name`` with its ``options`` (see each class for the valid ones).

    ``create_method("supcon", memory=N, momentum=m)`` gives :class:`MemorySupCon`.

    Raises:
        ValueError: unknown method (closest names suggested) or unknown option (valid listed).
    """
    cls = METHOD_CLASSES.get(name)
    if cls is None:
        close = difflib.get_close_matches(str(name), list(METHOD_CLASSES), n=1, cutoff=0.4)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown method {name!r}{hint} (choices: {', '.join(METHOD_CLASSES)})")
    if cls is SupCon and "memory" in options:
        cls = MemorySupCon
    valid = [p for p in inspect.signature(cls).parameters]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"method {name!r} got unknown option(s) {unknown}; valid options: {valid}")
    return cls(**options)
