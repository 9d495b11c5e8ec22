"""Every timm and torchvision classification backbone the encoder registry accepts, at two image sizes.

For each name (the classification models of ``torchvision.models.list_models()``; the architectures
of ``timm.list_models()``), ``create_encoder(name, in_channels=3, image_size=S)`` builds it for
S = 32 and 96 px (no pretrained weights) and the encoder, in eval mode, runs on a random
``[2, 3, S, S]`` batch under ``torch.no_grad()``. Each name is then

    ok       accepted at both sizes, a finite ``[2, num_features]`` output at both, the same num_features
    refused  refused up front at one size or both, by the registry's one-line ValueError (a fixed input
             size, or images too small for the model), and ok where accepted
    FAIL     accepted but failing (an exception, a wrong shape, num_features differing between sizes),
             or an error at build time that is not that one-line ValueError (a crash, a timeout)
    skipped  not run: more parameters than ``--max-params`` (counted on the meta device, no memory)

Worker processes run the names one after another (a crash loses one name, and ``--timeout`` bounds
each); ``--rows`` keeps every result as a JSON line, so that ``--resume`` continues an interrupted run.
timm's names run family by family in turn (one name of each of its modules, then a second, ...; the
smaller-sounding names first), so that a run stopped early (``--max-names``) still covers every family.
Build seconds: ``create_encoder`` at the first size (weights' random init and the registry's check on
a blank batch); provisional on a shared machine.

    python benchmarks/backbones.py                                   # every name (hours on 2 cores)
    python benchmarks/backbones.py --sources torchvision             # the torchvision names
    python benchmarks/backbones.py --max-params 10 --write benchmarks/RESULTS.md
    python benchmarks/backbones.py --names torchvision:vgg11 timm:resnet18
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

from _results import run_header, write_section  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

HEADING = "## Backbones (benchmarks/backbones.py)"
ROW = "ROW "  # prefix of a worker's result lines (libraries may print too)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sources", nargs="+", choices=("torchvision", "timm"), default=["torchvision", "timm"])
    p.add_argument("--names", nargs="+", default=None, help="only these names (timm:... / torchvision:...)")
    p.add_argument("--sizes", type=int, nargs=2, default=[32, 96])
    p.add_argument("--max-params", type=float, default=None,
                   help="skip timm models above this many million parameters (torchvision: all run)")
    p.add_argument("--max-names", type=int, default=None,
                   help="run only the first N timm names of the family-by-family order (a partial run)")
    p.add_argument("--timeout", type=int, default=600, help="seconds per name")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p.add_argument("--rows", type=Path, default=None, help="append each result to this JSON-lines file")
    p.add_argument("--resume", action="store_true", help="skip the names already in --rows")
    p.add_argument("--write", type=Path, default=None, help="update this RESULTS.md section")
    p.add_argument("--note", default="", help="a sentence for the RESULTS.md section (how the run went)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- worker side
def _params(name: str) -> int | None:
    """Parameters of the model, built on the meta device (no memory, no init); None if that fails."""
    import torch

    source, _, arch = name.partition(":")
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if source == "timm":
                import timm

                model = timm.create_model(arch, num_classes=0)
            else:
                import torchvision

                model = torchvision.models.get_model(arch)
    except Exception:  # a model that computes in its constructor: counted when built
        return None
    return sum(p.numel() for p in model.parameters())


def _alarm(signum, frame):
    raise TimeoutError("timed out")


def check(name: str, sizes: list[int], max_params: float | None, timeout: int) -> dict:
    """One name at both sizes: the row of the table."""
    import torch

    from supcon.models import create_encoder

    row = {"name": name, "params_m": None, "features": None, "build_s": None, "error": ""}
    params = _params(name)
    row["params_m"] = None if params is None else round(params / 1e6, 2)
    if max_params is not None and name.startswith("timm:") and params is not None and params > max_params * 1e6:
        return {**row, "status": "skipped", **{str(s): "-" for s in sizes}}
    features = set()
    signal.signal(signal.SIGALRM, _alarm)
    for size in sizes:
        start = time.perf_counter()
        signal.alarm(timeout)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                encoder = create_encoder(name, in_channels=3, image_size=size).eval()
            row["build_s"] = row["build_s"] or round(time.perf_counter() - start, 2)
            if params is None:
                row["params_m"] = round(sum(p.numel() for p in encoder.parameters()) / 1e6, 2)
            with torch.no_grad():
                out = encoder(torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0)))
            good = out.shape == (2, encoder.num_features) and bool(torch.isfinite(out).all())
            row[str(size)] = "ok" if good else "FAIL"
            row["error"] = row["error"] or ("" if good else f"output {tuple(out.shape)} at {size} px, "
                                            f"num_features {encoder.num_features}")
            features.add(encoder.num_features)
        except ValueError as err:  # the registry's refusal: one line, said up front
            message = str(err)
            row[str(size)] = "refused" if "\n" not in message else "FAIL"
            row["error"] = row["error"] or message.splitlines()[0]
        except Exception as err:  # noqa: BLE001  (any failure is a result here)
            row[str(size)] = "FAIL"
            row["error"] = row["error"] or f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
        finally:
            signal.alarm(0)
    row["features"] = "/".join(map(str, sorted(features))) or None
    marks = [row[str(s)] for s in sizes]
    if "FAIL" in marks or len(features) > 1:
        row["status"] = "FAIL"
        row["error"] = row["error"] or f"num_features differs between sizes: {row['features']}"
    else:
        row["status"] = "refused" if "refused" in marks else "ok"
    return row


def worker(args: argparse.Namespace) -> None:
    """Check the names read from stdin, one result line each."""
    import torch

    torch.set_num_threads(args.threads)
    for name in sys.stdin.read().split():
        print(ROW + json.dumps(check(name, args.sizes, args.max_params, args.timeout)), flush=True)


# ----------------------------------------------------------------------------- driver side
def all_names(args: argparse.Namespace) -> list[str]:
    """The names the registry accepts: torchvision's classification models, timm's architectures."""
    if args.names:
        return args.names
    names = []
    if "torchvision" in args.sources:
        import torchvision

        names += [f"torchvision:{n}" for n in torchvision.models.list_models(module=torchvision.models)]
    if "timm" in args.sources:
        names += [f"timm:{n}" for n in _timm_in_turn()[:args.max_names]]
    return names


_SIZES = ("test", "atto", "femto", "pico", "nano", "micro", "tiny", "xxs", "xs", "small", "lite", "mobile")


def _timm_in_turn() -> list[str]:
    """timm's architectures, one of each module in turn; within a module, smaller-sounding names first."""
    import timm

    def rank(name: str) -> tuple[int, str]:
        return next((i for i, word in enumerate(_SIZES) if word in name), len(_SIZES)), name

    families = [sorted(timm.list_models(module=m), key=rank) for m in timm.list_modules()]
    turns = [f[i] for i in range(max(map(len, families))) for f in families if i < len(f)]
    return turns + sorted(set(timm.list_models()) - set(turns))  # any name no module lists


