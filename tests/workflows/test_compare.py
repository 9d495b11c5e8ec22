"""`supcon compare --presets` (each method its own preset): one run per (method, seed), a report
with the table, and resumable re-runs. The controlled default is tested in test_controlled.py."""

import json
import statistics

import pytest

from supcon.engine import train_job
from supcon.workflows import evaluate as evaluate_module
from supcon.workflows import runs as runs_module
from supcon.workflows.analysis import summarise
from supcon.workflows.record import epoch_records


def test_compare_writes_the_report_and_skips_or_resumes_runs(tmp_path, cli, tiny, fast_eval, monkeypatch):
    out = tmp_path / "cmp"
    args = ["compare", "--presets", "--data", "digits", "--methods", "ce,supcon", "--seeds", "1", "--out", out,
            *fast_eval, "--embedding", "tsne", "--embedding-samples", "40", *tiny]
    code, stdout, err = cli(*args)
    assert code == 0, err
    evals = {m: json.loads((out / f"{m}-seed0" / "eval.json").read_text()) for m in ("ce", "supcon")}
    for m, e in evals.items():
        results = json.loads((out / f"{m}-seed0" / "results.json").read_text())
        assert results["method"] == m and results["epochs"] == 1
        assert e["reference"]["run"] == str(out / "ce-seed0")  # ce of the same seed
    assert evals["ce"]["reference"]["mce"] == pytest.approx(1.0)
    md = (out / "report.md").read_text()
    row = f"| supcon | 1 | {evals['supcon']['linear']['top1']:.2f} | {evals['supcon']['knn']['top1']:.2f} | " \
          f"{evals['supcon']['calibration']['ece']:.4f} |"
    assert "| method | seeds | clean top-1 (%) | kNN top-1 (%) | ECE |" in md and row in md, md
    assert "| ce | crop-flip | 1 | sgd |" in md and "| supcon | simaugment | 2 | sgd |" in md  # presets
    for png in ("plots/severity.png", "plots/training_curves.png", "supcon-seed0/reliability.png",
                "ce-seed0/embedding.png", "supcon-seed0/gradients.png"):
        assert f"]({png})" in md and (out / png).is_file(), png
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == md.count("![") >= 7
    assert "<td>supcon</td>" in page and 'src="http' not in page
    assert row.split("|")[3].strip() in stdout  # the table is printed too

    # a re-run skips everything: no training, no evaluation
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*-seed0/*.json")}

    def forbidden(*a, **k):
        raise AssertionError("a finished run was redone")

    monkeypatch.setattr(runs_module, "run_training", forbidden)
    monkeypatch.setattr(evaluate_module, "evaluate_run", forbidden)
    assert cli(*args)[0] == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("*-seed0/*.json")}
    monkeypatch.undo()

    # an interrupted run (checkpoint, no results) is resumed, not restarted
    before = json.loads((out / "supcon-seed0" / "results.json").read_text())
    (out / "supcon-seed0" / "results.json").unlink()
    (out / "supcon-seed0" / "eval.json").unlink()
    calls = []

    def spy(cfg, path, *, resume=False, progress=False, test=True):
        calls.append((path.name, resume))
        return train_job.run_training(cfg, path, resume=resume, progress=progress, test=test)

    monkeypatch.setattr(runs_module, "run_training", spy)
    assert cli(*args)[0] == 0
    assert calls == [("supcon-seed0", True)]
    after = json.loads((out / "supcon-seed0" / "results.json").read_text())
    assert after["test_top1"] == before["test_top1"] and after["steps"] == before["steps"]


def test_a_changed_configuration_is_refused_not_mixed(tmp_path, cli, tiny, fast_eval):
    out = tmp_path / "cmp"
    base = ["compare", "--presets", "--data", "digits", "--methods", "ce", "--out", out, *fast_eval]
    assert cli(*base, *tiny)[0] == 0
    code, _, err = cli(*base, *tiny, "optim.weight_decay=0.001")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "another configuration" in err


@pytest.mark.parametrize("args, expect", [
    (["--methods", "ce,moco"], "--methods must name"),
    (["--methods", "ce,ce"], "twice"),
    (["--seeds", "0"], "--seeds must be >= 1"),
])
def test_bad_compare_options_are_one_line(args, expect, tmp_path, cli):
    code, _, err = cli("compare", "--data", "digits", "--out", tmp_path / "x", *args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and expect in err, err


def test_summary_is_mean_and_sample_std_over_seeds():
    def fake(top1, knn, ece, mce):
        return {"linear": {"top1": top1}, "knn": {"top1": knn}, "calibration": {"ece": ece},
                "corruptions": None, "reference": {"mce": mce, "relative_mce": None}}

    s = summarise({"supcon": [fake(90, 88, 0.02, 0.8), fake(92, 87, 0.04, 0.9), fake(91, 86, 0.03, 0.7)]})
    top1 = s["supcon"]["clean_top1"]
    assert top1["mean"] == pytest.approx(91.0) and top1["std"] == pytest.approx(1.0)  # sample std
    assert s["supcon"]["ece"]["std"] == pytest.approx(statistics.stdev([0.02, 0.04, 0.03]))
    assert s["supcon"]["mce"]["mean"] == pytest.approx(0.8)
    assert s["supcon"]["relative_mce"] == {"mean": None, "std": None, "n": 0, "values": []}
    one = summarise({"ce": [fake(50, 40, 0.1, 1.0)]})["ce"]["clean_top1"]
    assert one["mean"] == 50 and one["std"] is None


def test_training_curve_keeps_the_last_record_of_each_epoch(tmp_path):
    records = [{"stage": "pretrain_epoch", "epoch": 1, "loss": 5.0},
               {"stage": "pretrain", "step": 10, "loss": 9.0},
               {"stage": "pretrain_epoch", "epoch": 1, "loss": 4.0},  # the resumed attempt
               {"stage": "pretrain_epoch", "epoch": 2, "loss": 3.0}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(map(json.dumps, records)) + "\n")
    curve = epoch_records(tmp_path)
    assert (curve["epoch"], curve["loss"]) == ([1, 2], [4.0, 3.0])
