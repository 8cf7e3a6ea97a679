# -*- test-case-name: tests.test_splice -*-
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
            fcntl.fcntl(w, _F_SETPIPE_SZ, _PIPE_SIZE)
        except OSError:
            pass
        self._pipe = (r, w)
        self.source.doRead = self._read
        self.source.startReading()

    def _read(self) -> Any:
        if self.in_pipe and not self._drain():
            return None
        try:
            n = os.splice(
                self.source.fileno(), self._pipe[1], min(self.left, _PIPE_SIZE), flags=self._flags
            )
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
        if self._drain() and not self.left:
            self._finish()
        return None

    def _drain(self) -> bool:
        """
        Move what the pipe holds to the destination.

        @return: Whether the pipe is empty.
        """
        while self.in_pipe:
            try:
                m = os.splice(
                    self._pipe[0], self.destination.fileno(), self.in_pipe, flags=self._flags
                )
            except BlockingIOError:
                # The client is slower: stop reading until it has room again.
                self.source.stopReading()
                self.destination.doWrite = self._writable
                self.destination.startWriting()
                return False
            except OSError:
                # The client has gone; its connectionLost cleans up.
                self.source.stopReading()
                return False
            self.in_pipe -= m
        return True

    def _writable(self) -> Any:
        if not self._drain():
            return None
        self.destination.__dict__.pop("doWrite", None)
        self.destination.stopWriting()
        if self.left:
            self.source.startReading()
        else:
            self._finish()
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
        self.done()
