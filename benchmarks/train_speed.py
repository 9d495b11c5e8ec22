"""How close does a training step come to the machine's limit? Images/s, FLOP/s, fraction of sgemm.

One full SupCon training step (2 views, forward + backward + SGD step) per encoder and setting,
on input of the real size, each case in a fresh process: images/s (source images; each gives
2 views), FLOPs per image counted by ``torch.utils.flop_counter.FlopCounterMode`` on one step,
achieved GFLOP/s, and the machine's own limit measured in the same process at the same thread
count: a large square matmul (fp32 sgemm; bf16 on CUDA under bf16 autocast), and on the CPU the
same product as a 1x1 convolution, which runs in oneDNN like the encoders' convolutions (where
the BLAS takes a slow path for the processor, as MKL can on AMD, that one is the true limit). On the CPU it
also reports the share of CPU time spent in the kernel and the page faults per step (where
allocation costs show). Then the end-to-end rate: the real data loader with its augmentation
feeding the same step, against the loader alone and the step alone, to say which bounds.

    python benchmarks/train_speed.py                                   # CPU grid, Fashion-MNIST
    python benchmarks/train_speed.py --write benchmarks/RESULTS.md
    python benchmarks/train_speed.py --device cuda --encoders resnet18,resnet50 --batches 512 \\
        --precision bf16 --channels-last 1 --compile 1 --data cifar10   # a GPU
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from _results import run_header, run_worker, write_section  # noqa: E402  (benchmarks/ on sys.path)

HEADING = "## Training step speed (benchmarks/train_speed.py)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--encoders", default="small-resnet,small-resnet-s2",
                   help="comma-separated registered encoder names")
    p.add_argument("--batches", default="256,512", help="comma-separated batch sizes (images)")
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts (CPU)")
    p.add_argument("--channels-last", default="0,1", help="comma-separated 0/1")
    p.add_argument("--compile", default="0,1",
                   help="comma-separated 0/1; compiled cases only with channels-last on and the "
                        "first batch size (each compile takes about a minute on a small CPU)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--data", default="fashion-mnist", help="data set of the input size and the "
                   "end-to-end rows")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--policy", default="simaugment", help="augmentation of the end-to-end rows")
    p.add_argument("--workers", default="1", help="loader workers of the end-to-end rows")
    p.add_argument("--steps", type=int, default=8, help="timed steps per case (median)")
    p.add_argument("--warmup", type=int, default=4, help="untimed steps first")
    p.add_argument("--no-e2e", action="store_true", help="skip the end-to-end rows")
    p.add_argument("--augment-on-device", action="store_true",
                   help="end-to-end rows: augment on the training device (data.augment_on_device)")
    p.add_argument("--retain-memory", action="store_true",
                   help="keep freed memory in the process (what the train job does on CPU)")
    p.add_argument("--write", type=Path, default=None, help="update this RESULTS.md section")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--thread-count", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --- one case, in a fresh process -------------------------------------------------------------

def matmul_gflops(device, dtype, n: int = 4096, repeats: int = 3) -> float:
    """The machine's limit: FLOP/s of an n x n x n matmul (median of ``repeats``)."""
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    times = []
    for _ in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times[1:]) / 1e9


def conv1x1_gflops(device, n: int = 2048, repeats: int = 3) -> float:
    """The same n x n x n product as a 1x1 convolution (oneDNN on CPU, the convolutions' own
    library): on CPUs where the BLAS takes a slow path, this is the higher of the two limits."""
    import torch

    x = torch.randn(1, n, 32, n // 32, device=device).to(memory_format=torch.channels_last)
    w = torch.randn(n, n, 1, 1, device=device).to(memory_format=torch.channels_last)
    times = []
    for _ in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        torch.nn.functional.conv2d(x, w)
        _sync(device)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times[1:]) / 1e9


