# -*- test-case-name: tests.e2e.test_bodyrelay -*-
"""
Relaying a known number of bytes from one TCP connection to another
through one reused 1 MiB buffer, outside Twisted's read and write paths:

    if BodyRelay.possible(upstream.transport, client.transport):
        BodyRelay(upstream.transport, client.transport, length, done).start()

The relay takes over the source's C{doRead} for as long as it runs: it
receives into its buffer (C{recv_into}) and sends from it.  When the
destination cannot take more, it waits for the destination to become
writable and reads the source only until the buffer is full, so no more
than the buffer is held.
When the count is reached it gives the source back to Twisted and calls
C{done()}.  Used for streamed bodies relayed unchanged
(C{stream_large_bodies}), where the proxy neither looks at nor changes the
bytes.  With the fast paths off (L{interceptor.transport.fast.enabled})
C{possible} is False, and Twisted's own reads carry the body.

Twisted reads 64 KiB at a time into a new bytes object and queues every
write; this moves up to 1 MiB per call without allocating.  An earlier
version moved the bytes with splice(2) through a pipe (never copying them
into the process); on this project's 2-core VM copying through the buffer
was faster: 1,918 against 1,514 MB/s for a 100 MiB download, direct 2,342
(bench/relayceiling.py, 5 rounds).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.internet import main, tcp

from interceptor.transport.fast import enabled
from interceptor.transport.fast.fastwrite import writes_directly

__all__ = ["BodyRelay"]

_BUFFER_SIZE = 1 << 20
# (A relay holds its buffer only while it runs.)
_NO_BUFFER = memoryview(bytearray())


class BodyRelay:
    """
    Moves C{count} bytes from C{source} to C{destination} through one
    reused buffer.

    @ivar left: Bytes still to read from the source.
    """

    def __init__(
        self,
        source: Any,
        destination: Any,
        count: int,
        done: Callable[[], None],
        progress: Optional[Callable[[int], None]] = None,
    ) -> None:
        self.source = source
        self.destination = destination
        self.left = count
        self.done = done
        self.progress = progress
        self._buffer = _NO_BUFFER
        # The bytes waiting in the buffer: [_start, _start + _held).
        self._start = 0
        self._held = 0
        self._waiting = False

    @staticmethod
    def possible(source: Any, destination: Any) -> bool:
        """
        Whether both ends are plain TCP sockets and nothing is waiting in
        the destination's write buffer (which would be overtaken); never
        when the fast paths are off (Twisted's reads move the body then).
        """
        return bool(
            enabled()
            and isinstance(source, tcp.Connection)
            and not source.TLS
            and source.connected
            and isinstance(destination, tcp.Connection)
            and writes_directly(destination)
        )

    def start(self) -> None:
        """
        Take over reading the source.
        """
        self._buffer = memoryview(bytearray(_BUFFER_SIZE))
        self.source.doRead = self._read
        self.source.startReading()

    def _read(self) -> Any:
        # Reading the server and writing the client overlap: the source is
        # only paused while the buffer is full.
        end = self._start + self._held
        room = min(self.left, _BUFFER_SIZE - end)
        if room <= 0:
            self.source.stopReading()
            return None
        try:
            n = self.source.socket.recv_into(self._buffer[end:], room)
        except (BlockingIOError, InterruptedError):
            return None
        except (OSError, AttributeError):
            # (AttributeError: Twisted drops the socket of a closed connection.)
            self._give_back()
            return main.CONNECTION_LOST
        if n == 0:
            self._give_back()
            return main.CONNECTION_DONE
        self.left -= n
        self._held += n
        if self.progress is not None:
            self.progress(n)
        if not self.left or self._start + self._held >= _BUFFER_SIZE:
            self.source.stopReading()
        if not self._waiting:
            self._drain()
        return None

    def _drain(self) -> None:
        """
        Send what the buffer holds to the destination; wait for it to be
        writable when it cannot take more.
        """
        while self._held:
            try:
                m = self.destination.socket.send(
                    self._buffer[self._start : self._start + self._held]
                )
            except (BlockingIOError, InterruptedError):
                if not self._waiting:
                    self._waiting = True
                    self.destination.doWrite = self._writable
                    self.destination.startWriting()
                return
            except (OSError, AttributeError):
                # The client has gone; its connectionLost cleans up.
                self.source.stopReading()
                return
            self._held -= m
            self._start = self._start + m if self._held else 0
        if self._waiting:
            self._waiting = False
            self.destination.__dict__.pop("doWrite", None)
            self.destination.stopWriting()
        if not self.left:
            self._finish()
        else:
            self.source.startReading()

    @property
    def stalled(self) -> bool:
        """
        Whether the destination cannot take more right now (the relay is
        waiting for it to drain).
        """
        return self._waiting

    def _writable(self) -> Any:
        self._drain()
        return None

    def abandon(self) -> None:
        """
        A connection closed mid-relay: let go of both transports; C{done}
        is not called.
        """
        self._give_back()

    def _give_back(self) -> None:
        self.source.__dict__.pop("doRead", None)
        self.destination.__dict__.pop("doWrite", None)
        self._buffer = _NO_BUFFER

    def _finish(self) -> None:
        self._give_back()
        # The body is through: the source reads the next message normally.
        self.source.startReading()
        self.done()
