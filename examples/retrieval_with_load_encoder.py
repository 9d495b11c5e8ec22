"""Image retrieval with a trained encoder: `supcon.load_encoder(run)` + cosine nearest neighbours.

What it shows: how to use an encoder that `supcon train` exported (encoder.safetensors +
encoder.json) outside the training code. The run's own data set is split exactly as the run split
it (its config.yaml: data name, val fraction, seed), the gallery is the training split, the queries
are the test split, and both are embedded with the evaluation transform (resize/centre-crop +
the encoder's training mean/std, from encoder.json). For each query the k most cosine-similar
gallery images are retrieved; precision@1 is the share of queries whose nearest neighbour has the
query's label, precision@k the share of the k neighbours that do (chance: about 1/classes).

Run (seconds), on any finished run folder, e.g. one made by train_on_image_folder.py:
    python examples/retrieval_with_load_encoder.py --run runs/image-folder-example [--k 5]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

import supcon
from supcon.config import load_config
from supcon.data import AugmentedDataset, build_loader, build_transform, load_dataset
from supcon.eval.knn import extract_features


def embed_splits(run: Path, encoder: torch.nn.Module, data_dir: str | None) -> tuple[dict, tuple[str, ...]]:
    """``{"gallery": (feats [n, F], labels [n]), "queries": (...)}`` and the class names."""
    cfg = load_config(run / "config.yaml")
    splits = load_dataset(cfg.data.name, data_dir=data_dir or cfg.data.data_dir,
                          val_fraction=cfg.data.val_fraction, seed=cfg.train.seed, strict=cfg.data.strict)
    meta = encoder.supcon_meta  # what the encoder was trained on: size and normalisation
    info = dataclasses.replace(splits.info, image_size=meta["image_size"],
                               mean=tuple(meta["mean"]), std=tuple(meta["std"]))
    transform = build_transform("none", info, train=False)  # no augmentation
    banks = {}
    for name, split in (("gallery", splits.train), ("queries", splits.test)):
        loader = build_loader(AugmentedDataset(split, transform, seed=0), batch_size=256,
                              shuffle=False, drop_last=False, num_workers=0)
        banks[name] = extract_features(encoder, loader)
    return banks, info.class_names


def retrieve(gallery: Tensor, queries: Tensor, k: int) -> Tensor:
    """Indices ``[Q, k]`` of each query's k most cosine-similar gallery rows, best first."""
    sims = F.normalize(queries, dim=1) @ F.normalize(gallery, dim=1).T  # [Q, G]
    return sims.topk(k, dim=1).indices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="run folder of a finished `supcon train`")
    parser.add_argument("--k", type=int, default=5, help="neighbours per query for precision@k")
    parser.add_argument("--show", type=int, default=5, help="example queries to print")
    parser.add_argument("--data-dir", default=None, help="where the run's data set's files are, if moved")
    args = parser.parse_args()

    encoder = supcon.load_encoder(args.run)  # eval mode, [B, C, H, W] -> [B, F]
    banks, names = embed_splits(args.run, encoder, args.data_dir)
    (gallery, gallery_y), (queries, query_y) = banks["gallery"], banks["queries"]
    k = min(args.k, len(gallery_y))
    neighbours = gallery_y[retrieve(gallery, queries, k)]  # [Q, k] labels, nearest first
    hits = neighbours == query_y[:, None]

    print(f"{len(query_y)} test queries against {len(gallery_y)} training images, "
          f"{encoder.num_features}-d features, {len(names)} classes (chance ~ {1 / len(names):.3f})")
    print(f"precision@1 {hits[:, 0].float().mean().item():.4f}")
    print(f"precision@{k} {hits.float().mean().item():.4f}")
    print("examples: query (its label) -> labels of its neighbours, nearest first")
    for i in torch.linspace(0, len(query_y) - 1, args.show).long().unique().tolist():  # spread out
        row = " ".join(names[j] for j in neighbours[i].tolist())
        print(f"  test image {i} ({names[query_y[i]]}) -> {row}")


if __name__ == "__main__":
    main()
