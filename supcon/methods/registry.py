"""The method registry: names -> classes, ``create_method`` and the method a config asks for.

The only place that knows which options each method takes from a config.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from ..config import Config
from .base import Method
from .ce import CrossEntropy
from .memory import MemorySupCon
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


def method_from_config(cfg: Config) -> Method:
    """The method ``cfg.method`` with the options ``cfg`` implies (``loss.*`` and
    ``model.head``/``feat_dim``; ``memory``/``momentum`` when ``loss.memory > 0``).

    Raises:
        ValueError: the method rejects an option (a config passed through
            :func:`supcon.config.build_config` is already checked).
    """
    return create_method(cfg.method, **_options(cfg))


def _options(cfg: Config) -> dict[str, Any]:
    if cfg.method == "ce":
        return {"label_smoothing": cfg.loss.label_smoothing}
    options = {"temperature": cfg.loss.temperature, "head": cfg.model.head, "feat_dim": cfg.model.feat_dim}
    if cfg.method == "supcon":
        options.update(variant=cfg.loss.variant, positives_cap=cfg.loss.positives_cap,
                       contrast_mode=cfg.loss.contrast_mode)
        if cfg.data.labels_csv is not None:  # label sets: how positives are weighted
            options.update(label_overlap=cfg.loss.label_overlap)
        if cfg.loss.memory:  # the momentum-queue variant
            options.update(memory=cfg.loss.memory, momentum=cfg.loss.momentum)
    return options
