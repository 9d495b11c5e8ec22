"""The study's plan: written (and committed) before the first run, kept for the whole study, and
the claim rows must be exactly the planned ones; the run order puts the primary endpoints first;
the stability design holds steps equal across batch sizes."""

import json
import subprocess

import pytest

from supcon.workflows import runs as runs_module
from supcon.workflows.controlled import Controls, Design
from supcon.workflows.eval_options import EvalOptions
from supcon.workflows.grid import StudySpec
from supcon.workflows.plan import build_plan, check_rows_follow, planned_row, write_or_check
from supcon.workflows.study import ClaimOptions, run_study, stability_points

from ..conftest import TINY

SHARED = [o for o in TINY if not o.startswith("train.epochs")]
ROWS = [planned_row("top-1", "clean_top1", "ce", "primary"), planned_row("mCE", "mce", "ce", "primary"),
        planned_row("ECE", "ece", "ce", "secondary")]


def _plan(rows=ROWS):
    return build_plan("t", "supcon study --x", rows, {"ce": "shared augmentation"}, ["core"], {"seeds": 5})


def test_the_plan_is_written_once_and_another_plan_is_refused(tmp_path):
    path, page = write_or_check(tmp_path / "rec", _plan())
    assert json.loads(path.read_text())["rows"] == ROWS and page.name == "plan.md"
    assert "| primary | top-1 | clean_top1 | ce |" in (tmp_path / "rec" / "plan.md").read_text()
    assert _plan()["adjustment"] == {"primary": "Holm", "secondary": "Benjamini-Hochberg"}
    assert write_or_check(tmp_path / "rec", _plan()) == []  # the same plan: kept, nothing written
    moved = {**_plan(), "command": "supcon study --x --out /elsewhere --record r2 --commit --no-progress"}
    assert write_or_check(tmp_path / "rec", moved) == []  # where it runs and records is not the experiment
    reworded = _plan([{**r, "claim": r["claim"] + " (reworded)"} for r in ROWS])
    assert write_or_check(tmp_path / "rec", reworded) == []  # wording is not what a plan commits to
    with pytest.raises(ValueError, match=r"holds another plan \(it differs in adjustment, rows\)"):
        write_or_check(tmp_path / "rec", _plan(ROWS[:2]))


def test_rows_must_be_exactly_the_planned_ones_and_come_in_its_order():
    made = [{"endpoint": r["endpoint"], "comparator": r["comparator"], "family": r["family"], "v": i}
            for i, r in enumerate(reversed(ROWS))]
    assert [r["v"] for r in check_rows_follow(_plan(), made)] == [2, 1, 0]
    with pytest.raises(RuntimeError, match="missing"):
        check_rows_follow(_plan(), made[:2])
    # a row names its comparator by the label chosen on validation; the plan by the row's key
    shown = [{**r, "comparator": "ce (own augmentation: autoaugment)", "comparator_key": r["comparator"]} for r in made]
    assert [r["v"] for r in check_rows_follow(_plan(), shown)] == [2, 1, 0]
    with pytest.raises(RuntimeError, match="not planned"):
        check_rows_follow(_plan(), [*made, {"endpoint": "knn", "comparator": "ce", "family": "primary"}])


