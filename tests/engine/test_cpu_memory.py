"""retain_freed_memory: a freed activation-sized block stays in the process for the next step, in
the `supcon` command's own process only; `supcon.train` leaves a caller's process as it found it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from supcon.engine import cpu_memory

# Reports the bytes glibc's malloc keeps as free heap (mallinfo2's fordblks) after freeing memory.
PREAMBLE = """
import ctypes, sys, torch
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
"""
# Frees one 16 MiB tensor (a typical activation of a step): the block itself is kept when retained.
ONE_BLOCK = PREAMBLE + """
if sys.argv[1] == "retain":
    from supcon.engine.cpu_memory import retain_freed_memory
    assert retain_freed_memory() and retain_freed_memory()  # idempotent
block = torch.ones(4 * 1024 * 1024)  # 16 MiB
del block
print(libc.mallinfo2().fordblks)
"""
# Trains (or not) in this process, then frees 20 blocks of 16 MiB (320 MiB, untouched pages): glibc
# as the process found it keeps at most twice its mmap threshold (<= 32 MiB) of free heap at the top.
AFTER_TRAINING = PREAMBLE + """
import supcon
if sys.argv[1] == "train":
    supcon.train(train_set="digits", out=sys.argv[2], progress=False, epochs=1, batch_size=64, workers=0,
                 **{"model.encoder_options": {"widths": [8, 16], "blocks": [1, 1], "strides": [2, 2]},
                    "linear.epochs": 1, "train.device": "cpu"})
elif sys.argv[1] == "retain":
    from supcon.engine.cpu_memory import retain_freed_memory
    retain_freed_memory()
blocks = [torch.empty(4 * 1024 * 1024) for _ in range(20)]
del blocks
print(libc.mallinfo2().fordblks)
"""
MIB = 1024 * 1024
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and mallinfo2")


def _free_heap_bytes(script: str, *args: str) -> int:
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.strip().splitlines()[-1])


@linux
def test_a_freed_block_is_kept_for_reuse():
    # glibc's defaults: a block this size is mmapped and handed back to the kernel when freed,
    # so the next step faults its pages in again; retained, it stays as free heap.
    assert _free_heap_bytes(ONE_BLOCK, "default") < 16 * MIB
    assert _free_heap_bytes(ONE_BLOCK, "retain") >= 16 * MIB


@linux
def test_training_from_python_leaves_the_process_returning_freed_memory(tmp_path):
    # a notebook that trains and then works on: what it frees goes back to the system as before
    assert _free_heap_bytes(AFTER_TRAINING, "retain") >= 320 * MIB  # the check can see retention
    assert _free_heap_bytes(AFTER_TRAINING, "train", str(tmp_path / "run")) < 80 * MIB


def test_the_supcon_command_keeps_freed_memory_on_cpu(monkeypatch, tmp_path, tiny_overrides):
    # its own process: the speed of reused blocks; tracked through the one place mallopt is called
    from supcon import cli

    calls = []
    monkeypatch.setattr(cpu_memory, "_mallopt", lambda param, value: calls.append((param, value)) or True)
    monkeypatch.setattr(cpu_memory, "_done", False)
    monkeypatch.setattr(cpu_memory, "_ours", False)
    overrides = [o for o in tiny_overrides if not o.startswith(("train.epochs", "linear.epochs"))]
    code = cli.main(["train", "--out", str(tmp_path / "run"), "--epochs", "1", "--device", "cpu", *overrides,
                     "linear.epochs=1"])
    assert code == 0
    assert sorted(calls) == sorted([(cpu_memory._M_MMAP_THRESHOLD, 32 * MIB), (cpu_memory._M_TRIM_THRESHOLD, 1 << 30)])

