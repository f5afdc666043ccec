"""glibc malloc keeps freed temporaries for reuse instead of mapping fresh pages every call.

numpy takes each array from malloc. glibc serves requests above its mmap threshold (128 KB at
start, raised only by some later frees, so it differs from run to run) with a fresh mmap, and a
fresh mmap page-faults on every page it touches. The default job's elementwise ops make 512 KB
temporaries ((8, 64, 256) float32): measured on an AMD EPYC (Zen 2, 2 cores), gelu forward +
backward took 1.40 ms with those temporaries reused and 2.63 ms with the threshold left at
128 KB (516 page faults a call), which is the 2-3x some runs of the op benchmark showed.
Fixing the thresholds turns the dynamic adjustment off: blocks up to 32 MB come from the heap, and
up to 64 MB of freed heap is kept rather than returned to the system.
"""

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, glibc's malloc.h
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 64 << 20


def keep_freed_memory():
    """Set glibc's mmap and trim thresholds (see above); False where the C library has no mallopt."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
