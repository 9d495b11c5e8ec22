"""Training-step memory and speed with and without gradient caching (micro-batches).

For each batch size B (images; 2 views each, so 2B views) and each mode (one pass over the batch,
or micro-batches of ``--micro`` images via ``train.micro_batch_size``), one fresh subprocess
builds the default CPU encoder (``small-resnet``, Fashion-MNIST sized 1 x 28 x 28 random inputs,
10 classes) with the SupCon method and SGD, warms up on a batch of 16, then runs training steps
through the project's own loop (``supcon.engine.loop.train_loop``).

What is measured:
  peak MB   the kernel's high-water mark of resident memory (``VmHWM``, reset through
            ``/proc/self/clear_refs`` just before) during the first full-size step, minus the
            resident memory just before it. The model, the optimizer and the step's input batch
            already exist then, so this is the memory the step itself needs: activations,
            gradients, the optimizer's momentum buffers (made on that step), loss, allocator
            slack. Without clear_refs, the process's lifetime high-water mark is used instead.
            On CUDA: ``torch.cuda.max_memory_allocated`` above the memory in use before.
  img/s     B / the median wall time of ``--repeats`` further steps (forward, loss, backward,
            SGD update; with micro-batches: the no-grad pass, loss, and the replayed passes).

    python benchmarks/memory.py                                  # B = 256 ... 4096
    python benchmarks/memory.py --batches 256 512 --repeats 1    # a quick check
    python benchmarks/memory.py --write benchmarks/RESULTS.md    # also update that section
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from itertools import pairwise
from pathlib import Path

from _results import run_header, run_worker, write_section  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

HEADING = "## Memory (benchmarks/memory.py)"
VIEWS, CLASSES, SIDE, TARGET = 2, 10, 28, 1.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    p.add_argument("--micro", type=int, default=256, help="micro-batch size (images)")
    p.add_argument("--modes", nargs="+", choices=("full", "micro"), default=["full", "micro"])
    p.add_argument("--repeats", type=int, default=3, help="timed steps after the measured one")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--max-gb", type=float, default=16.0,
                   help="skip a case whose memory, doubled from the previous batch, exceeds this")
    p.add_argument("--write", type=Path, default=None, help="update this RESULTS.md section")
    p.add_argument("--worker", nargs=2, metavar=("MODE", "B"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- worker side
def _setup(batch: int, micro: int | None, device):
    """Model, optimizer, one input batch and a step_fn for the loop."""
    import torch

    from supcon.methods import create_method
    from supcon.models import create_encoder

    torch.manual_seed(0)
    method = create_method("supcon")
    model = method.build_model(create_encoder("small-resnet", in_channels=1)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(batch)
    images = torch.randn(batch, VIEWS, 1, SIDE, SIDE, generator=g).to(device)
    labels = torch.randint(0, CLASSES, (batch,), generator=g).to(device)

    def step_fn(b):
        return method(model, *b, micro_batch_size=micro)
    return model, optimizer, (images, labels), step_fn


def _train(setup, steps: int, device) -> list[float]:
    """``steps`` optimizer steps through the project's loop; returns each step's wall time."""
    import torch

    from supcon.engine.loop import LoopSpec, Position, train_loop

    model, optimizer, batch, step_fn = setup
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    stamps = [time.perf_counter()]

    def on_step(pos, metrics):
        sync()
        stamps.append(time.perf_counter())

    spec = LoopSpec(epochs=1, steps_per_epoch=steps, peak_lr=0.05, device=device)
    train_loop(model, step_fn, lambda epoch, start: [batch] * steps, optimizer, spec, Position(),
               on_step=on_step)
    return [b - a for a, b in pairwise(stamps)]


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _peak_mb(run, device) -> float:
    """Peak extra memory (MB) while ``run()`` executes; see the module docstring."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        run()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    before = _rss_kb("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
    except OSError:
        run()
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    run()
    return (_rss_kb("VmHWM") - before) / 1024


