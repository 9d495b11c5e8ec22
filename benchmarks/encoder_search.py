"""Which encoder buys the most SupCon accuracy per CPU-minute? Candidates under one CPU budget.

Every candidate is a ``small-resnet`` variant (width, depth, where to downsample, stem stride,
norm). For each: (1) its training-step rate in CPU-seconds (one torch thread, channels-last, a
fresh process: the figure does not depend on what else the machine runs); (2) SupCon
pre-training for the number of epochs that this rate fits into ``--budget-cpu-s``, through the
real train job (`supcon train`, one torch thread), then the linear stage; (3) the linear
classifier's top-1 on the **validation** split (the selection criterion; the test split is not
shown). Candidates run ``--parallel`` at a time, one thread each.

    python benchmarks/encoder_search.py --out /tmp/encoder-search
    python benchmarks/encoder_search.py --out /tmp/encoder-search --write benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from _results import run_header, run_worker, write_section  # noqa: E402  (benchmarks/ on sys.path)

from supcon.config import load_config

HEADING = "## Encoder search (benchmarks/encoder_search.py)"
S2 = {"stem_stride": 2, "strides": [1, 2, 2]}
CANDIDATES: dict[str, dict] = {
    "small-resnet (stem stride 1)": {},
    "stem stride 2": S2,
    "stem stride 2, 48-96-192": {**S2, "widths": [48, 96, 192]},
    "stem stride 2, 64-128-256": {**S2, "widths": [64, 128, 256]},
    "stem stride 2, 2 blocks/stage": {**S2, "blocks": [2, 2, 2]},
    "stem stride 2, downsample late (1,1,2)": {**S2, "strides": [1, 1, 2]},
    "stem stride 2, group norm": {**S2, "norm": "group"},
}
TRAIN_IMAGES = 54_000  # Fashion-MNIST training split after the 10% validation hold-out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder for the candidates' runs")
    p.add_argument("--budget-cpu-s", type=float, default=240.0,
                   help="pre-training budget of every candidate, in one-thread CPU seconds")
    p.add_argument("--only", default=None, help="comma-separated candidate numbers (from 1)")
    p.add_argument("--parallel", type=int, default=2, help="candidates trained at the same time")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--rate-steps", type=int, default=6, help="timed steps for the CPU rate")
    p.add_argument("--write", type=Path, default=None, help="update this RESULTS.md section")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def cpu_rate(options: dict, batch: int, steps: int) -> dict:
    """Worker: source images per CPU-second of one SupCon step (2 views, channels-last)."""
    import statistics

    import torch

    from supcon.methods import create_method
    from supcon.models import create_encoder

    torch.manual_seed(0)
    method = create_method("supcon", temperature=0.1, head="mlp", feat_dim=128)
    model = method.build_model(create_encoder("small-resnet", in_channels=1, **options), 10)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = torch.randn(batch, 2, 1, 28, 28), torch.randint(0, 10, (batch,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        method(model, x, y)["loss"].backward()
        opt.step()

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        start = time.process_time()
        step()
        times.append(time.process_time() - start)
    params = sum(p.numel() for p in model.encoder.parameters())
    return {"img_per_cpu_s": batch / statistics.median(times), "params": params}


def train(name: str, options: dict, epochs: int, args) -> dict:
    """One candidate through `supcon train`, one thread: its validation top-1."""
    out = _folder(args, name)
    if not (out / "results.json").is_file():
        cmd = [sys.executable, "-m", "supcon.cli", "train", "--method", "supcon", "--data",
               "fashion-mnist", "--out", str(out), "--epochs", str(epochs), "--batch-size",
               str(args.batch_size), "--no-progress", f"model.encoder_options={json.dumps(options)}",
               "train.online_probe=false", f"optim.warmup_epochs={0.1 * epochs:g}"]
        if (out / "checkpoint.pt").is_file():  # interrupted: continue it exactly
            cmd.append("--resume")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            return {"error": proc.stderr.strip().splitlines()[-1]}
    results = json.loads((out / "results.json").read_text())
    return {"val_top1": results["val_top1"], "wall_s": results["train_time_s"]}


def _folder(args, name: str) -> Path:
    return args.out / name.replace(" ", "_").replace("/", "-").replace(",", "").replace("(", "").replace(")", "")


def run(args) -> list[dict]:
    chosen = list(CANDIDATES.items())
    if args.only:
        chosen = [chosen[int(i) - 1] for i in args.only.split(",")]
    rows = []
    for name, options in chosen:
        rate = run_worker(__file__, ["--options", json.dumps(options), "--batch-size",
                                     str(args.batch_size), "--rate-steps", str(args.rate_steps),
                                     "--out", "-"], 1, name=name)
        epochs = max(1, round(args.budget_cpu_s * rate["img_per_cpu_s"] / TRAIN_IMAGES))
        started = _folder(args, name) / "config.yaml"
        if started.is_file():  # trained or interrupted before: keep its length
            epochs = load_config(started).train.epochs
        rows.append({"name": name, "options": options, **rate, "epochs": epochs})
    with ThreadPoolExecutor(args.parallel) as pool:
        done = pool.map(lambda r: train(r["name"], r["options"], r["epochs"], args), rows)
        for row, result in zip(rows, done, strict=True):
            row.update(result)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| # | candidate | encoder params | img / CPU-s (1 thread) | epochs in budget | "
             "pre-train CPU-min used | val top-1 (%) |", "|---|---|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(rows, 1):
        if "error" in r:
            lines.append(f"| {i} | {r['name']} | | | | | {r['error']} |")
            continue
        lines.append(f"| {i} | {r['name']} | {r['params'] / 1e6:.2f}M | {r['img_per_cpu_s']:,.0f} | "
                     f"{r['epochs']} | {r['epochs'] * TRAIN_IMAGES / r['img_per_cpu_s'] / 60:.1f} | "
                     f"{r['val_top1']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(cpu_rate(json.loads(args.options), args.batch_size, args.rate_steps)))
        return
    started, load0 = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), os.getloadavg()[0]
    rows = run(args)
    body = table(rows)
    print(body)
    if args.write:
        header = run_header("encoder_search.py", argv, "cpu", 1, started, [load0, os.getloadavg()[0]])
        text = (f"{HEADING}\n\n{header} SupCon (simaugment, batch {args.batch_size} x 2 views, "
                f"SGD lr 0.05, tau 0.1, warm-up 10% of the epochs, cosine), then the 20-epoch linear "
                f"stage; budget {args.budget_cpu_s / 60:.1f} one-thread CPU-minutes of pre-training "
                "per candidate, rounded to whole epochs. Options are those of `small-resnet`; "
                "\"stem stride 2\" is `stem_stride: 2, strides: [1, 2, 2]` (28 -> 14 -> 14 -> 7 -> 4). "
                "Selection on the validation split only.\n\n" + body + "\n")
        write_section(args.write, HEADING, text)


if __name__ == "__main__":
    main()
