"""Keep glibc from handing freed memory back to the kernel after every frame.

A render frees and allocates the same activation buffers every frame. With glibc's defaults a
large block goes back to the kernel as soon as it is freed (``munmap`` above the mmap threshold,
``madvise`` on the heaps of threads other than the main one), so every frame pays page faults to
get the memory back. Measured with ``benchmarks/daemon.py`` on the 2-core CPU machine, 64 px
model: the daemon's render thread ran at 0.87 of the same frames rendered on the main thread;
with these settings it runs at par, and the main-thread loop itself gains a few percent.

The price is that the process keeps its peak heap instead of shrinking between frames, which is
what a render loop wants anyway. Settings the user made in the environment win
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES``), and
``OSCGAN_KEEP_FREED_MEMORY=0`` turns this off.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # bytes; glibc's ceiling for this setting on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1 << 30  # bytes of free memory at the top of a heap before glibc gives it back

_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
_applied = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (idempotent).

    Call it before the render thread starts. Returns True when the settings are in effect, False
    where they do not apply: not Linux, a C library without ``mallopt`` (musl), the user's own
    malloc settings in the environment, or ``OSCGAN_KEEP_FREED_MEMORY=0``.
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("OSCGAN_KEEP_FREED_MEMORY") == "0":
        return False
    if any(name in os.environ for name in _USER_SETTINGS):
        log.debug("malloc settings from the environment are left as they are")
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mmap first: setting either one switches off glibc's dynamic thresholds.
    _applied = (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    if not _applied:
        log.debug("mallopt refused the thresholds; the allocator keeps its defaults")
    return _applied
