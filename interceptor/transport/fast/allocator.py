# -*- test-case-name: tests.test_allocator -*-
"""
Keeping freed memory for reuse instead of handing it back to the kernel.

glibc's malloc returns big blocks (over its mmap threshold) and the free
top of its heap (over its trim threshold) to the kernel as soon as they are
freed.  A proxy allocates and frees body-sized buffers all the time (a
1 MiB response is received, joined, sent, freed, and the next one is the
same size), so each one is page-faulted in again: measured on 1 MiB
responses at c=10 (bench/proxybench.py S1-1MiB-c10), ~450 page faults per
response and half the proxy's CPU in the kernel's fault path.  With a 4 MiB
mmap threshold and a 64 MiB trim threshold the same load made ~1 fault per
response and ran twice as fast, peak RSS unchanged (72 MiB).

    from interceptor.transport.fast.allocator import keep_freed_memory
    keep_freed_memory()        # what `twistd interceptor` does at start

Only glibc has C{mallopt}; elsewhere, when the user set
C{MALLOC_MMAP_THRESHOLD_}/C{MALLOC_TRIM_THRESHOLD_} in the environment
(their choice wins), or with the fast paths off
(L{interceptor.transport.fast.enabled}), nothing changes.  An embedding
application decides for its own process: the proxy never calls this on
import.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from typing import Mapping

from interceptor.transport.fast import enabled

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

MMAP_THRESHOLD = 4 * 1024 * 1024
"""Blocks below this come from the heap (and are reused), not from mmap."""

TRIM_THRESHOLD = 64 * 1024 * 1024
"""Free memory kept at the top of the heap before any is given back."""

# glibc's <malloc.h> parameter numbers.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def keep_freed_memory(environ: Mapping[str, str] = os.environ) -> bool:
    """
    Raise glibc's mmap and trim thresholds for this process.

    @return: Whether the settings were applied.
    """
    if not enabled():
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in environ for name in _USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
