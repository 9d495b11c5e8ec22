"""Process-group helpers; every function is a no-op on a single process.

Under ``torchrun`` each process calls :func:`init_from_env` once (the CLI does), trains on its
shard of every batch, and :func:`teardown` at the end. Contrastive losses need the other ranks'
embeddings: :func:`gather_with_grad` concatenates them in rank order and sends each rank, in the
backward pass, its slice of the gradient summed over ranks.
"""

from __future__ import annotations

import datetime
import gc
import inspect
import logging
import os

import torch
import torch.distributed as dist
from torch import Tensor, nn

log = logging.getLogger("supcon")
# torchrun sets these; a process group is only made when all of them are there.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def is_distributed() -> bool:
    """True once a process group exists (under torchrun, after :func:`init_from_env`)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's global rank; 0 on a single process."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes in the group; 1 on a single process."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Only the main process writes logs, checkpoints and results."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank gets here; no-op on a single process."""
    if is_distributed():
        dist.barrier()


def launch_rank() -> int:
    """This process's global rank as ``torchrun`` sets it (``RANK``), 0 when not launched so;
    readable before the process group is joined.

    Raises:
        ValueError: ``RANK`` is not an integer.
    """
    return _env_int("RANK", 0)


def local_rank() -> int:
    """This process's index on its node (``LOCAL_RANK`` from torchrun), 0 when not launched so."""
    return _env_int("LOCAL_RANK", 0)


def resolve_device(name: str, what: str = "train.device") -> torch.device:
    """``train.device`` as a device: ``auto`` is cuda when available, else cpu; under torchrun a
    CUDA device becomes ``cuda:LOCAL_RANK``.

    Raises:
        ValueError: not a device name, or a cuda device that is not there (``what`` names
            the setting in the message).
    """
    if name == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise ValueError(f"{what} {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"{what} {name!r}: CUDA is not available on this machine; use --device cpu")
        if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
            raise ValueError(f"{what} {name!r}: only {torch.cuda.device_count()} CUDA device(s) are "
                             "visible; use cuda:0 or check CUDA_VISIBLE_DEVICES")
    if device.type == "cuda" and world_size() > 1:
        return torch.device("cuda", local_rank())  # torchrun: one GPU per process
    return device


def init_from_env(device: str = "auto", timeout_s: float = 1800.0) -> bool:
    """Join the process group that ``torchrun`` describes in the environment.

    ``device`` is ``train.device``: the backend is NCCL when it resolves to CUDA (each process
    then uses GPU ``LOCAL_RANK``), else gloo. Returns True if a group was made here; False when
    not launched by torchrun with more than one process, or when a group already exists.

    Raises:
        ValueError: ``LOCAL_RANK`` has no visible CUDA device, or a torchrun variable is not
            an integer.
    """
    if is_distributed() or not all(name in os.environ for name in TORCHRUN_ENV):
        return False
    size = _env_int("WORLD_SIZE", 1)
    if size <= 1:
        return False
    cuda = not device.startswith("cpu") and torch.cuda.is_available()
    if cuda:
        if local_rank() >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local_rank()} but only {torch.cuda.device_count()} "
                             "CUDA device(s) are visible; lower --nproc_per_node")
        torch.cuda.set_device(local_rank())
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    log.debug("rank %d/%d joined the %s process group", rank(), size, backend)
    return True


def teardown(wait: bool = True) -> None:
    """Leave the process group; with ``wait``, once every rank has reached this point (after an
    error, leave at once: the other ranks then fail instead of hanging in a collective)."""
    if is_distributed():
        # free finished DDP wrappers now: freed at interpreter exit, after the group is gone,
        # gloo can abort the process ("terminate called without an active exception")
        gc.collect()
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or ``torch.compile``'s), else ``model`` itself."""
    for attr in ("module", "_orig_mod"):
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module):
            return unwrap(inner)
    return model


def wrap_model(model: nn.Module, device: torch.device, *, sync_bn: bool = False) -> nn.Module:
    """``model`` in DistributedDataParallel when several processes train, else ``model`` itself.

    ``sync_bn`` first converts its BatchNorm layers to SyncBatchNorm (in place; CUDA only), so
    their statistics cover the global batch. Buffers are not broadcast at every forward: training
    uses batch statistics, a momentum queue is the same on every rank by construction, and only
    rank 0's running statistics are ever saved or evaluated.

    Raises:
        ValueError: ``sync_bn`` on a non-CUDA device (with several processes).
    """
    if world_size() == 1:
        return model
    if sync_bn:
        if device.type != "cuda":
            raise ValueError(f"train.sync_bn needs CUDA devices (SyncBatchNorm has no {device.type} "
                             "kernel); drop it or train on GPUs")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    ddp = nn.parallel.DistributedDataParallel
    # torch >= 2.14 renamed the option (and still syncs buffers once at construction: fine here)
    renamed = "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters
    no_sync = {"forward_sync_buffers": False} if renamed else {"broadcast_buffers": False}
    return ddp(model, device_ids=ids, **no_sync)


def gather(x: Tensor) -> Tensor:
    """Concatenate ``x`` [n, ...] of every rank in rank order -> [world_size * n, ...], no gradient.

    Every rank must pass the same shape (the training sampler gives every rank full batches).
    """
    if not is_distributed() or world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def gather_with_grad(x: Tensor) -> Tensor:
    """:func:`gather` whose backward gives each rank its slice of the gradient summed over ranks.

    If every rank computes the same loss L of the gathered tensor, rank r receives
    ``world_size * dL/dx_r``; DDP's averaging of parameter gradients then divides by world_size,
    so the step applies exactly the single-process gradient of L on the global batch.
    """
    if not is_distributed() or world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.rows = x.shape[0]
        return gather(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # sum over ranks
        start = rank() * ctx.rows
        return grad[start : start + ctx.rows]


def all_reduce_mean(x: Tensor) -> Tensor:
    """The mean of ``x`` over ranks (a new tensor; ``x`` itself on one process)."""
    if not is_distributed() or world_size() == 1:
        return x
    out = x.detach().clone()
    dist.all_reduce(out)
    return out / world_size()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}; launch with "
                         "torchrun, or unset it for one process") from None
