# -*- test-case-name: tests.test_paced,tests.e2e.test_bigbody -*-
"""
Writing a big buffered body a slice at a time.

Twisted keeps what a transport cannot send yet, and joins it into one
bytes object before sending: a 1 GiB body written at once is held twice
(the body, and Twisted's copy), and over TLS three times (the encrypted
records too).  L{PacedWrite} hands the transport one slice, then waits
until its write buffer has drained before the next:

    PacedWrite(write, body, done, gate=gate).start()         # paired
    PacedWrite(write, body, done, transport=transport).start()

It learns that the buffer drained from the L{ReadGate} already registered
as the transport's producer (a connection pair's), or else registers
itself as the transport's producer for as long as it writes.  The body
itself is never copied whole; at most a slice waits in Twisted's buffer.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from interceptor.transport.readgate import ReadGate

__all__ = ["PACE_ABOVE", "PacedWrite"]

PACE_ABOVE = 1 << 20
"""Bodies longer than this (bytes) are written a slice at a time."""

_SLICE = 1 << 20


@implementer(IPushProducer)
class PacedWrite:
    """
    Writes C{data} through C{write} a slice at a time, the next once the
    transport's write buffer drained; calls C{done()} after the last slice.

    @param gate: The L{ReadGate} registered as the transport's producer,
        whose pauses say the buffer is full; or None, and then
    @param transport: the transport written to: the writer registers itself
        as its producer while it writes.
    """

    def __init__(
        self,
        write: Callable[[bytes], None],
        data: bytes,
        done: Callable[[], None],
        gate: Optional[ReadGate] = None,
        transport: Any = None,
    ) -> None:
        self.write = write
        self.data = data
        self.done = done
        self.gate = gate
        self.transport = transport if gate is None else None
        self.offset = 0
        self.stopped = False
        self._full = False

    def start(self) -> None:
        """
        Write the first slices (as many as the transport takes now).
        """
        if self.transport is not None:
            self.transport.registerProducer(self, True)
        self._more()

    def stop(self) -> None:
        """
        The connection is going: write nothing more, never call C{done}.
        """
        self._end()

    def _end(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.data = b""
        transport, self.transport = self.transport, None
        if transport is not None and transport.connected:
            transport.unregisterProducer()

    def _more(self) -> None:
        data = self.data
        while not self.stopped and self.offset < len(data):
            end = self.offset + _SLICE
            self.write(data[self.offset : end])
            self.offset = end
            if end >= len(data):
                break
            gate = self.gate
            if gate is not None:
                if gate.peer_full:
                    gate.when_drained(self._more)
                    return
            elif self._full:
                return  # resumeProducing goes on
        if not self.stopped:
            self._end()
            self.done()

    # -- IPushProducer, when registered on the transport ---------------------

    def pauseProducing(self) -> None:
        """
        The transport's write buffer is full.
        """
        self._full = True

    def resumeProducing(self) -> None:
        """
        It drained: the next slices.
        """
        if self._full:
            self._full = False
            self._more()

    def stopProducing(self) -> None:
        """
        The transport is gone.
        """
        self.stopped = True
        self.data = b""
        self.transport = None
