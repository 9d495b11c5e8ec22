"""The one training loop, shared by every method and by the linear stage.

It knows nothing about models or losses: it gets a ``step_fn(batch) -> {"loss": ..., ...}``,
an optimizer, a schedule and a way to iterate an epoch from a given batch, and it owns the
order of work in a step (lr, forward under autocast, finiteness check, backward, clip, step).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..methods.base import BACKWARD_DONE  # a step_fn's "I did the backward myself"
from .optim import lr_at, set_lr


@dataclass
class Position:
    """Where a run is: ``epoch`` in progress, ``batch`` batches of it done, ``step`` in total."""

    epoch: int = 0
    batch: int = 0
    step: int = 0

    def to_dict(self) -> dict[str, int]:
        """``{"epoch", "batch", "step"}``, as stored in checkpoints."""
        return asdict(self)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf at ``step``; raised before the step is applied."""

    def __init__(self, step: int, value: float) -> None:
        super().__init__(f"loss became {value} at step {step} (the last good checkpoint is kept); "
                         "train again into a new --out with a lower optim.lr, optim.grad_clip set, "
                         "or train.precision=fp32")
        self.step = step


@dataclass
class LoopSpec:
    """What the loop needs besides the model and the step function."""

    epochs: int
    steps_per_epoch: int
    peak_lr: float
    warmup_steps: int = 0
    grad_clip: float | None = None
    precision: str = "fp32"
    device: torch.device | str = "cpu"


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """Autocast to bfloat16 (``bf16``) or float16 (``fp16``) on ``device``; no-op for ``fp32``."""
    device_type = torch.device(device).type
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device_type, dtype=dtype)


def train_loop(
    model: nn.Module,
    step_fn: Callable[[Any], dict[str, torch.Tensor]],
    epoch_batches: Callable[[int, int], Iterable],
    optimizer: torch.optim.Optimizer,
    spec: LoopSpec,
    position: Position,
    *,
    scaler: torch.amp.GradScaler | None = None,
    on_step: Callable[[Position, dict[str, float]], None] | None = None,
    on_epoch: Callable[[Position, dict[str, float]], None] | None = None,
    progress: Callable[..., Any] | None = None,
    stage: str = "train",
    after_step: Callable[[], None] | None = None,
) -> Position:
    """Train from ``position`` to the end of ``spec.epochs``; returns the final position.

    ``epoch_batches(epoch, start_batch)`` yields the batches of ``epoch`` from ``start_batch`` on.
    ``on_step`` runs after every optimizer step and ``on_epoch`` after every epoch, with the
    position already advanced (so a checkpoint taken there resumes after that step).
    ``after_step`` runs right after every optimizer step, before ``on_step`` (e.g. the EMA update
    of a momentum encoder, so that a checkpoint taken in ``on_step`` holds it).
    Gradients are zeroed before ``step_fn``; if its result holds ``BACKWARD_DONE: True`` the
    loss was already back-propagated and the loop does not do it again.
    ``progress`` is an optional tqdm-like factory ``progress(iterable, total=, initial=, desc=)``.

    ``model`` is put in train mode each epoch and the global norm of its gradients is clipped
    to ``spec.grad_clip`` (when set); ``scaler`` (an enabled GradScaler, fp16) scales the backward pass,
    and a ``step_fn`` that back-propagates itself (gradient caching) multiplies its loss by
    ``scaler.get_scale()``: the loop starts the scaler before the first step, so that is the scale
    its ``step`` divides by (and steps whose gradients hold inf/NaN are skipped, the scale backed
    off, as for the loop's own backward). ``stage`` labels the progress bar. The lr of every step is :func:`~.optim.lr_at` of the
    global step, set on every parameter group before ``step_fn`` runs, and ``position`` is
    updated in place.

    Raises:
        NonFiniteLossError: the loss is NaN or inf (before that step is applied).
    """
    total_steps = spec.epochs * spec.steps_per_epoch
    _start_scaler(scaler, spec.device)
    while position.epoch < spec.epochs:
        model.train()
        sums: dict[str, float] = {}
        seen, count, started = 0, 0, time.perf_counter()
        batches = epoch_batches(position.epoch, position.batch)
        if progress is not None:
            batches = progress(batches, total=spec.steps_per_epoch, initial=position.batch,
                               desc=f"{stage} {position.epoch + 1}/{spec.epochs}")
        for batch in batches:
            lr = lr_at(position.step, total_steps, spec.warmup_steps, spec.peak_lr)
            set_lr(optimizer, lr)
            optimizer.zero_grad(set_to_none=True)
            with autocast(spec.precision, spec.device):
                out = step_fn(batch)
            backward_done = bool(out.pop(BACKWARD_DONE, False))
            loss = out["loss"]
            if not math.isfinite(loss.item()):
                raise NonFiniteLossError(position.step, loss.item())
            _backward_and_step(loss, model, optimizer, scaler, spec.grad_clip, backward=not backward_done)
            if after_step is not None:
                after_step()
            position.batch += 1
            position.step += 1
            seen += _batch_size(batch)
            count += 1
            metrics = {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in out.items() if _is_scalar(v)}
            metrics.update(lr=lr, images_per_s=seen / max(1e-9, time.perf_counter() - started))
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v
            if hasattr(batches, "set_postfix"):
                batches.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{lr:.3g}",
                                    img_s=f"{metrics['images_per_s']:.0f}", refresh=False)
            if on_step is not None:
                on_step(position, metrics)
        summary = {k: v / max(1, count) for k, v in sums.items()}
        summary["epoch_time_s"] = time.perf_counter() - started
        position.epoch += 1
        position.batch = 0
        if on_epoch is not None:
            on_epoch(position, summary)
    return position


def _start_scaler(scaler: torch.amp.GradScaler | None, device: torch.device | str) -> None:
    """Create an enabled scaler's scale tensor now (a GradScaler makes it on its first ``scale``):
    before that, ``get_scale()`` returns the initial value but ``step``/``unscale_`` fail ("_scale is
    None") after a backward that the step function did itself."""
    if scaler is not None and scaler.is_enabled():
        scaler.scale(torch.ones((), device=device))


def _backward_and_step(loss, model, optimizer, scaler, grad_clip, backward: bool = True) -> None:
    if scaler is not None and scaler.is_enabled():
        if backward:
            scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        return
    if backward:
        loss.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) or (isinstance(value, torch.Tensor) and value.numel() == 1)


def _batch_size(batch: Any) -> int:
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    return int(first.shape[0])
