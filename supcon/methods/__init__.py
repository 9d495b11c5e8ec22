"""Training methods: small objects that turn a batch into ``{"loss": ..., "features": ...}``.

Every method follows the contract :class:`~.base.Method`; ``create_method(name, **options)``
builds one; names are ``supcon``, ``simclr``, ``ce`` and ``ce+supcon`` (both losses on one
batch). ``supcon`` with a ``memory`` option is the momentum-queue variant (:class:`MemorySupCon`).
"""

from __future__ import annotations

from .base import BACKWARD_DONE, ClassifierModel, ContrastiveModel, Method
from .ce import CrossEntropy
from .contrastive import ContrastiveMethod
from .joint import CrossEntropySupCon, JointModel
from .memory import KeyQueue, MemorySupCon, MomentumModel
from .registry import METHOD_CLASSES, create_method, list_methods
from .simclr import SimCLR
from .supcon import SupCon

__all__ = [
    "BACKWARD_DONE",
    "METHOD_CLASSES",
    "ClassifierModel",
    "ContrastiveMethod",
    "ContrastiveModel",
    "CrossEntropy",
    "CrossEntropySupCon",
    "JointModel",
    "KeyQueue",
    "MemorySupCon",
    "Method",
    "MomentumModel",
    "SimCLR",
    "SupCon",
    "create_method",
    "list_methods",
]
