"""benchmarks/backbones.py on a few names: each gets its status (ok, refused up front, FAIL for a name
the registry accepts but that breaks), the rows survive for --resume, and the RESULTS section is
written beside the others. Nothing here checks a time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_backbones_benchmark_sorts_names_into_ok_refused_and_fail(tmp_path):
    pytest.importorskip("timm")
    results, rows = tmp_path / "RESULTS.md", tmp_path / "rows.jsonl"
    results.write_text("# Benchmark results\n\n## Other section\n\nkept\n")
    names = ["torchvision:squeezenet1_1", "timm:test_vit", "timm:test_resnet", "timm:no_such_model"]
    cmd = [sys.executable, "backbones.py", "--names", *names, "--rows", str(rows), "--write", str(results)]
    proc = subprocess.run(cmd, cwd=BENCHMARKS, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = {r["name"]: r for r in map(json.loads, rows.read_text().splitlines())}
    assert {n: got[n]["status"] for n in names} == {
        "torchvision:squeezenet1_1": "ok", "timm:test_vit": "refused", "timm:test_resnet": "ok",
        "timm:no_such_model": "refused"}  # (a name outside the registry is refused like any other)
    assert got["torchvision:squeezenet1_1"]["features"] == "512" and got["timm:test_resnet"]["features"] == "96"
    assert "| torchvision:squeezenet1_1 | 1.24 | 512 | ok | ok |" in proc.stdout
    text = results.read_text()
    assert "## Other section\n\nkept" in text and "## Backbones (benchmarks/backbones.py)" in text
    assert "| timm | 3 | 1 | 2 | 0 | 0 |" in text and "| torchvision | 1 | 1 | 0 | 0 | 0 |" in text
    assert "a fixed input size, at 32 px and 96 px (1; e.g. `encoder 'timm:test_vit' takes only 160x160" in text
    # --resume runs nothing again: the rows file is not appended to
    again = subprocess.run(cmd + ["--resume"], cwd=BENCHMARKS, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and len(rows.read_text().splitlines()) == len(names), again.stderr[-3000:]


def test_a_name_accepted_but_breaking_is_a_fail(monkeypatch):
    """The statuses are the benchmark's point: an accepted encoder whose output is wrong at one size
    (here: its feature size follows the image size), or an error other than the registry's one-line
    refusal, is FAIL."""
    import torchvision
    from torch import nn

    import supcon.models

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import backbones

    class Flat(nn.Module):
        num_features = 3 * 32 * 32

        def forward(self, x):
            return x.flatten(1)

    monkeypatch.setattr(supcon.models, "create_encoder", lambda name, **kw: Flat())
    row = backbones.check("torchvision:resnet18", [32, 96], None, 60)
    assert (row["status"], row["32"], row["96"]) == ("FAIL", "ok", "FAIL") and "output (2, 27648)" in row["error"]

    def broken(name, **kw):
        raise IndexError("list index out of range")

    monkeypatch.setattr(supcon.models, "create_encoder", broken)
    row = backbones.check("torchvision:resnet18", [32, 96], None, 60)
    assert row["status"] == "FAIL" and row["error"] == "IndexError: list index out of range"
    resnet18 = sum(p.numel() for p in torchvision.models.resnet18().parameters())  # counted on the meta device
    assert row["params_m"] == round(resnet18 / 1e6, 2)
