# -*- test-case-name: tests.test_wsframes -*-
"""
WebSocket frame boundaries, so that big whole messages can skip wsproto.

wsproto parses every byte in Python: it unmasks a client's frame byte by
byte (about 1.2 ms per MiB) and masks it again toward the server (as much
again).  For a big message in one frame the proxy needs neither: it keeps
the frame as it came, shows C{content} unmasked only when someone reads it
(with the C speedups of the C{websockets} library), and forwards the
original frame when nobody changed it.

L{FrameSplitter} reads only frame headers.  Every frame goes to wsproto
whole and in order, except an unfragmented TEXT or BINARY frame of at
least L{BIG} bytes without reserved bits (the extension-free case), which
is collected and handed over as one piece.  wsproto therefore always sees
complete frames at frame boundaries and keeps its own state (fragmented
messages, control frames, close handshake, errors) exactly as before.
"""

from __future__ import annotations

import struct
from typing import Callable, Optional

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets ships wheels with its C speedups
    from websockets.utils import apply_mask

__all__ = ["BIG", "FrameSplitter", "apply_mask", "frame_header", "payload_of"]

BIG = 65536
"""The smallest payload taken past wsproto."""

_TEXT, _BINARY = 1, 2


def frame_header(first: int, length: int, key: Optional[bytes] = None) -> bytes:
    """
    A frame header: C{first} is the FIN/opcode byte; with a masking C{key}
    the header says the payload is masked and ends with the key.
    """
    mask = 0x80 if key is not None else 0
    if length < 126:
        head = struct.pack("!BB", first, mask | length)
    elif length < 65536:
        head = struct.pack("!BBH", first, mask | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask | 127, length)
    return head + key if key is not None else head


def payload_of(frame: bytes, header_length: int, key: Optional[bytes]) -> bytes:
    """
    The (unmasked) payload of a whole frame kept by L{FrameSplitter}.
    """
    if key is None:
        return frame[header_length:]
    return apply_mask(memoryview(frame)[header_length:], key)


class FrameSplitter:
    """
    Cuts one peer's byte stream at frame boundaries.

    @ivar fragmented: Whether the peer is inside a fragmented message (its
        frames then all go to wsproto, which reassembles them).
    """

    __slots__ = ("small", "take_big", "big", "masked", "head", "through", "parts", "need",
                 "frame_info", "fragmented")

    def __init__(
        self,
        small: Callable[[bytes], None],
        take_big: Callable[[int], bool],
        big: Callable[[int, bytes, int, Optional[bytes]], None],
        masked: bool,
    ) -> None:
        """
        @param small: Called with bytes for wsproto (whole frames, possibly
            cut across calls, never mixed with a big frame).
        @param take_big: Called with the payload length of a big frame's
            header; returns whether to take it whole (else it goes to
            wsproto like any other frame).
        @param big: Called with C{(opcode, frame, header_length, key)} for a
            taken frame once all of it has arrived; C{key} is its masking
            key or None.
        @param masked: Whether this peer's frames are masked (a client's).
            A big frame that says otherwise goes to wsproto, which rejects
            it.
        """
        self.small = small
        self.take_big = take_big
        self.big = big
        self.masked = masked
        self.head = b""
        self.through = 0
        self.parts: Optional[list[bytes]] = None
        self.need = 0
        # (opcode, header_length, key) of the big frame being taken.
        self.frame_info: Optional[tuple[int, int, Optional[bytes]]] = None
        self.fragmented = False

    def feed(self, data: bytes) -> None:
        """
        Bytes from the peer, in order.  Consecutive frames for wsproto are
        passed in one call.
        """
        if self.head:
            data, self.head = self.head + data, b""
        pos, end = 0, len(data)
        if self.parts is not None:
            pos = self._collect(self.parts, data, 0, end)
        start = pos
        while pos < end:
            if self.through:
                take = min(self.through, end - pos)
                self.through -= take
                pos += take
                continue
            header = self._header(data, pos, end)
            if header is None:
                self.head = data[pos:end]
                break
            if header:
                if start < pos:
                    # wsproto first: take_big asks about the state they leave.
                    self.small(data[start:pos])
                    start = pos
                assert self.frame_info is not None  # (_header set it)
                if self.take_big(self.need - self.frame_info[1]):
                    parts: list[bytes] = []
                    self.parts = parts
                    pos = start = self._collect(parts, data, pos, end)
                else:
                    self.through, self.frame_info = self.need, None
        if start < pos:
            self.small(data if not start and pos == len(data) else data[start:pos])

    def _header(self, data: bytes, pos: int, end: int) -> Optional[bool]:
        """
        At a frame boundary: read the header and route the frame.

        @return: None when the header is incomplete, True for a frame that
            may be taken whole (C{frame_info} and C{need} then describe it),
            False when it goes to wsproto (C{through} is then its size).
        """
        if end - pos < 2:
            return None
        first, second = data[pos], data[pos + 1]
        length = second & 0x7F
        header_length = 2 if length < 126 else (4 if length == 126 else 10)
        is_masked = second & 0x80
        if is_masked:
            header_length += 4
        if end - pos < header_length:
            return None
        if length == 126:
            length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        elif length == 127:
            length = int.from_bytes(data[pos + 2 : pos + 10], "big")
        opcode = first & 0x0F
        if (
            length >= BIG
            and first & 0xF0 == 0x80  # FIN, no reserved bits
            and (opcode == _TEXT or opcode == _BINARY)
            and not self.fragmented
            and bool(is_masked) == self.masked
            and not length >> 63  # invalid: wsproto rejects it
        ):
            key = data[pos + header_length - 4 : pos + header_length] if is_masked else None
            self.frame_info = (opcode, header_length, key)
            self.need = header_length + length
            return True
        if opcode == _TEXT or opcode == _BINARY:
            self.fragmented = not first & 0x80
        elif opcode == 0 and first & 0x80:
            self.fragmented = False
        self.through = header_length + length
        return False

    def _collect(self, parts: list[bytes], data: bytes, pos: int, end: int) -> int:
        """Add to C{parts} (C{self.parts}) what C{data} has of the big frame."""
        take = min(self.need, end - pos)
        parts.append(data if take == end and not pos else data[pos : pos + take])
        self.need -= take
        if not self.need:
            self.parts = None
            assert self.frame_info is not None  # (set with parts)
            opcode, header_length, key = self.frame_info
            self.frame_info = None
            self.big(opcode, parts[0] if len(parts) == 1 else b"".join(parts), header_length, key)
        return pos + take