def worker(mode: str, batch: int, args) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    micro = args.micro if mode == "micro" else None
    _train(_setup(16, None if micro is None else 4, device), 1, device)  # kernels, thread pools
    setup = _setup(batch, micro, device)
    peak = _peak_mb(lambda: _train(setup, 1, device), device)
    times = _train(setup, args.repeats, device) if args.repeats else []
    return {"mode": mode, "batch": batch, "peak_mb": peak, "threads": torch.get_num_threads(),
            "images_per_s": batch / statistics.median(times) if times else None, "times": times}


# ----------------------------------------------------------------------------- driver side
def run_case(mode: str, batch: int, args) -> dict:
    return run_worker(__file__, [mode, str(batch), "--micro", str(args.micro), "--repeats", str(args.repeats),
                                 "--device", args.device], args.threads, mode=mode, batch=batch)


def run(args) -> dict[tuple[str, int], dict]:
    results: dict[tuple[str, int], dict] = {}
    for mode in args.modes:
        previous = None
        for batch in args.batches:
            if previous and "peak_mb" in previous:
                predicted = previous["peak_mb"] * batch / previous["batch"] / 1024
                if mode == "full" and predicted > args.max_gb:
                    results[mode, batch] = {"skip": f"~{predicted:.0f} GB"}
                    continue
            results[mode, batch] = previous = run_case(mode, batch, args)
            print(json.dumps(results[mode, batch]), file=sys.stderr, flush=True)
    return results


def _cells(r: dict | None, base: dict | None) -> list[str]:
    """[peak MB (x base), img/s] of one case."""
    if r is None:
        return ["", ""]
    if "skip" in r:
        return [f"skipped ({r['skip']})", "-"]
    if "error" in r:
        return ["failed", r["error"][:40]]
    ratio = f" ({r['peak_mb'] / base['peak_mb']:.2f}x)" if base and base.get("peak_mb") else ""
    speed = f"{r['images_per_s']:.0f}" if r.get("images_per_s") else "-"
    return [f"{r['peak_mb']:.0f}{ratio}", speed]


def table(results: dict, args) -> str:
    base = results.get(("full", args.batches[0]))
    head = ["batch (images)"]
    for mode in args.modes:
        name = "one pass" if mode == "full" else f"micro-batches of {args.micro}"
        head += [f"{name}: peak MB (x batch {args.batches[0]} one pass)", f"{name}: img/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for batch in args.batches:
        row = [str(batch)]
        for mode in args.modes:
            row += _cells(results.get((mode, batch)), base)
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def verdict(results: dict, args) -> str:
    base, big = results.get(("full", args.batches[0]), {}), results.get(("micro", args.batches[-1]), {})
    if "peak_mb" not in base or "peak_mb" not in big:
        return "Target not measured in this run."
    ratio = big["peak_mb"] / base["peak_mb"]
    return (f"Batch {args.batches[-1]} with micro-batches of {args.micro}: {big['peak_mb']:.0f} MB = "
            f"{ratio:.2f}x the peak of batch {args.batches[0]} in one pass (target <= {TARGET}x: "
            f"{'met' if ratio <= TARGET else 'NOT met'}).")


def section(args, body: str, verdict_line: str, argv: list[str], started: str, loads: list,
            threads: int | None) -> str:
    return "\n".join([
        HEADING, "",
        run_header("memory.py", argv, args.device, threads, started, loads) + " "
        f"One SupCon training step (SGD) of the default encoder `small-resnet` on random 1 x {SIDE} "
        f"x {SIDE} images, {VIEWS} views, {CLASSES} classes, float32. Peak MB = resident-memory "
        "high-water mark during the first full-size step minus the resident memory just before it "
        "(model, optimizer and input batch already allocated; one fresh process per case); "
        f"img/s = batch / median time of {args.repeats} further steps.", "",
        body, "", verdict_line, "",
    ])


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args)))
        return
    started, load0 = time.strftime("%Y-%m-%d %H:%M %Z"), os.getloadavg()[0]
    results = run(args)
    body, line = table(results, args), verdict(results, args)
    print(body + "\n\n" + line)
    if args.write:
        threads = next((r["threads"] for r in results.values() if "threads" in r), None)
        write_section(args.write, HEADING, section(args, body, line, argv, started,
                                          [load0, os.getloadavg()[0]], threads))


if __name__ == "__main__":
    main()
