"""`EpochBatchSampler`: batches of indices whose order is a function of (seed, epoch) only.

Epoch semantics:
- plain (``per_class=None``): a permutation of all n indices (or ``0..n-1`` without shuffle),
  cut into batches of ``batch_size``; with ``world_size > 1`` the permutation is first padded
  (repeating its start) or, with ``drop_last``, trimmed to a multiple of ``world_size`` and
  rank r takes every ``world_size``-th index from position r, as `DistributedSampler` does, so
  every rank yields the same number of batches.
- class-balanced (``per_class=m``): every batch holds m indices from each of
  ``k = batch_size // m`` distinct classes. Classes are dealt from a shuffled deck (every class
  equally often, rare classes oversampled), indices from a per-class shuffled queue that is
  refilled when used up, so within a class every sample appears once before any repeats. An
  epoch has as many batches as the plain sampler would (n / (batch_size * world_size), rounded
  down with ``drop_last``, else up); all batches are full. Ranks take batches round-robin from
  one shared sequence.
`set_epoch(epoch, start_batch)` must be called before each epoch (it fixes the order) and skips
the first ``start_batch`` batches when resuming; ``len()`` is always the full epoch's count.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from ..checks import check_int
from .base import derive_seed


class EpochBatchSampler:
    """Yields lists of dataset indices; see the module docstring for the epoch semantics.

    Args:
        labels: ``[n]`` integer class of every item (only used by ``per_class``; its length
            sets n).
        batch_size: indices per batch on this rank.
        shuffle: permute every epoch (a function of ``seed`` and the epoch), else ``0..n-1``.
        drop_last: drop the last incomplete batch (and, with ranks, trim instead of padding).
        seed: seeds every epoch's order.
        per_class: class-balanced batches of ``per_class`` samples from each of
            ``batch_size // per_class`` classes; None = plain batches.
        rank: this process's rank, in ``[0, world_size)``.
        world_size: number of processes that share the epoch.

    Raises:
        ValueError: a non-int or too small ``batch_size``/``world_size``/``rank``/``per_class``,
            ``rank >= world_size``, empty ``labels``, ``batch_size`` not a multiple of
            ``per_class``, or fewer classes than ``batch_size // per_class``. A class with fewer
            than ``per_class`` samples only warns (its samples repeat within a batch).
    """

    def __init__(
        self,
        labels: Tensor | Sequence[int],
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        per_class: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.labels = torch.as_tensor(labels).reshape(-1).long()
        for name, value, low in (("batch_size", batch_size, 1), ("world_size", world_size, 1), ("rank", rank, 0)):
            check_int(name, value, low=low)
        self.batch_size, self.world_size, self.rank = batch_size, world_size, rank
        if self.rank >= self.world_size:
            raise ValueError(f"rank: expected < world_size={world_size}, got {rank}")
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, int(seed)
        check_int("per_class", per_class, allow_none=True)
        self.per_class = per_class
        self.epoch, self.start_batch = 0, 0
        if self.per_class is not None:
            self._check_balanced()
        elif self.labels.numel() == 0:
            raise ValueError("labels: empty; nothing to sample")

    def _check_balanced(self) -> None:
        m, b = self.per_class, self.batch_size
        if b % m:
            raise ValueError(f"batch_size: {b} is not a multiple of per_class={m}")
        classes, counts = torch.unique(self.labels, return_counts=True)
        if b // m > classes.numel():
            raise ValueError(
                f"per_class: batch_size // per_class = {b // m} classes per batch, "
                f"but labels hold only {classes.numel()} classes; raise per_class or lower batch_size"
            )
        small = int((counts < m).sum())
        if small:
            warnings.warn(
                f"{small} class(es) have fewer than per_class={m} samples; their samples repeat "
                "within a batch",
                stacklevel=3,
            )
        self._classes = classes
        self._members = [torch.nonzero(self.labels == c).flatten() for c in classes.tolist()]

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Fix the order for ``epoch``; skip its first ``start_batch`` batches (resume)."""
        self.epoch = int(epoch)
        check_int("start_batch", start_batch, low=0)
        self.start_batch = start_batch

    def __len__(self) -> int:
        n, global_batch = self.labels.numel(), self.batch_size * self.world_size
        if self.per_class is not None:
            return max(1, n // global_batch if self.drop_last else math.ceil(n / global_batch))
        per_rank = n // self.world_size if self.drop_last else math.ceil(n / self.world_size)
        return (
            per_rank // self.batch_size if self.drop_last else math.ceil(per_rank / self.batch_size)
        )

    def __iter__(self) -> Iterator[list[int]]:
        gen = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch, 0xBA7C4))
        batches = self._balanced(gen) if self.per_class is not None else self._plain(gen)
        for k, batch in enumerate(batches):
            if k >= self.start_batch:
                yield batch

    def _plain(self, gen: torch.Generator) -> Iterator[list[int]]:
        n = self.labels.numel()
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        if self.world_size > 1:
            if self.drop_last:
                order = order[: n - n % self.world_size]
            else:
                order = torch.cat([order, order[: (-n) % self.world_size]])
            order = order[self.rank :: self.world_size]
        mine = order.tolist()
        for k in range(len(self)):
            yield mine[k * self.batch_size : (k + 1) * self.batch_size]

    def _balanced(self, gen: torch.Generator) -> Iterator[list[int]]:
        m, k = self.per_class, self.batch_size // self.per_class
        n_classes = len(self._members)
        queues = [
            members[torch.randperm(members.numel(), generator=gen)].tolist()
            for members in self._members
        ]
        pos = [0] * n_classes
        deck: list[int] = []
        for b in range(len(self) * self.world_size):
            chosen = self._deal(deck, k, n_classes, gen)
            batch = []
            for c in chosen:
                while pos[c] + m > len(queues[c]):
                    queues[c] = self._refill(queues[c][pos[c] :], c, m, gen)
                    pos[c] = 0
                batch += queues[c][pos[c] : pos[c] + m]
                pos[c] += m
            if b % self.world_size == self.rank:
                yield batch

    def _refill(self, left: list[int], c: int, m: int, gen: torch.Generator) -> list[int]:
        """``left`` (the end of the old round) + a fresh shuffle of class c, arranged so the next
        m indices are distinct whenever the class has at least m samples."""
        members = self._members[c]
        perm = members[torch.randperm(members.numel(), generator=gen)].tolist()
        used = set(left)
        others = [i for i in perm if i not in used]
        need = m - len(left)
        return left + others[:need] + [i for i in perm if i in used] + others[need:]

    @staticmethod
    def _deal(deck: list[int], k: int, n_classes: int, gen: torch.Generator) -> list[int]:
        """Take k distinct classes off the deck, reshuffling a new deck when it runs short."""
        chosen = deck[:k]
        del deck[:k]
        if len(chosen) < k:
            fresh = [
                c for c in torch.randperm(n_classes, generator=gen).tolist() if c not in chosen
            ]
            need = k - len(chosen)
            chosen += fresh[:need]
            deck[:] = fresh[need:] + [c for c in chosen[: k - need]]
        return chosen
