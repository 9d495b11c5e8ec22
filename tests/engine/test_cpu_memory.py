"""retain_freed_memory: a freed activation-sized block stays in the process for the next step."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Frees one 16 MiB tensor (a typical activation of a step) and reports the bytes glibc's malloc
# keeps as free heap (mallinfo2's fordblks): the block itself when it was retained.
SCRIPT = """
import ctypes, sys, torch
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "retain":
    from supcon.engine.cpu_memory import retain_freed_memory
    assert retain_freed_memory() and retain_freed_memory()  # idempotent
block = torch.ones(4 * 1024 * 1024)  # 16 MiB
del block
print(libc.mallinfo2().fordblks)
"""
MIB = 1024 * 1024


def _free_heap_bytes(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and mallinfo2")
def test_a_freed_block_is_kept_for_reuse():
    # glibc's defaults: a block this size is mmapped and handed back to the kernel when freed,
    # so the next step faults its pages in again; retained, it stays as free heap.
    assert _free_heap_bytes("default") < 16 * MIB
    assert _free_heap_bytes("retain") >= 16 * MIB
