"""The committed records in benchmarks/ still read: the short-budget Fashion-MNIST study's numbers
recompute from its summaries alone (no run folder, nothing trained), and the old `compare
--presets` run re-renders from its eval.json files."""

import json
from pathlib import Path

import pytest

from supcon.config import build_config
from supcon.workflows.analysis import analyse, summarise, to_json
from supcon.workflows.eval_options import EvalOptions
from supcon.workflows.record import matches, portable_config, portable_settings
from supcon.workflows.render_presets import headline
from supcon.workflows.report import table_markdown

from .conftest import md_tables

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


def _same(a, b, path="") -> list[str]:
    """Where two JSON values differ: numbers beyond 1e-9 relative (the committed records were
    written before the t quantile and p-values came from scipy.stats), anything else at all."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in _same(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths {len(a)}, {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _same(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if b == pytest.approx(a, rel=1e-9, abs=1e-12) else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_the_committed_short_budget_study_recomputes_from_its_summaries_alone():
    """The 4-epoch study was made by an earlier engine (one eval seed, comparators by test mean):
    it is kept as the short-budget record, and every core interval and paired difference it
    reports recomputes from its per-run summaries with today's analysis."""
    root = BENCHMARKS / "study-fashion-mnist"
    old = json.loads((root / "summary.json").read_text())["core"]
    summaries = {r["key"]: [json.loads((root / "summaries" / f"{r['key']}-seed{k}.json").read_text())
                            for k in range(old["seeds"])] for r in old["rows"]}
    design = {k: old["design"][k] for k in ("augmentation", "budget", "lr_grid", "temperature_grid", "unreliable_below")}
    new = to_json(analyse(old["rows"], {**design, "seeds": old["seeds"]}, old["selection"], summaries))
    for part in ("intervals", "paired"):
        for key, by_metric in old[part].items():
            for metric, value in by_metric.items():  # the metrics the old record has
                assert _same(value, new[part][key][metric], f"{part}.{key}.{metric}") == []
    assert _same(old["per_corruption"], {n: {k: v for k, v in c.items() if k in old["per_corruption"][n]}
                                         for n, c in new["per_corruption"].items()}) == []


def test_the_committed_presets_compare_reads_as_it_was_summarised():
    root = BENCHMARKS / "compare-fashion-mnist"
    committed = json.loads((root / "summary.json").read_text())
    evals = {m: [json.loads((root / f"{m}-seed{k}" / "eval.json").read_text()) for k in (0, 1)] for m in committed}
    summary = summarise(evals)
    assert _same(committed, summary) == []
    table = table_markdown(headline(summary, 2))
    assert md_tables(table)[0] == md_tables((root / "report.md").read_text())[0]


def test_a_summary_written_before_an_option_existed_still_matches():
    cfg = build_config(None, overrides={"method": "ce", "data.name": "digits"})
    settings = EvalOptions(corruptions=()).settings()
    summary = {"config": portable_config(cfg), "results": {"test_top1": 50.0},
               "eval_settings": portable_settings(settings), "eval": {"top1": 50.0, "probe": None}}
    del summary["config"]["loss"]["variant"]  # as if loss.variant had not existed when it was written
    del summary["eval_settings"]["tsne_iter"]
    assert matches(summary, cfg, settings, need_test=True)
    # a run that sets the missing option to another value is another experiment
    assert not matches(summary, build_config(None, overrides={"method": "ce", "data.name": "digits",
                                                              "loss.variant": "in"}), None, need_test=True)
    assert not matches(summary, cfg, EvalOptions(corruptions=(), tsne_iter=500).settings(), need_test=True)
    assert not matches({**summary, "results": {"val_top1": 50.0}}, cfg, None, need_test=True)  # a selection run
    # an evaluation from before the same-head probe existed is redone, not reported without it
    assert not matches({**summary, "eval": {"top1": 50.0}}, cfg, settings, need_test=True)
    assert matches({**summary, "eval": {"top1": 50.0}}, cfg, None, need_test=True)  # no evaluation asked for


def test_a_summary_names_the_machine_its_wall_times_come_from(tmp_path):
    import os

    from supcon.workflows.record import machine, make_summary

    cfg = build_config(None, overrides={"method": "ce", "data.name": "digits"})
    summary = make_summary("ce-seed0", cfg, tmp_path, {"steps": 3}, None)
    assert summary["machine"] == machine() and machine().endswith(f", {os.cpu_count()} cores")
    if os.path.isfile("/proc/cpuinfo"):  # Linux: the CPU's model name leads
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        assert not names or machine().startswith(names[0])
