# -*- test-case-name: tests.e2e.test_websocket -*-
"""
Raw WebSocket peers for the end-to-end tests, for exchanges autobahn will
not produce: exact frame bytes in and out, handshakes answered by hand::

    proxy, server, client, peer = await raw_setup(self)   # raw client, autobahn server
    client.send(masked(0x81, b"hi"))                       # a client TEXT frame
    frames = parse_frames(data)                            # (first byte, masked, payload)

    scripted = listen_scripted(self, lambda conn, head: ws_101(conn, head))
    silent = listen_silent_server(self)                    # a 101, then nothing

L{relay_setup} connects autobahn to autobahn through a proxy.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any, Callable, Optional

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol

from interceptor.model.wsframes import apply_mask, frame_header
from interceptor.testing import connect_websocket, start_proxy, start_websocket_server
from tests.e2e.peers import RawClient, wait_until

__all__ = [
    "HANDSHAKE",
    "accept_for",
    "close_code",
    "listen_scripted",
    "listen_silent_server",
    "masked",
    "parse_frames",
    "raw_handshake",
    "raw_setup",
    "relay_setup",
    "scripted_setup",
    "unmasked",
    "ws_101",
]


HANDSHAKE = (
    b"GET http://127.0.0.1:%d/raw HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


class _SilentServer(Protocol):
    """
    Accepts a WebSocket handshake, then never answers anything.
    """

    def connectionMade(self) -> None:
        self.buffer = b""
        self.factory.connections.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" in self.buffer and not getattr(self, "answered", False):
            self.answered = True
            ws_101(self, self.buffer)

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.connections.remove(self)
        self.factory.lost.append(reason)


def listen_silent_server(testcase: Any) -> Any:
    """
    A raw server answering the WebSocket handshake (its connections
    keep every byte they receive in C{buffer}); the factory, with the
    port in C{port_number}, its open connections in C{connections} and
    the reasons of the lost ones in C{lost}.
    """
    factory = Factory.forProtocol(_SilentServer)
    factory.connections, factory.lost = [], []
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    testcase.addCleanup(port.stopListening)
    testcase.addCleanup(lambda: [c.transport.abortConnection() for c in factory.connections])
    factory.port_number = port.getHost().port
    return factory


async def relay_setup(
    testcase: Any, path: str, *addons: Any, compression: bool = False, **options: Any
) -> tuple:
    """
    An autobahn server, a proxy with C{addons} and C{options}, and an
    autobahn client connected to the server's C{path} through the proxy;
    C{(proxy, server, client, peer)}, C{peer} being the server's side.
    """
    server = await start_websocket_server(testcase, compression=compression)
    proxy = await start_proxy(testcase, *addons, **options)
    client = await connect_websocket(testcase, server.url(path), proxy=proxy,
                                     compression=compression)
    peer = await server.next_connection()
    return proxy, server, client, peer


async def raw_handshake(testcase: Any, proxy: Any, port: int) -> RawClient:
    """
    A raw client through C{proxy} that has sent L{HANDSHAKE} for the
    server on C{port} and received the head of the answer.
    """
    client = await RawClient.connect(testcase, proxy.port_number)
    client.send(HANDSHAKE % (port, port))
    await client.wait_for(lambda data: b"\r\n\r\n" in data)
    return client


async def raw_setup(testcase: Any, *addons: Any, echo: bool = True, **options: Any) -> tuple:
    """
    A raw client through the proxy to an autobahn server, after the
    handshake; the client's received bytes are cleared.
    """
    server = await start_websocket_server(testcase, echo=echo)
    proxy = await start_proxy(testcase, *addons, **options)
    client = await raw_handshake(testcase, proxy, server.port)
    testcase.assertTrue(bytes(client.received).startswith(b"HTTP/1.1 101"))
    peer = await server.next_connection()
    client.received.clear()
    return proxy, server, client, peer


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
    """
    A server calling C{respond(conn, head)} with each connection's request
    head; the factory, with the port in C{port} and the connections (see
    L{_ScriptedConn}) in C{connections}.
    """
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
    """
    Answer the handshake C{head} with a 101 (then C{extra} in the same write).
    """
    conn.transport.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_for(head) + b"\r\n\r\n" + extra
    )


async def scripted_setup(testcase: Any, events: Any, **options: Any) -> tuple:
    """
    A raw client through a proxy (with the addon C{events}, a
    L{tests.e2e.peers.AllEvents}, and C{options}) to a L{listen_scripted}
    server that answered the handshake with a 101, once C{websocket_start}
    has fired; the client's received bytes are cleared.

    @return: C{(proxy, client, the server's connection)}
    """
    factory = listen_scripted(testcase, ws_101)
    proxy = await start_proxy(testcase, events, **options)
    client = await raw_handshake(testcase, proxy, factory.port)
    testcase.assertTrue(await wait_until(lambda: events.count("websocket_start")))
    client.received.clear()
    return proxy, client, factory.connections[0]


def masked(first: int, payload: bytes, key: Optional[bytes] = None) -> bytes:
    """
    A client frame: C{first} is the FIN/RSV/opcode byte; the payload is
    masked with C{key} (random when not given).
    """
    if key is None:
        key = os.urandom(4)
    return frame_header(first, len(payload), key) + apply_mask(payload, key)


def unmasked(first: int, payload: bytes) -> bytes:
    """
    A server frame (no mask).
    """
    return frame_header(first, len(payload)) + payload


def parse_frames(data: bytes) -> list[tuple[int, bool, bytes]]:
    """
    The complete frames at the start of C{data}, as C{(first byte, masked,
    unmasked payload)}; an incomplete frame at the end is left out.
    """
    frames = []
    pos, end = 0, len(data)
    while end - pos >= 2:
        first, second = data[pos], data[pos + 1]
        length = second & 0x7F
        head = 2 if length < 126 else (4 if length == 126 else 10)
        is_masked = bool(second & 0x80)
        if is_masked:
            head += 4
        if end - pos < head:
            break
        if length == 126:
            length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        elif length == 127:
            length = int.from_bytes(data[pos + 2 : pos + 10], "big")
        if end - pos < head + length:
            break
        payload = data[pos + head : pos + head + length]
        if is_masked:
            payload = apply_mask(payload, data[pos + head - 4 : pos + head])
        frames.append((first, is_masked, bytes(payload)))
        pos += head + length
    return frames


def close_code(payload: bytes) -> Optional[int]:
    """
    The code of a Close frame's payload, or None.
    """
    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
