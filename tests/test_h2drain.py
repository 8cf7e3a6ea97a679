# -*- test-case-name: tests.test_h2drain -*-
"""
Unit tests of L{interceptor.layers.http2_frames.DrainingH2Connection}, the
h2 connection the proxy uses toward servers: after the server's GOAWAY the
streams it kept still complete (in memory, two h2 connection objects).
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
from h2.connection import ConnectionInputs
from h2.exceptions import ProtocolError
from twisted.trial import unittest

from interceptor.layers.http2_frames import DrainingH2Connection, h2_config
from tests.test_h2pump import _pair

_REQUEST = [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"https"), (b":authority", b"a.test")]


def _goaway_then_answer(client: h2.connection.H2Connection) -> list:
    """
    Streams 1 and 3 from C{client}; the server sends GOAWAY naming stream 1
    as its last, then the rest of stream 1's answer: the events C{client}
    gets.
    """
    client, server = _pair(client)
    client.send_headers(3, _REQUEST, end_stream=True)
    server.receive_data(client.data_to_send())
    server.send_data(1, b"answer", end_stream=True)
    answer = server.data_to_send()
    server.close_connection(last_stream_id=1)
    # (One read: the GOAWAY, then the answer, as nginx sends them.)
    return client.receive_data(server.data_to_send() + answer)


class DrainingTests(unittest.TestCase):
    """
    A GOAWAY closes nothing but new streams.
    """

    def test_plain_h2_refuses_the_answer(self):
        """(Why it exists) h2's own connection raises on the frames after a GOAWAY."""
        client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        with self.assertRaises(ProtocolError):
            _goaway_then_answer(client)

    def test_answer_after_goaway(self):
        """The GOAWAY is reported, and the kept stream's answer comes in after it; the window can be opened again."""
        client = DrainingH2Connection(h2_config(True))
        events = _goaway_then_answer(client)
        kinds = [type(e) for e in events]
        self.assertEqual(
            kinds,
            [h2.events.ConnectionTerminated, h2.events.DataReceived, h2.events.StreamEnded],
        )
        self.assertEqual(events[0].last_stream_id, 1)
        self.assertEqual(events[1].data, b"answer")
        client.increment_flow_control_window(1000)
        self.assertTrue(client.data_to_send())

    def test_own_protocol_error_still_closes(self):
        """Without a GOAWAY from the peer, an invalid input closes the connection for good, as in h2."""
        machine = DrainingH2Connection(h2_config(True)).state_machine
        with self.assertRaises(ProtocolError):
            machine.process_input(ConnectionInputs.SEND_DATA)  # (before the preface)
        with self.assertRaises(ProtocolError):
            machine.process_input(ConnectionInputs.SEND_HEADERS)
