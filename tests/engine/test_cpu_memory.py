"""retain_freed_memory: repeated allocations of training-sized blocks stop faulting in pages."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Four 12 MiB tensors made and freed ten times: what one training step does with activations.
SCRIPT = """
import resource, sys, torch
if sys.argv[1] == "retain":
    from supcon.engine.cpu_memory import retain_freed_memory
    assert retain_freed_memory()
def step():
    blocks = [torch.ones(3 * 1024 * 1024) for _ in range(4)]
    return sum(float(b[0]) for b in blocks)
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_retained_memory_is_reused_without_page_faults():
    default, retained = _faults("default"), _faults("retain")
    # 10 x 48 MiB of fresh pages is up to ~120k faults by default; reusing the heap needs few.
    assert default > 10_000
    assert retained < default / 5
