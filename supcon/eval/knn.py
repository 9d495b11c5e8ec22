"""Feature extraction and the weighted k-nearest-neighbour classifier on frozen representations.

The kNN rule is the one of the InstDisc / MoCo kNN monitor: a test sample's k most cosine-similar
training samples vote for their class with weight ``exp(sim / temperature)``. It needs no training,
so it measures the representation itself (encoder features, not projections).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_int

KNN_K = 200  # neighbours, as in the InstDisc / MoCo kNN monitor
KNN_TEMPERATURE = 0.1  # temperature of the neighbours' similarity weights


@torch.no_grad()
def extract_features(
    encoder: nn.Module, loader: Iterable, device: str | torch.device = "cpu"
) -> tuple[Tensor, Tensor]:
    """Run ``encoder`` over every batch of ``loader`` in eval mode without gradients.

    Args:
        encoder: maps images ``[B, C, H, W]`` (or a batch of B texts) to representations ``[B, F]``.
        loader: yields ``(images [B, C, H, W], labels [B])`` batches (a DataLoader or any iterable);
            a batch of inputs that is not a tensor (texts) goes to the encoder as it is.
        device: where the encoder runs; the result is returned on the CPU.

    Returns:
        ``(features [n, F] float32, labels [n] int64)`` in loader order. The encoder's
        train/eval mode is restored afterwards.

    Raises:
        ValueError: a batch that is not ``(images [B, C, H, W], labels)``, an encoder output
            that is not ``[B, F]``, or an empty loader.
    """
    was_training = encoder.training
    encoder.eval()
    feats, labels = [], []
    try:
        for i, batch in enumerate(loader):
            images, batch_labels = _split_batch(batch, i)
            out = encoder(images.to(device) if isinstance(images, Tensor) else images)
            if out.dim() != 2 or out.shape[0] != len(images):
                shown = tuple(images.shape) if isinstance(images, Tensor) else f"{len(images)} texts"
                raise ValueError(f"encoder must return [B, F] for {shown} inputs, got {tuple(out.shape)}")
            feats.append(out.float().cpu())
            labels.append(torch.as_tensor(batch_labels).long().cpu().reshape(-1))
    finally:
        encoder.train(was_training)
    if not feats:
        raise ValueError("loader yielded no batches")
    return torch.cat(feats), torch.cat(labels)


def _split_batch(batch, index: int) -> tuple[Tensor, Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError(
            f"loader batch {index} must be (images, labels), got {type(batch).__name__}"
        )
    images, labels = batch[0], batch[1]
    if not isinstance(images, Tensor) and not isinstance(images, str) and hasattr(images, "__len__"):
        return images, labels  # texts: the encoder reads them
    if not isinstance(images, Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"loader batch {index}: images must be [B, C, H, W], got {shape}")
    return images, labels


def knn_predict(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    k: int = KNN_K,
    temperature: float = KNN_TEMPERATURE,
    num_classes: int | None = None,
    *,
    chunk_size: int = 1024,
) -> Tensor:
    """Class scores of the weighted kNN classifier on cosine similarity.

    Each test row's ``k`` most similar training rows (cosine, so features are L2-normalised
    here) add ``exp(sim / temperature)`` to the score of their class.

    Args:
        train_feats: ``[n_train, F]`` feature bank.
        train_labels: ``[n_train]`` integer classes in ``[0, num_classes)``.
        test_feats: ``[n_test, F]`` queries.
        k: neighbours per query; capped at ``n_train``.
        temperature: weight sharpness (0.1 as in InstDisc/MoCo).
        num_classes: number of classes; ``train_labels.max() + 1`` when None.
        chunk_size: test rows per similarity block, so memory is ``chunk_size * n_train``.

    Returns:
        ``[n_test, num_classes]`` float scores (unnormalised); argmax is the prediction.

    Raises:
        ValueError: empty or non-finite features, different widths, labels that are not
            integer ``[n_train]`` in ``[0, num_classes)``, ``k < 1``, ``temperature <= 0`` or
            ``chunk_size < 1``.
    """
    num_classes = _check_knn_args(
        train_feats, train_labels, test_feats, k, temperature, num_classes
    )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    bank = F.normalize(train_feats.float(), dim=1)  # [n_train, F]
    labels = train_labels.long().to(bank.device)
    k = min(k, bank.shape[0])
    out = []
    for start in range(0, test_feats.shape[0], chunk_size):
        query = F.normalize(test_feats[start : start + chunk_size].float().to(bank.device), dim=1)
        sim, idx = (query @ bank.T).topk(k, dim=1)  # [c, k]
        weights = (sim / temperature).exp()
        scores = torch.zeros(query.shape[0], num_classes, dtype=weights.dtype, device=bank.device)
        out.append(scores.scatter_add_(1, labels[idx], weights))
    return torch.cat(out)


def knn_top1(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    test_labels: Tensor,
    k: int = KNN_K,
    temperature: float = KNN_TEMPERATURE,
    num_classes: int | None = None,
    *,
    chunk_size: int = 1024,
) -> float:
    """Top-1 accuracy in ``[0, 1]`` of :func:`knn_predict` against ``test_labels [n_test]``.

    Arguments as in :func:`knn_predict` (k = 200, temperature 0.1 by default).

    Raises:
        ValueError: ``test_labels`` not ``[n_test]``, or any :func:`knn_predict` check.
    """
    if test_labels.dim() != 1 or test_labels.shape[0] != test_feats.shape[0]:
        raise ValueError(
            f"test_labels must be [{test_feats.shape[0]}] to match test_feats, "
            f"got {tuple(test_labels.shape)}"
        )
    scores = knn_predict(
        train_feats, train_labels, test_feats, k, temperature, num_classes, chunk_size=chunk_size
    )
    return (scores.argmax(dim=1).cpu() == test_labels.long().cpu()).float().mean().item()


def _check_knn_args(train_feats, train_labels, test_feats, k, temperature, num_classes) -> int:
    """Validate the kNN inputs; return the number of classes."""
    for name, t in (("train_feats", train_feats), ("test_feats", test_feats)):
        if not isinstance(t, Tensor) or t.dim() != 2 or t.shape[0] == 0:
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a non-empty [n, F] tensor, got {shape}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or inf")
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(
            f"train_feats and test_feats must have the same width, got "
            f"{train_feats.shape[1]} and {test_feats.shape[1]}"
        )
    if (
        not isinstance(train_labels, Tensor)
        or train_labels.shape != (train_feats.shape[0],)
        or train_labels.is_floating_point()
    ):
        raise ValueError(
            f"train_labels must be integer [{train_feats.shape[0]}], got "
            f"{tuple(getattr(train_labels, 'shape', ()))}"
        )
    check_int("k", k)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    lo, hi = int(train_labels.min()), int(train_labels.max())
    if num_classes is None:
        num_classes = hi + 1
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"train_labels must lie in [0, {num_classes}), saw [{lo}, {hi}]")
    return num_classes
