"""Hierarchical labels as multi-hot targets: Fashion-MNIST's 10 classes plus 4 coarse groups.

What it shows: `supcon_loss` with `[B, C]` multi-hot labels. Every image gets two labels, its
fine class and its coarse group (tops: T-shirt, pullover, coat, shirt; bottoms and dresses:
trouser, dress; footwear: sandal, sneaker, ankle boot; bags: bag), so `labels` is `[B, 14]`.
With `label_overlap="jaccard"` two images of the same class are positives with weight 1, two of
the same group but different classes with weight 1/3 (one shared label of three), and images of
other groups are negatives. The same small conv net is trained twice from the same start, once
with the fine labels alone and once with the hierarchy, and each encoder is scored by cosine
1-nearest-neighbour accuracy on held-out images at both levels, and by the share of its
fine-level mistakes that stay inside the right group.

Needs Fashion-MNIST on disk (Debian: `apt-get install dataset-fashion-mnist`; or where
`supcon --data fashion-mnist` looks, see docs/data.md); `--download` lets torchvision fetch it.

Run (about a minute on one CPU core with the defaults):
    python examples/hierarchical_labels.py [--train-size 4000] [--epochs 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import copy
import sys

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supcon.data import DataError, load_dataset
from supcon.losses import supcon_loss

GROUPS = {"tops": (0, 2, 4, 6), "bottoms and dresses": (1, 3), "footwear": (5, 7, 9), "bags": (8,)}
COARSE = torch.empty(10, dtype=torch.long)
for _group, (_name, _members) in enumerate(GROUPS.items()):
    COARSE[list(_members)] = _group


def hierarchy(fine: Tensor) -> Tensor:
    """``[B]`` classes -> ``[B, 10 + 4]`` multi-hot: the class, then its coarse group."""
    return torch.cat([F.one_hot(fine, 10), F.one_hot(COARSE[fine], len(GROUPS))], dim=1)


def make_encoder() -> nn.Module:
    """``[B, 1, 28, 28] -> [B, 64]``."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, stride=2), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten())


def augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """A random shift of up to 2 pixels, a random horizontal flip and a little noise."""
    b = x.shape[0]
    padded = F.pad(x, (2, 2, 2, 2))
    dy, dx = (torch.randint(0, 5, (b,), generator=gen) for _ in range(2))
    rows = (dy[:, None] + torch.arange(28))[:, :, None]
    cols = (dx[:, None] + torch.arange(28))[:, None, :]
    out = padded[torch.arange(b)[:, None, None], 0, rows, cols][:, None]
    flip = torch.rand(b, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out + 0.05 * torch.randn(out.shape, generator=gen)


def train(encoder: nn.Module, x: Tensor, fine: Tensor, *, hierarchical: bool, epochs: int, seed: int) -> list[float]:
    """SupCon on two views per image, with fine labels or the fine + coarse multi-hot labels."""
    gen = torch.Generator().manual_seed(seed)
    head = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))
    optimizer = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=3e-3, weight_decay=1e-4)
    losses = []
    encoder.train()
    for _ in range(epochs):
        order, total, batches = torch.randperm(len(x), generator=gen), 0.0, 0
        for idx in order.split(256):
            views = torch.cat([augment(x[idx], gen), augment(x[idx], gen)])
            z = torch.stack(head(encoder(views)).chunk(2), dim=1)  # [B, 2, 32]
            if hierarchical:
                loss = supcon_loss(z, hierarchy(fine[idx]), label_overlap="jaccard")
            else:
                loss = supcon_loss(z, fine[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
        losses.append(total / batches)
    return losses


@torch.no_grad()
def scores(encoder: nn.Module, gallery: Tensor, gallery_y: Tensor, queries: Tensor, query_y: Tensor) -> dict:
    """Cosine 1-NN accuracy at both levels, and the share of fine mistakes within the group."""
    encoder.eval()
    sims = F.normalize(encoder(queries), dim=1) @ F.normalize(encoder(gallery), dim=1).T
    found = gallery_y[sims.argmax(dim=1)]
    wrong = found != query_y
    return {"fine": (~wrong).float().mean().item(),
            "coarse": (COARSE[found] == COARSE[query_y]).float().mean().item(),
            "mistakes in group": (COARSE[found] == COARSE[query_y])[wrong].float().mean().item()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=4000, help="training images (default 4000)")
    parser.add_argument("--test-size", type=int, default=2000, help="held-out queries (default 2000)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--download", action="store_true", help="let torchvision download Fashion-MNIST")
    args = parser.parse_args()
    try:
        splits = load_dataset("fashion-mnist", val_fraction=0.0, download=args.download)
    except DataError as err:
        sys.exit(f"error: {err}")
    gen = torch.Generator().manual_seed(args.seed)
    pick = torch.randperm(len(splits.train), generator=gen)[: args.train_size]
    held = torch.randperm(len(splits.test), generator=gen)[: args.test_size]
    x, fine = splits.train.images[pick].float() / 255, splits.train.labels[pick]
    x_te, fine_te = splits.test.images[held].float() / 255, splits.test.labels[held]

    torch.manual_seed(args.seed)
    start = make_encoder()
    results = {}
    for name, hierarchical in (("fine labels", False), ("fine + coarse", True)):
        encoder = copy.deepcopy(start)
        losses = train(encoder, x, fine, hierarchical=hierarchical, epochs=args.epochs, seed=args.seed)
        print(f"{name:<14} SupCon loss by epoch: {' '.join(f'{v:.3f}' for v in losses)}")
        results[name] = scores(encoder, x, fine, x_te, fine_te)
    results["random weights"] = scores(start, x, fine, x_te, fine_te)
    print(f"\n1-NN on {len(fine_te)} test images ({len(fine)} in the gallery):")
    print(f"  {'labels':<16} {'fine top-1':>10} {'coarse top-1':>13} {'mistakes in group':>18}")
    for name, s in results.items():
        print(f"  {name:<16} {100 * s['fine']:>9.1f}% {100 * s['coarse']:>12.1f}% "
              f"{100 * s['mistakes in group']:>17.1f}%")


if __name__ == "__main__":
    main()
