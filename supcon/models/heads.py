"""Projection heads (encoder representation r -> normalised z) and the stage-2 linear classifier."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_int
from ..config import HEAD_KINDS


class ProjectionHead(nn.Module):
    """``[N, in_dim] -> [N, out_dim]`` with unit-L2-norm rows.

    ``kind="mlp"``: Linear(in_dim, hidden_dim) -> [BatchNorm1d] -> ReLU -> Linear(hidden_dim,
    out_dim), with ``hidden_dim = in_dim`` by default (the paper's head). ``kind="linear"``: one
    Linear(in_dim, out_dim). The output is normalised because the loss compares directions only
    (dot products of unit vectors) and downstream code (gradient caching) expects unit rows.

    Args:
        in_dim: size of the encoder representation r.
        kind: ``"mlp"`` (default) or ``"linear"``.
        out_dim: size of z (128, the paper's).
        hidden_dim: hidden width of the mlp; None = ``in_dim``.
        batch_norm: put BatchNorm1d after the hidden layer (off by default, as in the reference
            code).

    Raises:
        ValueError: unknown ``kind``, or a dimension that is not an int >= 1.
    """

    def __init__(
        self,
        in_dim: int,
        kind: str = HEAD_KINDS[0],
        out_dim: int = 128,
        hidden_dim: int | None = None,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if kind not in HEAD_KINDS:
            raise ValueError(f"kind must be one of {HEAD_KINDS}, got {kind!r}")
        hidden_dim = in_dim if hidden_dim is None else hidden_dim
        for arg, value in (("in_dim", in_dim), ("out_dim", out_dim), ("hidden_dim", hidden_dim)):
            check_int(arg, value)
        self.kind, self.in_dim, self.out_dim = kind, in_dim, out_dim
        if kind == "linear":
            self.net = nn.Linear(in_dim, out_dim)
            return
        norm = [nn.BatchNorm1d(hidden_dim)] if batch_norm else []
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            *norm,
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, r: Tensor) -> Tensor:
        """``r [N, in_dim]`` -> unit-norm ``z [N, out_dim]``."""
        return F.normalize(self.net(r), dim=1)


class LinearClassifier(nn.Module):
    """Stage-2 classifier: one Linear layer, ``[N, in_dim] -> [N, num_classes]`` logits.

    Raises:
        ValueError: ``in_dim`` or ``num_classes`` is not an int >= 1.
    """

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        check_int("in_dim", in_dim)
        check_int("num_classes", num_classes)
        self.in_dim, self.num_classes = in_dim, num_classes
        self.fc = nn.Linear(in_dim, num_classes)

    def forward(self, r: Tensor) -> Tensor:
        """``r [N, in_dim]`` -> logits ``[N, num_classes]``."""
        return self.fc(r)


