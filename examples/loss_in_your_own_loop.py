"""The SupCon loss in your own PyTorch training loop: no supcon trainer, model or data code.

What it shows: `supcon.losses.supcon_loss` dropped into a plain loop. A small conv net (defined
here) embeds two augmented views of every image (random shifts + noise, plain torch ops) of
scikit-learn's bundled 8x8 `digits` (no download); the loss pulls views of the same class together.
Afterwards the encoder's features (the head is dropped, as in the paper) are scored by 1-nearest-
neighbour (cosine) accuracy on a held-out split, next to the same network with its random starting
weights, so you can see what training added. Raw-pixel 1-NN is printed for scale: digits is easy.

Run (about 10-20 s on one CPU core):
    python examples/loss_in_your_own_loop.py [--epochs 8] [--seed 0]
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor, nn

from supcon.losses import supcon_loss


def make_encoder() -> nn.Module:
    """``[B, 1, 8, 8] -> [B, 64]`` representations; global average pooling keeps no pixel positions."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 64, 3, padding=1, stride=2), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten())


def augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """A random shift of up to 1 pixel (pad + crop) and Gaussian noise: ``[B, 1, 8, 8]`` -> same."""
    b = x.shape[0]
    padded = F.pad(x, (1, 1, 1, 1))
    dy, dx = (torch.randint(0, 3, (b,), generator=gen) for _ in range(2))
    rows = (dy[:, None] + torch.arange(8))[:, :, None]  # [B, 8, 1]
    cols = (dx[:, None] + torch.arange(8))[:, None, :]  # [B, 1, 8]
    shifted = padded[torch.arange(b)[:, None, None], 0, rows, cols][:, None]
    return shifted + 0.1 * torch.randn(shifted.shape, generator=gen)


@torch.no_grad()
def nn1_accuracy(train: Tensor, train_y: Tensor, test: Tensor, test_y: Tensor) -> float:
    """Share of test rows whose most cosine-similar train row has the same label."""
    sims = F.normalize(test.flatten(1), dim=1) @ F.normalize(train.flatten(1), dim=1).T
    return (train_y[sims.argmax(dim=1)] == test_y).float().mean().item()


def train(encoder: nn.Module, head: nn.Module, x: Tensor, y: Tensor, epochs: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    params = [*encoder.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=3e-3, weight_decay=1e-4)
    encoder.train()
    for epoch in range(epochs):
        order, total = torch.randperm(len(x), generator=gen), 0.0
        batches = order.split(128)
        for idx in batches:
            views = torch.cat([augment(x[idx], gen), augment(x[idx], gen)])  # [2B, 1, 8, 8]
            z = head(encoder(views))                                        # [2B, D]
            z = torch.stack(z.chunk(2), dim=1)                              # [B, 2, D]
            loss = supcon_loss(z, y[idx], temperature=0.1)  # normalises z itself
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        print(f"epoch {epoch + 1}/{epochs}  SupCon loss {total / len(batches):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32)[:, None]  # [1797, 1, 8, 8] in [0, 1]
    y = torch.tensor(digits.target)
    tr, te = train_test_split(range(len(y)), test_size=0.25, stratify=y, random_state=args.seed)
    x_tr, y_tr, x_te, y_te = x[tr], y[tr], x[te], y[te]

    encoder = make_encoder()
    head = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))  # projection head
    untrained = copy.deepcopy(encoder)
    train(encoder, head, x_tr, y_tr, args.epochs, args.seed)

    with torch.no_grad():  # the head is dropped: score the encoder's representations
        scores = {name: nn1_accuracy(f(x_tr), y_tr, f(x_te), y_te) for name, f in (
            ("raw pixels", nn.Identity()), ("random-weight encoder", untrained.eval()),
            ("trained encoder", encoder.eval()))}
    print(f"1-NN test accuracy ({len(y_te)} held-out images, {len(y_tr)} in the gallery):")
    for name, acc in scores.items():
        print(f"  {name:<22} {100 * acc:.1f}%")


if __name__ == "__main__":
    main()
