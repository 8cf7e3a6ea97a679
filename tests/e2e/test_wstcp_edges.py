"""
Edge cases of the WebSocket layer, the raw TCP layer and the proxy modes
(frames around the handshake, close codes, limits in bytes, half-closes
while the protocol is being detected, kills, SOCKS5 and chained proxies):
real clients through a real proxy to real servers, all on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
from typing import Any, Callable, Optional

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest
from zope.interface import implementer

from interceptor.testing import connect_websocket, start_proxy, start_websocket_server
from tests.e2e.peers import RawClient, WebServer, curl, sleep, wait_until
from tests.e2e.tcppeers import TcpClient, TcpServer, connect_tunnel
from tests.e2e.test_websocket import raw_handshake, raw_setup
from tests.e2e.test_websocket_big import close_code, masked, parse_frames, unmasked

KIB = 1024


# -- helpers ------------------------------------------------------------------


def accept_for(head: bytes) -> bytes:
    """
    The Sec-WebSocket-Accept for the key in the request C{head}.
    """
    key = [
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    ][0]
    return base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())


class AllEvents:
    """
    Records every connection, WebSocket and TCP event, by name, in order,
    with the flows.
    """

    NAMES = (
        "clientconnect", "clientdisconnect", "serverconnect", "serverdisconnect",
        "websocket_handshake", "requestheaders", "request", "responseheaders", "response",
        "error", "websocket_start", "websocket_message", "websocket_end", "websocket_error",
        "tcp_start", "tcp_message", "tcp_end", "tcp_error",
    )

    def __init__(self, skip: tuple = ()) -> None:
        self.events: list[tuple[str, Any]] = []
        self.seen: list[tuple[bool, bytes]] = []
        for name in self.NAMES:
            if name not in skip:
                setattr(self, name, self._recorder(name))

    def _recorder(self, name: str) -> Callable[[Any], None]:
        def record(arg: Any) -> None:
            self.events.append((name, arg))
            if name == "websocket_message":
                m = arg.websocket.messages[-1]
                self.seen.append((m.from_client, bytes(m.content)))
            elif name == "tcp_message":
                m = arg.messages[-1]
                self.seen.append((m.from_client, bytes(m.content)))

        record.__name__ = name
        return record

    def names(self, *keep: str) -> list[str]:
        return [n for n, _ in self.events if not keep or n in keep]

    def disconnects(self) -> tuple[int, int]:
        """
        How many times clientdisconnect and serverdisconnect fired.
        """
        return self.count("clientdisconnect"), self.count("serverdisconnect")

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.events if n == name)

    def arg(self, name: str) -> Any:
        return [a for n, a in self.events if n == name][0]


class _ScriptedConn(Protocol):
    """
    A server connection: waits for a request head, then calls the server's
    C{respond(conn, head)}; keeps every byte after the head in C{after}.
    """

    def connectionMade(self) -> None:
        self.buffer = b""
        self.head: Optional[bytes] = None
        self.after = bytearray()
        self.closed = False
        self.lost: Deferred = Deferred()
        self.factory.connections.append(self)

    def dataReceived(self, data: bytes) -> None:
        if self.head is not None:
            self.after += data
            return
        self.buffer += data
        if b"\r\n\r\n" in self.buffer:
            self.head, rest = self.buffer.split(b"\r\n\r\n", 1)
            self.after += rest
            self.factory.respond(self, self.head)

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True
        self.lost.callback(None)


def listen_scripted(testcase: Any, respond: Callable[[Any, bytes], None]) -> Any:
    factory = Factory.forProtocol(_ScriptedConn)
    factory.noisy = False
    factory.connections = []
    factory.respond = respond
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    testcase.addCleanup(port.stopListening)

    def cleanup() -> Any:
        for c in factory.connections:
            if not c.closed:
                c.transport.abortConnection()

    testcase.addCleanup(cleanup)
    factory.port = port.getHost().port
    return factory


def ws_101(conn: Any, head: bytes, extra: bytes = b"") -> None:
    conn.transport.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_for(head) + b"\r\n\r\n" + extra
    )


# -- WebSocket ----------------------------------------------------------------


class WebSocketProbeTests(unittest.TestCase):
    timeout = 20

    async def test_fragmented_with_interleaved_ping(self) -> None:
        """A fragmented text message with a Ping between its frames: the server gets the whole message, the client the Pong and the echo."""
        events = AllEvents()
        proxy, server, client, peer = await raw_setup(self, events)
        client.send(masked(0x01, b"abc") + masked(0x89, b"pp") + masked(0x00, b"def")
                    + masked(0x89, b"qq") + masked(0x80, b"ghi"))
        got = await peer.next_message()
        self.assertEqual((got.payload, got.is_binary), (b"abcdefghi", False))
        await client.wait_for(lambda d: len(parse_frames(d)) >= 3)
        frames = parse_frames(bytes(client.received))
        pongs = [p for f, m, p in frames if f == 0x8A]
        texts = [p for f, m, p in frames if f & 0x0F in (0, 1)]
        self.assertEqual(pongs, [b"pp", b"qq"])
        self.assertEqual(b"".join(texts), b"abcdefghi")
        self.assertEqual(events.seen, [(True, b"abcdefghi"), (False, b"abcdefghi")])

    async def test_invalid_close_code_from_client(self) -> None:
        """A Close with code 999 (invalid) from the client: 1002 to it, 1001 to the server, websocket_error once."""
        events = AllEvents()
        proxy, server, client, peer = await raw_setup(self, events)
        client.send(masked(0x88, (999).to_bytes(2, "big") + b"bad"))
        data = await client.wait_closed()
        frames = parse_frames(data)
        self.assertEqual([(f, close_code(p)) for f, m, p in frames], [(0x88, 1002)])
        closed = await peer.wait_closed()
        self.assertEqual(closed.code, 1001)
        await wait_until(lambda: all(events.disconnects()))
        await sleep(0.1)
        self.assertEqual(events.count("websocket_error"), 1)
        self.assertEqual(events.count("websocket_end"), 0)

    async def test_local_only_close_code_1006_from_server(self) -> None:
        """A Close carrying 1006 (never on the wire) from the server is a protocol error: websocket_error once."""
        events = AllEvents()
        factory = listen_scripted(self, ws_101)
        proxy = await start_proxy(self, events)
        client = await raw_handshake(self, proxy, factory.port)
        await wait_until(lambda: events.count("websocket_start"))
        client.received.clear()
        factory.connections[0].transport.write(unmasked(0x88, (1006).to_bytes(2, "big")))
        await wait_until(lambda: events.count("websocket_error") or events.count("websocket_end"))
        data = await client.wait_for(lambda d: len(parse_frames(d)) >= 1)
        self.assertEqual([(f, close_code(p)) for f, m, p in parse_frames(data)], [(0x88, 1001)])
        self.assertEqual(events.count("websocket_error"), 1)
        # The server got a 1002 close.
        await wait_until(lambda: len(parse_frames(bytes(factory.connections[0].after))) >= 1)
        frames = parse_frames(bytes(factory.connections[0].after))
        self.assertEqual([(f, m, close_code(p)) for f, m, p in frames], [(0x88, True, 1002)])

    async def test_abrupt_close_mid_frame(self) -> None:
        """The client drops TCP in the middle of a frame: websocket_error once, the server gets 1001, nothing forwarded."""
        events = AllEvents()
        proxy, server, client, peer = await raw_setup(self, events)
        frame = masked(0x82, b"x" * 1000)
        client.send(frame[:500])
        await sleep(0.1)
        await client.abort()
        closed = await peer.wait_closed()
        self.assertEqual(closed.code, 1001)
        await wait_until(lambda: all(events.disconnects()))
        await sleep(0.1)
        self.assertEqual(events.count("websocket_error"), 1)
        self.assertEqual(events.count("websocket_end"), 0)
        self.assertEqual(peer.received, [])
        self.assertEqual(events.disconnects(), (1, 1))

    async def test_masked_small_frame_from_server(self) -> None:
        """A masked (small) frame from the server: 1002 to the server, 1001 to the client, websocket_error once."""
        events = AllEvents()
        factory = listen_scripted(self, ws_101)
        proxy = await start_proxy(self, events)
        client = await raw_handshake(self, proxy, factory.port)
        await wait_until(lambda: events.count("websocket_start"))
        client.received.clear()
        server = factory.connections[0]
        server.transport.write(masked(0x81, b"masked!"))
        data = await client.wait_for(lambda d: len(parse_frames(d)) >= 1)
        self.assertEqual([(f, close_code(p)) for f, m, p in parse_frames(data)], [(0x88, 1001)])
        await wait_until(lambda: len(parse_frames(bytes(server.after))) >= 1)
        self.assertEqual([(f, close_code(p)) for f, m, p in parse_frames(bytes(server.after))],
                         [(0x88, 1002)])
        await wait_until(lambda: events.count("websocket_error"))
        self.assertEqual(events.count("websocket_error"), 1)
        self.assertEqual(events.seen, [])

    async def test_unmasked_small_frame_from_client(self) -> None:
        """An unmasked (small) frame from the client: 1002 to it, websocket_error once, nothing forwarded."""
        events = AllEvents()
        proxy, server, client, peer = await raw_setup(self, events)
        client.send(unmasked(0x81, b"no mask"))
        data = await client.wait_closed()
        self.assertEqual([(f, close_code(p)) for f, m, p in parse_frames(data)], [(0x88, 1002)])
        self.assertEqual((await peer.wait_closed()).code, 1001)
        await wait_until(lambda: events.count("websocket_error"))
        self.assertEqual(peer.received, [])
        self.assertEqual(events.count("websocket_error"), 1)

    async def test_text_limit_counts_bytes_not_characters(self) -> None:
        """body_size_limit bounds a text message in bytes: 1000 x U+20AC (3000 bytes) is over 2k."""
        events = AllEvents()
        proxy, server, client, peer = await raw_setup(self, events, body_size_limit="2k")
        text = "\u20ac" * 1000
        client.send(masked(0x81, text.encode("utf-8")))
        data = await client.wait_for(lambda d: len(parse_frames(d)) >= 1)
        frames = parse_frames(data)
        self.assertEqual([(f, close_code(p)) for f, m, p in frames], [(0x88, 1009)],
                         "a 3000-byte text message passed a 2048-byte body_size_limit")

    async def test_fragmented_text_limit_counts_bytes(self) -> None:
        """The same in two fragments: 2 x 500 x U+20AC (3000 bytes) is over 2k."""
        events = AllEvents()
        proxy, server, client, peer = await raw_setup(self, events, body_size_limit="2k")
        part = ("\u20ac" * 500).encode("utf-8")
        client.send(masked(0x01, part) + masked(0x80, part))
        data = await client.wait_for(lambda d: len(parse_frames(d)) >= 1)
        frames = parse_frames(data)
        self.assertEqual([(f, close_code(p)) for f, m, p in frames], [(0x88, 1009)],
                         "a 3000-byte fragmented text message passed a 2048-byte body_size_limit")

    async def test_binary_exactly_at_limit_passes(self) -> None:
        """A binary message of exactly body_size_limit bytes passes; one byte more is refused with 1009."""
        events = AllEvents()
        proxy, server, client, peer = await raw_setup(self, events, body_size_limit="4k")
        client.send(masked(0x82, b"a" * 4096))
        got = await peer.next_message()
        self.assertEqual(len(got.payload), 4096)
        client.send(masked(0x82, b"b" * 4097))
        data = await client.wait_for(
            lambda d: any(f == 0x88 for f, m, p in parse_frames(d)))
        closes = [close_code(p) for f, m, p in parse_frames(data) if f == 0x88]
        self.assertEqual(closes, [1009])
        await wait_until(lambda: events.count("websocket_error"))
        self.assertEqual(len(peer.received), 1)

    async def test_server_frame_in_same_write_as_101(self) -> None:
        """The server's first frame arriving with its 101 reaches the client."""
        events = AllEvents()
        factory = listen_scripted(
            self, lambda conn, head: ws_101(conn, head, unmasked(0x81, b"welcome")))
        proxy = await start_proxy(self, events)
        client = await raw_handshake(self, proxy, factory.port)
        data = await client.wait_for(lambda d: b"welcome" in d)
        body = data.split(b"\r\n\r\n", 1)[1]
        self.assertEqual(parse_frames(body), [(0x81, False, b"welcome")])
        await wait_until(lambda: events.count("websocket_message"))
        self.assertEqual(events.seen, [(False, b"welcome")])

    async def test_client_frame_in_same_write_as_handshake(self) -> None:
        """A client frame sent right behind the handshake (before the 101) reaches the server."""
        server = await start_websocket_server(self)
        events = AllEvents()
        proxy = await start_proxy(self, events)
        client = await RawClient.connect(self, proxy.port_number)
        port = server.port
        client.send(
            b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n" % (port, port) + masked(0x81, b"eager")
        )
        peer = await server.next_connection()
        got = await peer.next_message()
        self.assertEqual(got.payload, b"eager")
        data = await client.wait_for(lambda d: b"eager" in d)
        self.assertTrue(data.startswith(b"HTTP/1.1 101"))

    async def test_client_frame_before_delayed_101(self) -> None:
        """A client frame sent while the server has not answered yet is relayed after the 101 ("bytes arriving meanwhile wait")."""
        events = AllEvents()
        factory = listen_scripted(
            self, lambda conn, head: reactor.callLater(0.4, ws_101, conn, head))
        proxy = await start_proxy(self, events)
        client = await RawClient.connect(self, proxy.port_number)
        port = factory.port
        client.send(
            b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n" % (port, port))
        await sleep(0.15)
        client.send(masked(0x81, b"early"))
        await wait_until(lambda: events.count("websocket_start"))
        await wait_until(lambda: factory.connections and len(factory.connections[0].after) > 0)
        data = await client.wait_for(lambda d: b"\r\n\r\n" in d)
        self.assertTrue(data.startswith(b"HTTP/1.1 101"), data)
        self.assertEqual([(f, p) for f, m, p in parse_frames(bytes(factory.connections[0].after))],
                         [(0x81, b"early")])

    async def test_upgrade_refused_with_403(self) -> None:
        """A 403 answer to an upgrade: the client gets it with its body; no WebSocket events; keep-alive goes on (or closes)."""
        events = AllEvents()

        def answer(conn: Any) -> None:
            conn.transport.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\nnope!\n")

        def respond(conn: Any, head: bytes) -> None:
            answer(conn)
            # Answer the following requests on this connection too.
            conn.dataReceived = lambda data: answer(conn) if b"\r\n\r\n" in data else None

        factory = listen_scripted(self, respond)
        proxy = await start_proxy(self, events)
        client = await raw_handshake(self, proxy, factory.port)
        data = await client.wait_for(lambda d: d.endswith(b"nope!\n"))
        self.assertTrue(data.startswith(b"HTTP/1.1 403"))
        self.assertEqual(events.count("websocket_start"), 0)
        # A new request on the same connection is answered or the connection closes: no hang.
        client.send(b"GET http://127.0.0.1:%d/again HTTP/1.1\r\nHost: x\r\n\r\n" % factory.port)
        data = await client.wait_for(lambda d: d.count(b"HTTP/1.1 403") == 2, timeout=3)
        if not client.closed:
            self.assertEqual(data.count(b"HTTP/1.1 403"), 2)
        self.assertEqual(events.count("response"), events.count("request"))
        self.assertEqual(events.count("websocket_error") + events.count("websocket_end"), 0)

    async def test_101_without_upgrade_header(self) -> None:
        """A 101 without Upgrade/Connection headers to a WebSocket handshake: bytes relayed raw (or the proxy refuses it cleanly)."""
        events = AllEvents()

        def respond(conn: Any, head: bytes) -> None:
            conn.transport.write(b"HTTP/1.1 101 Switching Protocols\r\n\r\nserver-bytes")

        factory = listen_scripted(self, respond)
        proxy = await start_proxy(self, events)
        client = await raw_handshake(self, proxy, factory.port)
        data = await client.wait_for(lambda d: d.endswith(b"server-bytes") or b"HTTP/1.1 502" in d)
        if data.startswith(b"HTTP/1.1 101"):
            client.send(b"client-bytes")
            await wait_until(lambda: bytes(factory.connections[0].after) == b"client-bytes")
            self.assertEqual(bytes(factory.connections[0].after), b"client-bytes")
            self.assertEqual(events.count("websocket_start"), 0)

    async def test_client_close_then_fin(self) -> None:
        """The client sends Close and drops TCP at once: the server still gets the Close, websocket_end once (no error)."""
        events = AllEvents()
        proxy, server, client, peer = await raw_setup(self, events)
        client.send(masked(0x88, (1000).to_bytes(2, "big") + b"bye"))
        client.transport.loseConnection()
        closed = await peer.wait_closed()
        self.assertEqual((closed.code, closed.reason), (1000, "bye"))
        await wait_until(lambda: events.count("websocket_end") + events.count("websocket_error"))
        await sleep(0.1)
        self.assertEqual(events.names("websocket_end", "websocket_error"), ["websocket_end"])
        self.assertEqual(events.disconnects(), (1, 1))

    async def test_server_close_then_fin(self) -> None:
        """The server sends Close then closes TCP at once: the client gets the Close; one end event."""
        events = AllEvents()
        factory = listen_scripted(self, ws_101)
        proxy = await start_proxy(self, events)
        client = await raw_handshake(self, proxy, factory.port)
        await wait_until(lambda: events.count("websocket_start"))
        client.received.clear()
        conn = factory.connections[0]
        conn.transport.write(unmasked(0x88, (4000).to_bytes(2, "big") + b"later"))
        conn.transport.loseConnection()
        data = await client.wait_for(lambda d: len(parse_frames(d)) >= 1)
        self.assertEqual([(f, close_code(p), p[2:]) for f, m, p in parse_frames(data)],
                         [(0x88, 4000, b"later")])
        client.send(masked(0x88, (4000).to_bytes(2, "big")))
        await client.wait_closed()
        await wait_until(lambda: events.count("websocket_end") + events.count("websocket_error"))
        await sleep(0.1)
        self.assertEqual(events.count("websocket_end") + events.count("websocket_error"), 1)
        self.assertEqual(events.names("websocket_end", "websocket_error"), ["websocket_end"])

    async def test_simultaneous_close(self) -> None:
        """Both sides send Close at the same time: each gets one, websocket_end once."""
        events = AllEvents()
        factory = listen_scripted(self, ws_101)
        proxy = await start_proxy(self, events)
        client = await raw_handshake(self, proxy, factory.port)
        await wait_until(lambda: events.count("websocket_start"))
        client.received.clear()
        conn = factory.connections[0]
        conn.transport.write(unmasked(0x88, (1000).to_bytes(2, "big") + b"srv"))
        client.send(masked(0x88, (1000).to_bytes(2, "big") + b"cli"))
        data = await client.wait_closed()
        closes = [close_code(p) for f, m, p in parse_frames(data) if f == 0x88]
        self.assertEqual(len(closes), 1, data)
        await wait_until(lambda: any(f == 0x88 for f, m, p in parse_frames(bytes(conn.after))))
        self.assertEqual(len([1 for f, m, p in parse_frames(bytes(conn.after)) if f == 0x88]), 1)
        await wait_until(lambda: events.count("websocket_end") + events.count("websocket_error"))
        await sleep(0.1)
        self.assertEqual(events.names("websocket_end", "websocket_error"), ["websocket_end"])

    async def test_unknown_extension_stripped_deflate_kept(self) -> None:
        """Client offers x-unknown and permessage-deflate: the server sees only permessage-deflate; the connection works."""
        server = await start_websocket_server(self, compression=True)
        proxy = await start_proxy(self)
        client = await RawClient.connect(self, proxy.port_number)
        port = server.port
        client.send(
            b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Extensions: x-unknown; foo=1, permessage-deflate; client_max_window_bits\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n" % (port, port)
        )
        peer = await server.next_connection()
        exts = peer.request.headers.get("sec-websocket-extensions")
        self.assertNotIn("x-unknown", exts)
        self.assertIn("permessage-deflate", exts)
        data = await client.wait_for(lambda d: b"\r\n\r\n" in d)
        self.assertIn(b"permessage-deflate", data.lower())

    async def test_deflate_offered_not_accepted(self) -> None:
        """Client offers permessage-deflate, the server declines: plain frames relayed both ways."""
        server = await start_websocket_server(self, compression=False)
        proxy = await start_proxy(self)
        client = await connect_websocket(self, server.url("/x"), proxy=proxy, compression=True)
        self.assertFalse(client.websocket_extensions_in_use)
        client.send_text("plain " * 100)
        self.assertEqual((await client.next_message()).payload, b"plain " * 100)
        self.assertTrue((await client.close()).was_clean)

    async def test_drop_and_inject_on_same_message(self) -> None:
        """A hook drops a client message and injects a replacement both ways: peers see only the injected ones."""
        from interceptor.model.websocket import inject

        class Swap:
            def websocket_message(self, flow: Any) -> None:
                m = flow.websocket.messages[-1]
                if m.from_client and m.content == b"swap" and not m.injected:
                    m.drop()
                    inject(flow, to_client=False, content=b"swapped")
                    inject(flow, to_client=True, content=b"you said swap")

        events = AllEvents()
        server = await start_websocket_server(self, echo=False)
        proxy = await start_proxy(self, Swap(), events)
        client = await connect_websocket(self, server.url("/"), proxy=proxy)
        peer = await server.next_connection()
        client.send_text("swap")
        client.send_text("after")
        self.assertEqual((await client.next_message()).payload, b"you said swap")
        self.assertEqual([(await peer.next_message()).payload, (await peer.next_message()).payload],
                         [b"swapped", b"after"])

    async def test_events_once_in_order_clean(self) -> None:
        """A clean client-initiated close: connection and WebSocket events each once, in order."""
        events = AllEvents(skip=("websocket_message",))
        server = await start_websocket_server(self)
        proxy = await start_proxy(self, events)
        client = await connect_websocket(self, server.url("/"), proxy=proxy)
        client.send_text("x")
        await client.next_message()
        await client.close(1000, "done")
        await wait_until(lambda: all(events.disconnects()))
        await sleep(0.1)
        names = events.names()
        for n in ("clientconnect", "clientdisconnect", "serverconnect", "serverdisconnect",
                  "websocket_start", "websocket_end", "response"):
            self.assertEqual(names.count(n), 1, (n, names))
        self.assertLess(names.index("websocket_start"), names.index("websocket_end"))
        self.assertNotIn("websocket_error", names)
        self.assertNotIn("error", names)


    async def test_101_fires_responseheaders(self) -> None:
        """The handshake's 101 is a response: requestheaders, request, responseheaders, response, then websocket_start (IHTTPEvents order)."""
        events = AllEvents(skip=("websocket_message",))
        server = await start_websocket_server(self)
        proxy = await start_proxy(self, events)
        await connect_websocket(self, server.url("/"), proxy=proxy)
        await wait_until(lambda: events.count("websocket_start"))
        self.assertEqual(
            events.names("requestheaders", "request", "responseheaders", "response", "websocket_start"),
            ["requestheaders", "request", "responseheaders", "response", "websocket_start"])

    async def test_client_drops_while_start_hook_pending(self) -> None:
        """The client drops TCP while a websocket_start hook is pending: websocket_error once, the server gets a Close."""
        events = AllEvents(skip=("websocket_start",))
        gate: Deferred = Deferred()

        class SlowStart:
            def websocket_start(self, flow: Any) -> Deferred:
                events.events.append(("websocket_start", flow))
                return gate

        server = await start_websocket_server(self)
        proxy = await start_proxy(self, SlowStart(), events)
        client = await raw_handshake(self, proxy, server.port)
        peer = await server.next_connection()
        self.assertTrue(await wait_until(lambda: events.count("websocket_start")))
        # The reset is in the proxy's socket once the client's side is gone
        # (the proxy, not reading while the hook runs, sees it afterwards).
        await client.abort()
        gate.callback(None)
        closed = await peer.wait_closed()
        self.assertEqual(closed.code, 1001)
        await wait_until(lambda: events.count("websocket_error") + events.count("websocket_end"))
        await sleep(0.1)
        self.assertEqual(events.names("websocket_end", "websocket_error"), ["websocket_error"])

    async def test_server_drops_while_message_hook_pending(self) -> None:
        """The server drops TCP while a client message waits in a hook: websocket_error once, the client gets 1001."""
        events = AllEvents()
        gate: Deferred = Deferred()
        held = []

        class Hold:
            def websocket_message(self, flow: Any) -> Any:
                if flow.websocket.messages[-1].content != b"hold":
                    return None
                held.append(flow)
                return gate

        server = await start_websocket_server(self)
        proxy = await start_proxy(self, Hold(), events)
        client = await connect_websocket(self, server.url("/"), proxy=proxy)
        peer = await server.next_connection()
        client.send_text("hold")
        self.assertTrue(await wait_until(lambda: held))
        peer.drop()
        closed = await client.wait_closed()
        self.assertEqual(closed.code, 1001)
        gate.callback(None)
        await sleep(0.1)
        self.assertEqual(events.names("websocket_end", "websocket_error"), ["websocket_error"])
        self.assertEqual(events.disconnects(), (1, 1))


class SecureWebSocketProbeTests(unittest.TestCase):
    timeout = 20

    async def test_wss_server_drops(self) -> None:
        """wss through CONNECT: the server drops TCP; the client gets 1001, websocket_error once, disconnects once each."""
        from cryptography.hazmat.primitives import serialization
        from twisted.internet import ssl

        from interceptor.tls.contexts import certstore_for
        from tests.e2e.tlspeers import TestCA, pem_of

        ca = TestCA.shared()
        cert, key = ca.issue(["localhost", "127.0.0.1"])
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption())
        tls = ssl.PrivateCertificate.loadPEM(key_pem + pem_of(cert)).options()
        events = AllEvents()
        server = await start_websocket_server(self, tls=tls)
        proxy = await start_proxy(self, events, confdir=self.mktemp(),
                                  ssl_verify_upstream_trusted_ca=ca.cert_path(self))
        proxy_ca = pem_of(certstore_for(proxy.master).ca_cert)
        client = await connect_websocket(self, server.url("/s", host="localhost"), proxy=proxy,
                                         trust_root=proxy_ca)
        peer = await server.next_connection()
        client.send_text("hi")
        await client.next_message()
        peer.drop()
        closed = await client.wait_closed()
        self.assertEqual(closed.code, 1001)
        await wait_until(lambda: all(events.disconnects()))
        await sleep(0.1)
        self.assertEqual(events.count("websocket_error"), 1)
        self.assertEqual(events.disconnects(), (1, 1))


