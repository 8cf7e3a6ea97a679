# -*- test-case-name: tests.test_flowcontrol -*-
"""
Backpressure between a window-based peer (HTTP/2) and a plain transport:

    valve = AckValve(client_transport)   # registers itself as the producer
    valve.run(lambda: conn.acknowledge_received_data(n, stream_id))
    ...
    valve.detach()                       # before the transport closes

An HTTP/2 peer sends only as much as its window allows, and the window
opens when the proxy acknowledges data.  When that data goes on to a plain
TCP or TLS transport, acknowledging it at once would let a fast HTTP/2
sender fill the transport's write buffer without bound while the other side
reads slowly.  The valve is the transport's push producer: Twisted pauses
it when the write buffer is full and resumes it when it has drained, and
the valve holds the acknowledgements back in between, so the sender waits
instead of the proxy buffering.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

__all__ = ["AckValve"]


@implementer(IPushProducer)
class AckValve:
    """
    Runs acknowledgements at once while C{transport}'s write buffer has
    room, and holds them until it drains when it has not.

    @ivar paused: Whether the transport's write buffer is full.
    """

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.paused = False
        self.pending: deque[Callable[[], None]] = deque()
        self.attached = True
        transport.registerProducer(self, True)

    def run(self, ack: Callable[[], None]) -> None:
        """
        Run C{ack} now, or once the write buffer has drained.
        """
        if self.paused:
            self.pending.append(ack)
        else:
            ack()

    def pauseProducing(self) -> None:
        """
        The write buffer is full: hold acknowledgements back.
        """
        self.paused = True

    def resumeProducing(self) -> None:
        """
        The write buffer has drained: run the held acknowledgements.
        """
        self.paused = False
        pending = self.pending
        while pending and not self.paused:
            pending.popleft()()

    def stopProducing(self) -> None:
        """
        The transport has gone: nothing is waiting for the acknowledgements.
        """
        self.pending.clear()

    def detach(self) -> None:
        """
        Stop producing for the transport (a TLS transport closes only once
        no producer is registered) and run what was held back.
        """
        if self.attached:
            self.attached = False
            try:
                self.transport.unregisterProducer()
            except (AttributeError, RuntimeError):
                pass
        self.paused = False
        pending, self.pending = self.pending, deque()
        for ack in pending:
            ack()
