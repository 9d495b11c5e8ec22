"""Few-shot text: what moves SupCon fine-tuning's accuracy, on the validation split only.

The benchmark's fine-tuned rows (benchmarks/text_fewshot.py) did not beat SetFit by a margin
(paired interval above zero) at 8 examples per class.
This script varies one factor at a time around each method's chosen recipe (the text_fewshot
selection) and scores every run on the fixed validation split; the test split is never read.
Factors: fine-tuning epochs, temperature, one view against two dropout views (supcon); the SupCon
weight lambda (ce+supcon); and the head: besides the run's own linear stage, every run also fits
logistic regression (C chosen on validation, SetFit's head) on its fine-tuned encoder.

Draws are the tuning draws 100, 101, ... (never a table draw), the same for every variant, so
every difference against the chosen recipe is paired. Every finished run is one JSON line of the
record; a rerun skips finished ones and draw k of every variant runs before draw k+1. Set-up:
``make bench-text``.

    python benchmarks/text_validation.py                       # N=8, 5 tuning draws, both data sets
    python benchmarks/text_validation.py --no-run --write benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
from pathlib import Path

from _fewshot import CORPORA, append_row, draw, is_quiet, paired, read_record, t_interval
from _results import write_section
from text_fewshot import (  # sets the offline variables; neither import above loads a model library
    CACHE,
    HARNESS,
    TUNING_DRAW,
    _conditions,
    _pm,
    _task,
    chosen_recipe,
    fit_logistic,
    model_dir,
    score,
    supcon_row,
)

HEADING = "## Few-shot text: what moves SupCon fine-tuning (benchmarks/text_validation.py)"
HERE = Path(__file__).resolve().parent
RECORD = HERE / "text-fewshot" / "validation.jsonl"
BASE = ("chosen recipe", {})
# One factor at a time around the chosen recipe (10 epochs, temperature 0.1, two dropout views,
# lambda 1); fixed before the runs.
VARIANTS = {
    "supcon": [BASE, ("epochs", {"epochs": 5}), ("epochs", {"epochs": 20}),
               ("temperature", {"loss.temperature": 0.05}), ("temperature", {"loss.temperature": 0.5}),
               ("views", {"data.n_views": 1})],
    "ce+supcon": [BASE, ("supcon weight", {"loss.supcon_weight": 0.1}), ("supcon weight", {"loss.supcon_weight": 0.3})],
}


def _key(data: str, n: int, draw: int, method: str, overrides: dict, **_) -> tuple:
    """What identifies a run in the record."""
    return data, n, draw, method, json.dumps(overrides, sort_keys=True)


def logistic_head(run: Path, texts: list[str], labels, task) -> dict[str, float]:
    """Validation scores of logistic regression (C on validation) on the run's fine-tuned encoder."""
    import torch

    import supcon

    encoder = supcon.load_encoder(run).eval()
    with torch.no_grad():
        def features(items: list[str]):
            return torch.cat([encoder(items[i:i + 64]) for i in range(0, len(items), 64)]).numpy()
        val_x = features(task.texts["val"])
        head = fit_logistic(features(texts), labels, val_x, task.labels["val"])
    return score({"val": head.predict(val_x)}, task)


def one_run(method: str, task, n: int, d: int, factor: str, overrides: dict, threads: int) -> dict:
    """Fine-tune ``method`` with its chosen recipe and ``overrides`` on tuning draw ``d``: one row."""
    idx = draw(task.corpus.name, task.corpus.labels, task.splits.pool, n, d)
    texts, labels = [task.corpus.texts[i] for i in idx], task.corpus.labels[idx]
    recipe = {**chosen_recipe(method, task.corpus.name), **overrides}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        preds, watch, details = supcon_row(method, task, texts, labels, d, recipe, ("val",), Path(tmp) / "run")
        lr_head = logistic_head(Path(tmp) / "run", texts, labels, task)
    return {"data": task.corpus.name, "n": n, "draw": d, "method": method, "factor": factor,
            "overrides": overrides, "recipe": recipe, **score(preds, task),
            **{"lr_head_" + k: v for k, v in lr_head.items()}, "train_seconds": round(watch.wall, 2),
            "finetune_seconds": details["finetune_seconds"], "harness": HARNESS, **_conditions(threads, load)}


def run(args: argparse.Namespace) -> None:
    """Every missing (draw, data, method, variant); draw by draw so that stopping leaves pairs."""
    import torch

    torch.set_num_threads(args.threads)
    weights = model_dir(args.cache)
    done = {_key(**r) for r in read_record(args.record)}
    tasks = {}
    for d, data in itertools.product(range(TUNING_DRAW, TUNING_DRAW + args.draws), args.data):
        task = tasks.setdefault(data, _task(data, weights))
        for method, (factor, overrides) in ((m, v) for m in args.methods for v in VARIANTS[m]):
            if _key(data, args.n, d, method, overrides) in done:
                continue
            row = one_run(method, task, args.n, d, factor, overrides, args.threads)
            append_row(args.record, row)
            print(f"{data} N={args.n} draw {d} {method} {factor} {overrides}: val acc {row['val_accuracy']:.1f} "
                  f"(logistic head {row['lr_head_val_accuracy']:.1f}), fine-tuning {row['finetune_seconds']:.0f} s "
                  f"of {row['train_seconds']:.0f} s (load {row['load_start']:.1f})", flush=True)


