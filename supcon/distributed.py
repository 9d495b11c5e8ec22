"""Process-group helpers; every function is a no-op on a single process."""

from __future__ import annotations

import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Only the main process writes logs, checkpoints and results."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()
