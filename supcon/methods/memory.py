"""SupCon with a momentum encoder and a queue of its keys (the paper's memory-based variant).

The online encoder + head are trained as in SupCon. A momentum copy of them (an exponential
moving average of the online weights, updated after every optimizer step) embeds each batch once
more, without gradients, into keys that go into a FIFO queue together with their labels. The
anchors (the current views through the online model) are contrasted against the current views
plus every queued key: same-label keys are extra positives, the others extra negatives, so a
small batch sees many more contrasts. Keys are never anchors.

All state (momentum weights, queue, its labels and write position) lives in the model's
parameters and buffers, so checkpoints carry it and a resumed run continues it exactly.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from .. import distributed as dist
from ..checks import check_int
from ..losses.options import CONTRAST_MODE, QUEUE_MOMENTUM, TEMPERATURE, VARIANT
from ..models.heads import HEAD_KINDS
from .base import ContrastiveModel, flat_views, split_rows
from .supcon import SupCon


class KeyQueue(nn.Module):
    """FIFO of the last ``size`` keys ``[D]`` and their labels, held in buffers.

    ``push`` appends (overwriting the oldest entries once full); ``contents`` returns what is
    held, oldest first. Keys, labels (-1 where empty), write position and fill count are
    buffers, so they are saved in the model's state dict.

    Raises:
        ValueError: ``size`` or ``dim`` is not an int >= 1.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        check_int("size", size)
        check_int("dim", dim)
        self.register_buffer("keys", torch.zeros(size, dim))
        self.register_buffer("labels", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))  # next slot to write
        self.register_buffer("count", torch.zeros((), dtype=torch.long))  # slots filled

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    def __len__(self) -> int:
        return int(self.count)

    @torch.no_grad()
    def push(self, keys: Tensor, labels: Tensor) -> None:
        """Append ``keys`` ``[n, D]`` with ``labels`` ``[n]`` (only the last ``size`` if n > size).

        Raises:
            ValueError: ``keys`` not ``[n, D]``, or ``labels`` not ``[n]`` integers.
        """
        if keys.dim() != 2 or keys.shape[1] != self.keys.shape[1]:
            raise ValueError(f"keys must be [n, {self.keys.shape[1]}], got {tuple(keys.shape)}")
        if labels.shape != keys.shape[:1] or labels.is_floating_point():
            raise ValueError(f"labels must be [{keys.shape[0]}] integers, got {tuple(labels.shape)} "
                             f"{labels.dtype}")
        keys, labels = keys[-self.size :], labels[-self.size :]
        n = keys.shape[0]
        slots = (self.ptr + torch.arange(n, device=self.ptr.device)) % self.size
        self.keys[slots] = keys.to(device=self.keys.device, dtype=self.keys.dtype)
        self.labels[slots] = labels.to(self.labels.device)
        self.ptr.copy_((self.ptr + n) % self.size)
        self.count.copy_(torch.clamp(self.count + n, max=self.size))

    def contents(self) -> tuple[Tensor, Tensor]:
        """``(keys [n, D], labels [n])`` currently held, oldest first (copies)."""
        n = len(self)
        order = (self.ptr - n + torch.arange(n, device=self.ptr.device)) % self.size
        return self.keys[order], self.labels[order]