# -- raw TCP ------------------------------------------------------------------


@implementer(IHalfCloseableProtocol)
class HalfOpenClient(TcpClient):
    """A TcpClient that stays open for writing after the server's FIN."""

    def readConnectionLost(self) -> None:
        self.eof = True


class TcpProbeTests(unittest.TestCase):
    timeout = 30

    async def _server_half_close_first(self, *addons: Any) -> tuple:
        factory = await TcpServer.start(self, "banner-shut")
        proxy = await start_proxy(self, *addons, tcp_hosts=["127.0.0.1"])
        client = await HalfOpenClient.connect(self, proxy.port_number)
        client.send(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % factory.port)
        await client.wait_for(lambda d: b"\r\n\r\n" in d)
        await wait_until(lambda: client.eof or client.closed)
        self.assertTrue(client.eof, "the server's half-close did not reach the client")
        self.assertFalse(client.closed, "the proxy closed the client entirely on the server's half-close")
        self.assertTrue(bytes(client.received).endswith(b"banner;"))
        client.send(b"still talking")
        server = factory.connections[0]
        await wait_until(lambda: bytes(server.received) == b"still talking")
        self.assertEqual(bytes(server.received), b"still talking")
        client.shut_write()
        await wait_until(lambda: server.eof)
        self.assertTrue(server.eof)
        # Both directions are done: the proxy drops the client connection
        # (this client stopped reading at the EOF, so ask the proxy).
        factory_conns = proxy.master.factories[0].connections
        await wait_until(lambda: not factory_conns)
        self.assertEqual(len(factory_conns), 0, "the proxy kept the client connection open")
        return factory, proxy, client

    async def test_server_half_close_first_no_hooks(self) -> None:
        """The server shuts its writing half first: the client sees EOF and can still send; then both close."""
        await self._server_half_close_first()

    async def test_server_half_close_first_with_hooks(self) -> None:
        """The same with tcp_message hooks: events tcp_start, messages, one tcp_end."""
        events = AllEvents()
        await self._server_half_close_first(events)
        await wait_until(lambda: events.count("tcp_end") + events.count("tcp_error"))
        await sleep(0.1)
        self.assertEqual(events.names("tcp_start", "tcp_end", "tcp_error")[0], "tcp_start")
        self.assertEqual(events.names("tcp_end", "tcp_error"), ["tcp_end"])
        self.assertEqual(events.seen, [(False, b"banner;"), (True, b"still talking")])
        self.assertEqual(events.disconnects(), (1, 1))

    async def test_messages_recorded_for_tcp_end_only_addon(self) -> None:
        """An addon with only tcp_end (a TCP event) finds the relayed chunks in flow.messages (TCPFlow docs, mitmproxy)."""
        ends: list = []

        class EndOnly:
            def tcp_end(self, flow: Any) -> None:
                ends.append(flow)

        proxy = await start_proxy(self, EndOnly(), tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "echo")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"hello")
        await client.wait_for(lambda d: d == b"hello")
        client.shut_write()
        await client.wait_closed()
        await wait_until(lambda: ends)
        [flow] = ends
        self.assertEqual(b"".join(m.content for m in flow.messages if m.from_client), b"hello",
                         "flow.messages is empty for an addon handling only tcp_end")

    async def test_bidirectional_large_with_hooks(self) -> None:
        """4 MiB each way at once through tcp_message hooks, against an echo server: every byte, in order."""
        events = AllEvents()
        proxy = await start_proxy(self, events, tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "echo")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        payload = os.urandom(4 * 1024 * 1024)
        client.send(payload)
        await client.wait_for(lambda d: len(d) >= len(payload), timeout=20)
        self.assertEqual(hashlib.sha256(bytes(client.received)).hexdigest(),
                         hashlib.sha256(payload).hexdigest())
        client.shut_write()
        await client.wait_closed()
        await wait_until(lambda: events.count("tcp_end") + events.count("tcp_error"))
        self.assertEqual(events.names("tcp_end", "tcp_error"), ["tcp_end"])

    async def test_client_reset_events_once(self) -> None:
        """The client resets: tcp_error once (no tcp_end), the server connection closes, disconnects once each."""
        events = AllEvents()
        proxy = await start_proxy(self, events, tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "echo")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"x")
        await client.wait_for(lambda d: d == b"x")
        sock = client.transport.getHandle()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        await client.abort()
        await wait_until(lambda: server.connections[0].closed)
        self.assertTrue(server.connections[0].closed)
        await wait_until(lambda: all(events.disconnects()))
        await wait_until(lambda: events.count("tcp_end") + events.count("tcp_error"))
        await sleep(0.1)
        self.assertEqual(events.names("tcp_end", "tcp_error"), ["tcp_error"])
        self.assertEqual(events.disconnects(), (1, 1))

    async def test_eof_waits_behind_pending_hook(self) -> None:
        """A half-close right behind a chunk held by a slow hook: the server gets all bytes, then EOF."""

        class Slow:
            def tcp_message(self, flow: Any) -> Any:
                d: Deferred = Deferred()
                reactor.callLater(0.2, d.callback, None)
                return d

        proxy = await start_proxy(self, Slow(), tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "count")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"a" * 3000)
        client.shut_write()
        data = await client.wait_closed()
        self.assertEqual(data, b"got 3000 bytes")

    async def test_emptied_message_not_forwarded(self) -> None:
        """A hook that empties a chunk: nothing sent for it, the next chunk still flows."""

        class Empty:
            def tcp_message(self, flow: Any) -> None:
                m = flow.messages[-1]
                if m.from_client and m.content == b"hide":
                    m.content = b""

        proxy = await start_proxy(self, Empty(), tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "echo")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"hide")
        await sleep(0.2)
        client.send(b"show")
        await client.wait_for(lambda d: d == b"show")
        self.assertEqual(bytes(server.connections[0].received), b"show")

    async def test_kill_in_tcp_start(self) -> None:
        """flow.kill() in tcp_start: the client is dropped, the server is never contacted, tcp_error once."""
        events = AllEvents()

        class Kill:
            def tcp_start(self, flow: Any) -> None:
                flow.kill()

        proxy = await start_proxy(self, Kill(), events, tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "echo")
        client = await TcpClient.connect(self, proxy.port_number)
        client.send(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % server.port)
        await client.wait_closed()
        await wait_until(lambda: events.count("tcp_error") + events.count("tcp_end"))
        await sleep(0.2)
        self.assertEqual(events.names("tcp_end", "tcp_error"), ["tcp_error"])
        self.assertEqual(server.connections, [], "a flow killed in tcp_start still connected to the server")
        self.assertEqual(events.count("serverconnect"), 0)

    async def test_server_banner_and_full_close(self) -> None:
        """The server greets and closes at once: the client gets the banner then the close; tcp_end once."""
        events = AllEvents()

        class Greet(Protocol):
            def connectionMade(self) -> None:
                self.transport.write(b"hi and bye")
                self.transport.loseConnection()

        factory = Factory.forProtocol(Greet)
        factory.noisy = False
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        proxy = await start_proxy(self, events, tcp_hosts=["127.0.0.1"])
        client = await connect_tunnel(self, proxy.port_number, port.getHost().port)
        data = await client.wait_for(lambda d: d == b"hi and bye")
        self.assertEqual(data, b"hi and bye")
        await wait_until(lambda: client.eof or client.closed)
        self.assertTrue(client.eof or client.closed)
        if not client.closed:
            client.shut_write()
        await client.wait_closed()
        await wait_until(lambda: events.count("tcp_end") + events.count("tcp_error"))
        await sleep(0.1)
        self.assertEqual(events.names("tcp_end", "tcp_error"), ["tcp_end"])


