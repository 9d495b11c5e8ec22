"""Few-shot text classification: fine-tune a pretrained sentence encoder with SupCon on a few
labelled texts per class, then classify texts with the saved encoder and classifier.

What it shows: text data as a folder of ``train.csv`` / ``test.csv`` (columns ``text,label``; one
file works too, its test split carved), ``supcon.train(encoder="transformers:<folder>", ...)`` on
``(text, label)`` items (two dropout views of each text are SupCon's positives, with every other
text of its class), and ``supcon.load_encoder(run)``, which maps a list of strings to vectors
without the original model folder (the run folder holds the tokenizer and the weights).

The model folder is a Hugging Face model saved with ``save_pretrained`` or a sentence-transformers
folder, e.g. all-MiniLM-L6-v2; nothing is downloaded. Run (minutes on a CPU with MiniLM):
    python examples/text_fewshot.py --model ~/models/all-MiniLM-L6-v2 --data my_texts/ --shots 8 \\
        --out runs/text-fewshot
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch

import supcon
from supcon.data import load_dataset
from supcon.run_folder import load_classifier


def few_shot(texts: list[str], labels: list[int], shots: int, seed: int) -> list[tuple[str, int]]:
    """``shots`` (text, label) items per class, drawn with ``seed``."""
    rng = random.Random(seed)
    chosen = []
    for c in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == c]
        chosen += rng.sample(members, min(shots, len(members)))
    return [(texts[i], labels[i]) for i in sorted(chosen)]


def main(argv: list[str] | None = None) -> int:
    """Fine-tune, report the test accuracy, reload the encoder and classify the test texts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="a local transformers / sentence-transformers folder")
    parser.add_argument("--data", required=True, type=Path, help="a folder with train.csv (+ test.csv) or one CSV")
    parser.add_argument("--out", type=Path, default=Path("runs/text-fewshot"))
    parser.add_argument("--shots", type=int, default=8, help="labelled texts per class")
    parser.add_argument("--method", default="supcon", choices=("supcon", "ce", "ce+supcon"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate of the encoder")
    parser.add_argument("--head-lr-scale", type=float, default=100.0,
                        help="the new heads' lr as a multiple of --lr (a new classifier needs far more than the encoder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    splits = load_dataset(args.data, val_fraction=0.1, seed=args.seed)  # texts, as a folder of images would be
    names = splits.info.class_names
    train = few_shot(splits.train.texts, splits.train.labels.tolist(), args.shots, args.seed)
    val = list(zip(splits.val.texts, splits.val.labels.tolist(), strict=True))
    test = list(zip(splits.test.texts, splits.test.labels.tolist(), strict=True))
    print(f"{len(train)} training texts ({args.shots} per class of {len(names)}), {len(test)} test texts")
    results = supcon.train(encoder=f"transformers:{args.model.expanduser()}", train_set=train, val_set=val,
                           test_set=test, method=args.method, out=args.out, epochs=args.epochs, lr=args.lr,
                           seed=args.seed, batch_size=16, progress=False,
                           **{"optim.name": "adamw", "optim.weight_decay": 0.01, "data.num_workers": 0,
                              "optim.head_lr_scale": args.head_lr_scale,
                              "model.encoder_options": {"max_length": 128}, "linear.epochs": 30})
    print(f"{args.method}: test accuracy {results['test_top1']:.2f}% (train {results['train_time_s']:.0f} s)")

    # The run folder alone rebuilds the encoder (tokenizer included); its classifier is a linear layer.
    encoder = supcon.load_encoder(args.out)
    classifier = load_classifier(args.out, encoder.num_features)
    with torch.no_grad():
        predicted = torch.cat([classifier(encoder([t for t, _ in test[i:i + 64]])).argmax(1)
                               for i in range(0, len(test), 64)])
    truth = torch.tensor([y for _, y in test])
    print(f"reloaded encoder + classifier: test accuracy {100 * (predicted == truth).float().mean():.2f}%")
    for (text, label), guess in list(zip(test, predicted.tolist(), strict=True))[:3]:
        print(f"  {text[:60]!r} -> {names[guess]} (true: {names[label]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
