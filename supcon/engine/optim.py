"""Optimizers (SGD, LARS, RMSProp, AdamW) and the warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from ..config import OptimConfig


def param_groups(model: nn.Module, weight_decay: float, head_lr_scale: float = 1.0) -> list[dict]:
    """Split parameters: weights get weight decay and LARS adaptation; biases and norm weights
    (every 1-D parameter) get neither, as in the LARS/SimCLR recipes. With ``head_lr_scale`` != 1
    the parameters outside ``model.encoder`` form two more groups whose ``lr_scale`` multiplies
    the lr :func:`set_lr` sets."""
    encoder = getattr(model, "encoder", None)
    trainable = [p for p in model.parameters() if p.requires_grad]
    parts = [(1.0, trainable)]
    if head_lr_scale != 1.0 and isinstance(encoder, nn.Module):
        in_encoder = {id(p) for p in encoder.parameters()}
        parts = [(1.0, [p for p in trainable if id(p) in in_encoder]),
                 (head_lr_scale, [p for p in trainable if id(p) not in in_encoder])]
    groups = []
    for scale, params in parts:
        groups += [
            {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay, "adapt": True, "lr_scale": scale},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "adapt": False, "lr_scale": scale},
        ]
    return groups


def peak_lr(cfg: OptimConfig, global_batch: int) -> float:
    """``cfg.lr``, multiplied by ``global_batch / 256`` when ``cfg.scale_lr`` is on (the linear
    scaling rule; ``global_batch`` is ``train.batch_size`` x processes)."""
    return cfg.lr * (global_batch / 256 if cfg.scale_lr else 1.0)


def build_optimizer(model: nn.Module, cfg: OptimConfig, lr: float) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg.name`` over ``model``'s trainable parameters, at peak ``lr``.

    sgd, lars and rmsprop use ``cfg.momentum`` (rmsprop with alpha 0.9 and eps 1.0); adamw its
    own betas. Weight decay applies to weights only, and ``cfg.head_lr_scale`` scales the lr of
    the parameters outside the encoder (see :func:`param_groups`).

    Raises:
        ValueError: unknown ``cfg.name``.
    """
    groups = param_groups(model, cfg.weight_decay, cfg.head_lr_scale)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
    if cfg.name == "lars":
        return LARS(groups, lr=lr, momentum=cfg.momentum)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, momentum=cfg.momentum, alpha=0.9, eps=1.0)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise ValueError(f"unknown optimizer {cfg.name!r}; valid: sgd, lars, rmsprop, adamw")


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling (You et al., 2017).

    Each parameter group's ``adapt`` flag says whether the layer-wise trust ratio
    ``eta * |w| / (|g| + wd * |w|)`` is applied; groups without it are plain momentum SGD.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, eta: float = 0.001,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, eta=eta, weight_decay=weight_decay, adapt=True))

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter with a gradient; returns ``closure()``'s loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad.clone()
                if group["adapt"]:
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(p.grad)
                    denom = g_norm + group["weight_decay"] * w_norm
                    trust = torch.where((w_norm > 0) & (denom > 0), group["eta"] * w_norm / denom, 1.0)
                    grad.mul_(trust)
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = grad
                else:
                    buf.mul_(group["momentum"]).add_(grad)
                p.add_(buf, alpha=-group["lr"])
        return loss


def lr_at(step: int, total_steps: int, warmup_steps: int, peak_lr: float) -> float:
    """Linear warm-up from ~0 to ``peak_lr`` over ``warmup_steps``, then cosine decay to 0."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak_lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set ``lr`` on every parameter group, times the group's ``lr_scale`` where it has one."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