def run(args: argparse.Namespace, names: list[str]) -> list[dict]:
    """Every name's row, from worker processes (restarted past a name that crashed one)."""
    done = {}
    if args.resume and args.rows and args.rows.exists():
        done = {r["name"]: r for r in map(json.loads, args.rows.read_text().splitlines())}
    todo = [n for n in names if n not in done]
    cmd = [sys.executable, __file__, "--worker", "--threads", str(args.threads), "--timeout", str(args.timeout),
           "--sizes", *map(str, args.sizes)] + (["--max-params", str(args.max_params)] if args.max_params else [])
    while todo:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        proc.stdin.write("\n".join(todo))
        proc.stdin.close()
        for line in proc.stdout:
            if line.startswith(ROW):
                row = json.loads(line[len(ROW):])
                _record(args, done, row, len(names))
                todo.remove(row["name"])
        rc = proc.wait()
        if todo:  # the worker died on todo[0]
            _record(args, done, {"name": todo.pop(0), "status": "FAIL", "error": f"worker process died (rc={rc})",
                                 **{str(s): "FAIL" for s in args.sizes}}, len(names))
    return [done[n] for n in names]


def _record(args, done: dict, row: dict, total: int) -> None:
    done[row["name"]] = row
    if args.rows:
        with args.rows.open("a") as f:
            f.write(json.dumps(row) + "\n")
    print(f"[{len(done)}/{total}] {_line(row, args.sizes)}", file=sys.stderr, flush=True)


