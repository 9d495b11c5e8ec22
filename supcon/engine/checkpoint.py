"""Resumable checkpoints: written atomically, read back without unpickling arbitrary objects."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError, from_dict, with_absolute_paths
from ..run_folder import CONFIG

RESUME_FREE_KEYS = (("data", "num_workers"),)
"""Config keys a resumed run may change because they cannot change its results: the batch order
is a function of (seed, epoch) and each image's augmentation of (seed, epoch, index), whatever
the number of DataLoader workers (and the loader seeds its workers from its own generator)."""


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or from an incompatible run."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically: a temp file in the same folder, fsync, rename.

    A crash or kill at any point leaves either the previous file or the new one, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and plain containers only,
    ``weights_only=True``), onto the CPU.

    Raises:
        CheckpointError: no file at ``path``, or it is torn, foreign or holds other objects.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for torn or foreign files
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(err).__name__}); "
                              "delete it and run without resume=True to start over") from None


def check_resumable(state: dict[str, Any], config: dict[str, Any], world_size: int, folder: str | Path) -> None:
    """Refuse to continue the checkpoint ``state`` with another config or number of processes.

    ``config`` is the new run's ``Config.to_dict()``. Keys in `RESUME_FREE_KEYS` may differ; keys
    added to the config since the checkpoint was written count as their defaults, and relative
    folder paths as absolute ones. A checkpoint without ``world_size`` (older ones) is accepted.

    Raises:
        CheckpointError: another config (the first changed keys are named), or ``world_size``
            differs from the one that wrote it (the global batch, ``train.batch_size`` x
            processes, and each process's share of the epoch would change).
    """
    saved, now = _comparable(state.get("config") or {}), _comparable(config)
    if saved != now:
        changed = ", ".join(changed_keys(saved, now)[:3])
        raise CheckpointError(f"resume=True: the configuration differs from the run in {folder} ({changed}); "
                              f"pass the same options as before (see its {CONFIG})")
    written = state.get("world_size")
    if written is not None and int(written) != world_size:
        raise CheckpointError(f"resume=True: the checkpoint in {folder} was written by {written} process(es), this "
                              f"run has {world_size}; the global batch (train.batch_size x processes) and the "
                              f"position in the epoch would change: resume with {written} process(es)")


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    try:
        out = with_absolute_paths(from_dict(config)).to_dict()
    except (ConfigError, TypeError, AttributeError):  # not a config at all: compared as it is
        return config
    for section, key in RESUME_FREE_KEYS:
        out[section].pop(key, None)
    return out


def changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every dotted key whose value differs (for the resume message)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key not in ("encoder_options",):
            out += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def rng_state() -> dict[str, Any]:
    """Every random stream the training step may draw from (python, torch CPU and CUDA)."""
    state = {"python": list(random.getstate()[1]), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the streams saved by :func:`rng_state` (CUDA only when saved and available)."""
    random.setstate((3, tuple(state["python"]), None))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
