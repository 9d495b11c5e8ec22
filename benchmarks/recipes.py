"""What does a longer main job buy? Test top-1 against wall time for the Fashion-MNIST recipe.

Runs `supcon train --config fashion-mnist` (the `make run` recipe) for each ``--epochs`` value,
one after the other on the whole machine, and reports wall time (the train job's own
``train_time_s``: pre-training, linear stage and evaluation, without Python start-up), test
and validation top-1. Run folders that already hold results are reused, so the 16-epoch point
can be the `make run` folder itself (``--reuse EPOCHS=FOLDER``). Writes a plot of top-1 against
minutes next to the table.

    python benchmarks/recipes.py --out /tmp/recipes --epochs 4,8 --reuse 16=runs/fashion-mnist-supcon
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from _results import run_header, write_section  # noqa: E402  (benchmarks/ on sys.path)

HEADING = "## Accuracy per minute of the main job (benchmarks/recipes.py)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder for the runs")
    p.add_argument("--epochs", default="4,8,16", help="comma-separated pre-training epochs")
    p.add_argument("--reuse", action="append", default=[], metavar="EPOCHS=FOLDER",
                   help="take this epoch count's result from a finished run folder")
    p.add_argument("--plot", type=Path, default=None, help="PNG of top-1 against minutes")
    p.add_argument("--write", type=Path, default=None, help="update this RESULTS.md section")
    return p.parse_args(argv)


def run(epochs: int, out: Path) -> dict:
    if not (out / "results.json").is_file():
        cmd = [sys.executable, "-m", "supcon.cli", "train", "--config", "fashion-mnist", "--method",
               "supcon", "--data", "fashion-mnist", "--out", str(out), "--epochs", str(epochs),
               "--no-progress"]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads((out / "results.json").read_text())


def table(rows: list[dict]) -> str:
    lines = ["| epochs | wall minutes | test top-1 (%) | val top-1 (%) |", "|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['epochs']} | {r['train_time_s'] / 60:.1f} | {r['test_top1']:.2f} | "
                     f"{r['val_top1']:.2f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    minutes = [r["train_time_s"] / 60 for r in rows]
    ax.plot(minutes, [r["test_top1"] for r in rows], "o-", label="test")
    ax.plot(minutes, [r["val_top1"] for r in rows], "s--", label="validation", alpha=0.7)
    for m, r in zip(minutes, rows, strict=True):
        ax.annotate(f"{r['epochs']} ep", (m, r["test_top1"]), textcoords="offset points",
                    xytext=(4, -12), fontsize=8)
    ax.set_xlabel("wall minutes on 2 CPU cores (train job)")
    ax.set_ylabel("linear top-1 (%)")
    ax.set_title("SupCon on Fashion-MNIST: what a longer job buys", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    started, load0 = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), os.getloadavg()[0]
    reused = dict(item.split("=", 1) for item in args.reuse)
    rows = []
    for epochs in sorted({int(e) for e in args.epochs.split(",")} | {int(e) for e in reused}):
        folder = Path(reused[str(epochs)]) if str(epochs) in reused else args.out / f"epochs-{epochs}"
        rows.append(run(epochs, folder))
    body = table(rows)
    print(body)
    if args.plot:
        plot(rows, args.plot)
    if args.write:
        header = run_header("recipes.py", argv, "cpu", os.cpu_count() or 1, started,
                            [load0, os.getloadavg()[0]])
        figure = f"\n\n![test top-1 against minutes]({os.path.relpath(args.plot, args.write.parent)})" \
            if args.plot else ""
        write_section(args.write, HEADING, f"{HEADING}\n\n{header} Recipe: `--config fashion-mnist` "
                      f"(small-resnet-s2, batch 256 x 2 views, lr 0.1, crop 0.4-1), only the epochs "
                      f"vary; wall minutes are the train job's `train_time_s`.\n\n{body}{figure}\n")


if __name__ == "__main__":
    main()
