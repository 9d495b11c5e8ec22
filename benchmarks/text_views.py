"""Views of a text for SupCon fine-tuning: two dropout views (SimCSE) against one view (the labels
alone give the positives), by validation accuracy, on the few-shot benchmark's data and draws.

The default of ``data.n_views`` for text encoders is chosen from this table. Every run fine-tunes
all-MiniLM-L6-v2 with the supcon method and fits the linear stage; accuracy is that of the linear
classifier on the benchmark's fixed validation split (the test split is never read). Set-up:
``python benchmarks/text_fewshot.py --setup`` (weights and data).

    python benchmarks/text_views.py --draws 3 --n 8
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _fewshot import CORPORA, draw, paired, split_corpus, t_interval  # noqa: E402
from text_fewshot import CACHE, MAX_TOKENS, SIZES, model_dir  # noqa: E402

HERE = Path(__file__).resolve().parent
RECORD = HERE / "text-fewshot" / "views.jsonl"
# The recipe both arms share (chosen before the runs; the same for every data set and draw).
RECIPE = {"train.epochs": 10, "train.batch_size": 16, "optim.name": "adamw", "optim.lr": 3e-5,
          "optim.warmup_epochs": 1.0, "optim.weight_decay": 0.01, "loss.temperature": 0.1,
          "linear.epochs": 30, "data.num_workers": 0, "train.online_probe": False,
          "model.encoder_options": {"max_length": MAX_TOKENS}}


def one_run(weights: Path, train: list, val: list, views: int, seed: int) -> tuple[float, float]:
    """Validation accuracy (percent) and training seconds of one supcon fine-tuning."""
    import supcon

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        results = supcon.train(encoder=f"transformers:{weights}", train_set=train, val_set=val, test=False,
                               method="supcon", out=Path(out) / "run", progress=False, seed=seed,
                               **{**RECIPE, "data.n_views": views})
        return results["val_top1"], time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    """Run the missing (data, N, draw, views) rows, then print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--n", type=int, default=8, help="examples per class")
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--record", type=Path, default=RECORD)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    weights = model_dir(CACHE)
    rows = [json.loads(x) for x in args.record.read_text().splitlines()] if args.record.is_file() else []
    done = {(r["data"], r["n"], r["draw"], r["views"]) for r in rows}
    for data in args.data:
        corpus = CORPORA[data]()
        splits = split_corpus(corpus.labels, *SIZES[data])
        val = [(corpus.texts[i], int(corpus.labels[i])) for i in splits.val]
        for d in range(args.draws):
            idx = draw(data, corpus.labels, splits.pool, args.n, d)
            train = [(corpus.texts[i], int(corpus.labels[i])) for i in idx]
            for views in (1, 2):
                if (data, args.n, d, views) in done:
                    continue
                accuracy, seconds = one_run(weights, train, val, views, seed=d)
                row = {"data": data, "n": args.n, "draw": d, "views": views, "val_accuracy": accuracy,
                       "train_seconds": round(seconds, 1), "load": round(os.getloadavg()[0], 1)}
                args.record.parent.mkdir(parents=True, exist_ok=True)
                with args.record.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                rows.append(row)
                print(json.dumps(row), flush=True)
    report(rows, args.n)


def report(rows: list[dict], n: int) -> None:
    """Per data set: mean validation accuracy per arm and the paired difference (2 views - 1)."""
    print("\n| data | N | draws | 1 view | 2 dropout views | 2 - 1 (paired, 95% CI, p) | time 2/1 |")
    print("|---|---|---|---|---|---|---|")
    for data in sorted({r["data"] for r in rows if r["n"] == n}):
        by = {v: {r["draw"]: r for r in rows if r["data"] == data and r["n"] == n and r["views"] == v} for v in (1, 2)}
        draws = sorted(set(by[1]) & set(by[2]))
        if not draws:
            continue
        one, two = ([by[v][d]["val_accuracy"] for d in draws] for v in (1, 2))
        (m1, h1), (m2, h2) = t_interval(one), t_interval(two)
        diff, half, p = paired(two, one)
        ratio = statistics.median(by[2][d]["train_seconds"] / by[1][d]["train_seconds"] for d in draws)
        print(f"| {data} | {n} | {len(draws)} | {m1:.1f} ± {h1:.1f} | {m2:.1f} ± {h2:.1f} | "
              f"{diff:+.1f} ± {half:.1f} (p={p:.2f}) | {ratio:.2f} |")


if __name__ == "__main__":
    main()