# -- modes --------------------------------------------------------------------


def echoed_host(body: bytes) -> str:
    headers = json.loads(body)["headers"]
    return [v for n, v in headers if n.lower() == "host"][0]


class ReverseProbeTests(unittest.TestCase):
    timeout = 30

    async def test_keep_alive_reuses_upstream_and_rewrites_host(self) -> None:
        """Two sequential and two pipelined requests on one client connection: all answered, Host rewritten, one upstream connection."""
        web = await WebServer.start(self)
        events = AllEvents()
        proxy = await start_proxy(self, events, mode=f"reverse:http://127.0.0.1:{web.port}")
        client = await RawClient.connect(self, proxy.port_number)
        request = b"GET /echo?n=%d HTTP/1.1\r\nHost: front.example\r\n\r\n"
        client.send(request % 1)
        await client.wait_responses(1)
        client.send(request % 2)
        await client.wait_responses(2)
        client.send(request % 3 + request % 4)
        responses = await client.wait_responses(4)
        self.assertEqual([r.status for r in responses], [200] * 4)
        self.assertEqual([json.loads(r.body)["uri"] for r in responses],
                         ["/echo?n=1", "/echo?n=2", "/echo?n=3", "/echo?n=4"])
        self.assertEqual({echoed_host(r.body) for r in responses}, {f"127.0.0.1:{web.port}"})
        self.assertEqual(len(web.connections), 1)
        self.assertEqual(events.count("serverconnect"), 1)
        self.assertFalse(client.closed)

    async def test_reverse_raw_garbage_is_not_tcp(self) -> None:
        """Non-HTTP bytes to a reverse proxy: a 400 (reverse mode speaks HTTP), no crash, one clientdisconnect."""
        web = await WebServer.start(self)
        events = AllEvents()
        proxy = await start_proxy(self, events, mode=f"reverse:http://127.0.0.1:{web.port}")
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"\x00\x01\x02garbage\r\n\r\n")
        data = await client.wait_closed()
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data[:100])
        await wait_until(lambda: events.count("clientdisconnect"))
        self.assertEqual(events.count("clientdisconnect"), 1)


