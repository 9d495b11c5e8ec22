"""The CPU path of benchmarks/train_speed.py runs end to end and writes its RESULTS section.

Nothing here checks a time: only that every case ran, that the counted FLOPs agree with a count
made here, and that the table and the section are written.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from supcon.data import load_dataset
from supcon.methods import create_method
from supcon.models import create_encoder

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = "{widths: [8], blocks: [1], strides: [2]}"


def _flops_per_image(batch: int) -> float:
    """One SupCon step of small-resnet on digits, counted here independently of the script."""
    info = load_dataset("digits").info
    method = create_method("supcon", temperature=0.1, head="mlp", feat_dim=128)
    model = method.build_model(create_encoder("small-resnet", in_channels=info.channels), 10)
    images = torch.randn(batch, 2, info.channels, info.image_size, info.image_size)
    with FlopCounterMode(display=False) as counter:
        method(model, images, torch.arange(batch) % 10)["loss"].backward()
    return counter.get_total_flops() / batch


def test_train_speed_cpu_path_runs_and_writes_its_section(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Other section\n\nkept\n")
    cmd = [sys.executable, "train_speed.py", "--encoders", "small-resnet", "--batches", "16",
           "--threads", "1", "--channels-last", "0,1", "--compile", "0", "--steps", "2",
           "--warmup", "1", "--data", "digits", "--augment-on-device", "--write", str(results)]
    proc = subprocess.run(cmd, cwd=BENCHMARKS, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| small-resnet | 16 ")]
    assert len(rows) >= 2, proc.stdout  # channels-last off and on
    assert not any("rc=" in row for row in rows), proc.stdout
    mflop = float(rows[0].split("|")[6])
    assert abs(mflop - _flops_per_image(16) / 1e6) < 0.05 * mflop  # the optimizer step adds a little
    text = results.read_text()
    assert "## Other section\n\nkept" in text
    assert "## Training step speed (benchmarks/train_speed.py)" in text
    assert "| encoder | setting | loader workers |" in text  # the end-to-end table
    assert "augment on device | 1 |" in text  # fed by the deferred loader + DeviceAugment
