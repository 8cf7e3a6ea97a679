# -*- test-case-name: tests.test_wsframes -*-
"""
Tests for L{interceptor.model.wsframes}: frame boundaries found from headers
alone, however the bytes are cut.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from twisted.trial import unittest

from interceptor.model.wsframes import BIG, FrameSplitter, apply_mask, frame_header, payload_of


def frame(opcode: int, payload: bytes, fin: bool = True, key: Optional[bytes] = None,
          rsv: int = 0) -> bytes:
    """A frame, masked with C{key} when given."""
    first = (0x80 if fin else 0) | rsv | opcode
    body = apply_mask(payload, key) if key is not None else payload
    return frame_header(first, len(payload), key) + body


class Recorder:
    """The three callbacks of a splitter, recording what they get."""

    def __init__(self, take: bool = True) -> None:
        self.small = bytearray()
        self.events: list[Any] = []
        self.take = take
        self.offered: list[int] = []

    def on_small(self, data: bytes) -> None:
        self.small += data
        if self.events and self.events[-1][0] == "small":
            self.events[-1] = ("small", self.events[-1][1] + len(data))
        else:
            self.events.append(("small", len(data)))

    def take_big(self, length: int) -> bool:
        self.offered.append(length)
        return self.take

    def on_big(self, opcode: int, whole: bytes, header_length: int, key: Optional[bytes]) -> None:
        self.events.append(("big", opcode, payload_of(whole, header_length, key), whole))

    def splitter(self, masked: bool) -> FrameSplitter:
        return FrameSplitter(self.on_small, self.take_big, self.on_big, masked)


def feed_in_pieces(splitter: FrameSplitter, data: bytes, size: int) -> None:
    for i in range(0, len(data), size):
        splitter.feed(data[i : i + size])


class FrameSplitterTests(unittest.TestCase):
    """
    L{FrameSplitter} takes big whole data frames and leaves every other
    frame, whole and in order, to wsproto.
    """

    def test_big_masked_frame_any_cut(self) -> None:
        """A big masked frame between small ones arrives whole, however the stream is cut."""
        key = b"\x01\x02\x03\x04"
        payload = os.urandom(BIG + 5)
        ping = frame(9, b"p", key=key)
        text = frame(1, b"hi", key=key)
        big = frame(2, payload, key=key)
        stream = text + big + ping
        for size in (1, 3, 7, 1000, 65536, len(stream)):
            rec = Recorder()
            feed_in_pieces(rec.splitter(masked=True), stream, size)
            self.assertEqual(
                [e[:3] for e in rec.events],
                [("small", len(text)), ("big", 2, payload), ("small", len(ping))],
                f"cut every {size} bytes",
            )
            self.assertEqual(rec.events[1][3], big)
            self.assertEqual(bytes(rec.small), text + ping)

    def test_big_unmasked_frame(self) -> None:
        """A server's big frame (unmasked) with a 64-bit length is taken; content is the payload."""
        payload = b"a" * (BIG * 2)
        rec = Recorder()
        rec.splitter(masked=False).feed(frame(1, payload))
        self.assertEqual([e[:3] for e in rec.events], [("big", 1, payload)])
        self.assertEqual(rec.offered, [len(payload)])

    def test_small_frames_left_to_wsproto(self) -> None:
        """Frames under BIG, with a 16-bit length, all go to wsproto untouched."""
        stream = frame(2, b"x" * (BIG - 1)) + frame(1, b"y" * 200) + frame(8, b"\x03\xe8")
        rec = Recorder()
        feed_in_pieces(rec.splitter(masked=False), stream, 5)
        self.assertEqual(bytes(rec.small), stream)
        self.assertEqual(rec.offered, [])

    def test_fragmented_message_left_to_wsproto(self) -> None:
        """Big frames of a fragmented message go to wsproto; a later whole one is taken."""
        first = frame(2, b"a" * BIG, fin=False)
        ping = frame(9, b"")
        last = frame(0, b"b" * BIG)
        whole = frame(2, b"c" * BIG)
        rec = Recorder()
        rec.splitter(masked=False).feed(first + ping + last + whole)
        self.assertEqual(bytes(rec.small), first + ping + last)
        self.assertEqual([e[:2] for e in rec.events], [("small", len(first + ping + last)),
                                                       ("big", 2)])

    def test_reserved_bits_left_to_wsproto(self) -> None:
        """A big frame with a reserved bit set (an extension's) goes to wsproto."""
        compressed = frame(2, b"z" * BIG, rsv=0x40)
        rec = Recorder()
        rec.splitter(masked=False).feed(compressed)
        self.assertEqual(bytes(rec.small), compressed)

    def test_wrong_masking_left_to_wsproto(self) -> None:
        """An unmasked big frame from a client goes to wsproto (which rejects it)."""
        unmasked = frame(2, b"z" * BIG)
        rec = Recorder()
        rec.splitter(masked=True).feed(unmasked)
        self.assertEqual(bytes(rec.small), unmasked)
        self.assertEqual(rec.offered, [])

    def test_refused_big_frame_left_to_wsproto(self) -> None:
        """When take_big says no (a closing connection, a size limit), wsproto gets the frame."""
        big = frame(2, b"q" * BIG, key=b"abcd")
        rec = Recorder(take=False)
        feed_in_pieces(rec.splitter(masked=True), big + big, 4096)
        self.assertEqual(bytes(rec.small), big + big)
        self.assertEqual(rec.offered, [BIG, BIG])

    def test_take_big_after_earlier_frames(self) -> None:
        """take_big is asked only once wsproto has had the frames before the big one."""
        close = frame(8, b"\x03\xe8", key=b"abcd")
        big = frame(2, b"s" * BIG, key=b"abcd")
        seen_before: list[int] = []
        rec = Recorder()
        splitter = FrameSplitter(rec.on_small, lambda n: seen_before.append(len(rec.small)) or False,
                                 rec.on_big, True)
        splitter.feed(close + big)
        self.assertEqual(seen_before, [len(close)])
        self.assertEqual(bytes(rec.small), close + big)

    def test_length_with_top_bit_left_to_wsproto(self) -> None:
        """A 64-bit length with its top bit set (invalid) goes to wsproto, which rejects it."""
        header = b"\x82\x7f" + (1 << 63 | BIG).to_bytes(8, "big")
        rec = Recorder()
        rec.splitter(masked=False).feed(header + b"x" * 100)
        self.assertEqual(rec.offered, [])
        self.assertEqual(bytes(rec.small), header + b"x" * 100)

    def test_header_cut_inside_length(self) -> None:
        """A header cut inside its extended length and key is completed by the next bytes."""
        big = frame(2, b"r" * BIG, key=b"wxyz")
        rec = Recorder()
        splitter = rec.splitter(masked=True)
        splitter.feed(big[:5])
        self.assertEqual(rec.events, [])
        splitter.feed(big[5:13])
        splitter.feed(big[13:] + frame(10, b"", key=b"wxyz"))
        self.assertEqual([e[:2] for e in rec.events], [("big", 2), ("small", 6)])


