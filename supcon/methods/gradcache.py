"""Gradient caching: a contrastive step over B images (or texts) with the activation memory of m
of them (used by the contrastive step, :class:`~.contrastive.ContrastiveMethod`).

A contrastive loss couples every view of the batch, so plain gradient accumulation does not
apply. Gradient caching (Gao et al., 2021, "Scaling Deep Contrastive Learning Batch Size under
Memory Limited Setup") splits the step in three:

1. embed every micro-batch under ``no_grad`` (no graph is kept), recording the RNG state first;
2. compute the loss on all embeddings (gathered from every rank under DDP) and dL/dz;
3. re-run each micro-batch with gradients, the RNG state replayed so random layers (dropout,
   stochastic depth) draw the same masks, and back-propagate its slice of dL/dz.

The parameter gradients are those of one backward pass through the whole batch (to float
rounding) for any encoder whose output for a sample does not depend on the other samples of its
micro-batch. BatchNorm breaks that: it normalises with statistics of the micro-batch, exactly as
if the micro-batch had been the batch (use ``norm="group"``/``"none"`` encoders for exact
equality, or accept per-micro-batch statistics as with any per-device BatchNorm under DDP). The
running statistics are updated once per micro-batch, by the first pass only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from .. import distributed as dist
from ..checks import check_int
from .base import split_rows

Embed = Callable[[nn.Module, Tensor | list], Tensor]


def cached_backward(
    model: nn.Module,
    embed: Embed,
    loss_fn: Callable[[Tensor], Tensor],
    inputs: Tensor | list,
    chunk_size: int,
    *,
    grad_scale: float = 1.0,
) -> Tensor:
    """Back-propagate ``loss_fn(embed(model, inputs))`` through ``model`` ``chunk_size`` rows at a time.

    ``inputs`` is a tensor (its rows) or a list (of texts); ``embed(model, x)`` maps ``n`` of them
    to ``[n, D]`` row-wise; ``loss_fn`` maps all ``[N, D]`` embeddings to a scalar. Gradients are
    accumulated into the parameters (multiplied by ``grad_scale``, e.g. an fp16 loss scale); the
    detached loss is returned. Under DDP only the last micro-batch's backward synchronises
    gradients (``no_sync`` for the others).

    Raises:
        ValueError: ``chunk_size < 1``.
    """
    check_int("chunk_size", chunk_size)
    chunks = split_rows(inputs, chunk_size)
    device = next(model.parameters()).device  # where the forward passes draw their random numbers
    states, parts = [], []
    with torch.no_grad():
        for chunk in chunks:
            states.append(_RngState(device))
            parts.append(embed(model, chunk))
    after = _RngState(device)
    z = torch.cat(parts).detach().requires_grad_()
    with torch.enable_grad():
        loss = loss_fn(z)
        (loss * grad_scale).backward()
    grads = z.grad.split([part.shape[0] for part in parts])
    stats = _running_stats(dist.unwrap(model))  # as the first pass left them
    no_sync = getattr(model, "no_sync", contextlib.nullcontext)
    for k, (chunk, state, grad) in enumerate(zip(chunks, states, grads, strict=True)):
        state.restore()
        with no_sync() if k < len(chunks) - 1 else contextlib.nullcontext():
            embed(model, chunk).backward(grad)
    after.restore()
    _restore(stats)
    return loss.detach()


class _RngState:
    """The CPU generator's state and, for CUDA inputs, that device's."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)


def _running_stats(model: nn.Module) -> list[tuple[Tensor, Tensor]]:
    """(buffer, copy) of every normalisation layer's running statistics."""
    norms = (m for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase))
    return [(b, b.detach().clone()) for m in norms for b in m.buffers(recurse=False)]


@torch.no_grad()
def _restore(stats: list[tuple[Tensor, Tensor]]) -> None:
    for buffer, saved in stats:
        buffer.copy_(saved)


@contextlib.contextmanager
def outputs_of(module: nn.Module, keep: Callable[[], bool]) -> Iterator[list[Tensor]]:
    """Collect ``module``'s detached outputs (while ``keep()`` is true) into the yielded list."""
    outputs: list[Tensor] = []

    def hook(_module, _inputs, output):
        if keep():
            outputs.append(output.detach())

    handle = module.register_forward_hook(hook)
    try:
        yield outputs
    finally:
        handle.remove()
