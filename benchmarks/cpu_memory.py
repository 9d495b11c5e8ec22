"""Freed memory kept in the process (glibc mallopt) or not: training speed, and what stays afterwards.

The `supcon` command keeps freed blocks in its own process (``retain_freed_memory``: glibc's mmap
threshold at 32 MiB, its trim threshold at 1 GiB); ``supcon.train()`` called from Python leaves
the caller's process as it found it. This measures both sides, each case in a fresh process,
``keep`` (the setting, as the command makes it) against ``return`` (glibc as it starts):

  speed   the main job's model (``--config fashion-mnist``: ``small-resnet-s2``, batch 256 x 2
          views, channels-last, SGD) on random 1 x 28 x 28 images through the project's loop:
          optimizer steps/s (median of ``--steps`` after ``--warmup``), the share of CPU time in
          the kernel and the page faults per step. ``--runs`` processes per mode, alternating;
          the table gives the median over the runs and the ratio of the medians.
  after   ``supcon.train`` of the same model on ``--data`` for one epoch (linear stage one
          epoch), then what a caller would do next: 512 MiB of its own tensors (32 x 16 MiB,
          written), freed. Resident memory (RSS) before training, after ``train()`` returns and
          after that freeing, and glibc's free heap held in the process (mallinfo2 fordblks).

    python benchmarks/cpu_memory.py                                  # 5 runs per mode
    python benchmarks/cpu_memory.py --runs 1 --steps 3 --warmup 1    # a quick check
    python benchmarks/cpu_memory.py --write benchmarks/RESULTS.md    # also update that section
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from itertools import pairwise
from pathlib import Path

from _results import run_header, run_worker, write_section  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

HEADING = "## Freed memory kept or returned (benchmarks/cpu_memory.py)"
MODES = ("return", "keep")
PRESET, VIEWS, CLASSES, SIDE = "fashion-mnist", 2, 10, 28
BLOCKS, BLOCK_MIB = 32, 16  # the caller's own work after training: 512 MiB in 16 MiB tensors
MIB = 2**20


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="fresh processes per mode for the speed rows")
    p.add_argument("--steps", type=int, default=8, help="timed steps per speed run (median)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--batch", type=int, default=None, help="images per step (default: the preset's)")
    p.add_argument("--data", default="digits", help="data set of the after-training rows")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--write", type=Path, default=None, help="update this RESULTS.md section")
    p.add_argument("--worker", nargs=2, metavar=("KIND", "MODE"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- worker side
def _config(args, **extra):
    """The main job's config (on CPU, data read in the process), with ``extra`` dotted settings."""
    from supcon.config import build_config

    overrides = {"method": "supcon", "train.device": "cpu", "data.num_workers": 0, **extra}
    if args.batch:
        overrides["train.batch_size"] = args.batch
    return build_config(PRESET, overrides=overrides)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _free_heap_mb() -> float:
    """glibc's free heap held by the process (mallinfo2's fordblks), MiB."""

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
            "keepcost")]

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        return libc.mallinfo2().fordblks / MIB
    except (OSError, AttributeError):
        return float("nan")


