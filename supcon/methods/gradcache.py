"""Gradient caching: a contrastive step over B images with the activation memory of m of them.

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
from typing import Any

import torch
from torch import Tensor, nn

from .. import distributed as dist
from ..engine.loop import BACKWARD_DONE

Embed = Callable[[nn.Module, Tensor], Tensor]


def cached_backward(
    model: nn.Module,
    embed: Embed,
    loss_fn: Callable[[Tensor], Tensor],
    inputs: Tensor,
    chunk_size: int,
    *,
    grad_scale: float = 1.0,
) -> Tensor:
    """Back-propagate ``loss_fn(embed(model, inputs))`` through ``model`` ``chunk_size`` rows at a time.

    ``embed(model, x)`` maps ``[n, ...] -> [n, D]`` row-wise; ``loss_fn`` maps all ``[N, D]``
    embeddings to a scalar. Gradients are accumulated into the parameters (multiplied by
    ``grad_scale``, e.g. an fp16 loss scale); the detached loss is returned. Under DDP only the
    last micro-batch's backward synchronises gradients (``no_sync`` for the others).

    Raises:
        ValueError: ``chunk_size < 1``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    chunks = inputs.split(chunk_size)
    states, parts = [], []
    with torch.no_grad():
        for chunk in chunks:
            states.append(_RngState(chunk.device))
            parts.append(embed(model, chunk))
    after = _RngState(inputs.device)
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


def contrastive_step(
    method: Any,
    model: nn.Module,
    images: Tensor,
    labels: Tensor | None,
    *,
    micro_batch_size: int | None = None,
    grad_scale: float = 1.0,
) -> dict[str, Any]:
    """One SupCon/SimCLR step on this rank's multi-view batch, against the global batch.

    ``images`` ``[B, V, C, H, W]``, ``labels`` ``[B]``. The embeddings (``method.embed``) of every
    rank are gathered with gradients and each rank computes ``method.loss_from_embeddings`` of
    the whole global batch ``[W*B, V, D]``, so the loss is the single-process loss and, after
    DDP's gradient averaging, so is the update (see :func:`supcon.distributed.gather_with_grad`).
    Without ``micro_batch_size`` (or when it covers the batch) the returned loss still has to be
    back-propagated; with it the backward pass is done here (gradient caching) and the result
    says so with ``BACKWARD_DONE``. A method with ``remember(model, images, labels, chunk)``
    (the momentum queue) is then given the batch. ``grad_scale`` multiplies the cached
    backward (the fp16 GradScaler's scale; 1.0 otherwise). Returns ``{"loss", "features"
    [B, F], BACKWARD_DONE}``.

    Raises:
        ValueError: ``images`` is not 5-D, or the method's loss rejects the embeddings.
    """
    if images.dim() != 5:
        raise ValueError(f"images must be [B, V, C, H, W] (multi-view), got {tuple(images.shape)}")
    batch, views = images.shape[:2]
    flat = images.flatten(0, 1)  # [B*V, C, H, W], sample-major
    all_labels = dist.gather(labels) if labels is not None else None
    cached = micro_batch_size is not None and micro_batch_size < batch

    def loss_fn(z: Tensor) -> Tensor:  # z [B*V, D] of this rank
        z_all = dist.gather_with_grad(z.float()).unflatten(0, (-1, views))  # [W*B, V, D]
        return method.loss_from_embeddings(z_all, all_labels)

    # The probe's features: the encoder's outputs of the one pass that runs without gradients
    # when caching (the replay gives the same values), else of the only pass.
    encoder = dist.unwrap(model).encoder
    with _outputs_of(encoder, keep=lambda: not (cached and torch.is_grad_enabled())) as reps:
        if cached:
            loss = cached_backward(model, method.embed, loss_fn, flat, micro_batch_size * views,
                                   grad_scale=grad_scale)
        else:
            loss = loss_fn(method.embed(model, flat))
    features = torch.cat(reps).unflatten(0, (batch, views))[:, 0]
    remember = getattr(method, "remember", None)
    if remember is not None:
        remember(model, images, labels, micro_batch_size)
    return {"loss": loss, "features": features, BACKWARD_DONE: cached}


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
def _outputs_of(module: nn.Module, keep: Callable[[], bool]) -> Iterator[list[Tensor]]:
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
