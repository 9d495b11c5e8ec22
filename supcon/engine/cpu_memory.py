"""Keep freed memory in the process on CPU training, instead of handing it back every step.

glibc returns large freed blocks to the kernel (``munmap``, heap trimming); the next step asks for
the same sizes again and pays a page fault per 4 KiB touched. On the small CPU encoders that was
a tenth or more of all CPU time, spent in the kernel (benchmarks/RESULTS.md, kernel % column).
Raising glibc's mmap and trim thresholds keeps blocks up to 32 MiB in the heap for reuse; the
process then holds on to its peak memory, which a training process reaches every step anyway.

The setting is process-wide and cannot be undone (glibc has no way to read it back, nor to turn
its adaptive thresholds on again), so the train job applies it only in a process that is supcon's
own: the ``supcon`` command claims its process (:func:`claim_process`), and its DataLoader
workers, forked from it, inherit the setting. A Python caller's process (a notebook) is left as it
was; it may call :func:`retain_freed_memory` itself for the same speed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("supcon")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling on 64-bit systems
_TRIM_THRESHOLD = 1 << 30  # free heap kept before trimming: above any step's peak on the CPU encoders
_done = False
_ours = False  # set by claim_process: this process runs the `supcon` command


def claim_process() -> None:
    """Declare this process supcon's own (the ``supcon`` command does, first thing): training on
    CPU may then change process-wide settings (:func:`retain_freed_memory`)."""
    global _ours
    _ours = True


def process_is_ours() -> bool:
    """True once :func:`claim_process` was called in this process."""
    return _ours


def retain_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed blocks (once per process, for good); False where it is
    not glibc. Called by the train job on CPU in the ``supcon`` command's process only; call it
    yourself before :func:`supcon.train` for the same speed in your own process."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    ok = _mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) and _mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    _done = ok
    log.debug("glibc malloc keeps freed blocks up to 32 MiB: %s", ok)
    return ok


def _mallopt(param: int, value: int) -> bool:
    """glibc's ``mallopt(param, value)``; False where there is none (musl)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.mallopt(param, value) == 1
    except (OSError, AttributeError):
        return False