class UpstreamProbeTests(unittest.TestCase):
    timeout = 30

    async def chain(self, *a_addons: Any, b_addons: tuple = (), **options: Any) -> tuple:
        b = await start_proxy(self, *b_addons, confdir=self.mktemp(), read_timeout=3.0)
        a = await start_proxy(self, *a_addons, mode=f"upstream:http://127.0.0.1:{b.port_number}",
                              confdir=self.mktemp(), read_timeout=3.0, connect_timeout=3.0,
                              **options)
        return a, b

    async def test_websocket_through_chain_connect(self) -> None:
        """autobahn (CONNECT) through A in upstream mode to B to the server: messages, close, events in both proxies."""
        a_events, b_events = AllEvents(), AllEvents()
        a, b = await self.chain(a_events, b_addons=(b_events,))
        server = await start_websocket_server(self)
        client = await connect_websocket(self, server.url("/chain"), proxy=a)
        client.send_text("through two")
        self.assertEqual((await client.next_message()).payload, b"through two")
        self.assertTrue((await client.close(1000, "ok")).was_clean)
        await wait_until(lambda: a_events.count("websocket_end") and b_events.count("websocket_end"))
        self.assertEqual(a_events.count("websocket_end"), 1)
        self.assertEqual(b_events.count("websocket_end"), 1)
        self.assertEqual(a_events.seen, [(True, b"through two"), (False, b"through two")])

    async def test_websocket_absolute_form_through_chain(self) -> None:
        """A raw absolute-form WebSocket handshake to A (upstream mode): the upgrade goes through B, frames flow."""
        a_events = AllEvents()
        a, b = await self.chain(a_events)
        server = await start_websocket_server(self)
        client = await raw_handshake(self, a, server.port)
        self.assertTrue(bytes(client.received).startswith(b"HTTP/1.1 101"), bytes(client.received)[:200])
        client.received.clear()
        client.send(masked(0x81, b"abs"))
        data = await client.wait_for(lambda d: len(parse_frames(d)) >= 1)
        self.assertEqual(parse_frames(data), [(0x81, False, b"abs")])
        self.assertEqual(a_events.seen, [(True, b"abs"), (False, b"abs")])

    async def test_tcp_half_close_through_chain(self) -> None:
        """Raw TCP in upstream mode (CONNECT through B): the client's half-close reaches the server, the answer comes back."""
        a, b = await self.chain(tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "count")
        client = await connect_tunnel(self, a.port_number, server.port)
        client.send(b"z" * 2000)
        await wait_until(lambda: server.connections and len(server.connections[0].received) == 2000)
        client.shut_write()
        self.assertEqual(await client.wait_closed(), b"got 2000 bytes")


