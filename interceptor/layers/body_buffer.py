# -*- test-case-name: tests.test_body_buffer,tests.test_exchange -*-
"""
L{BodyBuffer}: the body of a message read so far, held for the hooks.

Pieces are kept as they come and joined at the end.  A body whose length
is announced and large is written instead into one buffer of that size as
it arrives, and the buffer becomes the body without a copy: a 1 GiB body
is held once, not as pieces plus their join (and with the proxy's malloc
settings the freed pieces' memory stayed resident beside the join).

    buffer = BodyBuffer()
    buffer.expect(length)        # Content-Length known, body buffered
    buffer.append(data)          # ...
    body = buffer.take()
"""

from __future__ import annotations

from io import BytesIO
from typing import Optional

__all__ = ["BodyBuffer", "EXPECT_ABOVE"]

EXPECT_ABOVE = 1 << 20
"""Announced bodies longer than this (bytes) go into one buffer of their size."""


class BodyBuffer:
    """
    A message body being read.

    @ivar size: The bytes appended so far.
    """

    __slots__ = ("size", "_pieces", "_file", "_view", "_expected")

    def __init__(self) -> None:
        self.size = 0
        self._expected = 0
        self._pieces: list[bytes] = []
        self._file: Optional[BytesIO] = None
        self._view: Optional[memoryview] = None

    def __repr__(self) -> str:
        return f"<BodyBuffer {self.size} bytes>"

    def expect(self, length: int) -> None:
        """
        The whole body is C{length} bytes: past L{EXPECT_ABOVE}, read it into
        one buffer of that size, made when its first bytes come (a response
        to HEAD, or a 304, announces a length and sends nothing).
        """
        if length > EXPECT_ABOVE and self._view is None:
            self._expected = length

    def _make_buffer(self, length: int) -> None:
        file = BytesIO()
        # (Writing the last byte sizes BytesIO's buffer to exactly length.)
        file.seek(length - 1)
        file.write(b"\0")
        view = file.getbuffer()
        pieces, self._pieces, at = self._pieces, [], 0
        for piece in pieces:
            view[at : at + len(piece)] = piece
            at += len(piece)
        self._file, self._view = file, view

    def append(self, data: bytes) -> None:
        """
        The next piece of the body.
        """
        end = self.size + len(data)
        if self._expected and end <= self._expected:
            self._make_buffer(self._expected)
        self._expected = 0
        view = self._view
        if view is None:
            self._pieces.append(data)
        elif end <= len(view):
            view[self.size : end] = data
        else:
            # More than announced (the framing layers do not let that
            # happen): back to pieces.
            self._pieces = [self._take_buffer(), data]
        self.size = end

    def pieces(self) -> list[bytes]:
        """
        Take what arrived so far as pieces (the body turned out to be
        streamed); the buffer is empty after.
        """
        pieces = self._pieces if self._view is None else [self._take_buffer()]
        self._pieces = []
        self.size = self._expected = 0
        return pieces

    def take(self) -> bytes:
        """
        The body as one bytes object; the buffer is empty after.
        """
        if self._view is not None:
            body = self._take_buffer()
        elif len(self._pieces) < 64:
            body = b"".join(self._pieces)
        else:
            # Joined while the pieces are let go: held about once.
            out = BytesIO()
            pieces = self._pieces
            pieces.reverse()
            while pieces:
                out.write(pieces.pop())
            body = out.getvalue()
        self._pieces = []
        self.size = self._expected = 0
        return body

    def _take_buffer(self) -> bytes:
        view, file = self._view, self._file
        assert view is not None and file is not None
        self._view = self._file = None
        size, length = self.size, len(view)
        view.release()
        if size == length:
            # (No view left: getvalue() hands over the buffer itself.)
            return file.getvalue()
        return file.getbuffer()[:size].tobytes()
