"""Multi-view transforms and the dataset wrapper that makes augmentation reproducible.

`AugmentedDataset` draws every sample's randomness from a generator seeded with
``derive_seed(seed, epoch, index)`` and nothing else, so a run resumed mid-epoch, or run with any
number of DataLoader workers, sees exactly the same augmented images. Items may be fetched by
index (using the epoch set with `set_epoch`) or by an ``(epoch, index)`` pair, which is what
`build_loader` sends so that persistent worker processes never act on a stale epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..checks import check_int
from .base import ImageDataset, derive_seed
from .transforms import Policy


class MultiView:
    """``n_views`` independent draws of ``transform``: ``[C, H, W] -> [V, C, S, S]``.

    Views differ because each takes its own random parameters; a deterministic policy
    (``none``, or any ``train=False`` transform) gives V identical views. ``transform`` is a
    `Policy` (all views in one batched call) or any callable ``[C, H, W] -> [C, S, S]``.

    Raises:
        ValueError: ``n_views`` is not an int >= 1.
    """

    def __init__(self, transform: Callable[[Tensor], Tensor], n_views: int = 2) -> None:
        check_int("n_views", n_views)
        self.transform, self.n_views = transform, n_views

    def __repr__(self) -> str:
        return f"MultiView({self.transform!r}, n_views={self.n_views})"

    def __call__(self, image: Tensor) -> Tensor:
        if isinstance(self.transform, Policy):
            u = torch.rand(self.n_views, self.transform.n_uniforms, dtype=torch.float64)
            return self.transform.apply(image[None].expand(self.n_views, *image.shape), u)
        return torch.stack([self.transform(image) for _ in range(self.n_views)])


def _batched_form(transform) -> tuple[Policy, int, bool] | None:
    """``(policy, views, multi)`` when ``transform`` can run on a whole batch."""
    if isinstance(transform, Policy):
        return transform, 1, False
    if isinstance(transform, MultiView) and isinstance(transform.transform, Policy):
        return transform.transform, transform.n_views, True
    return None


class AugmentedDataset(Dataset):
    """``(transform(image), label)`` with randomness a function of ``(seed, epoch, index)`` only.

    Args:
        base: an `ImageDataset` (uint8 ``[C, H, W]`` images, ``.labels``).
        transform: a `Policy`, a `MultiView` (batched: one vectorised call per batch), or any
            callable that draws from the global torch RNG (seeded per item, then restored).
        seed: the run's seed.
        targets: yield each item's label set (a row of ``base.targets``, float32 ``[C]``
            multi-hot) instead of its class; ``.labels`` stays the classes (for sampling).
        defer: leave the augmentation to the training device: items are then
            ``(uint8 image, label, u)``, ``u`` the uniforms of every view, and
            :class:`DeviceAugment` finishes the batch where the model is (same result).

    Items are ``(image, label)``: ``image`` float32 ``[C, S, S]`` (``[V, C, S, S]`` for a
    `MultiView`), ``label`` an int (or the label set). A key is an index or an ``(epoch, index)``
    pair.

    Raises:
        ValueError: ``targets`` while ``base`` has no ``.targets``; ``defer`` with a transform
            that cannot run on a whole batch (not a `Policy` or a `MultiView` of one), or with
            images of several sizes.
    """

    def __init__(
        self, base: ImageDataset, transform: Callable[[Tensor], Tensor], seed: int = 0,
        targets: bool = False, defer: bool = False,
    ) -> None:
        if targets and getattr(base, "targets", None) is None:
            raise ValueError("targets=True: the dataset has no label sets (.targets); read the "
                             "folder with a labels_csv")
        self.base, self.transform, self.seed = base, transform, int(seed)
        self.targets = targets
        self.epoch = 0
        self.defer = defer
        if defer and _batched_form(transform) is None:
            raise ValueError(f"defer=True needs a batched policy transform, got {transform!r}")

    @property
    def labels(self) -> Tensor:
        return self.base.labels

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        """Augmentations of plain-index fetches follow ``epoch`` from now on."""
        self.epoch = int(epoch)

    def sample_seed(self, epoch: int, index: int) -> int:
        """The seed of item ``index``'s augmentation in ``epoch`` (a function of the run's seed)."""
        return derive_seed(self.seed, epoch, index)

    def _split_keys(self, keys: Sequence) -> tuple[list[int], list[int]]:
        epochs, indices = [], []
        for key in keys:
            epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
            epochs.append(int(epoch))
            indices.append(int(index))
        return epochs, indices

    def __getitem__(self, key) -> tuple[Tensor, int]:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: Sequence) -> list[tuple[Tensor, int]]:
        """Fetch and augment several items in one go (the DataLoader calls this per batch)."""
        epochs, indices = self._split_keys(keys)
        images, labels = self.base.get_batch(indices)
        form = _batched_form(self.transform)
        if self.targets:
            labels = self.base.targets[torch.as_tensor(indices)].unbind(0)
        else:
            labels = labels.tolist()
        if self.defer:
            if not isinstance(images, Tensor):
                raise ValueError("defer=True needs images of one size (a folder resized at load)")
            rep, u = self._repeat_and_draw(images, epochs, indices, *form[1:])
            return list(zip(rep, labels, u, strict=True))
        if form is None:
            out = [self._one(im, e, i) for im, e, i in zip(images, epochs, indices, strict=True)]
        else:
            out = self._batch(images, epochs, indices, *form)
        return list(zip(out, labels, strict=True))

    def _repeat_and_draw(self, images: Tensor, epochs, indices, views: int, multi: bool):
        """Deferred items: images ``[B, C, H, W]`` uint8 (once, not per view: less to move) and
        uniforms ``[B, V, n]`` (``[B, n]`` for a single-view policy)."""
        policy = _batched_form(self.transform)[0]
        u = self._uniforms(epochs, indices, policy, views)
        return images, (u.view(len(indices), views, -1) if multi else u)

    def _uniforms(self, epochs, indices, policy: Policy, views: int) -> Tensor:
        return torch.cat(
            [
                torch.rand(
                    views,
                    policy.n_uniforms,
                    dtype=torch.float64,
                    generator=torch.Generator().manual_seed(self.sample_seed(e, i)),
                )
                for e, i in zip(epochs, indices, strict=True)
            ]
        )

    def _batch(
        self, images, epochs, indices, policy: Policy, views: int, multi: bool
    ) -> list[Tensor]:
        u = self._uniforms(epochs, indices, policy, views)
        if isinstance(images, Tensor):
            rep = images.repeat_interleave(views, dim=0) if views > 1 else images
        else:
            rep = [im for im in images for _ in range(views)]
        out = policy.apply(rep, u)
        out = out.reshape(len(indices), views, *out.shape[1:]) if multi else out
        return list(out.unbind(0))

    def _one(self, image: Tensor, epoch: int, index: int) -> Tensor:
        gen = torch.default_generator
        state = gen.get_state()
        try:
            gen.manual_seed(self.sample_seed(epoch, index))
            return self.transform(image)
        finally:  # leave the caller's (model's) random stream as it was
            gen.set_state(state)


class DeviceAugment:
    """Finishes a deferred batch (``AugmentedDataset(..., defer=True)``) on its device.

    ``(images uint8 [B, C, H, W], u [B, (V,) n])`` -> float32 ``[B, (V,) C, S, S]``, equal
    to what the loader would have produced from the same seeds: the policy is the same batched
    code, and row k depends only on image k and ``u[k]``.

    Raises:
        ValueError: ``transform`` is not a `Policy` or a `MultiView` of one.
    """

    def __init__(self, transform) -> None:
        form = _batched_form(transform)
        if form is None:
            raise ValueError(f"DeviceAugment needs a batched policy transform, got {transform!r}")
        self.policy, self.views, self.multi = form

    def __call__(self, images: Tensor, u: Tensor) -> Tensor:
        """Augment the batch where it is (move it to the training device first), in float32 even
        inside autocast (the training step runs there): the same values as the loader's."""
        with torch.autocast(images.device.type, enabled=False):
            if not self.multi:
                return self.policy.apply(images, u)
            batch, views = u.shape[:2]
            repeated = images.repeat_interleave(views, dim=0)  # as the loader repeats them
            return self.policy.apply(repeated, u.flatten(0, 1)).unflatten(0, (batch, views))


def to_device(batch, device: torch.device, augment: DeviceAugment | None = None) -> tuple[Tensor, Tensor]:
    """``(images, labels)`` of a loader batch on ``device``; a deferred batch (``images, labels,
    u``) is augmented there by ``augment``."""
    images, labels = (t.to(device, non_blocking=True) for t in batch[:2])
    if augment is not None:
        images = augment(images, batch[2].to(device, non_blocking=True))
    return images, labels
