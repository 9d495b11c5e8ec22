"""SupCon loss benchmark: forward+backward time and peak extra memory against the matmul floor.

For each N (views; B = N / 2 samples x 2 views, D = 128, 10 classes, float32, tau = 0.1) and each
implementation, one fresh subprocess builds the inputs, warms up on N = 256, records its resident
memory, resets the kernel's peak-RSS mark (``/proc/self/clear_refs``), runs one forward+backward
(also the warm-up at full size), reads the peak (``VmHWM``), then times ``--repeats`` more runs.
"Peak extra" is VmHWM minus the RSS just before that run: every byte the call touched, torch's
allocator or not, the gradient of the features included. On CUDA it is
``torch.cuda.max_memory_allocated`` above the memory in use before the call.

Implementations:
  floor  the three bare products any exact implementation needs: S = Z Z^T (forward), G Z and
         G^T Z (backward, with G = S as the [N, N] upstream gradient). Above ``--floor-full-gb``
         the products run in row chunks of 4096 (same FLOPs; marked "chunked").
  tiled  ``supcon_loss(..., impl="tiled")`` (this project, O(N) memory)
  dense  ``supcon_loss(..., impl="dense")`` (this project, [N, N] logits)
  pml    pytorch-metric-learning's ``SupConLoss(temperature=0.1)`` on [N, D] with [N] labels

A case is skipped (and marked) when the previous size, scaled by 4 (N^2), predicts more than
``--max-gb`` of memory or more than ``--max-case-s`` seconds for the whole case.

    python benchmarks/loss.py                                   # N = 512 ... 65536
    python benchmarks/loss.py --sizes 1024 4096 --impls floor tiled
    python benchmarks/loss.py --threads 1        # robust ratios on a machine shared with others
    python benchmarks/loss.py --write benchmarks/RESULTS.md     # also update that section
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

from _results import run_header, run_worker, write_section  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

HEADING = "## Loss (benchmarks/loss.py)"
IMPLS = ("floor", "tiled", "dense", "pml")
DIM, VIEWS, CLASSES, TAU, CHUNK = 128, 2, 10, 0.1, 4096


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[512 * 2**k for k in range(8)])
    p.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS))
    p.add_argument("--repeats", type=int, default=5, help="timed runs after the warm-up (median)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads in each case (default: torch's own choice)")
    p.add_argument("--max-gb", type=float, default=16.0, help="skip cases predicted above this")
    p.add_argument("--max-case-s", type=float, default=600.0, help="skip cases predicted longer")
    p.add_argument("--floor-full-gb", type=float, default=4.0,
                   help="above this [N, N] size the floor runs in row chunks")
    p.add_argument("--note", default="", help="a sentence added to the written section")
    p.add_argument("--write", type=Path, default=None, help="update this RESULTS.md section")
    p.add_argument("--worker", nargs=2, metavar=("IMPL", "N"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- worker side
def _make_step(impl: str, n: int, device, full_floor: bool):
    """Inputs for N views and a closure running one forward+backward; returns (step, loss_fn)."""
    import torch

    from supcon.losses import supcon_loss

    g = torch.Generator().manual_seed(n)
    features = torch.randn(n // VIEWS, VIEWS, DIM, generator=g).to(device).requires_grad_(True)
    labels = torch.randint(0, CLASSES, (n // VIEWS,), generator=g).to(device)
    if impl == "floor":
        z = torch.nn.functional.normalize(features.detach().reshape(n, DIM), dim=1)
        return (lambda: _floor(z, full_floor)), None
    if impl == "pml":
        from pytorch_metric_learning.losses import SupConLoss

        pml = SupConLoss(temperature=TAU)

        def loss_fn():  # same view-major [N, D] layout as ours, labels repeated per view
            return pml(features.transpose(0, 1).reshape(n, DIM), labels.repeat(VIEWS))
    else:
        def loss_fn():
            return supcon_loss(features, labels, temperature=TAU, impl=impl)

    def step():
        features.grad = None
        loss = loss_fn()
        loss.backward()
        return float(loss.detach())
    return step, loss_fn


def _floor(z, full: bool) -> None:
    """S = Z Z^T, then G Z and G^T Z with G = S, whole or in row chunks."""
    if full:
        s = z @ z.T
        _ = s @ z, s.T @ z
        return
    acc = z.new_zeros(z.shape)
    for r in range(0, z.shape[0], CHUNK):
        s = z[r : r + CHUNK] @ z.T  # [chunk, N]
        _ = s @ z, acc.addmm_(s.T, z[r : r + CHUNK])


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _measure_peak(step, device) -> tuple[float, float]:
    """Run ``step`` once; return (its loss, peak extra memory in MB)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        loss = step()
        torch.cuda.synchronize()
        return loss, (torch.cuda.max_memory_allocated() - before) / 2**20
    before = _rss_kb("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        loss = step()
        peak = _rss_kb("VmHWM")
    except OSError:  # no clear_refs: fall back to the lifetime high-water mark
        loss = step()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return loss, (peak - before) / 1024


def worker(impl: str, n: int, args) -> dict:
    import torch

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    full_floor = n * n * 4 <= args.floor_full_gb * 2**30
    small, _ = _make_step(impl, 256, device, True)
    small()  # load kernels, start thread pools: not part of the measured peak
    step, _ = _make_step(impl, n, device, full_floor)
    loss, peak_mb = _measure_peak(step, device)
    times = []
    for _ in range(args.repeats):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return {"impl": impl, "n": n, "time_s": statistics.median(times), "times": times,
            "peak_mb": peak_mb, "loss": loss, "chunked": impl == "floor" and not full_floor}


# ----------------------------------------------------------------------------- driver side
def run_case(impl: str, n: int, args) -> dict:
    return run_worker(__file__, [impl, str(n), "--repeats", str(args.repeats), "--device", args.device,
                                 "--floor-full-gb", str(args.floor_full_gb)], args.threads, impl=impl, n=n)


def run(args) -> dict[tuple[str, int], dict]:
    results: dict[tuple[str, int], dict] = {}
    for n in args.sizes:
        for impl in args.impls:
            prev = results.get((impl, n // 2))
            if prev and "time_s" in prev:
                chunked = impl == "floor" and n * n * 4 > args.floor_full_gb * 2**30
                gb = 0.0 if chunked else 4 * prev["peak_mb"] / 1024  # chunks: ~CHUNK * N floats
                secs = 4 * prev["time_s"] * (args.repeats + 1)
                if gb > args.max_gb or secs > args.max_case_s:
                    results[impl, n] = {"skip": f"~{gb:.0f} GB" if gb > args.max_gb
                                        else f"~{secs / 60:.0f} min"}
                    continue
            elif prev:  # the smaller case was skipped or failed: so is this one
                results[impl, n] = {"skip": prev.get("skip", "failed below")}
                continue
            results[impl, n] = run_case(impl, n, args)
            print(json.dumps(results[impl, n]), file=sys.stderr, flush=True)
    return results


def _cell(r: dict | None, floor: dict | None) -> tuple[str, str]:
    """(time with ratio to the floor, peak MB) for one table cell."""
    if r is None:
        return "", ""
    if "skip" in r:
        return f"skipped ({r['skip']})", "-"
    if "error" in r:
        return "failed", r["error"][:40]
    ratio = f" ({r['time_s'] / floor['time_s']:.2f}x)" if floor and "time_s" in floor else ""
    return f"{r['time_s']:.3f}{ratio}", f"{r['peak_mb']:.0f}"


def table(results: dict, args) -> str:
    head = ["N", "floor s", "floor MB"]
    for impl in (i for i in args.impls if i != "floor"):
        head += [f"{impl} s (x floor)", f"{impl} MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in args.sizes:
        floor = results.get(("floor", n))
        row = [str(n)]
        f_time, f_mb = _cell(floor, None)
        if floor and floor.get("chunked"):
            f_time += " (chunked)"
        row += [f_time, f_mb] if "floor" in args.impls else ["", ""]
        for impl in (i for i in args.impls if i != "floor"):
            row += list(_cell(results.get((impl, n)), floor))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def agreement(results: dict, args) -> str:
    """Largest relative difference of the loss values against the tiled path's."""
    out = []
    for impl in ("dense", "pml"):
        pairs = [(results.get((impl, n), {}), results.get(("tiled", n), {})) for n in args.sizes]
        diffs = [abs(r["loss"] - t["loss"]) / abs(t["loss"]) for r, t in pairs
                 if "loss" in r and "loss" in t]
        if diffs:
            out.append(f"{impl} vs tiled: max relative loss difference {max(diffs):.1e}")
    return "; ".join(out)


def targets(results: dict) -> str:
    """The issue's targets for the tiled path, as measured in this run."""
    ratios = [r["time_s"] / results["floor", n]["time_s"] for (impl, n), r in results.items()
              if impl == "tiled" and n >= 4096 and "time_s" in r
              and "time_s" in results.get(("floor", n), {})]
    out = []
    if ratios:
        out.append(f"tiled time / floor at N >= 4096: at most {max(ratios):.2f}x (target 1.2x)")
    if "peak_mb" in results.get(("tiled", 16384), {}):
        out.append(f"peak extra at N = 16384: {results['tiled', 16384]['peak_mb']:.0f} MB "
                   "(target < 128 MB)")
    if "time_s" in results.get(("tiled", 65536), {}):
        r = results["tiled", 65536]
        out.append(f"N = 65536 runs: {r['time_s']:.1f} s, {r['peak_mb']:.0f} MB")
    return "Targets: " + "; ".join(out) if out else ""


def section(args, body: str, agree: str, argv: list[str], started: str, loads: list) -> str:
    import torch

    header = run_header("loss.py", argv, args.device, args.threads or torch.get_num_threads(), started, loads)
    return "\n".join([
        HEADING, "",
        header + " Forward+backward, float32, D = 128, B = N/2 samples x 2 views, 10 classes, "
        f"tau = {TAU}; time = median of {args.repeats} runs after a warm-up run; MB = peak "
        "extra resident memory of the first run (see the module docstring); ratios are to the "
        "floor (the three bare N x N x D products) measured in the same run." + (
            " " + args.note if args.note else ""), "",
        body, "", agree + ".", "",
    ])


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args)))
        return
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    load0 = os.getloadavg()[0]
    results = run(args)
    body, agree = table(results, args), agreement(results, args)
    body += "\n\n" + targets(results) if targets(results) else ""
    print(body + "\n\n" + agree)
    if args.write:
        text = section(args, body, agree, argv, started, [load0, os.getloadavg()[0]])
        write_section(args.write, HEADING, text)


if __name__ == "__main__":
    main()
