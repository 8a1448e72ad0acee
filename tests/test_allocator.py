"""keep_freed_memory: a freed 8 MB block stays in the heap instead of going back to the kernel.

Each case runs in a fresh interpreter, where glibc's thresholds are still its defaults (128 KiB,
so an 8 MB malloc is an mmap), and reads glibc's own accounting with mallinfo2.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")

PROBE = r"""
import ctypes, sys
from oscgan.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
applied = keep_freed_memory() if sys.argv[1] == "tuned" else False
mapped = libc.mallinfo2().hblkhd  # bytes in blocks that were given their own mmap
p = libc.malloc(8 << 20)
grew = libc.mallinfo2().hblkhd - mapped
libc.free(p)
print(applied, grew >= 8 << 20)
"""


def probe(mode: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES", "OSCGAN_KEEP"))}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env={**clean, **env}, capture_output=True,
                         text=True, timeout=60, check=True)
    return out.stdout.strip()


def test_defaults_map_a_large_block_of_its_own() -> None:
    assert probe("default") == "False True"  # the control: without the call, 8 MB is an mmap


def test_keep_freed_memory_serves_it_from_the_heap() -> None:
    assert probe("tuned") == "True False"


@pytest.mark.parametrize("env", [{"OSCGAN_KEEP_FREED_MEMORY": "0"}, {"MALLOC_TRIM_THRESHOLD_": "131072"}])
def test_opt_out_and_user_settings_win(env: dict[str, str]) -> None:
    assert probe("tuned", **env) == "False True"
