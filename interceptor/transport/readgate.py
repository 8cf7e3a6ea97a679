# -*- test-case-name: tests.e2e.test_slowreader,tests.e2e.test_http1 -*-
"""
L{ReadGate}: pauses reading from a transport for as long as any reason
holds it; also the push producer registered on the other side's transport,
so a fast sender never outruns a slow receiver.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

__all__ = ["ReadGate"]


@implementer(IPushProducer)
class ReadGate:
    """
    Pauses reading from a transport for as long as any reason holds it.

    Each L{hold} must be matched by one L{release}.  The gate is also the
    push producer registered on the I{other} side's transport: when that
    side's write buffer fills, Twisted calls L{pauseProducing}, which holds
    this side, so a fast sender never outruns a slow receiver.  Whoever
    unregisters it from that transport calls L{resumeProducing} too, so a
    hold the full buffer took is given back (Twisted does not resume a
    producer it lets go of).

    @ivar peer_full: Whether the other side's full write buffer holds it.
    """

    __slots__ = ("transport", "holds", "peer_full", "_drained")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.holds = 0
        self.peer_full = False
        self._drained: Optional[list[Callable[[], None]]] = None

    def when_drained(self, callback: Callable[[], None]) -> None:
        """
        Run C{callback} once the other side's write buffer has drained: now
        if it is not full.
        """
        if not self.peer_full:
            callback()
            return
        if self._drained is None:
            self._drained = []
        self._drained.append(callback)

    def hold(self) -> None:
        """
        Stop reading until the matching L{release}.
        """
        self.holds += 1
        if self.holds == 1:
            self.transport.pauseProducing()

    def release(self) -> None:
        """
        Undo one L{hold}; reading resumes when none remains.
        """
        self.holds -= 1
        if self.holds == 0:
            self.transport.resumeProducing()

    def pauseProducing(self) -> None:
        """
        The other side's write buffer is full.
        """
        if not self.peer_full:
            self.peer_full = True
            self.hold()

    def resumeProducing(self) -> None:
        """
        The other side's write buffer has drained (or the gate no longer
        produces for it).
        """
        if self.peer_full:
            self.peer_full = False
            self.release()
            waiting, self._drained = self._drained, None
            for callback in waiting or ():
                callback()

    def stopProducing(self) -> None:
        """
        The other side has gone; the layers close this side themselves.
        What waited for its buffer to drain never will.
        """
        self._drained = None