class MomentumModel(ContrastiveModel):
    """Online encoder + head, their momentum copies and the key queue.

    ``forward`` is the online model's: ``[N, C, H, W] -> (r [N, F], z [N, D])``; ``keys`` runs the
    momentum copy (no gradients). The copies' BatchNorm layers use batch statistics in training
    mode, like the online ones.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, queue_size: int, feat_dim: int) -> None:
        super().__init__(encoder, head)
        self.key_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.key_head = copy.deepcopy(head).requires_grad_(False)
        self.queue = KeyQueue(queue_size, feat_dim)

    @torch.no_grad()
    def keys(self, images: Tensor) -> Tensor:
        """Momentum embeddings ``[N, D]`` (unit rows) of ``images`` ``[N, C, H, W]``."""
        return self.key_head(self.key_encoder(images))

    @torch.no_grad()
    def update_keys(self, momentum: float) -> None:
        """key <- momentum * key + (1 - momentum) * online, for every weight of encoder + head."""
        online = [*self.encoder.parameters(), *self.head.parameters()]
        keys = [*self.key_encoder.parameters(), *self.key_head.parameters()]
        for key, param in zip(keys, online, strict=True):
            key.lerp_(param.detach(), 1.0 - momentum)


class MemorySupCon(SupCon):
    """SupCon with a momentum encoder and a queue of ``memory`` keys (``--memory N``).

    Options are SupCon's (``temperature``, ``variant``, ``head``, ``feat_dim``,
    ``positives_cap``, ``contrast_mode``; see :class:`SupCon`) plus ``memory`` (queue size in
    keys, >= 1; each step enqueues B*V keys per process) and ``momentum`` (EMA factor in [0, 1);
    by default MoCo's). The method serves the model its ``build_model`` returned: the queue lives
    there. Around SupCon's step it adds ``remember`` (enqueue a batch's keys, gathered from every
    rank) and ``after_step`` (the EMA update, after each optimizer step).

    Raises:
        ValueError: a bad SupCon option, ``memory`` not an int >= 1, or ``momentum`` outside
            [0, 1); later, calls before ``build_model`` or with another model.
    """

    def __init__(self, temperature: float = TEMPERATURE, variant: str = VARIANT, head: str = HEAD_KINDS[0],
                 feat_dim: int = 128, positives_cap: int | None = None, contrast_mode: str = CONTRAST_MODE,
                 memory: int = 8192, momentum: float = QUEUE_MOMENTUM) -> None:
        super().__init__(temperature, variant, head, feat_dim, positives_cap, contrast_mode)
        check_int("memory", memory)  # the queue size
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.memory, self.momentum = memory, float(momentum)
        self._model: MomentumModel | None = None

    def build_model(self, encoder: nn.Module, num_classes: int | None = None) -> MomentumModel:
        """SupCon's encoder + head, their momentum copies and an empty queue."""
        base = super().build_model(encoder, num_classes)
        self._model = MomentumModel(base.encoder, base.head, self.memory, self.feat_dim)
        return self._model

    def __call__(self, model: nn.Module, images: Tensor, labels: Tensor | None = None,
                 **step_options) -> dict[str, Tensor]:
        """SupCon's step against the queue; then the batch's keys are queued (after the loss: a
        batch is never contrasted with its own keys).

        Raises:
            ValueError: ``model`` is not the one :meth:`build_model` returned, or anything
                SupCon's step rejects.
        """
        self._bound(model)  # before any work
        return super().__call__(model, images, labels, **step_options)

    def loss(self, z: Tensor, labels: Tensor | None) -> Tensor:
        """SupCon's criterion of float32 ``z`` ``[B, V, D]`` with the queued keys as
        ``ref_features`` (and their labels as ``ref_labels``).

        Raises:
            ValueError: called before :meth:`build_model`.
        """
        keys, key_labels = self._bound().queue.contents()
        return self.criterion(z, labels, ref_features=keys.to(z.device), ref_labels=key_labels.to(z.device))

    @torch.no_grad()
    def remember(self, model: nn.Module, images: Tensor, labels: Tensor, chunk: int | None = None) -> None:
        """Queue the momentum keys of every view of ``images`` ``[B, V, C, H, W]`` (``chunk``
        images at a time), with their labels, gathered from all ranks in rank order."""
        bank = self._bound(model)
        views = images.shape[1]
        flat = flat_views(images)
        step = len(flat) if chunk is None else chunk * views
        keys = torch.cat([bank.keys(part) for part in split_rows(flat, step)])  # [B*V, D], sample-major
        bank.queue.push(dist.gather(keys.float()), dist.gather(labels.repeat_interleave(views)))

    def after_step(self) -> None:
        """The momentum encoder's EMA update; the engine calls it after every optimizer step."""
        self._bound().update_keys(self.momentum)

    def _bound(self, model: nn.Module | None = None) -> MomentumModel:
        if self._model is None:
            raise ValueError("MemorySupCon: call build_model first (the queue lives in that model)")
        if model is not None and dist.unwrap(model) is not self._model:
            raise ValueError("MemorySupCon: model is not the one build_model returned")
        return self._model
