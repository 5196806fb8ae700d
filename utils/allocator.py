"""Keep the memory of freed tensors in the process instead of giving it back to the kernel after every step.

Why: a training step of a CPU model allocates and frees the same tensors again and again (gradients, Adam's
temporaries, activations: about 13 MB per step for NeuMF with 512-wide embeddings on ml-100k at batch 256).
glibc's malloc gives a freed block at the top of its heap back to the kernel as soon as the free space there
exceeds its trim threshold, and serves blocks above its mmap threshold with a fresh ``mmap``; both thresholds
start at 128 KiB and only grow with what the process happened to free earlier. The next step then touches those
pages again and the kernel page-faults and zeroes each 4 KiB page. Measured on the shared side-by-side file
(NeuMF, 512-wide embeddings, batch 256): ~3,300 page faults per step, 1.5 million per epoch in this tool against
1.0-1.4 million in the original (same mechanism, a heap whose history let it keep a little more); in one process,
alternating, the same steps ran 21 % (CPU time) to 57 % (wall time, loaded machine) slower than with the memory
kept, where they fault ~10 times per step. The time went into the same elementwise work (Adam's sqrt / addcdiv_ /
lerp_, dropout), since the first write to a fresh page happens inside those ops. See docs/RESULTS.md.

The fix fixes both thresholds instead of leaving them to history: blocks up to 32 MiB (glibc's own ceiling for
its adaptive threshold) come from the heap, and up to 512 MiB of free heap top is kept for reuse. Peak memory is
the high-water mark either way (509 MB with, 511 MB without, one epoch of that file): only memory that was
already in use stays mapped. Numerics,
seeding and determinism are untouched. A user who sets any ``MALLOC_*`` tunable in the environment keeps it: then
this does nothing (``benchmarks/overhead.py`` uses ``MALLOC_MMAP_THRESHOLD_`` to measure live memory).
"""

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 512 << 20

_applied = False


def keep_freed_memory():
    """Set glibc's trim and mmap thresholds for training (once per process).

    Returns:
        bool: True when the thresholds are set (now or before); False on a system without glibc, or when the
        environment sets a ``MALLOC_*`` tunable of its own.
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux") or any(name.startswith("MALLOC_") for name in os.environ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # Setting one threshold switches glibc's adaptation off for both, so both are set (mallopt returns 1 on success).
    _applied = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return _applied