def test_the_plan_is_committed_before_the_first_run(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for key, value in (("user.email", "t@t"), ("user.name", "t")):
        subprocess.run(["git", "-C", str(repo), "config", key, value], check=True)
    seen = []

    def first_run(*args, **kwargs):
        log = subprocess.run(["git", "-C", str(repo), "log", "--name-only", "--format=%s"], capture_output=True,
                             text=True, check=True).stdout
        seen.append(log)
        raise KeyboardInterrupt  # stop the study at its first training

    monkeypatch.setattr(runs_module, "run_training", first_run)
    spec = StudySpec(methods=("ce", "supcon"), seeds=2, data="digits", epochs=1, out=tmp_path / "runs",
                     overrides=tuple(SHARED))
    controls = Controls(lr_grid=(0.1,), temperature_grid=(0.5,), record=repo / "rec", commit=True)
    with pytest.raises(KeyboardInterrupt):
        run_study(spec, controls=controls, claims=ClaimOptions(claims=("accuracy", "robustness")))
    assert "rec/plan.json" in seen[0] and "rec/plan.md" in seen[0]
    plan = json.loads((repo / "rec" / "plan.json").read_text())
    assert [(r["endpoint"], r["family"]) for r in plan["rows"]] == [
        ("clean_top1", "primary"), ("clean_top1", "primary"), ("mce", "primary"), ("mce", "primary"),
        ("mce_unimitated", "exploratory"), ("mce_unimitated", "exploratory"),
        ("mce_imitated", "exploratory"), ("mce_imitated", "exploratory")]
    assert len({r["comparator"] for r in plan["rows"]}) == 2  # both cross-entropy rows


def test_supcon_and_the_cross_entropy_rows_run_first_and_simclr_may_train_fewer_seeds(tmp_path):
    spec = StudySpec(methods=("ce", "simclr", "supcon"), seeds=3, data="digits", epochs=1, out=tmp_path,
                     overrides=tuple(SHARED))
    design = Design(spec, Controls(simclr_seeds=1))
    assert [[r.key for r in stage] for stage in design.stages()] == [["ce", "ce-own", "supcon"], ["simclr"]]
    design.selection = {r.key: {"chosen": {"data.augmentation": "simaugment", "optim.lr": 0.1,
                                           **({"loss.temperature": 0.5} if r.method != "ce" else {})}}
                        for r in design.rows}
    names = [run.name for run in design.core_runs(EvalOptions())]
    assert [n for n in names if n.startswith("simclr")] == ["simclr-seed0"]
    assert [n for n in names if n.startswith("supcon")] == ["supcon-seed0", "supcon-seed1", "supcon-seed2"]
    with pytest.raises(ValueError, match="simclr_seeds must be >= 1"):
        Controls(simclr_seeds=0)


def test_stability_batch_points_hold_the_steps_equal_and_scale_the_lr():
    points = stability_points(0.2, "simaugment", 256, 4)
    batch = {label: o for label, o in points["batch"]}
    assert list(batch) == ["128", "256", "512"]
    n = 54_000  # any training-set size: steps = epochs * n / batch
    assert len({round(o["train.epochs"] * n / o["train.batch_size"]) for o in batch.values()}) == 1
    assert [o["train.epochs"] for o in batch.values()] == [4, 8, 16]
    assert [o["optim.lr"] for o in batch.values()] == pytest.approx([0.1, 0.2, 0.4])
    assert [o["optim.lr"] for _, o in points["lr"]] == pytest.approx([0.05, 0.2, 0.8])
    assert {o["train.epochs"] for _, o in points["lr"] + points["augmentation"]} == {4}
    assert [label for label, _ in points["augmentation"]] == ["simaugment", "autoaugment", "randaugment",
                                                              "stacked-randaugment"]


def test_plan_only_writes_the_plan_and_trains_nothing(tmp_path, monkeypatch, capsys):
    from supcon.cli import main

    def forbidden(*a, **k):
        raise AssertionError("a run was started")

    monkeypatch.setattr(runs_module, "run_training", forbidden)
    args = ["study", "--data", "digits", "--methods", "ce,supcon", "--epochs", "1", "--out", str(tmp_path / "runs"),
            "--record", str(tmp_path / "rec"), "--claims", "accuracy", "--plan-only", *SHARED]
    assert main(args) == 0
    plan = json.loads((tmp_path / "rec" / "plan.json").read_text())
    assert "--plan-only" not in plan["command"] and "--claims accuracy" in plan["command"]
    assert f"plan: {tmp_path / 'rec' / 'plan.json'}" in capsys.readouterr().out
    assert main(args) == 0  # the same plan again: kept
