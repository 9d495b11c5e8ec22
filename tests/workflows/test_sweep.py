"""`supcon sweep`: the stability study's runs, spreads and report."""

import json
import statistics

import pytest

from supcon.config import METHOD_DEFAULTS, load_config
from supcon.data import POLICIES
from supcon.workflows import sweep_points


def test_lr_sweep_reports_std_and_range_of_the_runs(tmp_path, cli, tiny):
    out = tmp_path / "sweep"
    code, stdout, err = cli("sweep", "--data", "digits", "--vary", "lr", "--values", "0.5,2",
                            "--methods", "ce", "--out", out, *tiny)
    assert code == 0, err
    base = METHOD_DEFAULTS["ce"]["optim.lr"]
    top1 = []
    for label, factor in (("x0.5", 0.5), ("x2", 2.0)):
        run = out / f"ce-lr-{label}"
        assert load_config(run / "config.yaml").optim.lr == pytest.approx(base * factor)
        # the linear top-1 the sweep reads, as eval.json holds it (results.json rounds it more)
        top1.append(json.loads((run / "eval.json").read_text())["linear"]["top1"])
        assert json.loads((run / "results.json").read_text())["test_top1"] == pytest.approx(top1[-1], abs=1e-4)
    std, spread = statistics.stdev(top1), max(top1) - min(top1)
    result = json.loads((out / "sweep.json").read_text())
    assert result["spread"]["ce"]["std"] == pytest.approx(std, abs=1e-3)
    assert result["spread"]["ce"]["range"] == pytest.approx(spread, abs=1e-3)
    md = (out / "sweep.md").read_text()
    assert f"| ce | 2 | {statistics.fmean(top1):.2f} | {std:.2f} | {spread:.2f} |" in md, md
    assert "](sweep.png)" in md and (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert 'src="data:image/png;base64,' in (out / "sweep.html").read_text()
    assert f"std {std:.2f}" in stdout


def test_sweep_values_around_each_preset():
    augs = sweep_points("augmentation", 0.05)
    assert [p.label for p in augs] == [p for p in POLICIES if p != "none"]
    opts = {p.label: p.overrides for p in sweep_points("optimizer", 0.05)}
    assert opts["sgd"] == {"optim.name": "sgd", "optim.lr": 0.05}
    assert opts["adamw"]["optim.lr"] == 1e-3 and set(opts) == {"sgd", "lars", "rmsprop", "adamw"}
    lrs = [p.overrides["optim.lr"] for p in sweep_points("lr", 0.1)]
    assert lrs == pytest.approx([0.025, 0.05, 0.1, 0.2, 0.4])
    assert [p.label for p in sweep_points("lr", 0.1, ["3"])] == ["x3"]
    batches = sweep_points("batch", 0.1, base_batch=256)
    assert [p.overrides for p in batches] == [{"train.batch_size": b} for b in (128, 256, 512)]
    assert [p.label for p in sweep_points("batch", 0.1, ["64"])] == ["64"]


@pytest.mark.parametrize("args, expect", [
    (["--vary", "optimizer", "--values", "sgd,adam"], "unknown optimizer 'adam'"),
    (["--vary", "lr", "--values", "-1"], "positive factors"),
    (["--vary", "lr", "--methods", "supcon,byol"], "--methods must name"),
])
def test_bad_sweep_options_are_one_line(args, expect, tmp_path, cli):
    code, _, err = cli("sweep", "--data", "digits", "--out", tmp_path / "x", *args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and expect in err, err