class PayloadTests(unittest.TestCase):
    """
    L{payload_of} and L{apply_mask}.
    """

    def test_mask_round_trip(self) -> None:
        """Masking twice with the same key gives the payload back, at any length."""
        for n in (0, 1, 3, 4, 5, 1023, BIG + 3):
            data = os.urandom(n)
            masked = apply_mask(data, b"\x9a\x01\xff\x10")
            self.assertEqual(apply_mask(masked, b"\x9a\x01\xff\x10"), data)
            if n:
                self.assertNotEqual(masked, data)

    def test_payload_of_masked_frame(self) -> None:
        """The payload of a masked frame is unmasked with the frame's key."""
        payload = os.urandom(BIG)
        whole = frame(2, payload, key=b"kkkk")
        self.assertEqual(payload_of(whole, 2 + 8 + 4, b"kkkk"), payload)


class KeptFrameMessageTests(unittest.TestCase):
    """
    A message kept as its frame unmasks only what is read, and keeps one
    copy once read.
    """

    def message(self) -> Any:
        from interceptor.model.websocket import WebSocketMessage

        payload = bytes(range(256)) * 400
        whole = frame(2, payload, key=b"\x10\x20\x30\x40")
        return WebSocketMessage.from_frame(2, True, whole, 14, b"\x10\x20\x30\x40"), payload

    def test_repr_does_not_unmask(self) -> None:
        """repr shows the first bytes, unmasked, without unmasking the rest."""
        message, payload = self.message()
        self.assertIn(repr(payload[:40]), repr(message))
        self.assertIsNone(message._content)
        self.assertEqual(message._size(), len(payload))

    def test_read_keeps_one_copy(self) -> None:
        """Reading content drops the frame; the size and the unchanged state stay."""
        message, payload = self.message()
        self.assertEqual(message.content, payload)
        self.assertIsNone(message._frame)
        self.assertEqual(message._size(), len(payload))
        self.assertTrue(message._unchanged)
        message.content = b"new"
        self.assertFalse(message._unchanged)
