"""Train SupCon on your own folder of images with the `supcon train` command line.

What it shows: the folder layout `supcon train --data PATH` reads, and a tiny end-to-end run on it
(contrastive pre-training, then a linear classifier on the frozen encoder), ending with the
headline of the run's results.json. The layout is torchvision's ImageFolder:

    PATH/<class name>/*.png|jpg|...       (a test split is carved off, 20%, stratified), or
    PATH/train/<class>/... + PATH/test/<class>/...

Grey images stay 1-channel; images are resized (shorter side, then centre crop) to the folder's
median shorter side, at most 224 px. 10% of the training images are held out for validation.
Without --images, a demo folder of scikit-learn's digits (1797 PNGs, 32x32, classes 0-9) is
written first (next to --out, kept so that `supcon eval` and the retrieval example can read the
run's data later), so the example runs anywhere without a download.

Run (about a minute on one CPU core with the defaults):
    python examples/train_on_image_folder.py --out runs/folder-demo
    python examples/train_on_image_folder.py --images ~/my_images --out runs/mine --epochs 20
Extra `key=value` config overrides are passed on to `supcon train` (they win over the defaults
here), e.g. `optim.lr=0.1`; `model.encoder_options={}` brings back the full-size encoder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

# A very small CPU encoder so the demo takes seconds per epoch; drop it for real data.
TINY_ENCODER = "model.encoder_options={widths: [16, 32], blocks: [1, 1], strides: [2, 2]}"


def write_demo_folder(root: Path) -> Path:
    """Write scikit-learn's digits as ``root/<digit>/<index>.png`` (8x8 upscaled 4x, grey)."""
    if any(root.glob("*/*.png")):
        print(f"using the demo ImageFolder already in {root}")
        return root
    digits = load_digits()
    pixels = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    for index, (image, label) in enumerate(zip(pixels, digits.target, strict=True)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        big = image.repeat(4, axis=0).repeat(4, axis=1)  # 32x32, exact (nearest neighbour)
        Image.fromarray(big, mode="L").save(folder / f"{index:04d}.png")
    print(f"wrote a demo ImageFolder of digits to {root}")
    return root


def train_command(args: argparse.Namespace, images: Path) -> list[str]:
    return [
        sys.executable, "-m", "supcon.cli", "train",
        "--method", args.method, "--data", str(images), "--out", str(args.out),
        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
        "--seed", str(args.seed), "--no-progress",
        "data.num_workers=0", TINY_ENCODER, f"linear.epochs={args.linear_epochs}",
        *args.overrides,
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, help="your ImageFolder; default: a demo folder of digits")
    parser.add_argument("--demo-dir", type=Path,
                        help="where to write the demo folder (default: digits-imagefolder beside --out)")
    parser.add_argument("--out", type=Path, default=Path("runs/image-folder-example"),
                        help="run folder to create (must not hold a finished run)")
    parser.add_argument("--method", default="supcon", choices=("supcon", "simclr", "ce"))
    parser.add_argument("--epochs", type=int, default=3, help="pre-training epochs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--linear-epochs", type=int, default=5, help="epochs of the linear stage")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="more `supcon train` overrides")
    args = parser.parse_args()

    images = args.images
    if images is None:
        images = write_demo_folder(args.demo_dir or args.out.parent / "digits-imagefolder")
    cmd = train_command(args, images.expanduser().resolve())  # absolute: eval works from anywhere
    print("running:", " ".join(cmd[1:]), flush=True)
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # its log goes to stderr
    if done.returncode != 0:
        return done.returncode  # `supcon train` has already said why on stderr
    results = json.loads((args.out / "results.json").read_text())
    print("\nheadline of", args.out / "results.json")
    for key in ("method", "data", "epochs", "test_top1", "val_top1", "train_time_s"):
        if key in results:
            print(f"  {key:<13} {results[key]}")
    print(f"next: python examples/retrieval_with_load_encoder.py --run {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
