"""``train.compile``: run the training forward through ``torch.compile``, or eagerly when it can't.

Compiling can be impossible up front (a Python that TorchDynamo does not support, no C++
compiler for the CPU backend) or fail at the first call (an unsupported operation in a custom
encoder). Either way training goes on eagerly, with one warning that says why.
"""

from __future__ import annotations

import logging
import os
import shutil

import torch
from torch import nn

log = logging.getLogger("supcon")


def why_not_compilable(device: torch.device) -> str | None:
    """The reason ``torch.compile`` cannot work here, or None when it should."""
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    try:
        import torch._dynamo as dynamo
    except ImportError as err:  # a stripped-down build
        return f"TorchDynamo is not importable ({err})"
    if not dynamo.is_dynamo_supported():
        return "TorchDynamo does not support this Python version"
    if device.type == "cpu":
        compilers = [os.environ.get("CXX"), "g++", "c++", "clang++"]
        if not any(c and shutil.which(c) for c in compilers):
            return "the CPU backend needs a C++ compiler (g++ or clang++) and none is on PATH"
    return None


class CompiledOrEager(nn.Module):
    """Calls the compiled ``module``; if the first call fails, warns once and runs eagerly.

    Only the first call can fall back: a later failure is a real error and is raised.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self._compiled = torch.compile(module)
        self._state = "untried"  # -> "compiled" or "eager"

    def forward(self, *args, **kwargs):
        """``module(*args, **kwargs)``, compiled when possible."""
        if self._state == "eager":
            return self.module(*args, **kwargs)
        if self._state == "compiled":
            return self._compiled(*args, **kwargs)
        try:
            out = self._compiled(*args, **kwargs)
        except Exception as err:  # noqa: BLE001  any compiler failure: fall back, say why
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            log.warning("train.compile: compiling the model failed (%s: %s); training eagerly",
                        type(err).__name__, reason)
            self._state = "eager"
            return self.module(*args, **kwargs)
        self._state = "compiled"
        return out

    @property
    def compiled(self) -> bool:
        """True once a call went through the compiled module."""
        return self._state == "compiled"


def maybe_compile(module: nn.Module, enabled: bool, device: torch.device) -> nn.Module:
    """``module`` wrapped to run compiled when ``enabled`` and possible here, else ``module``."""
    if not enabled:
        return module
    reason = why_not_compilable(device)
    if reason is not None:
        log.warning("train.compile: %s; training eagerly", reason)
        return module
    return CompiledOrEager(module)
