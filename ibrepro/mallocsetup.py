"""Process set-up for the analyze command: let glibc's malloc reuse freed blocks.

Analysis from parameters allocates and frees blocks of up to ~30 MB thousands of times (each
block's recomputed layers, XLA's output buffers, the binning keys) on worker threads. With
glibc's defaults many of them come from fresh mappings or fresh thread-arena heaps that are
given back when freed, so their pages fault in anew: 1.5-2.2 million page faults and 4-6 s of
system time for a paper cell's binning from parameters. A fixed 32 MiB mmap threshold (glibc's
largest) and a 1 GiB trim threshold keep freed blocks for reuse: ~0.5 million faults, 1.2 s of
system time, 15.1-15.6 s -> 12.6-13.4 s wall (alternating runs; KDE unchanged). One malloc arena
(M_ARENA_MAX = 1) would cut faults further but made KDE 1.4x slower (threads wait on its lock),
so it is not set. The price is memory kept after a peak, never more than the peak itself. Only
the command line calls this; a Python session that imports ibrepro keeps its own settings.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
SETTINGS = ((M_MMAP_THRESHOLD, 32 * 2**20), (M_TRIM_THRESHOLD, 2**30))


def has_glibc() -> bool:
    """Whether this process runs on glibc (musl and other C libraries have no such tuning)."""
    return sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "gnu_get_libc_version")


def reuse_freed_memory() -> bool:
    """Apply SETTINGS with glibc's mallopt; False (nothing changed) on other C libraries."""
    if not has_glibc():
        return False
    mallopt = ctypes.CDLL(None).mallopt
    applied = [mallopt(param, value) == 1 for param, value in SETTINGS]  # every setting, even after a refusal
    return all(applied)