def speed_case(args) -> dict:
    """Steps/s, kernel share and page faults per step of the main job's model (module docstring)."""
    import torch

    from supcon.engine.loop import LoopSpec, Position, train_loop
    from supcon.engine.optim import build_optimizer, peak_lr
    from supcon.methods import create_method
    from supcon.models import create_encoder

    cfg = _config(args)
    torch.manual_seed(0)
    method = create_method("supcon", temperature=cfg.loss.temperature, head=cfg.model.head,
                           feat_dim=cfg.model.feat_dim)
    model = method.build_model(create_encoder(cfg.model.encoder, in_channels=1, **cfg.model.encoder_options),
                               CLASSES)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    lr = peak_lr(cfg.optim, cfg.train.batch_size)
    optimizer = build_optimizer(model, cfg.optim, lr)
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(cfg.train.batch_size, VIEWS, 1, SIDE, SIDE, generator=g),
             torch.randint(0, CLASSES, (cfg.train.batch_size,), generator=g))
    steps = args.warmup + args.steps
    stamps = []

    def on_step(pos, metrics):
        use = resource.getrusage(resource.RUSAGE_SELF)
        stamps.append((time.perf_counter(), use.ru_utime, use.ru_stime, use.ru_minflt))

    use = resource.getrusage(resource.RUSAGE_SELF)
    stamps.append((time.perf_counter(), use.ru_utime, use.ru_stime, use.ru_minflt))
    spec = LoopSpec(epochs=1, steps_per_epoch=steps, peak_lr=lr, device=torch.device("cpu"))
    train_loop(model, lambda b: method(model, *b), lambda epoch, start: [batch] * steps, optimizer, spec,
               Position(), on_step=on_step)
    timed = stamps[args.warmup:]
    wall = [b[0] - a[0] for a, b in pairwise(timed)]
    (_, user0, sys0, faults0), (_, user1, sys1, faults1) = timed[0], timed[-1]
    kernel = sys1 - sys0
    return {"kind": "speed", "steps_per_s": 1 / statistics.median(wall),
            "kernel_pct": 100 * kernel / max(user1 - user0 + kernel, 1e-9),
            "faults_per_step": (faults1 - faults0) / args.steps, "threads": torch.get_num_threads(),
            "batch": cfg.train.batch_size, "encoder": cfg.model.encoder}


