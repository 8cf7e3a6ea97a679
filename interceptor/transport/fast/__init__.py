# -*- test-case-name: tests.test_fastpaths -*-
"""
The fast paths, behind one switch.

This package holds every code path of the proxy that touches Twisted or
pyOpenSSL internals, each one there because a measurement justified it
(docs/design.md, "Fast paths behind one switch"):

  - C{fasttls}: TLS records read and written through OpenSSL directly, and
    a cheaper TLS set-up (L{fasttls.tls_factory});
  - C{fastwrite}: writes straight to a TCP socket when nothing is buffered
    (L{fastwrite.writer_for});
  - C{bodyrelay}: counted bodies moved socket to socket through one reused
    buffer (L{bodyrelay.BodyRelay.possible});
  - C{allocator}: glibc's malloc thresholds raised for C{twistd interceptor}
    (L{allocator.keep_freed_memory});
  - C{exitsignal}: a C{SIGTERM} Twisted's handler caught during start-up
    forgotten when the stop is clean (L{exitsignal.forget_exit_signal}).

Each of those entry points asks L{enabled} once (per connection, per TLS
factory, per relayed body, at start), never per write, and takes Twisted's
own way when it answers False: Twisted's C{TLSMemoryBIOFactory} and
protocol, C{transport.write}, Twisted's reads, the allocator as it is.

    from interceptor.transport import fast
    fast.enabled()                      # True unless switched off

Two things switch them off:

  - C{INTERCEPTOR_FAST_PATHS=0} (or C{false}, C{no}, C{off}) in the
    environment, for the whole process: the test suite's second CI run.
  - A proxy's option C{fast_paths=false}: its L{ProxyFactory} calls
    L{hold_off} while it listens (and L{release} when it closes).  The
    switch is the process's, so the fast paths are off for every proxy in
    the process while one such proxy listens; the fallbacks are correct,
    only slower.
"""

from __future__ import annotations

import os
from typing import Mapping

__all__ = ["ENVIRONMENT_VARIABLE", "enabled", "from_environment", "hold_off", "release"]

ENVIRONMENT_VARIABLE = "INTERCEPTOR_FAST_PATHS"
"""Set to C{0} (C{false}, C{no}, C{off}) to turn the fast paths off."""

_OFF_VALUES = frozenset({"0", "false", "no", "off"})


def from_environment(environ: Mapping[str, str] = os.environ) -> bool:
    """
    Whether C{environ} allows the fast paths (L{ENVIRONMENT_VARIABLE} is
    unset, or not one of C{0}, C{false}, C{no}, C{off}).
    """
    return environ.get(ENVIRONMENT_VARIABLE, "").strip().lower() not in _OFF_VALUES


_ALLOWED = from_environment()
_holders: set[object] = set()
_on = _ALLOWED


def enabled() -> bool:
    """
    Whether the fast paths are on: the environment allows them and no
    listening proxy has C{fast_paths=false}.
    """
    return _on


def hold_off(owner: object) -> None:
    """
    Keep the fast paths off until L{release}C{(owner)}.  Holding twice is
    holding once.
    """
    global _on
    _holders.add(owner)
    _on = False


def release(owner: object) -> None:
    """
    Drop C{owner}'s hold (if any); the fast paths come back on when no
    holder is left and the environment allows them.
    """
    global _on
    _holders.discard(owner)
    _on = _ALLOWED and not _holders
