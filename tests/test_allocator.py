# -*- test-case-name: tests.test_allocator -*-
"""
Tests for L{interceptor.transport.fast.allocator}: freed body-sized buffers are reused
instead of being page-faulted in again.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

from twisted.trial import unittest

from interceptor.transport.fast.allocator import keep_freed_memory

# Join 1 MiB bodies from 64 KiB reads and free them, as the proxy does, and
# print the page faults per body.
_PROGRAM = textwrap.dedent(
    """
    import resource, sys
    if sys.argv[1] == "tuned":
        from interceptor.transport.fast.allocator import keep_freed_memory
        assert keep_freed_memory()
    chunks = [bytes([i]) * 65536 for i in range(16)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(100):
        body = b"".join(chunks)
        rest = body[1000:]
        del body, rest
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 100)
    """
)


def _faults_per_body(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", _PROGRAM, mode], capture_output=True,
                         text=True, timeout=60, check=True, env={"PATH": "/usr/bin:/bin"},
                         cwd=_project_root())
    return float(out.stdout.strip())


def _project_root() -> str:
    import interceptor

    return os.path.dirname(os.path.dirname(os.path.abspath(interceptor.__file__)))


class KeepFreedMemoryTests(unittest.TestCase):
    """
    L{keep_freed_memory} raises glibc's thresholds, unless the user chose.
    """

    def setUp(self) -> None:
        if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
            raise unittest.SkipTest("mallopt is glibc's")

    def test_user_settings_win(self) -> None:
        """With MALLOC_*_THRESHOLD_ in the environment nothing is changed."""
        self.assertFalse(keep_freed_memory({"MALLOC_TRIM_THRESHOLD_": "0"}))
        self.assertFalse(keep_freed_memory({"MALLOC_MMAP_THRESHOLD_": "0"}))

    def test_freed_bodies_reused(self) -> None:
        """Joining and freeing 1 MiB bodies: hundreds of page faults each by default, a few once tuned."""
        plain = _faults_per_body("plain")
        if plain < 100:
            raise unittest.SkipTest(f"this glibc reuses the memory anyway ({plain} faults per body)")
        self.assertLess(_faults_per_body("tuned"), 20)