def _line(row: dict, sizes: list[int]) -> str:
    cells = [row["name"], row.get("params_m"), row.get("features"), *(row.get(str(s), "-") for s in sizes),
             row.get("build_s"), row.get("error", "").replace("|", "\\|")]
    return "| " + " | ".join("-" if c is None else str(c) for c in cells) + " |"


def table(rows: list[dict], sizes: list[int]) -> str:
    head = ["name", "params (M)", "num_features", *(f"{s} px" for s in sizes), "build s", "error"]
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                     + [_line(r, sizes) for r in rows])


def summary(rows: list[dict], args: argparse.Namespace) -> str:
    """Counts per source and status, the budget, the refused names grouped by reason, every FAIL."""
    lines = ["| source | names | ok at both sizes | refused up front | FAIL | skipped |", "|---|---|---|---|---|---|"]
    for source in sorted({r["name"].partition(":")[0] for r in rows}):
        mine = [r for r in rows if r["name"].startswith(source + ":")]
        counts = [sum(r["status"] == s for r in mine) for s in ("ok", "refused", "FAIL", "skipped")]
        lines.append(f"| {source} | {len(mine)} | " + " | ".join(map(str, counts)) + " |")
    notes = [f"timm models above {args.max_params:g}M parameters were not run (skipped)."] if args.max_params else []
    if args.max_names:
        notes.append(f"Only the first {args.max_names} timm names of the family-by-family order ran (of "
                     f"{len(_timm_in_turn())}).")
    failing = [r for r in rows if r["status"] == "FAIL"]
    lines += (["", " ".join(notes)] if notes else []) + ["", "Refused up front, by reason (the registry's one-line message, e.g. "
              "the first of each group):", "", *_refusals(rows, args.sizes), "",
              f"FAIL: {len(failing)} name(s)" + (":" if failing else ".")]
    return "\n".join(lines + ([table(failing, args.sizes)] if failing else []))


def _refusals(rows: list[dict], sizes: list[int]) -> list[str]:
    groups: dict[str, list[dict]] = {}
    for row in (r for r in rows if r["status"] == "refused"):
        at = " and ".join(f"{s} px" for s in sizes if row.get(str(s)) == "refused")
        fixed = re.search(r"takes only (\d+x\d+) images", row["error"])
        smallest = re.search(r"lists (\d+x\d+) as its smallest", row["error"])
        key = f"a fixed input size, at {at}" if fixed else f"images too small, at {at}"
        row["why"] = fixed.group(1) if fixed else smallest.group(1) + " at least" if smallest else "no size listed"
        groups.setdefault(key, []).append(row)
    return [f"- {key} ({len(group)}; e.g. `{group[0]['error']}`): "
            + ", ".join(f"`{r['name']}` ({r['why']})" for r in group) for key, group in sorted(groups.items())]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    started, load0 = time.strftime("%Y-%m-%d %H:%M %Z"), os.getloadavg()[0]
    rows = run(args, all_names(args))
    print(table(rows, args.sizes) + "\n\n" + summary(rows, args))
    if args.write:
        header = run_header("backbones.py", argv, "cpu", args.threads, started, [load0, os.getloadavg()[0]])
        text = "\n".join([HEADING, "", header + " Each name built by `create_encoder(name, in_channels=3, "
                          f"image_size=S)` for S = {args.sizes[0]} and {args.sizes[1]} px, without pretrained "
                          "weights, and run in eval mode on a random batch of 2 under `torch.no_grad()`. "
                          "Build seconds (in the full table the script prints) are provisional: a shared "
                          "machine. " + args.note, "",
                          summary(rows, args), ""])
        write_section(args.write, HEADING, text)


if __name__ == "__main__":
    main()
