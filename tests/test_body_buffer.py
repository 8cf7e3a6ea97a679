"""
Tests for L{interceptor.layers.body_buffer.BodyBuffer} and
L{interceptor.transport.paced.PacedWrite}: a big buffered body is held
about once, and written a slice at a time.
"""

from __future__ import annotations

import tracemalloc

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from interceptor.layers.body_buffer import GROW_ABOVE, BodyBuffer
from interceptor.transport.paced import PacedWrite
from interceptor.transport.readgate import ReadGate

MIB = 1 << 20


def pieces(total: int, size: int = 65536) -> list[bytes]:
    return [bytes([i % 251]) * min(size, total - at) for i, at in enumerate(range(0, total, size))]


class BodyBufferTests(SynchronousTestCase):

    def test_small_pieces_joined(self):
        buffer = BodyBuffer()
        buffer.append(b"ab")
        buffer.append(b"cd")
        self.assertEqual(buffer.size, 4)
        self.assertEqual(buffer.take(), b"abcd")
        self.assertEqual((buffer.size, buffer.take()), (0, b""))

    def test_big_body_held_once(self):
        """
        A 16 MiB body appended in 64 KiB pieces, which only the buffer holds:
        taken whole with a peak of about one body (pieces plus their join
        were two).
        """
        total = 16 * MIB
        buffer = BodyBuffer()
        tracemalloc.start()
        try:
            for at in range(0, total, 65536):
                buffer.append(bytes([at // 65536 % 251]) * 65536)
            body = buffer.take()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        self.assertEqual(len(body), total)
        self.assertEqual(body[-1], (total // 65536 - 1) % 251)
        self.assertLess(peak, total * 1.3)

    def test_small_then_big(self):
        buffer = BodyBuffer()
        buffer.append(b"x" * 10)
        buffer.append(b"y" * (GROW_ABOVE + 10))
        buffer.append(b"z")
        self.assertEqual(buffer.size, GROW_ABOVE + 21)
        self.assertEqual(buffer.take(), b"x" * 10 + b"y" * (GROW_ABOVE + 10) + b"z")
        self.assertEqual((buffer.size, buffer.take()), (0, b""))

    def test_pieces_for_streaming(self):
        buffer = BodyBuffer()
        buffer.append(b"a")
        buffer.append(b"b")
        self.assertEqual(buffer.pieces(), [b"a", b"b"])
        buffer.append(b"c" * (GROW_ABOVE + 5))
        self.assertEqual(buffer.pieces(), [b"c" * (GROW_ABOVE + 5)])
        self.assertEqual(buffer.size, 0)


class PacedWriteTests(SynchronousTestCase):

    def setUp(self):
        self.transport = StringTransport()
        self.body = pieces(3 * MIB + 5, MIB)
        self.data = b"".join(self.body)
        self.done: list[bool] = []

    def test_own_producer(self):
        """
        With no gate, the writer is the transport's producer while it
        writes: one slice per drain, then it lets go and says done.
        """
        producers = []

        def write(data: bytes) -> None:
            producers.append(self.transport.producer)
            self.transport.write(data)

        writer = PacedWrite(write, self.data, lambda: self.done.append(True),
                            transport=self.transport)
        writer.start()
        self.assertEqual(producers, [writer] * 4)
        # (StringTransport never pauses: everything goes at once.)
        self.assertEqual(self.transport.value(), self.data)
        self.assertIsNone(self.transport.producer)
        self.assertEqual(self.done, [True])

    def test_paused_between_slices(self):
        transport = self.transport
        writes: list[int] = []

        def write(data: bytes) -> None:
            writes.append(len(data))
            transport.write(data)
            writer.pauseProducing()  # the buffer is full after every slice

        writer = PacedWrite(write, self.data, lambda: self.done.append(True), transport=transport)
        writer.start()
        self.assertEqual(writes, [MIB])
        writer.resumeProducing()
        writer.resumeProducing()
        self.assertEqual(writes, [MIB, MIB, MIB])
        self.assertEqual(self.done, [])
        writer.resumeProducing()
        self.assertEqual(writes, [MIB, MIB, MIB, 5])
        self.assertEqual(transport.value(), self.data)
        self.assertEqual(self.done, [True])

    def test_through_a_gate(self):
        """
        Paired, the gate already registered on the transport says when its
        buffer drained; a stopped writer writes nothing more.
        """
        gate = ReadGate(StringTransport())
        writes: list[int] = []

        def write(data: bytes) -> None:
            writes.append(len(data))
            gate.pauseProducing()

        writer = PacedWrite(write, self.data, lambda: self.done.append(True), gate=gate)
        writer.start()
        self.assertEqual(writes, [MIB])
        gate.resumeProducing()
        self.assertEqual(writes, [MIB, MIB])
        writer.stop()
        gate.resumeProducing()
        self.assertEqual(writes, [MIB, MIB])
        self.assertEqual(self.done, [])

    def test_gate_stopped_forgets_waiters(self):
        gate = ReadGate(StringTransport())
        gate.pauseProducing()
        ran: list[int] = []
        gate.when_drained(lambda: ran.append(1))
        gate.stopProducing()
        gate.resumeProducing()
        self.assertEqual(ran, [])