def after_case(args) -> dict:
    """Resident memory around ``supcon.train`` and the caller's next work (module docstring)."""
    import torch

    import supcon

    cfg = _config(args, **{"data.name": args.data, "train.epochs": 1, "linear.epochs": 1})
    before = _rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        supcon.train(config=cfg, out=Path(tmp) / "run", progress=False)
    gc.collect()
    after_train, heap_after_train = _rss_mb(), _free_heap_mb()
    blocks = [torch.ones(BLOCK_MIB * MIB // 4) for _ in range(BLOCKS)]  # float32: written, so resident
    peak = _rss_mb()
    del blocks
    gc.collect()
    return {"kind": "after", "rss_before_mb": before, "rss_after_train_mb": after_train,
            "heap_after_train_mb": heap_after_train, "rss_peak_mb": peak, "rss_after_free_mb": _rss_mb(),
            "heap_after_free_mb": _free_heap_mb(), "threads": torch.get_num_threads()}


def worker(kind: str, mode: str, args) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if mode == "keep":  # what the `supcon` command does in its own process
        from supcon.engine.cpu_memory import retain_freed_memory

        retain_freed_memory()
    result = speed_case(args) if kind == "speed" else after_case(args)
    return {**result, "mode": mode}


# ----------------------------------------------------------------------------- driver side
def _case(kind: str, mode: str, args) -> dict:
    forward = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--data", args.data]
    if args.batch:
        forward += ["--batch", str(args.batch)]
    return run_worker(__file__, [kind, mode, *forward], args.threads, kind=kind, mode=mode)


def run(args) -> list[dict]:
    results = []
    for _ in range(args.runs):  # alternating, so a change in the machine's load hits both modes alike
        for mode in MODES:
            results.append(_case("speed", mode, args))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    for mode in MODES:
        results.append(_case("after", mode, args))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    return results


def _median(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if key in r]
    return statistics.median(values) if values else float("nan")


def speed_table(results: list[dict]) -> str:
    lines = ["| freed memory | runs | steps/s (median) | min-max | x return | kernel % of CPU | page faults/step |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    base = _median([r for r in results if r.get("kind") == "speed" and r["mode"] == "return"], "steps_per_s")
    for mode in MODES:
        rows = [r for r in results if r.get("kind") == "speed" and r["mode"] == mode]
        ok = [r for r in rows if "steps_per_s" in r]
        if not ok:
            lines.append(f"| {mode} | {len(rows)} | failed: {rows[0].get('error', '')[:60] if rows else ''} |"
                         " | | | |")
            continue
        rate = _median(ok, "steps_per_s")
        spread = f"{min(r['steps_per_s'] for r in ok):.2f}-{max(r['steps_per_s'] for r in ok):.2f}"
        lines.append(f"| {mode} | {len(ok)} | {rate:.2f} | {spread} | {rate / base:.2f} | "
                     f"{_median(ok, 'kernel_pct'):.0f} | {_median(ok, 'faults_per_step'):,.0f} |")
    return "\n".join(lines)


def after_table(results: list[dict]) -> str:
    lines = ["| freed memory | RSS before MB | RSS after train() MB | free heap kept MB | RSS with 512 MiB of "
             "the caller's tensors MB | RSS after freeing them MB | free heap kept MB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if r.get("kind") != "after":
            continue
        if "error" in r:
            lines.append(f"| {r['mode']} | failed: {r['error'][:60]} | | | | | |")
            continue
        lines.append(f"| {r['mode']} | {r['rss_before_mb']:.0f} | {r['rss_after_train_mb']:.0f} | "
                     f"{r['heap_after_train_mb']:.0f} | {r['rss_peak_mb']:.0f} | {r['rss_after_free_mb']:.0f} | "
                     f"{r['heap_after_free_mb']:.0f} |")
    return "\n".join(lines)


def verdict(results: list[dict]) -> str:
    """What the tables say, in two sentences."""
    speed = {m: [r["steps_per_s"] for r in results if r.get("kind") == "speed" and r["mode"] == m
                 and "steps_per_s" in r] for m in MODES}
    after = {r["mode"]: r for r in results if r.get("kind") == "after" and "error" not in r}
    lines = []
    if all(speed.values()):
        ratio = statistics.median(speed["keep"]) / statistics.median(speed["return"])
        lines.append(f"Keeping freed memory runs the main job's step at {ratio:.2f}x the steps/s of returning it "
                     f"(medians of {len(speed['keep'])} and {len(speed['return'])} runs).")
    if set(after) == set(MODES):
        kept = after["keep"]["rss_after_free_mb"] - after["return"]["rss_after_free_mb"]
        lines.append(f"After `train()` returns and the caller frees its {BLOCKS * BLOCK_MIB} MiB, the process holds "
                     f"{kept:.0f} MB more resident memory when freed memory is kept "
                     f"({after['keep']['heap_after_free_mb']:.0f} MiB of free heap, against "
                     f"{after['return']['heap_after_free_mb']:.0f} MiB): what `supcon.train()` no longer leaves "
                     "behind in a Python caller's process.")
    return " ".join(lines)


def section(args, body: str, argv: list[str], started: str, loads: list, threads: int | None,
            results: list[dict]) -> str:
    speed = next((r for r in results if "batch" in r), {})
    return "\n".join([
        HEADING, "",
        run_header("cpu_memory.py", argv, "cpu", threads, started, loads) + " "
        f"`keep`: glibc keeps freed blocks (`retain_freed_memory`, what the `supcon` command does in its "
        "own process); `return`: glibc as a process starts (what `supcon.train()` leaves a Python "
        f"caller). Speed: one SupCon step of the main job's model (`{speed.get('encoder', '?')}`, batch "
        f"{speed.get('batch', '?')} x {VIEWS} views of random 1 x {SIDE} x {SIDE} images, channels-last, "
        f"SGD), median of {args.steps} steps after {args.warmup}, {args.runs} fresh processes per mode. "
        f"After: `supcon.train` of that model on {args.data} (1 epoch + 1 linear epoch), then "
        f"{BLOCKS} x {BLOCK_MIB} MiB tensors of the caller's, written and freed.", "",
        body, "", verdict(results), "",
    ])


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args)))
        return
    started, load0 = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), os.getloadavg()[0]
    results = run(args)
    body = speed_table(results) + "\n\n" + after_table(results)
    print(body + "\n\n" + verdict(results))
    if args.write:
        threads = next((r["threads"] for r in results if "threads" in r), None)
        write_section(args.write, HEADING, section(args, body, argv, started, [load0, os.getloadavg()[0]],
                                                   threads, results))


if __name__ == "__main__":
    main()