def _median(rows: list[dict], key: str) -> str:
    quiet = [r[key] for r in rows if is_quiet(r)]
    return f"{statistics.median(quiet):.0f}" if quiet else "— (none quiet)"


def table(rows: list[dict], n: int) -> str:
    """Per data set, method and variant: validation accuracy, the paired difference against the
    chosen recipe (on the draws both have), the logistic head's accuracy, and the seconds."""
    lines = ["| data | method | variant | draws | val accuracy % | Δ vs chosen recipe | val accuracy, logistic head % "
             "| Δ logistic − linear head | fine-tuning s | training s |", "|" + "---|" * 10]
    rows = [r for r in rows if r["n"] == n]
    for data, method in sorted({(r["data"], r["method"]) for r in rows}):
        cell = [r for r in rows if (r["data"], r["method"]) == (data, method)]
        base = {r["draw"]: r for r in cell if not r["overrides"]}
        for factor, overrides in VARIANTS.get(method, []):
            mine = {r["draw"]: r for r in cell if r["overrides"] == overrides}
            if not mine:
                continue
            draws = sorted(mine)
            acc, lr_acc = ([mine[d][k] for d in draws] for k in ("val_accuracy", "lr_head_val_accuracy"))
            shared = sorted(set(draws) & set(base))
            delta = "—" if not overrides or len(shared) < 2 else "{:+.1f} ± {:.1f} (p={:.2g})".format(
                *paired([mine[d]["val_accuracy"] for d in shared], [base[d]["val_accuracy"] for d in shared]))
            head = "{:+.1f} ± {:.1f} (p={:.2g})".format(*paired(lr_acc, acc)) if len(draws) > 1 else "—"
            name = factor if not overrides else f"{factor} " + ", ".join(f"{k.split('.')[-1]}={v}" for k, v in overrides.items())
            lines.append(f"| {data} | {method} | {name} | {len(draws)} | {_pm(t_interval(acc))} "
                         f"| {delta} | {_pm(t_interval(lr_acc))} | {head} "
                         f"| {_median(list(mine.values()), 'finetune_seconds')} | {_median(list(mine.values()), 'train_seconds')} |")
    return "\n".join(lines)


def section(rows: list[dict], n: int) -> str:
    """The RESULTS.md section: what was varied, on which draws, and the table."""
    rows = [r for r in rows if r["n"] == n]
    draws = sorted({r["draw"] for r in rows})
    machines = sorted({r["machine"] for r in rows})
    return (f"{HEADING}\n\nCommand: `python benchmarks/text_validation.py` (record: "
            f"`benchmarks/text-fewshot/validation.jsonl`, {len(rows)} runs; set-up `make bench-text`). "
            f"N={n} per class, tuning draws {', '.join(map(str, draws))} (none is a table draw), scored on "
            "the benchmark's validation split only; one factor at a time around each method's chosen "
            "recipe, fixed before the runs. Exploratory: many comparisons on few draws, p unadjusted. "
            "The linear stage chooses its epoch and the logistic head its C on the same validation "
            "split, so both heads' accuracies are optimistic alike. Seconds: median over runs on a quiet "
            f"machine ({'; '.join(machines)})" + (
                "; taken when `supcon.train` also encoded the validation split a second time, as a stand-in "
                "test split, so they compare between the rows of this table only"
                if any(r.get("harness", 1) < HARNESS for r in rows) else "") + ".\n\n" + table(rows, n) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=",".join(CORPORA), help="comma-separated data sets")
    p.add_argument("--methods", default=",".join(VARIANTS), help="comma-separated: supcon, ce+supcon")
    p.add_argument("--n", type=int, default=8, help="examples per class")
    p.add_argument("--draws", type=int, default=5, help="tuning draws (100, 101, ...)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--record", type=Path, default=RECORD)
    p.add_argument("--cache", type=Path, default=CACHE)
    p.add_argument("--write", type=Path, default=None, help="put the table into this RESULTS.md")
    p.add_argument("--no-run", action="store_true", help="only print (and --write) the table")
    args = p.parse_args(argv)
    args.data, args.methods = args.data.split(","), args.methods.split(",")
    for name, seen, known in (("--data", args.data, CORPORA), ("--methods", args.methods, VARIANTS)):
        if unknown := [x for x in seen if x not in known]:
            p.error(f"{name}: unknown {unknown}; known: {', '.join(known)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.no_run:
        run(args)
    rows = read_record(args.record)
    print(table(rows, args.n))
    if args.write:
        write_section(args.write, HEADING, section(rows, args.n))


if __name__ == "__main__":
    main()
