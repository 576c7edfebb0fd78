"""Keep freed heap memory in the process instead of handing it back to the kernel at once.

glibc returns freed memory above 128 KiB to the kernel (``munmap`` / heap trimming) and then
takes it again for the next batch: every training step of a convolutional model allocates
and frees activations of tens of MB, and each new page costs a page fault and zeroing in
the kernel. On a Ma et al. CRNN job the settings below cut the page faults 6x and the job's
wall time 1.14-1.24x (``benchmarks/bench_allocator.py``; benchmarks/README.md, "Allocator").
The price is that a job's resident memory stays near its peak until it exits (+10 % there),
which a one-job process can afford.
"""
from __future__ import annotations

import ctypes
import os
import sys

# mallopt(3) parameters and the values used (C ints).
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = {
    M_TRIM_THRESHOLD: (1 << 31) - 1,  # trim the heap top only when 2 GiB are free there
    M_TOP_PAD: 256 << 20,        # grow the heap in 256 MiB steps
    M_MMAP_THRESHOLD: 32 << 20,  # serve blocks below 32 MiB (glibc's maximum) from the heap
}


def keep_freed_memory() -> bool:
    """Apply :data:`SETTINGS` with glibc's ``mallopt``; False where there is no glibc (macOS,
    musl), a setting was refused, or $SER_KEEP_FREED_MEMORY is 0 (the benchmark's baseline)."""
    if os.environ.get("SER_KEEP_FREED_MEMORY", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in SETTINGS.items())