async def socks_connect(testcase: Any, proxy: Any, request: bytes, greeting: bytes = b"\x05\x01\x00",
                        client_class: Any = TcpClient) -> Any:
    client = await client_class.connect(testcase, proxy.port_number)
    client.send(greeting)
    await client.wait_for(lambda d: len(d) >= 2)
    testcase.assertEqual(bytes(client.received[:2]), b"\x05\x00")
    client.send(request)
    await client.wait_for(lambda d: len(d) >= 12)
    testcase.assertEqual(bytes(client.received[2:4]), b"\x05\x00")
    del client.received[:12]
    return client


class Socks5ProbeTests(unittest.TestCase):
    timeout = 30

    async def test_bad_version_greeting(self) -> None:
        """A SOCKS4 greeting: the connection closes, nothing relayed, one clientdisconnect, no error logged."""
        events = AllEvents()
        proxy = await start_proxy(self, events, mode="socks5")
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"\x04\x01\x00\x50\x7f\x00\x00\x01user\x00")
        await client.wait_closed()
        await wait_until(lambda: events.count("clientdisconnect"))
        self.assertEqual(events.count("clientdisconnect"), 1)
        self.assertEqual(events.count("serverconnect"), 0)

    async def test_http_garbage_before_greeting(self) -> None:
        """An HTTP request to a SOCKS5 proxy: closed, no server contacted."""
        events = AllEvents()
        proxy = await start_proxy(self, events, mode="socks5")
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET http://127.0.0.1/ HTTP/1.1\r\nHost: x\r\n\r\n")
        await client.wait_closed()
        self.assertEqual(events.count("serverconnect"), 0)

    async def test_no_methods(self) -> None:
        """A greeting with zero methods: answered 0xFF (no acceptable method) and closed."""
        proxy = await start_proxy(self, mode="socks5")
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"\x05\x00")
        data = await client.wait_closed()
        self.assertEqual(data, b"\x05\xff")

    async def test_proxyauth_client_without_user_pass(self) -> None:
        """With proxyauth set, a client offering only no-auth gets 0xFF."""
        from interceptor.core.options import proxy_options

        opts = proxy_options()
        opts.add_option("proxyauth", Optional[str], None, "Proxy credentials.")
        proxy = await start_proxy(self, options=opts, mode="socks5", proxyauth="u:p")
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"\x05\x01\x00")
        data = await client.wait_closed()
        self.assertEqual(data, b"\x05\xff")

    async def test_bind_command_refused(self) -> None:
        """BIND (command 2): reply 7 (command not supported), closed."""
        proxy = await start_proxy(self, mode="socks5")
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"\x05\x01\x00")
        await client.wait_for(lambda d: len(d) >= 2)
        client.send(b"\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x50")
        data = await client.wait_closed()
        self.assertEqual(data[2:4], b"\x05\x07")

    async def test_unknown_address_type(self) -> None:
        """Address type 5: reply 8 (address type not supported), closed."""
        proxy = await start_proxy(self, mode="socks5")
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"\x05\x01\x00")
        await client.wait_for(lambda d: len(d) >= 2)
        client.send(b"\x05\x01\x00\x05\x7f\x00\x00\x01\x00\x50")
        data = await client.wait_closed()
        self.assertEqual(data[2:4], b"\x05\x08")

    async def test_byte_by_byte_handshake_and_early_data(self) -> None:
        """Greeting and request sent one byte at a time, data in the same write as the request's last byte: relayed."""
        server = await TcpServer.start(self, "echo")
        events = AllEvents()
        proxy = await start_proxy(self, events, mode="socks5", tcp_hosts=["127.0.0.1"])
        client = await TcpClient.connect(self, proxy.port_number)
        for b in b"\x05\x02\x00\x02":
            client.send(bytes([b]))
            await sleep(0.01)
        await client.wait_for(lambda d: len(d) >= 2)
        self.assertEqual(bytes(client.received[:2]), b"\x05\x00")
        request = b"\x05\x01\x00\x01\x7f\x00\x00\x01" + server.port.to_bytes(2, "big")
        for b in request[:-1]:
            client.send(bytes([b]))
            await sleep(0.01)
        client.send(request[-1:] + b"\x00early")
        await client.wait_for(lambda d: d.endswith(b"\x00early"))
        self.assertEqual(bytes(client.received[2:4]), b"\x05\x00")
        self.assertEqual(bytes(client.received[12:]), b"\x00early")
        client.shut_write()
        await client.wait_closed()
        await wait_until(lambda: events.count("tcp_end") + events.count("tcp_error"))
        self.assertEqual(events.names("tcp_end", "tcp_error"), ["tcp_end"])
        for n in ("clientconnect", "clientdisconnect", "serverconnect", "serverdisconnect", "tcp_start"):
            self.assertEqual(events.count(n), 1, n)

    async def test_ipv6_address(self) -> None:
        """A CONNECT to [::1] (address type 4): raw TCP relayed to a server on ::1."""
        received = bytearray()

        class Echo(Protocol):
            def dataReceived(self, data: bytes) -> None:
                received.extend(data)
                self.transport.write(data)

        factory = Factory.forProtocol(Echo)
        factory.noisy = False
        port = reactor.listenTCP(0, factory, interface="::1")
        self.addCleanup(port.stopListening)
        number = port.getHost().port
        events = AllEvents()
        proxy = await start_proxy(self, events, mode="socks5", tcp_hosts=[r"^::1:"])
        request = b"\x05\x01\x00\x04" + socket.inet_pton(socket.AF_INET6, "::1") + number.to_bytes(2, "big")
        client = await socks_connect(self, proxy, request)
        client.send(b"\x00v6")
        await client.wait_for(lambda d: d == b"\x00v6")
        self.assertEqual(bytes(client.received), b"\x00v6")
        flow = events.arg("tcp_start")
        self.assertEqual(flow.server_conn.address, ("::1", number))

    async def test_curl_to_ipv6_target(self) -> None:
        """curl --socks5-hostname to http://[::1]:PORT/: the request reaches the IPv6 server."""
        from twisted.web.server import Site
        from twisted.web.static import Data

        resource = Data(b"six", "text/plain")
        resource.isLeaf = True
        site = Site(resource)
        port = reactor.listenTCP(0, site, interface="::1")
        self.addCleanup(port.stopListening)
        proxy = await start_proxy(self, mode="socks5")
        result = await curl(self, "--socks5-hostname", f"127.0.0.1:{proxy.port_number}",
                            f"http://[::1]:{port.getHost().port}/")
        self.assertEqual((result.code, result.status, result.body), (0, 200, b"six"), result.stderr)

    async def test_domain_name_raw_tcp(self) -> None:
        """A domain name ("localhost") request with tcp_hosts: relayed raw to the server."""
        server = await TcpServer.start(self, "echo")
        proxy = await start_proxy(self, mode="socks5", tcp_hosts=["localhost"])
        name = b"localhost"
        request = b"\x05\x01\x00\x03" + bytes([len(name)]) + name + server.port.to_bytes(2, "big")
        client = await socks_connect(self, proxy, request)
        client.send(b"\x00by name")
        await client.wait_for(lambda d: d == b"\x00by name")

    async def test_client_half_close_through_socks(self) -> None:
        """Raw TCP through SOCKS5: the client's half-close reaches the server, its answer comes back."""
        server = await TcpServer.start(self, "count")
        proxy = await start_proxy(self, mode="socks5", tcp_hosts=["127.0.0.1"])
        request = b"\x05\x01\x00\x01\x7f\x00\x00\x01" + server.port.to_bytes(2, "big")
        client = await socks_connect(self, proxy, request)
        client.send(b"q" * 777)
        await wait_until(lambda: server.connections and len(server.connections[0].received) == 777)
        client.shut_write()
        self.assertEqual(await client.wait_closed(), b"got 777 bytes")

    async def test_client_half_close_during_detection(self) -> None:
        """Through SOCKS5 without tcp_hosts, a client sends 2 bytes and half-closes before the layer is chosen: the server gets them and the answer comes back."""
        server = await TcpServer.start(self, "count")
        proxy = await start_proxy(self, mode="socks5", read_timeout=0.5)
        request = b"\x05\x01\x00\x01\x7f\x00\x00\x01" + server.port.to_bytes(2, "big")
        client = await socks_connect(self, proxy, request)
        client.send(b"\x00\x01")
        client.shut_write()
        data = await client.wait_closed(timeout=4)
        self.assertEqual(data, b"got 2 bytes")

    async def test_client_half_close_before_any_byte_server_speaks_first(self) -> None:
        """Through SOCKS5 without tcp_hosts, a client that half-closes at once (a reader): the server's banner still reaches it."""
        server = await TcpServer.start(self, "banner")
        proxy = await start_proxy(self, mode="socks5", read_timeout=0.5)
        request = b"\x05\x01\x00\x01\x7f\x00\x00\x01" + server.port.to_bytes(2, "big")
        client = await socks_connect(self, proxy, request)
        client.shut_write()
        data = await client.wait_closed(timeout=4)
        self.assertEqual(data, b"220 hello from the server\r\n")
