# -*- test-case-name: tests.test_h2pump -*-
"""
Unit tests of the HTTP/2 layer's send queue (C{_Output} and C{_pump} in
L{interceptor.layers.http2}), on real h2 connection objects.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
from twisted.trial import unittest

from interceptor.layers.http2_frames import Output as _Output, pump as _pump


def _pair(client=None):
    """
    A client (C{client}, or a new h2 one) and a server h2 connection that
    exchanged their prefaces; stream 1 has a GET and its response head.
    """
    if client is None:
        client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    client.send_headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "https"),
                            (":authority", "a.test")], end_stream=True)
    server.receive_data(client.data_to_send())
    server.send_headers(1, [(":status", "200")])
    client.receive_data(server.data_to_send())
    return client, server


class PumpTests(unittest.TestCase):
    """
    A queued body goes out within the flow-control windows, a frame at a
    time, without copying what is left of it.
    """

    def test_big_body_within_windows(self):
        """A body bigger than the window stops at the window, resumes after WINDOW_UPDATE, and arrives whole."""
        client, server = _pair()
        body = bytes(range(256)) * 1024  # 256 KiB; the initial window is 65,535
        out = _Output()
        out.chunks.append(body)
        out.size = len(body)
        out.end = True
        self.assertFalse(_pump(server, 1, out))
        self.assertIs(out.chunks[0], body)  # the rest is not copied per frame
        self.assertEqual(out.offset, 65535)
        self.assertEqual(out.size, len(body) - 65535)
        received = []
        done = False
        while not done:
            for event in client.receive_data(server.data_to_send()):
                if isinstance(event, h2.events.DataReceived):
                    received.append(event.data)
                    client.acknowledge_received_data(event.flow_controlled_length, 1)
                done = done or isinstance(event, h2.events.StreamEnded)
            server.receive_data(client.data_to_send())
            if not done:
                _pump(server, 1, out)
        self.assertEqual(b"".join(received), body)
        self.assertEqual((len(out.chunks), out.offset, out.size), (0, 0, 0))

    def test_several_chunks_in_order(self):
        """Queued chunks of any sizes go out in order and end the stream once."""
        client, server = _pair()
        out = _Output()
        pieces = [b"a" * 10, b"b" * 20000, b"c", b"d" * 40000]
        out.chunks.extend(pieces)
        out.size = sum(map(len, pieces))
        out.end = True
        self.assertTrue(_pump(server, 1, out))
        events = client.receive_data(server.data_to_send())
        data = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
        self.assertEqual(data, b"".join(pieces))
        self.assertEqual(sum(isinstance(e, h2.events.StreamEnded) for e in events), 1)
