# -*- test-case-name: tests.test_body_buffer,tests.test_exchange -*-
"""
L{BodyBuffer}: the body of a message read so far, held for the hooks.

Pieces are kept as they come and joined at the end, as long as the body is
small.  Past L{GROW_ABOVE} bytes the body goes into one growing buffer
instead, which becomes the body's bytes without a copy: a 1 GiB body is
held about once, not as pieces plus their join (and with the proxy's malloc
settings the freed pieces' memory stayed resident beside the join).  The
buffer grows with what arrives, never with what a peer announces: a
Content-Length of 10 GB followed by one byte costs one byte.

    buffer = BodyBuffer()
    buffer.append(data)          # ...
    body = buffer.take()
"""

from __future__ import annotations

from io import BytesIO
from typing import Optional

__all__ = ["BodyBuffer", "GROW_ABOVE"]

GROW_ABOVE = 1 << 20
"""Bodies past this many bytes are written into one growing buffer."""


class BodyBuffer:
    """
    A message body being read.

    @ivar size: The bytes appended so far.
    """

    __slots__ = ("size", "_pieces", "_file")

    def __init__(self) -> None:
        self.size = 0
        self._pieces: list[bytes] = []
        self._file: Optional[BytesIO] = None

    def __repr__(self) -> str:
        return f"<BodyBuffer {self.size} bytes>"

    def append(self, data: bytes) -> None:
        """
        The next piece of the body.
        """
        self.size += len(data)
        file = self._file
        if file is not None:
            file.write(data)
            return
        self._pieces.append(data)
        if self.size > GROW_ABOVE:
            # (BytesIO grows its buffer in place, by an eighth at a time, and
            # hands it over whole: about one copy of the body in all.)
            file = self._file = BytesIO()
            pieces, self._pieces = self._pieces, []
            pieces.reverse()
            while pieces:
                file.write(pieces.pop())

    def pieces(self) -> list[bytes]:
        """
        Take what arrived so far as pieces (the body turned out to be
        streamed); the buffer is empty after.
        """
        pieces = self._pieces if self._file is None else [self._take_file()]
        self._pieces = []
        self.size = 0
        return pieces

    def take(self) -> bytes:
        """
        The body as one bytes object; the buffer is empty after.
        """
        body = b"".join(self._pieces) if self._file is None else self._take_file()
        self._pieces = []
        self.size = 0
        return body

    def _take_file(self) -> bytes:
        file = self._file
        assert file is not None
        self._file = None
        # (No view of the buffer is out: getvalue() hands over the buffer
        # itself, trimmed in place.)
        return file.getvalue()
