"""``supcon_loss(..., gather=True)`` under torchrun with 2 CPU processes (gloo) equals one process
on the concatenated batch: the mean over ranks of the returned values is the single-process
loss, each rank's feature gradient is world_size times its rows of the single-process gradient,
and a DDP-wrapped model's (rank-averaged) parameter gradients are the single-process ones, to
1e-6 (float64), for labels, multi-hot labels, a weighted mask, no labels, references and ranks
without positives. The worker is tests/_gather_worker.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_gather_under_torchrun_equals_one_process_on_the_concatenated_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "tests" / "_gather_worker.py"), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in (0, 1):
        report = json.loads((tmp_path / f"rank{rank}.json").read_text())
        message = report.pop("unequal shapes")
        assert "gather=True needs the same features shape" in message, message
        assert len(report) == 10
        for case, errors in report.items():
            for what in ("loss", "grad"):
                if what in errors:
                    assert errors[what] <= 1e-6, (rank, case, errors)
        assert report["no positives at all"]["value"] == 0.0
        assert report["a rank without positives"]["value"] > 0.0
        assert report["labels"]["value"] > 0.0
