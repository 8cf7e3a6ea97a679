"""
The events a loaded flow fires (L{addons.readfile.lifecycle}), in the order
a live flow of its kind fires them, each message put back before its event.
"""

from __future__ import annotations

from twisted.trial import unittest

from addons.readfile import lifecycle
from interceptor.model.connection import ClientConnection
from interceptor.model.flow import Error, HTTPFlow
from interceptor.model.http import Request, Response
from interceptor.model.tcp import TCPFlow, TCPMessage
from interceptor.model.websocket import Opcode, WebSocketData, WebSocketMessage


def http_flow() -> HTTPFlow:
    flow = HTTPFlow(ClientConnection(("127.0.0.1", 1)), None, Request.make("GET", "http://a.example/"))
    flow.live = False
    return flow


class LifecycleTests(unittest.TestCase):
    def test_http(self) -> None:
        flow = http_flow()
        self.assertEqual(list(lifecycle(flow)), ["requestheaders", "request"])
        flow.response = Response.make(200)
        self.assertEqual(list(lifecycle(flow)), ["requestheaders", "request", "responseheaders", "response"])
        flow.response = None
        flow.error = Error("refused")
        self.assertEqual(list(lifecycle(flow)), ["requestheaders", "request", "error"])

    def test_websocket_messages_one_by_one(self) -> None:
        flow = http_flow()
        flow.response = Response.make(101)
        flow.websocket = WebSocketData()
        sent = [WebSocketMessage(Opcode.TEXT, True, b"a"), WebSocketMessage(Opcode.BINARY, False, b"b")]
        flow.websocket.messages.extend(sent)
        seen = []
        for event in lifecycle(flow):
            seen.append((event, flow.messages[-1].content if flow.messages else None))
        self.assertEqual(seen, [
            ("requestheaders", b"b"), ("request", b"b"), ("responseheaders", b"b"), ("response", b"b"),
            ("websocket_start", None), ("websocket_message", b"a"), ("websocket_message", b"b"),
            ("websocket_end", b"b"),
        ])
        self.assertEqual(flow.websocket.messages, sent)

    def test_tcp(self) -> None:
        flow = TCPFlow(ClientConnection(("127.0.0.1", 1)))
        flow.messages.extend([TCPMessage(True, b"x"), TCPMessage(False, b"y")])
        seen = [(event, len(flow.messages)) for event in lifecycle(flow)]
        self.assertEqual(seen, [("tcp_start", 0), ("tcp_message", 1), ("tcp_message", 2), ("tcp_end", 2)])
        flow.error = Error("reset")
        self.assertEqual(list(lifecycle(flow))[-1], "tcp_error")
