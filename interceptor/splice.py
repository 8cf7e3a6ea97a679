# -*- test-case-name: tests.e2e.test_splice -*-
"""
Zero-copy relay of a known number of bytes from one TCP connection to
another, with Linux's C{splice(2)} through a pipe: the bytes never enter
the Python process.

    if SpliceRelay.possible(upstream.transport, client.transport):
        SpliceRelay(upstream.transport, client.transport, length, done).start()

The relay takes over the source's C{doRead} for as long as it runs: it
moves bytes into the pipe and from the pipe into the destination socket.
When the destination cannot take more, it stops reading the source and
waits for the destination to become writable, so nothing is buffered in
the process.  When the count is reached it gives the source back to
Twisted and calls C{done()}.  Used for streamed bodies relayed unchanged
(C{stream_large_bodies}), where the proxy neither looks at nor changes the
bytes.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any, Callable, Optional

from twisted.internet import main, tcp

__all__ = ["SpliceRelay", "AVAILABLE"]

AVAILABLE = hasattr(os, "splice") and hasattr(os, "SPLICE_F_NONBLOCK")
"""Whether this platform has C{os.splice} (Linux, Python 3.10+)."""

_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


def _plain_tcp(transport: Any) -> bool:
    return isinstance(transport, tcp.Connection) and not transport.TLS and transport.connected


class SpliceRelay:
    """
    Moves C{count} bytes from C{source} to C{destination} inside the kernel.

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
        self.in_pipe = 0
        self.capacity = _PIPE_SIZE
        self._waiting = False
        self._pipe: Optional[tuple[int, int]] = None
        self._flags = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK if AVAILABLE else 0

    @staticmethod
    def possible(source: Any, destination: Any) -> bool:
        """
        Whether both ends are plain TCP sockets and nothing is waiting in
        the destination's write buffer (which would be overtaken).
        """
        return (
            AVAILABLE
            and _plain_tcp(source)
            and _plain_tcp(destination)
            and not destination.disconnecting
            and not destination._tempDataBuffer
            and len(destination.dataBuffer) <= destination.offset
        )

    def start(self) -> None:
        """
        Take over reading the source.
        """
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self.capacity = fcntl.fcntl(w, _F_SETPIPE_SZ, _PIPE_SIZE)
        except OSError:
            self.capacity = fcntl.fcntl(w, _F_GETPIPE_SZ) if _F_GETPIPE_SZ else 65536
        self._pipe = (r, w)
        self.source.doRead = self._read
        self.source.startReading()

    def _read(self) -> Any:
        # Reading the server and writing the client overlap: the source is
        # only paused while the pipe is full.
        room = min(self.left, self.capacity - self.in_pipe)
        if room <= 0:
            self.source.stopReading()
            return None
        try:
            n = os.splice(self.source.fileno(), self._pipe[1], room, flags=self._flags)
        except BlockingIOError:
            return None
        except OSError:
            self._give_back()
            return main.CONNECTION_LOST
        if n == 0:
            self._give_back()
            return main.CONNECTION_DONE
        self.left -= n
        self.in_pipe += n
        if self.progress is not None:
            self.progress(n)
        if not self.left or self.in_pipe >= self.capacity:
            self.source.stopReading()
        if not self._waiting:
            self._drain()
        return None

    def _drain(self) -> None:
        """
        Move what the pipe holds to the destination; wait for it to be
        writable when it cannot take more.
        """
        while self.in_pipe:
            try:
                m = os.splice(
                    self._pipe[0], self.destination.fileno(), self.in_pipe, flags=self._flags
                )
            except BlockingIOError:
                if not self._waiting:
                    self._waiting = True
                    self.destination.doWrite = self._writable
                    self.destination.startWriting()
                return
            except OSError:
                # The client has gone; its connectionLost cleans up.
                self.source.stopReading()
                return
            self.in_pipe -= m
        if self._waiting:
            self._waiting = False
            self.destination.__dict__.pop("doWrite", None)
            self.destination.stopWriting()
        if not self.left:
            self._finish()
        elif self.in_pipe < self.capacity:
            self.source.startReading()

    def _writable(self) -> Any:
        self._drain()
        return None

    def abandon(self) -> None:
        """
        A connection closed mid-relay: release the pipe; C{done} is not called.
        """
        self._give_back()

    def _give_back(self) -> None:
        self.source.__dict__.pop("doRead", None)
        self.destination.__dict__.pop("doWrite", None)
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None

    def _finish(self) -> None:
        self._give_back()
        # The body is through: the source reads the next message normally.
        self.source.startReading()
        self.done()
