"""`supcon compare` as a controlled experiment: shared settings by default, selection on the
validation split only, statistics from the run summaries, and resumable, committable records."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from supcon.cli import build_parser
from supcon.config import build_config
from supcon.data import Splits
from supcon.engine import components, train_job
from supcon.workflows import compare as compare_module
from supcon.workflows import evaluate as evaluate_module
from supcon.workflows import runs as runs_module
from supcon.workflows.analysis import ACCURACY, ROBUSTNESS, analyse
from supcon.workflows.compare import run_compare
from supcon.workflows.controlled import (
    SELECT_SEED,
    Controls,
    Design,
    build_rows,
    command_line,
    selection_points,
)
from supcon.workflows.eval_corruptions import summary as corruption_summary
from supcon.workflows.eval_options import EvalOptions
from supcon.workflows.execute import Runner, publish, select
from supcon.workflows.grid import StudySpec, presets_runs, seed_eval_options
from supcon.workflows.record import commit_files, portable_config
from supcon.workflows.render import build_sections, grid_edges, results_table
from supcon.workflows.report import to_markdown
from supcon.workflows.stats import verdict

from ..conftest import TINY
from .conftest import md_sections, md_tables

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"

# TINY without the settings a controlled compare chooses itself (epochs go through --epochs)
SHARED = [o for o in TINY if not o.startswith("train.epochs")]


def _spec(tmp_path, methods=("ce", "supcon"), seeds=2, overrides=SHARED):
    return StudySpec(out=tmp_path / "out", methods=methods, seeds=seeds, data="digits", epochs=1,
                     overrides=tuple(overrides))


# ------------------------------------------------------------------------------ the design
def test_the_default_is_controlled_shared_augmentation_and_one_grid(tmp_path, monkeypatch):
    study = Design(_spec(tmp_path, ("ce", "simclr", "supcon"), 5), Controls())
    assert [r.key for r in study.rows] == ["ce", "ce-own", "simclr", "supcon"]
    shared = set()
    for row in study.rows:
        points = selection_points(row, study.controls)
        lrs = sorted({p["optim.lr"] for p in points})
        assert lrs == [0.05, 0.1, 0.2]  # the same grid for every method
        temps = {p.get("loss.temperature") for p in points}
        assert temps == ({0.1, 0.5} if row.method != "ce" else {None})
        for point in points:
            cfg = study.config(row, 3, point)
            assert cfg.data.augmentation in (("crop-flip", "autoaugment") if row.key == "ce-own" else ("simaugment",))
            assert cfg.train.seed == 3 and cfg.optim.lr == point["optim.lr"]
            shared.add((cfg.model.encoder, str(cfg.model.encoder_options), cfg.train.batch_size,
                        cfg.train.epochs, cfg.data.name, cfg.linear.epochs))
    assert len(shared) == 1  # encoder, batch, epochs, data and linear stage are shared
    # the CLI's defaults are the same design, with 5 seeds
    args = build_parser().parse_args(["compare", "--out", "x"])
    assert (args.augmentation, args.seeds, args.presets, args.budget) == ("simaugment", 5, False, "epochs")
    assert args.baseline_augmentation == "crop-flip,autoaugment"
    own = study.row("ce-own")
    assert {p["data.augmentation"] for p in selection_points(own, study.controls)} == {"crop-flip", "autoaugment"}
    # and run_compare is the controlled comparison unless presets=True
    seen = {}
    monkeypatch.setattr(compare_module, "run_controlled", lambda *a, **k: seen.setdefault("controlled", True))
    run_compare(_spec(tmp_path), EvalOptions())
    assert seen == {"controlled": True}


def test_budget_of_equal_passes_gives_one_view_ce_twice_the_epochs(tmp_path):
    study = Design(_spec(tmp_path), Controls(budget="passes"))
    epochs = {r.key: study.config(r, 0, selection_points(r, study.controls)[0]).train.epochs for r in study.rows}
    assert epochs == {"ce": 2, "ce-own": 2, "supcon": 1}  # supcon sees 2 views per image


@pytest.mark.parametrize("override, flag", [("optim.lr=0.1", "--lr-grid"), ("data.augmentation=none", "--augmentation"),
                                            ("loss.temperature=0.2", "--temperature-grid")])
def test_overrides_of_controlled_settings_are_refused(tmp_path, override, flag):
    with pytest.raises(ValueError, match=f"is set by the controlled compare; use {flag}"):
        Design(_spec(tmp_path, overrides=(*SHARED, override)), Controls())


def test_ce_is_required_and_the_own_augmentation_row_is_optional():
    with pytest.raises(ValueError, match="must include ce"):
        build_rows(("supcon", "simclr"), Controls())
    assert [r.key for r in build_rows(("supcon", "ce"), Controls(baseline_augmentations=()))] == ["ce", "supcon"]
    # the same policy as the shared one would repeat the ce row
    assert [r.key for r in build_rows(("ce",), Controls(baseline_augmentations=("simaugment",)))] == ["ce"]
    own = build_rows(("ce",), Controls(baseline_augmentations=("crop-flip", "autoaugment")))[1]
    assert own.augmentations == ("crop-flip", "autoaugment") and "best of crop-flip, autoaugment" in own.label


# ------------------------------------------------------------------------------ selection
class Untouchable:
    """A test split that fails the test when its images or labels are read."""

    def __init__(self, n):
        self.n = n

    def __len__(self):  # the size alone is no information about the test images
        return self.n

    def __getattr__(self, name):
        raise AssertionError(f"the test split was read during selection (.{name})")

    def __getitem__(self, index):
        raise AssertionError("the test split was read during selection ([])")


def test_selection_reads_only_the_validation_split(tmp_path, monkeypatch):
    real = components.load_dataset

    def guarded(*args, **kwargs):
        splits = real(*args, **kwargs)
        return Splits(splits.train, splits.val, Untouchable(len(splits.test)), splits.info)

    monkeypatch.setattr(components, "load_dataset", guarded)
    controls = Controls(lr_grid=(0.05, 0.3), temperature_grid=(0.5,), baseline_augmentations=())
    study = Design(_spec(tmp_path), controls)
    runner = Runner(tmp_path / "out", tmp_path / "record")
    selection = select(study, runner)
    assert set(selection) == {"ce", "supcon"}
    for sel in selection.values():
        assert len(sel["grid"]) == 2
        best = max(sel["grid"], key=lambda t: t["val_top1"])
        assert sel["chosen"] == best["point"]  # the highest validation top-1 wins
        for tried in sel["grid"]:
            results = json.loads((runner.out / tried["name"] / "results.json").read_text())
            assert "test_top1" not in results and results["val_top1"] == tried["val_top1"]
            assert results["seed"] == SELECT_SEED
    # the guard works: a normal run reads the test split at its end
    with pytest.raises(AssertionError, match="test split was read"):
        train_job.run_training(study.config(study.row("ce"), 0, selection_points(study.row("ce"), controls)[0]),
                              tmp_path / "normal")


def test_core_run_of_seed_k_is_evaluated_with_eval_seed_k(tmp_path):
    """Each seed sees its own corruption subsample and noise; ce of seed k (the mCE reference of
    seed k) shares that eval seed, so the pairs stay paired. ``--eval-seed S`` shifts them all."""
    study, _ = _fake_study(tmp_path)
    study.spec = StudySpec(**{**study.spec.__dict__, "seeds": 3})
    runs = study.core_runs(EvalOptions(corruption_samples=60))
    assert [(r.name, r.evaluate.seed) for r in runs] == [(f"{row}-seed{k}", k) for k in range(3)
                                                         for row in ("ce", "supcon")]
    assert {r.evaluate.corruption_samples for r in runs} == {60}
    assert [r.evaluate.seed for r in study.core_runs(EvalOptions(seed=10))] == [10, 10, 11, 11, 12, 12]
    assert seed_eval_options(EvalOptions(seed=10, knn_k=5), 2) == EvalOptions(seed=12, knn_k=5)
    # compare --presets scores seed k on the same eval seed as the controlled design does
    presets = presets_runs(StudySpec(methods=("ce", "supcon"), seeds=2, data="digits", epochs=1,
                                     out=tmp_path / "p"), EvalOptions(seed=10))
    assert [(r.name, r.evaluate.seed, Path(r.evaluate.reference).name) for r in presets] == [
        ("ce-seed0", 10, "ce-seed0"), ("supcon-seed0", 10, "ce-seed0"),
        ("ce-seed1", 11, "ce-seed1"), ("supcon-seed1", 11, "ce-seed1")]
    # the printed command gives the base seed, which is what makes the same runs again
    assert "--eval-seed" not in command_line("compare", study, EvalOptions())
    assert "--eval-seed 10" in command_line("compare", study, EvalOptions(seed=10))


# ------------------------------------------------------------------------------ analysis
def _fake(method, clean, errors, *, knn=50.0, ece=0.05, seed=0):
    table = {"clean": {"error": clean, "ece": 0.02}, "severities": [1, 2], "error": errors,
             "ece": {c: [0.1, 0.2] for c in errors}, "samples": 100, "of": 100, "seed": 0}
    views = 1 if method == "ce" else 2
    config = portable_config(build_config(None, overrides={"method": method, "data.name": "digits",
                                                           "data.augmentation": "simaugment"}))
    return {"name": f"{method}-seed{seed}", "data_info": {"channels": 1, "image_size": 28}, "config": config,
            "results": {"steps": 10, "train_time_s": 5.0 * views, "test_top1": 100 * (1 - clean)},
            "pretrain": {"epoch": [1], "loss": [1.0], "epoch_time_s": [4.0 * views]},
            "pretrain_time_s": 4.0 * views, "encoder_passes": 640 * views,
            "eval": {"linear": {"top1": 100 * (1 - clean)}, "knn": {"top1": knn}, "calibration": {"ece": ece},
                     "corruptions": corruption_summary(table)}}


def _fake_study(tmp_path):
    study = Design(_spec(tmp_path), Controls(baseline_augmentations=()))
    for key, point in (("ce", {"data.augmentation": "simaugment", "optim.lr": 0.1}),
                       ("supcon", {"data.augmentation": "simaugment", "optim.lr": 0.1, "loss.temperature": 0.5})):
        study.selection[key] = {"chosen": point, "label": "p", "grid": [{"label": "p", "val_top1": 50.0, "epochs": 1}]}
    # contrast is imitated by simaugment and hurts ce by 3 points (unreliable below 5);
    # gaussian_noise is not imitated and hurts ce by 30 points
    ce = {"contrast": [0.12, 0.14], "gaussian_noise": [0.30, 0.50]}
    supcon = {"contrast": [0.10, 0.10], "gaussian_noise": [0.20, 0.30]}
    summaries = {"ce": [_fake("ce", 0.10, ce, knn=55, seed=0), _fake("ce", 0.10, ce, knn=56, seed=1)],
                 "supcon": [_fake("supcon", 0.08, supcon, knn=62, seed=0), _fake("supcon", 0.08, supcon, knn=50, seed=1)]}
    return study, summaries


def test_mce_split_reliability_and_bold_by_hand(tmp_path):
    study, summaries = _fake_study(tmp_path)
    summaries["ce"][0]["machine"] = "cpu A, avx2, 2 cores"  # the others: records from before machines were recorded
    a = analyse(study.shown_rows(), study.described(), study.selection, summaries)
    assert a["design"]["unimitated"] == ["gaussian_noise"] and a["design"]["reliable"] == ["gaussian_noise"]
    s = a["intervals"]["supcon"]
    # CE: contrast 0.2 / 0.26, noise 0.5 / 0.8; relative CE: contrast 0.04 / 0.06, noise 0.34 / 0.6
    assert s["mce"].mean == pytest.approx((0.2 / 0.26 + 0.5 / 0.8) / 2)
    assert s["mce_unimitated"].mean == pytest.approx(0.625)
    assert s["relative_mce"].mean == pytest.approx((0.04 / 0.06 + 0.34 / 0.6) / 2)
    assert s["relative_mce_reliable"].mean == pytest.approx(0.34 / 0.6)
    assert s["corrupted_top1_unimitated"].mean == pytest.approx(75.0)  # (80 + 70) / 2
    assert s["corrupted_top1"].mean == pytest.approx((90 + 90 + 80 + 70) / 4)
    assert a["intervals"]["ce"]["mce"].mean == pytest.approx(1.0)
    drop = a["per_corruption"]["contrast"]["reference_drop"]
    assert drop.mean == pytest.approx(3.0) and not a["per_corruption"]["contrast"]["reliable"]
    assert a["budget"]["supcon"]["encoder_passes"] == 2 * a["budget"]["ce"]["encoder_passes"]
    # bold: clean top-1 92 vs 90 on both seeds (interval excludes 0); kNN 56 vs 55.5 has the
    # higher mean but an interval around 0, so it stays plain
    acc = {row[0]: row for row in results_table(a, ACCURACY).rows}
    assert acc["supcon (simaugment)"][2] == "**92.00 [92.00, 92.00]**"
    assert acc["supcon (simaugment)"][3] == "56.00 [-20.24, 132.24]" and "**" not in "".join(acc["ce (simaugment)"])
    rob = {row[0]: row for row in results_table(a, ROBUSTNESS).rows}
    assert rob["ce (simaugment)"][4] == "1 (reference)"
    paired = a["paired"]["supcon vs ce"]
    assert verdict(paired["clean_top1"]) == "better" and verdict(paired["knn_top1"]).startswith("no difference")
    md = to_markdown("t", build_sections(summaries, a, tmp_path / "plots", "supcon compare"), tmp_path)
    tables = md_tables(md)
    assert "these runs were made on: cpu A, avx2, 2 cores (1 run); not recorded (3 runs)." in md
    assert "chose lr" not in md  # lr 0.1: inside the grid 0.05-0.2
    study.selection["ce"]["chosen"] = {**study.selection["ce"]["chosen"], "optim.lr": 0.2}
    assert grid_edges(analyse(study.shown_rows(), study.described(), study.selection, summaries)) == [
        "ce (simaugment) chose lr 0.2, the largest in the grid: its best lr may lie beyond it, so this row "
        "may be tuned less well than the others."]
    # relative CE per corruption: ce's own drop (3 and 30 points) and supcon's relative CE
    relative = next(t for t in tables if t[0][1] == "ce's own drop (points)")
    assert relative[1:] == [["contrast (imitated)", "3.0 ± 0.0", "0.667 ± 0.000 (unreliable)"],
                            ["gaussian_noise", "30.0 ± 0.0", "0.567 ± 0.000"]]
    versus = next(t for t in tables if t[0][0] == "metric")  # supcon's paired differences
    cells = {row[0]: row[1:] for row in versus[1:]}
    assert cells["clean top-1 (%)"] == ["+2.00 [2.00, 2.00]", "< 0.001", "better"]  # the same 2 points each seed
    # kNN differences 7 and -6: mean 0.5, half-width t_{0.975,1} x 6.5 = 12.7062 x 6.5 = 82.59;
    # t = 0.5 / 6.5 on 1 degree of freedom (Cauchy): p = 1 - 2 atan(t) / pi = 0.951
    assert cells["kNN top-1 (%)"] == ["+0.50 [-82.09, 83.09]", "0.951", "no difference detected (2 seeds)"]
    assert (tmp_path / "plots" / "corruption_differences.png").is_file()
    # the mCE terms per corruption: supcon's CE − ce's (ce's own CE is 1), the same on both seeds
    terms = next(t for t in tables if t[0][1:] == ["supcon − ce (simaugment)"])
    assert terms[1:] == [["contrast (imitated)", f"{0.2 / 0.26 - 1:.3f} [{0.2 / 0.26 - 1:.3f}, {0.2 / 0.26 - 1:.3f}]"],
                         ["gaussian_noise", f"{0.5 / 0.8 - 1:.3f} [{0.5 / 0.8 - 1:.3f}, {0.5 / 0.8 - 1:.3f}]"]]


def test_imitated_mce_probe_metrics_and_per_corruption_ce_difference_by_hand(tmp_path):
    study, summaries = _fake_study(tmp_path)
    supcon1 = {"contrast": [0.10, 0.12], "gaussian_noise": [0.25, 0.35]}
    summaries["supcon"][1] = _fake("supcon", 0.08, supcon1, seed=1)
    probes = {("ce", 0): (88.0, 0.03, [0.03, 0.05, 0.09]), ("supcon", 0): (91.0, 0.02, [0.02, 0.04, 0.06]),
              ("supcon", 1): (93.0, 0.04, [0.04, 0.04, 0.10])}  # ce seed 1: an old record, no probe
    for (key, k), (top1, ece, by_severity) in probes.items():
        summaries[key][k]["eval"]["probe"] = {"top1": top1, "val_top1": 0.0, "ece": ece,
                                              "ece_per_severity": by_severity}
    a = analyse(study.shown_rows(), study.described(), study.selection, summaries)
    assert a["design"]["imitated_evaluated"] == ["contrast"]
    v = a["values"]
    # CE_contrast = sum of supcon's errors / sum of ce's (0.12 + 0.14) per seed; ce's own is 1
    assert v["supcon"]["mce_imitated"] == pytest.approx([0.20 / 0.26, 0.22 / 0.26])
    assert v["ce"]["mce_imitated"] == pytest.approx([1.0, 1.0])
    assert v["supcon"]["mce_unimitated"] == pytest.approx([0.5 / 0.8, 0.6 / 0.8])
    assert v["supcon"]["probe_top1"] == [91.0, 93.0] and v["ce"]["probe_top1"] == [88.0, None]
    assert v["supcon"]["probe_ece"] == [0.02, 0.04] and v["ce"]["probe_ece"] == [0.03, None]
    assert v["supcon"]["probe_corrupted_ece"] == pytest.approx([0.05, 0.07])
    assert v["ce"]["probe_corrupted_ece"] == pytest.approx([0.07, None])
    # paired difference of one corruption's CE against ce's: d_k = CE_k - 1
    d = a["per_corruption"]["gaussian_noise"]["ce_difference"]["supcon"]
    diffs = [0.5 / 0.8 - 1, 0.6 / 0.8 - 1]
    half = 12.7062 * abs(diffs[0] - diffs[1]) / 2  # t_{0.975,1} * s / sqrt(2)
    assert d.difference.values == pytest.approx(diffs)
    assert (d.difference.low, d.difference.high) == pytest.approx((sum(diffs) / 2 - half, sum(diffs) / 2 + half),
                                                                  rel=1e-4)
    assert set(a["per_corruption"]["contrast"]["ce_difference"]) == {"supcon"}
    for m in ("mce_imitated", "probe_top1", "probe_ece", "probe_corrupted_ece"):
        assert a["paired"]["supcon vs ce"][m].n == (1 if m.startswith("probe") else 2)


# ------------------------------------------------------------------------------ the command
@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """A tiny controlled compare on digits: ce, ce with crop-flip, supcon; 2 seeds."""
    from supcon.cli import main

    root = tmp_path_factory.mktemp("controlled")
    args = ["compare", "--data", "digits", "--methods", "ce,supcon", "--seeds", "2", "--epochs", "1",
            "--out", str(root / "runs"), "--record", str(root / "record"), "--lr-grid", "0.3",
            "--temperature-grid", "0.5", "--baseline-augmentation", "crop-flip",
            "--corruptions", "contrast,gaussian_noise",
            "--corruption-samples", "60", "--embedding", "none", "--no-progress", *SHARED]
    assert main(args) == 0
    return root, args


def test_compare_writes_intervals_from_the_summaries(compared):
    root, _ = compared
    record = root / "record"
    summaries = {p.stem: json.loads(p.read_text()) for p in (record / "summaries").glob("*.json")}
    assert set(summaries) == {f"{r}-seed{k}" for r in ("ce", "ce-own", "supcon") for k in (0, 1)}
    assert len(list((record / "summaries" / "select").glob("*.json"))) == 3
    for name, s in summaries.items():
        assert len(json.dumps(s)) < 30_000  # a small summary, no weights
        assert s["eval"]["linear"]["top1"] == pytest.approx(s["results"]["test_top1"], abs=1e-3)
        aug = json.loads(json.dumps(s["config"]))["data"]["augmentation"]
        assert aug == ("crop-flip" if name.startswith("ce-own") else "simaugment")
    assert not list(record.rglob("*.safetensors")) and not list(record.rglob("*.pt"))
    top1 = [summaries[f"supcon-seed{k}"]["eval"]["linear"]["top1"] for k in (0, 1)]
    mean, half = sum(top1) / 2, 12.7062 * abs(top1[0] - top1[1]) / 2  # t_{0.975,1} * s / sqrt(2)
    summary = json.loads((record / "summary.json").read_text())
    got = summary["intervals"]["supcon"]["clean_top1"]
    assert got["mean"] == pytest.approx(mean) and got["half_width"] == pytest.approx(half, rel=1e-4)
    md = (record / "report.md").read_text()
    assert md_sections(md) == ["Results", "Paired differences against cross-entropy", "Robustness by corruption",
                               "Budget", "Selection on the validation split", "Setup", "Training curves"]
    results = md_tables(md)[0]
    assert [r[0] for r in results[1:]] == ["ce (simaugment)", "ce (own augmentation: crop-flip)", "supcon (simaugment)"]
    assert results[3][2].strip("*") == f"{mean:.2f} [{mean - half:.2f}, {mean + half:.2f}]"  # supcon, clean top-1
    assert {b["epochs"] for b in summary["budget"].values()} == {1}  # equal epochs
    corruptions = next(t for t in md_tables(md) if t[0][:2] == ["corruption", "category"])
    assert sorted(r[0] for r in corruptions[1:]) == ["contrast", "gaussian_noise"]
    assert "](plots/corruption_differences.png)" in md
    assert summary["command"].startswith("supcon compare --lr-grid 0.3 --temperature-grid 0.5 "
                                         "--baseline-augmentation crop-flip --record")
    page = (record / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == md.count("![") >= 3


def test_a_rerun_and_a_fresh_machine_redo_nothing(compared, monkeypatch):
    from supcon.cli import main

    root, args = compared

    def forbidden(*a, **k):
        raise AssertionError("a recorded run was redone")

    monkeypatch.setattr(runs_module, "run_training", forbidden)  # every run trains through it
    monkeypatch.setattr(evaluate_module, "evaluate_run", forbidden)
    before = (root / "record" / "summary.json").read_text()
    assert main(args) == 0
    # another machine: only the committed record is there, no run folders
    shutil.rmtree(root / "runs")
    assert main(args) == 0
    assert (root / "record" / "summary.json").read_text() == before
    assert not (root / "runs" / "supcon-seed0").exists()


def test_portable_config_leaves_out_the_machine(tmp_path):
    cfg = _spec(tmp_path).config_for("ce", 0, {"data.data_dir": str(tmp_path), "train.device": "cpu"})
    out = portable_config(cfg)
    assert "data_dir" not in out["data"] and "num_workers" not in out["data"] and "device" not in out["train"]
    assert out["train"]["seed"] == 0 and out["data"]["name"] == "digits"


def _git_identity(monkeypatch):
    for key, value in (("GIT_AUTHOR_NAME", "t"), ("GIT_AUTHOR_EMAIL", "t@x"), ("GIT_COMMITTER_NAME", "t"),
                       ("GIT_COMMITTER_EMAIL", "t@x")):
        monkeypatch.setenv(key, value)


def test_commit_waits_for_another_git_command_to_release_the_index(tmp_path, monkeypatch):
    import threading

    from supcon.workflows import record as record_module

    _git_identity(monkeypatch)
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    summary = repo / "summaries" / "ce-seed0.json"
    summary.parent.mkdir()
    summary.write_text("{}\n")
    lock = repo / ".git" / "index.lock"
    lock.write_text("")  # as a user's `git commit` holds it
    release = threading.Timer(1.0, lock.unlink)
    release.start()
    try:
        assert commit_files([summary], "study: ce-seed0 finished")  # waited for the lock, then committed
    finally:
        release.join()
    lock.write_text("")  # a lock nobody releases: a one-line error once the wait is over
    monkeypatch.setattr(record_module, "LOCK_WAIT_S", 0.2)
    summary.write_text("{\"changed\": 1}\n")
    with pytest.raises(ValueError, match=r"^--commit: git add failed: .*index\.lock"):
        commit_files([summary], "again")


def test_commit_adds_exactly_the_summary(tmp_path, monkeypatch):
    _git_identity(monkeypatch)
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "other.txt").write_text("not mine\n")
    subprocess.run(["git", "-C", str(repo), "add", "other.txt"], check=True)  # staged, not committed
    summary = repo / "rec" / "summaries" / "ce-seed0.json"
    summary.parent.mkdir(parents=True)
    summary.write_text("{}\n")
    assert commit_files([summary], "study: ce-seed0 finished")
    assert not commit_files([summary], "again")  # nothing new
    log = subprocess.run(["git", "-C", str(repo), "log", "--name-only", "--format=%s"], capture_output=True,
                         text=True, check=True).stdout.split()
    assert log[:4] == ["study:", "ce-seed0", "finished", "rec/summaries/ce-seed0.json"]
    staged = subprocess.run(["git", "-C", str(repo), "diff", "--cached", "--name-only"], capture_output=True,
                            text=True, check=True).stdout.split()
    assert staged == ["other.txt"]  # left as it was


def test_the_report_commit_holds_the_claims_table(tmp_path, monkeypatch):
    _git_identity(monkeypatch)
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    record = repo / "rec"
    record.mkdir()
    claims = record / "claims.md"
    claims.write_text("| claim |\n|---|\n")
    publish(record, "t", [], {"x": 1}, commit=True, also=(claims,))
    committed = subprocess.run(["git", "-C", str(repo), "show", "--name-only", "--format=", "HEAD"],
                               capture_output=True, text=True, check=True).stdout.split()
    assert sorted(committed) == ["rec/claims.md", "rec/report.html", "rec/report.md", "rec/summary.json"]


def test_commit_outside_a_repository_is_refused_before_any_run(tmp_path, monkeypatch):
    def forbidden(*a, **k):
        raise AssertionError("a run was started")

    monkeypatch.setattr(runs_module, "run_training", forbidden)
    controls = Controls(commit=True, record=Path(tmp_path / "rec"))
    with pytest.raises(ValueError, match="is not inside a git repository"):
        run_compare(_spec(tmp_path), EvalOptions(), controls=controls)


def test_study_adds_claim_rows_with_paired_intervals(compared):
    from supcon.cli import main

    root, args = compared
    study = ["study", *args[1:], "--claims", "accuracy,lout-lin", "--claim-seeds", "2"]
    assert main(study) == 0
    record = root / "record"
    read = lambda name: json.loads((record / "summaries" / f"{name}.json").read_text())  # noqa: E731
    l_out = [read(f"supcon-seed{k}")["results"]["test_top1"] for k in (0, 1)]  # the core runs, reused
    l_in = [read(f"lout-lin/supcon-in-seed{k}")["results"]["test_top1"] for k in (0, 1)]
    assert [read(f"lout-lin/supcon-in-seed{k}")["config"]["loss"]["variant"] for k in (0, 1)] == ["in", "in"]
    d = [a - b for a, b in zip(l_out, l_in, strict=True)]
    mean, half = sum(d) / 2, 12.7062 * abs(d[0] - d[1]) / 2
    summary = json.loads((record / "summary.json").read_text())
    vs_ce, vs_own, lout = summary["claims"]  # the core rows first (one per comparator), then lout-lin
    assert lout["difference"]["values"] == pytest.approx(d)
    assert (lout["difference"]["low"], lout["difference"]["high"]) == pytest.approx((mean - half, mean + half), rel=1e-4)
    sign = "+" if mean >= 0 else ""
    claims = md_tables((record / "claims.md").read_text())[0]
    assert claims[0] == ["family", "the paper's claim", "setting", "compared with", "measured here [95% CI]", "p",
                         "adjusted p", "verdict"] and len(claims) == 4
    assert claims[3][4].endswith(f"{sign}{mean:.2f} [{mean - half:.2f}, {mean + half:.2f}] points")
    core = summary["core"]  # both comparators, fixed in advance: never picked by a test mean
    assert vs_ce["difference"] == core["paired"]["supcon vs ce"]["clean_top1"]["difference"]
    assert vs_own["difference"] == core["paired"]["supcon vs ce-own"]["clean_top1"]["difference"]
    # primary family of two: Holm multiplies the smaller p by 2
    small, large = sorted([vs_ce["p"], vs_own["p"]])
    assert min(vs_ce["p_adjusted"], vs_own["p_adjusted"]) == pytest.approx(min(1.0, 2 * small))
    plan = json.loads((record / "plan.json").read_text())
    assert [(r["endpoint"], r["family"]) for r in plan["rows"]] == [
        ("clean_top1", "primary"), ("clean_top1", "primary"), ("lout-lin", "secondary")]
    assert plan["adjustment"] == {"primary": "Holm", "secondary": "Benjamini-Hochberg"}
    assert summary["plan"] == plan and (record / "plan.md").exists()
    md = (record / "report.md").read_text()
    sections = md_sections(md)
    assert sections[0] == "Claims" and sections[1] == "Results" and sections[-1] == "L_out vs L_in"
    assert summary["command"].startswith("supcon study --seeds 2") and "--claims accuracy,lout-lin" in summary["command"]
    # the plan is kept: the same study with other claims is refused before any run
    other = ["study", *args[1:], "--claims", "accuracy", "--claim-seeds", "2"]
    assert main(other) == 2
    # the readout of a running study gives the primary family's rows as the finished study does
    readout = subprocess.run([sys.executable, BENCHMARKS / "study_readout.py", str(record)], capture_output=True,
                             text=True)
    assert readout.returncode == 0 and readout.stdout.startswith("families: primary ")
    assert md_tables(readout.stdout)[0] == claims[:3]
    partial = root / "record-partial"
    shutil.copytree(record, partial)
    (partial / "summaries" / "supcon-seed1.json").unlink()
    readout = subprocess.run([sys.executable, BENCHMARKS / "study_readout.py", str(partial)], capture_output=True,
                             text=True)
    assert readout.returncode == 1 and readout.stderr.strip().splitlines() == [
        f"error: supcon-seed1: not in the record {partial} yet"]


def test_study_needs_supcon_and_ce(tmp_path):
    from supcon.workflows.study import ClaimOptions, run_study

    with pytest.raises(ValueError, match="must include supcon and ce"):
        run_study(_spec(tmp_path, ("ce", "simclr")))
    with pytest.raises(ValueError, match="^claims: unknown"):
        ClaimOptions(claims=("speed",))


def test_study_equal_compute_and_stability_rows_follow_their_plan(compared):
    from supcon.cli import main

    root, args = compared
    record = root / "record-more"
    at = args.index("--record")
    study = ["study", *args[1:at], "--record", str(record), *args[at + 2:],
             "--claims", "accuracy,equal-compute,stability", "--claim-seeds", "2", "--stability-epochs", "1"]
    assert main(study) == 0
    summary = json.loads((record / "summary.json").read_text())
    read = lambda name: json.loads((record / "summaries" / f"{name}.json").read_text())  # noqa: E731
    # equal compute: each ce row at the encoder passes of supcon (2 views x 1 epoch = 2 epochs of 1 view)
    for key in ("ce", "ce-own"):
        s = read(f"equal-compute/{key}-2ep-seed1")
        assert s["config"]["train"]["epochs"] == 2
        assert s["encoder_passes"] == read("supcon-seed1")["encoder_passes"]
        assert s["eval_settings"]["seed"] == 1  # the seed's corruption subsample, as its core runs
    rows = summary["claims"]
    equal = [r for r in rows if r["endpoint"].startswith("equal-compute")]
    top1 = [read(f"supcon-seed{k}")["results"]["test_top1"] - read(f"equal-compute/ce-2ep-seed{k}")["results"]["test_top1"]
            for k in (0, 1)]
    assert equal[0]["difference"]["values"] == pytest.approx(top1, abs=1e-3)
    # stability: batch x0.5, x1, x2 at equal steps, lr scaled with the batch
    batch = {b: read(f"stability/supcon-batch-{b}-seed0")["config"] for b in ("32", "64", "128")}
    assert [c["train"]["epochs"] for c in batch.values()] == [1, 2, 4]
    assert [c["optim"]["lr"] for c in batch.values()] == pytest.approx([0.15, 0.3, 0.6])
    stab = [r for r in rows if r["endpoint"].startswith("stability")]
    assert len(stab) == 6 and {r["family"] for r in stab} == {"secondary"}
    assert [r["endpoint"] for r in rows] == [r["endpoint"] for r in summary["plan"]["rows"]]
    assert all("p_adjusted" in r for r in rows)
