"""Does the input pipeline keep up with the model? Images/s of both, measured in one run.

Pipeline: ``load_dataset`` -> ``AugmentedDataset(MultiView(policy, V))`` -> ``build_loader``,
timed in steady state (after worker start-up and the prefetched batches) for each worker count.
Model: one full SGD training step of ``create_encoder(encoder, in_channels=C)`` +
``ProjectionHead`` + ``supcon_loss`` on a ``[B, V, C, S, S]`` batch. End to end: the loader
feeding that training step. Every figure is the median over ``--repeats`` runs.

    python benchmarks/data.py                      # Fashion-MNIST, simaugment, B=256, V=2
    python benchmarks/data.py --write benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from _results import write_section  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from supcon.data import AugmentedDataset, MultiView, build_loader, build_transform, load_dataset
from supcon.losses import supcon_loss

HEADING = "## Data pipeline (benchmarks/data.py)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--download", action="store_true", help="let torchvision download the set")
    p.add_argument("--policy", default="simaugment")
    p.add_argument("--views", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", default="0,1,2", help="comma-separated DataLoader worker counts")
    p.add_argument("--batches", type=int, default=20, help="timed batches per pipeline run")
    p.add_argument("--model-steps", type=int, default=4, help="timed training steps per run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--encoder", default="small-resnet")
    p.add_argument("--e2e-workers", type=int, default=1, help="workers for the end-to-end row")
    p.add_argument(
        "--model-threads",
        default=str(torch.get_num_threads()),
        help="comma-separated torch thread counts for the model step (end to end uses the fastest)",
    )
    p.add_argument("--write", type=Path, default=None, help="update this RESULTS.md section")
    return p.parse_args(argv)


def pipeline_rate(dataset, args, workers: int) -> list[float]:
    """Images/s of the loader alone, one figure per repeat (a new epoch each)."""
    loader = build_loader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        seed=0,
        num_workers=workers,
    )
    skip = 1 + 2 * workers  # start-up + batches the workers prefetched while we waited
    rates = []
    for rep in range(args.repeats):
        loader.set_epoch(rep)
        it = iter(loader)
        for _ in range(skip):
            next(it)
        start = time.perf_counter()
        for _ in range(args.batches):
            next(it)
        rates.append(args.batches * args.batch_size / (time.perf_counter() - start))
        del it
    return rates


def build_model(args, channels: int):
    from supcon.models import ProjectionHead, create_encoder

    encoder = create_encoder(args.encoder, in_channels=channels)
    head = ProjectionHead(encoder.num_features)
    model = torch.nn.Sequential(encoder, head)
    return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)


def train_step(model, opt, images: torch.Tensor, labels: torch.Tensor) -> None:
    b, v = images.shape[:2]
    z = model(images.flatten(0, 1)).view(b, v, -1)  # views of a sample stay together
    loss = supcon_loss(z, labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def model_rate(args, batch) -> list[float]:
    """Images/s of the training step alone (median step time of each repeat)."""
    model, opt = build_model(args, batch[0].shape[2])
    for _ in range(2):
        train_step(model, opt, *batch)
    rates = []
    for _ in range(args.repeats):
        times = []
        for _ in range(args.model_steps):
            start = time.perf_counter()
            train_step(model, opt, *batch)
            times.append(time.perf_counter() - start)
        rates.append(args.batch_size / statistics.median(times))
    return rates


def end_to_end_rate(dataset, args) -> list[float]:
    """Images/s of the loader feeding the training step."""
    loader = build_loader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        seed=0,
        num_workers=args.e2e_workers,
    )
    model, opt = build_model(args, dataset.base[0][0].shape[0])
    rates = []
    for rep in range(args.repeats):
        loader.set_epoch(rep)
        it = iter(loader)
        train_step(model, opt, *next(it))  # warm-up (worker start)
        start = time.perf_counter()
        for _ in range(args.model_steps):
            train_step(model, opt, *next(it))
        rates.append(args.model_steps * args.batch_size / (time.perf_counter() - start))
        del it
    return rates


def run(args) -> list[tuple[str, str, float]]:
    splits = load_dataset(args.data, data_dir=args.data_dir, download=args.download)
    transform = MultiView(build_transform(args.policy, splits.info), args.views)
    dataset = AugmentedDataset(splits.train, transform, seed=0)
    rows = []
    for w in (int(x) for x in args.workers.split(",")):
        where = f"main process, {torch.get_num_threads()} threads" if w == 0 else "1 thread each"
        rate = statistics.median(pipeline_rate(dataset, args, w))
        rows.append(("pipeline", f"{w} workers ({where})", rate))
    batch = next(iter(build_loader(dataset, batch_size=args.batch_size, shuffle=True, seed=0)))
    model_rows = []
    for threads in (int(x) for x in args.model_threads.split(",")):
        torch.set_num_threads(threads)
        rate = statistics.median(model_rate(args, batch))
        model_rows.append((f"model step ({args.encoder})", f"{threads} threads", rate))
    best = max(model_rows, key=lambda r: r[2])
    torch.set_num_threads(int(best[1].split()[0]))
    e2e = statistics.median(end_to_end_rate(dataset, args))
    rows += model_rows
    rows.append(("end to end", f"{args.e2e_workers} workers, model {best[1]}", e2e))
    return rows


def table(rows, model: float) -> str:
    lines = ["| measurement | setting | images/s (median) | x fastest model step |"]
    lines.append("|---|---|---:|---:|")
    lines += [
        f"| {name} | {setting} | {rate:,.0f} | {rate / model:.1f} |" for name, setting, rate in rows
    ]
    return "\n".join(lines)


def verdict(rows) -> str:
    """One line: is the slowest pipeline setting at least 2x the fastest model step?"""
    model = max(rate for name, _, rate in rows if name.startswith("model"))
    worst = min(rate for name, _, rate in rows if name == "pipeline") / model
    met = "met" if worst >= 2 else "NOT met"
    return (
        f"Target (pipeline >= 2x what the fastest model step consumes): {met} by every worker "
        f"setting measured (lowest: {worst:.1f}x)."
    )


def section(args, body: str, argv: list[str], verdict_line: str) -> str:
    load = os.getloadavg()
    cpu = platform.processor() or platform.machine()
    return "\n".join(
        [
            HEADING,
            "",
            f"Command: `python benchmarks/data.py {' '.join(argv)}`".replace("  ", " "),
            "",
            f"Set-up: {args.data}, policy `{args.policy}`, {args.views} views, batch "
            f"{args.batch_size}, training split in memory as uint8; torch {torch.__version__}, "
            f"{os.cpu_count()} CPU cores, {cpu}, no GPU. Images/s counts source images (each gives "
            f"{args.views} views); medians of {args.repeats} runs.",
            "",
            body,
            "",
            verdict_line,
            "",
            "The machine was shared with other busy engineers while this ran (load average "
            f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores at the end); "
            "the figures are as measured, not best cases.",
            "",
        ]
    )



def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    rows = run(args)
    model = max(rate for name, _, rate in rows if name.startswith("model"))  # the hungriest
    body = table(rows, model)
    print(body)
    print(verdict(rows))
    if args.write:
        write_section(args.write, HEADING, section(args, body, argv, verdict(rows)))


if __name__ == "__main__":
    main()