def _sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def build_step(case: dict, info):
    """(step(images, labels), flops per source image) for the case's model, built as training
    builds it: channels-last and compile through the library's own options."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from supcon.engine.compilation import maybe_compile
    from supcon.engine.loop import autocast
    from supcon.methods import create_method
    from supcon.models import create_encoder

    device = torch.device(case["device"])
    torch.manual_seed(0)
    method = create_method("supcon", temperature=0.1, head="mlp", feat_dim=128)
    model = method.build_model(create_encoder(case["encoder"], in_channels=info.channels), info.num_classes)
    model = model.to(device)
    if case["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def make_step(net):
        def step(images, labels):
            opt.zero_grad(set_to_none=True)
            with autocast(case["precision"], device):
                loss = method(net, images, labels)["loss"]
            loss.backward()
            opt.step()
        return step

    size, batch = info.image_size, case["batch"]
    images = torch.randn(batch, 2, info.channels, size, size, device=device)
    labels = torch.randint(0, info.num_classes, (batch,), device=device)
    with FlopCounterMode(display=False) as counter:
        make_step(model)(images, labels)
    flops = counter.get_total_flops() / batch
    return make_step(maybe_compile(model, case["compile"], device)), flops, (images, labels)


def time_steps(step, batch_fn, device, steps: int, warmup: int) -> dict:
    """Median seconds per step after ``warmup`` steps; CPU time split user/kernel; page faults."""
    first = time.perf_counter()
    for _ in range(warmup):
        step(*batch_fn())
    _sync(device)
    warm_s = time.perf_counter() - first
    times, r0 = [], resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(steps):
        batch = batch_fn()
        start = time.perf_counter()
        step(*batch)
        _sync(device)
        times.append(time.perf_counter() - start)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    user, kernel = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    return {"step_s": statistics.median(times), "warmup_s": warm_s,
            "kernel_share": kernel / max(user + kernel, 1e-9),
            "faults_per_step": (r1.ru_minflt - r0.ru_minflt) / steps}


def step_case(case: dict, args) -> dict:
    """Worker: one encoder/setting: images/s, FLOPs/image, GFLOP/s and the matmul limit."""
    import torch

    from supcon.data import load_dataset

    info = load_dataset(case["data"], data_dir=args.data_dir).info
    if args.retain_memory:
        from supcon.engine.cpu_memory import retain_freed_memory

        retain_freed_memory()
    step, flops, batch = build_step(case, info)
    timing = time_steps(step, lambda: batch, case["device"], args.steps, args.warmup)
    dtype = torch.bfloat16 if case["precision"] == "bf16" and case["device"] != "cpu" else torch.float32
    matmul = matmul_gflops(case["device"], dtype)
    conv = conv1x1_gflops(case["device"]) if case["device"] == "cpu" else 0.0
    rate = case["batch"] / timing["step_s"]
    return {**case, **timing, "img_s": rate, "mflop_per_img": flops / 1e6,
            "gflops": rate * flops / 1e9, "matmul_gflops": matmul, "conv1x1_gflops": conv}


def e2e_case(case: dict, args) -> dict:
    """Worker: the loader alone, and the loader feeding the step (images/s of each)."""
    import torch

    from supcon.data import (
        AugmentedDataset,
        DeviceAugment,
        MultiView,
        build_loader,
        build_transform,
        load_dataset,
        to_device,
    )

    splits = load_dataset(case["data"], data_dir=args.data_dir)
    transform = MultiView(build_transform(args.policy, splits.info), 2)
    data = AugmentedDataset(splits.train, transform, seed=0, defer=args.augment_on_device)
    augment = DeviceAugment(transform) if args.augment_on_device else None
    loader = build_loader(data, batch_size=case["batch"], shuffle=True, drop_last=True, seed=0,
                          num_workers=case["workers"], pin_memory=case["device"] != "cpu")
    device = torch.device(case["device"])
    batches = iter(loader)
    step, _, _ = build_step(case, splits.info)

    def next_batch():
        return to_device(next(batches), device, augment)

    # Each phase first takes the batches the workers prepared ahead (they would flatter the rate),
    # then times fetch (+ step) over wall-clock time; both phases fit in one epoch.
    queued = max(case["workers"], 1) * 2 + args.warmup
    steps = max(1, min(args.steps, len(loader) // 2 - queued))

    def rate(one) -> float:
        for _ in range(queued):
            one()
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            one()
        _sync(device)
        return steps * case["batch"] / (time.perf_counter() - start)

    loader_rate = rate(next_batch)
    e2e_rate = rate(lambda: step(*next_batch()))
    return {**case, "loader_img_s": loader_rate, "img_s": e2e_rate}


# --- the grid, in the parent ------------------------------------------------------------------

def cases(args) -> list[dict]:
    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    cpu = args.device == "cpu"
    threads = ints(args.threads) if cpu else [None]
    batches, out = ints(args.batches), []
    for enc, batch, thr, cl, comp in itertools.product(
            args.encoders.split(","), batches, threads, ints(args.channels_last), ints(args.compile)):
        if comp and (not cl or batch != batches[0]):
            continue
        out.append({"kind": "step", "encoder": enc, "batch": batch, "cpu_threads": thr,
                    "channels_last": bool(cl), "compile": bool(comp), "device": args.device,
                    "precision": args.precision, "data": args.data})
    return out


def e2e_cases(args, steps: list[dict]) -> list[dict]:
    """The fastest eager setting of each encoder, fed by the real loader."""
    out = []
    for enc in args.encoders.split(","):
        mine = [r for r in steps if r["encoder"] == enc and "img_s" in r and not r["compile"]]
        if not mine:
            continue
        best = max(mine, key=lambda r: r["img_s"])
        for workers in (int(w) for w in args.workers.split(",")):
            out.append({"kind": "e2e", **{k: best[k] for k in ("encoder", "batch", "cpu_threads",
                        "channels_last", "device", "precision", "data")}, "compile": False,
                        "workers": workers, "step_img_s": best["img_s"],
                        "on_device": args.augment_on_device})
    return out


def step_table(rows: list[dict], cpu: bool) -> str:
    head = ("| encoder | batch | threads | channels-last | compile | MFLOP/img | img/s | GFLOP/s | "
            "matmul GFLOP/s | % of matmul | 1x1-conv GFLOP/s | % of 1x1-conv | kernel % of CPU | "
            "page faults/step |")
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['encoder']} | {r['batch']} | {r['cpu_threads']} | {_yn(r['channels_last'])} "
                         f"| {_yn(r['compile'])} | {r['error']} |")
            continue
        cpu_cols = (f"{r['conv1x1_gflops']:.1f} | {100 * r['gflops'] / r['conv1x1_gflops']:.0f}% | "
                    f"{100 * r['kernel_share']:.0f} | {r['faults_per_step']:,.0f}") if cpu else "- | - | - | -"
        lines.append(f"| {r['encoder']} | {r['batch']} | {r['cpu_threads'] or '-'} | {_yn(r['channels_last'])} | "
                     f"{_yn(r['compile'])} | {r['mflop_per_img']:.1f} | {r['img_s']:,.0f} | "
                     f"{r['gflops']:.1f} | {r['matmul_gflops']:.1f} | {100 * r['gflops'] / r['matmul_gflops']:.0f}% "
                     f"| {cpu_cols} |")
    return "\n".join(lines)


def e2e_table(rows: list[dict]) -> str:
    lines = ["| encoder | setting | loader workers | loader alone img/s | step alone img/s | "
             "end to end img/s | bound by |", "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['encoder']} | | {r['workers']} | {r['error']} | | | |")
            continue
        bound = "loader" if r["loader_img_s"] < r["step_img_s"] else "model"
        setting = (f"batch {r['batch']}, {r['cpu_threads'] or '-'} threads, channels-last "
                   f"{_yn(r['channels_last'])}{', augment on device' if r.get('on_device') else ''}")
        lines.append(f"| {r['encoder']} | {setting} | {r['workers']} | {r['loader_img_s']:,.0f} | "
                     f"{r['step_img_s']:,.0f} | {r['img_s']:,.0f} | {bound} |")
    return "\n".join(lines)


def _worker_argv(case: dict, forward: list[str]) -> list[str]:
    # run_worker puts "--worker" first: the case (JSON) is its value.
    threads = ["--thread-count", str(case["cpu_threads"])] if case.get("cpu_threads") else []
    return [json.dumps(case), *forward, *threads]


def _yn(flag: bool) -> str:
    return "on" if flag else "off"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        import torch

        case = json.loads(args.worker)
        if args.thread_count:
            torch.set_num_threads(args.thread_count)
        fn = step_case if case["kind"] == "step" else e2e_case
        print(json.dumps(fn(case, args)))
        return
    started, load0 = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), os.getloadavg()[0]
    forward = [a for a in argv if a != "--write" and not a.endswith(".md")]
    steps = []
    for case in cases(args):
        steps.append(run_worker(__file__, _worker_argv(case, forward), None, **case))
        print(step_table(steps[-1:], args.device == "cpu").splitlines()[-1], flush=True)
    e2e = [] if args.no_e2e else [run_worker(__file__, _worker_argv(c, forward), None, **c)
                                  for c in e2e_cases(args, steps)]
    body = step_table(steps, args.device == "cpu") + ("\n\n" + e2e_table(e2e) if e2e else "")
    print(body)
    if args.write:
        header = run_header("train_speed.py", argv, args.device, int(args.threads.split(",")[-1]),
                            started, [load0, os.getloadavg()[0]])
        write_section(args.write, HEADING, f"{HEADING}\n\n{header}\n\n{body}\n")


if __name__ == "__main__":
    main()
