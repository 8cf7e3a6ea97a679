# -*- test-case-name: tests.test_h2flood,tests.e2e.test_http2_faults -*-
"""
Limits on what an HTTP/2 client makes the proxy do for nothing: stream
resets (rapid reset, CVE-2023-44487: each HEADERS+RST_STREAM pair costs a
flow and an upstream stream), DATA frames without payload (CVE-2019-9518),
SETTINGS and PING frames (each one answered, CVE-2019-9515/9512).

One L{FloodGuard} per client connection counts them in fixed windows of
C{http2_flood_window} seconds; a count over its option's limit
(C{http2_max_resets}, C{http2_max_empty_frames},
C{http2_max_control_frames}; 0 turns a limit off) names the reason, and
the layer answers GOAWAY ENHANCE_YOUR_CALM and closes, as nginx, Netty and
other patched servers do.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.interfaces import IReactorTime

__all__ = ["FloodGuard", "RESETS", "EMPTY_DATA", "CONTROL"]

RESETS = 0
"""Stream resets (RST_STREAM) from the client."""
EMPTY_DATA = 1
"""DATA frames without payload that do not end their stream."""
CONTROL = 2
"""SETTINGS and PING frames (acknowledgements included)."""

_WHAT = ("stream resets", "empty DATA frames", "SETTINGS and PING frames")


class FloodGuard:
    """
    Counts one client connection's resets, empty DATA frames and control
    frames per window.

    @ivar limits: The limit of each kind (0: none), by kind.
    @ivar counts: What was counted in the current window, by kind.
    """

    __slots__ = ("clock", "window", "limits", "counts", "since")

    def __init__(self, clock: IReactorTime, options: Any) -> None:
        self.clock = clock
        self.window: float = options.http2_flood_window
        self.limits: tuple[int, int, int] = (
            options.http2_max_resets,
            options.http2_max_empty_frames,
            options.http2_max_control_frames,
        )
        self.counts = [0, 0, 0]
        self.since = clock.seconds()

    def count(self, kind: int) -> Optional[str]:
        """
        Count one frame of C{kind}: the reason to close the connection when
        that makes more than the limit in the current window, else None.
        """
        limit = self.limits[kind]
        if not limit:
            return None
        now = self.clock.seconds()
        counts = self.counts
        if now - self.since >= self.window:
            self.since = now
            counts[:] = (0, 0, 0)
        counts[kind] += 1
        if counts[kind] <= limit:
            return None
        return f"more than {limit} {_WHAT[kind]} in {self.window:g} s"
