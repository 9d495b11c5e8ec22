"""Keep freed memory in the process on CPU training, instead of handing it back every step.

glibc returns large freed blocks to the kernel (``munmap``, heap trimming); the next step asks for
the same sizes again and pays a page fault per 4 KiB touched. On the small CPU encoders that was
a tenth or more of all CPU time, spent in the kernel (benchmarks/RESULTS.md, kernel % column).
Raising glibc's mmap and trim thresholds keeps blocks up to 32 MiB in the heap for reuse; the
process then holds on to its peak memory, which a training process reaches every step anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("supcon")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling on 64-bit systems
_done = False


def retain_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed blocks (once per process); False where it is not glibc."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) == 1
        ok = ok and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1
    except (OSError, AttributeError):  # musl, or no mallopt
        return False
    _done = ok
    log.debug("glibc malloc keeps freed blocks up to 32 MiB: %s", ok)
    return ok
