# -*- test-case-name: tests.e2e.test_websocket -*-
"""
End-to-end tests of WebSocket interception (issue #6): autobahn's Twisted
client and server on loopback, the proxy between them (CONNECT, as
autobahn's client uses a proxy; wss through TLS interception).
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from cryptography.hazmat.primitives import serialization

from twisted.internet.defer import Deferred
from twisted.trial import unittest

from twisted.internet import reactor, ssl
from twisted.internet.protocol import Factory, Protocol

from interceptor.testing import connect_websocket, start_proxy, start_websocket_server
from interceptor.tls.contexts import certstore_for
from interceptor.model.websocket import inject
from tests.e2e.peers import RawClient, sleep, wait_until
from tests.e2e.tlspeers import TestCA, pem_of

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
            key = [
                line.split(b":", 1)[1].strip()
                for line in self.buffer.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            ][0]
            accept = base64.b64encode(
                hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
            )
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )

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


class Events:
    """
    An addon recording the WebSocket events and the messages it saw.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self.flows: list[Any] = []
        self.seen: list[tuple[bool, bool, bytes]] = []

    def websocket_handshake(self, flow: Any) -> None:
        """Record."""
        self.names.append("websocket_handshake")

    def requestheaders(self, flow: Any) -> None:
        """Record."""
        self.names.append("requestheaders")

    def request(self, flow: Any) -> None:
        """Record."""
        self.names.append("request")

    def response(self, flow: Any) -> None:
        """Record."""
        self.names.append("response")

    def websocket_start(self, flow: Any) -> None:
        """Record."""
        self.names.append("websocket_start")
        self.flows.append(flow)

    def websocket_message(self, flow: Any) -> None:
        """Record."""
        message = flow.websocket.messages[-1]
        self.seen.append((message.from_client, message.is_text, message.content))

    def websocket_end(self, flow: Any) -> None:
        """Record."""
        self.names.append("websocket_end")

    def websocket_error(self, flow: Any) -> None:
        """Record."""
        self.names.append("websocket_error")


class WebSocketRelayTests(unittest.TestCase):
    """
    Messages relayed between autobahn peers through the proxy.
    """

    async def setup(self, *addons: Any, **options: Any) -> tuple:
        return await relay_setup(self, "/chat", *addons, **options)

    async def test_text_and_binary(self) -> None:
        """Text and binary messages reach the server and the echo comes back, with events in order."""
        events = Events()
        proxy, server, client, peer = await self.setup(events)
        client.send_text("hello")
        got = await client.next_message()
        self.assertEqual((got.payload, got.is_binary), (b"hello", False))
        client.send_binary(b"\x00\x01\xff")
        got = await client.next_message()
        self.assertEqual((got.payload, got.is_binary), (b"\x00\x01\xff", True))
        closed = await client.close(1000, "bye")
        self.assertTrue(closed.was_clean)
        await wait_until(lambda: "websocket_end" in events.names)
        self.assertEqual(events.names, ["websocket_handshake", "requestheaders", "request",
                                        "response", "websocket_start", "websocket_end"])
        self.assertEqual(events.seen, [(True, True, b"hello"), (False, True, b"hello"),
                                       (True, False, b"\x00\x01\xff"),
                                       (False, False, b"\x00\x01\xff")])
        ws = events.flows[0].websocket
        self.assertEqual((ws.close_code, ws.close_reason, ws.closed_by_client), (1000, "bye", True))

    async def test_large_message(self) -> None:
        """A 16 MiB binary message is relayed whole in both directions."""
        events = Events()
        proxy, server, client, peer = await self.setup(events)
        payload = os.urandom(1 << 20) * 16
        client.send_binary(payload)
        got = await client.next_message(timeout=30)
        self.assertEqual(len(got.payload), len(payload))
        self.assertTrue(got.payload == payload)
        self.assertEqual([len(c) for _, _, c in events.seen], [len(payload)] * 2)

    async def test_history_is_bounded(self) -> None:
        """Only the newest messages up to websocket_history_size stay in flow.websocket.messages."""
        events = Events()
        proxy, server, client, peer = await self.setup(events, websocket_history_size="3k")
        for i in range(10):
            client.send_binary(bytes([i]) * 1000)
            await client.next_message()
        messages = events.flows[-1].websocket.messages
        self.assertLessEqual(sum(len(m.content) for m in messages), 3000)
        self.assertEqual(messages[-1].content, bytes([9]) * 1000)
        self.assertEqual(messages[-1].from_client, False)

    async def test_history_unbounded(self) -> None:
        """An empty websocket_history_size keeps every message, as mitmproxy does."""
        events = Events()
        proxy, server, client, peer = await self.setup(events, websocket_history_size="")
        for i in range(10):
            client.send_binary(bytes([i]) * 1000)
            await client.next_message()
        self.assertEqual(len(events.flows[-1].websocket.messages), 20)

    async def test_fragmented(self) -> None:
        """A fragmented message reaches the hook once, reassembled, and the peer in the same frames."""
        events = Events()
        proxy, server, client, peer = await self.setup(events)
        client.send_text("abcdefghij" * 10, fragment_size=30)
        got = await peer.next_message()
        self.assertEqual((got.payload, got.frames), (b"abcdefghij" * 10, 4))
        self.assertEqual(events.seen[0], (True, True, b"abcdefghij" * 10))
        client.send_binary(b"x" * 950, fragment_size=100)
        got = await peer.next_message()
        self.assertEqual((got.payload, got.frames), (b"x" * 950, 10))

    async def test_modify(self) -> None:
        """An addon's change to a message's content is what the peer receives."""

        class Rewrite:
            def websocket_message(self, flow: Any) -> None:
                message = flow.websocket.messages[-1]
                if message.from_client and message.is_text:
                    message.text = message.text.upper()
                elif not message.from_client and not message.is_text:
                    message.content = message.content + b"!"

        proxy, server, client, peer = await self.setup(Rewrite())
        client.send_text("hello", fragment_size=2)
        self.assertEqual((await peer.next_message()).payload, b"HELLO")
        self.assertEqual((await client.next_message()).payload, b"HELLO")
        client.send_binary(b"bin")
        self.assertEqual((await peer.next_message()).payload, b"bin")
        self.assertEqual((await client.next_message()).payload, b"bin!")

    async def test_kill(self) -> None:
        """A killed message never reaches the peer; the next one does."""

        class Kill:
            def websocket_message(self, flow: Any) -> None:
                message = flow.websocket.messages[-1]
                if message.content == b"secret":
                    message.kill()

        events = Events()
        proxy, server, client, peer = await self.setup(Kill(), events)
        client.send_text("secret")
        client.send_text("public")
        self.assertEqual((await peer.next_message()).payload, b"public")
        self.assertEqual((await client.next_message()).payload, b"public")
        self.assertEqual(len(peer.received), 1)
        self.assertTrue(events.flows[0].websocket.messages[0].dropped)

    async def test_inject(self) -> None:
        """inject() sends new messages toward either side, after the ones on their way."""

        class Inject:
            def websocket_message(self, flow: Any) -> None:
                message = flow.websocket.messages[-1]
                if message.content == b"hi" and message.from_client:
                    inject(flow, to_client=True, content="from proxy")
                    inject(flow, to_client=False, content=b"\x01\x02", is_text=False)

        events = Events()
        proxy, server, client, peer = await self.setup(Inject(), events)
        server.factory.echo = False
        peer.echo = False
        client.send_text("hi")
        self.assertEqual((await client.next_message()).payload, b"from proxy")
        got = [await peer.next_message(), await peer.next_message()]
        self.assertEqual([(g.payload, g.is_binary) for g in got], [(b"hi", False), (b"\x01\x02", True)])
        injected = [m for m in events.flows[0].websocket.messages if m.injected]
        self.assertEqual([m.from_client for m in injected], [False, True])

    async def test_inject_later(self) -> None:
        """inject() works outside a hook, and fails once the connection ended."""
        events = Events()
        proxy, server, client, peer = await self.setup(events)
        flow = events.flows[0]
        inject(flow, True, "pushed")
        self.assertEqual((await client.next_message()).payload, b"pushed")
        await client.close()
        await wait_until(lambda: "websocket_end" in events.names)
        self.assertRaises(ValueError, inject, flow, True, "late")

    async def test_ping(self) -> None:
        """A client's Ping is relayed to the server and its Pong comes back."""
        proxy, server, client, peer = await self.setup()
        client.ping(b"are you there")
        self.assertEqual(await client.next_pong(), b"are you there")
        peer.ping(b"and you")
        self.assertEqual(await peer.next_pong(), b"and you")

    async def test_server_close_code(self) -> None:
        """A close code and reason from the server reach the client; websocket_end fires."""
        events = Events()
        proxy, server, client, peer = await self.setup(events)
        closed = await peer.close(4001, "custom reason")
        self.assertTrue(closed.was_clean)
        on_client = await client.wait_closed()
        self.assertEqual((on_client.code, on_client.reason), (4001, "custom reason"))
        await wait_until(lambda: "websocket_end" in events.names)
        ws = events.flows[0].websocket
        self.assertEqual((ws.close_code, ws.close_reason, ws.closed_by_client), (4001, "custom reason", False))
        self.assertIsNone(events.flows[0].error)
        self.assertNotIn("websocket_error", events.names)

    async def test_close_without_code(self) -> None:
        """A Close frame without a code is relayed as such (1005)."""
        events = Events()
        proxy, server, client, peer = await self.setup(events)
        await client.close(None)
        closed = await peer.wait_closed()
        self.assertEqual(closed.code, None)
        await wait_until(lambda: "websocket_end" in events.names)
        self.assertEqual(events.flows[0].websocket.close_code, 1005)

    async def test_compression(self) -> None:
        """permessage-deflate keeps working: addons see plain content, peers get compressed frames."""
        events = Events()
        proxy, server, client, peer = await self.setup(events, compression=True)
        self.assertTrue(client.websocket_extensions_in_use)
        self.assertTrue(peer.websocket_extensions_in_use)
        text = "compress me " * 5000
        for _ in range(3):  # context takeover across messages
            client.send_text(text)
            self.assertEqual((await client.next_message()).payload, text.encode())
        client.send_binary(b"\x00" * 100000, fragment_size=30000)
        self.assertEqual((await client.next_message()).payload, b"\x00" * 100000)
        self.assertEqual(events.seen[0], (True, True, text.encode()))
        self.assertIn("permessage-deflate", events.flows[0].websocket.extensions)
        await client.close()

    async def test_client_drops(self) -> None:
        """A client dropping TCP fires websocket_error; the server gets a proper close."""
        events = Events()
        proxy, server, client, peer = await self.setup(events)
        client.drop()
        closed = await peer.wait_closed()
        self.assertEqual(closed.code, 1001)
        self.assertTrue(closed.was_clean)
        await wait_until(lambda: "websocket_error" in events.names)
        self.assertIn("client closed the connection", events.flows[0].error.msg)
        self.assertNotIn("websocket_end", events.names)

    async def test_server_drops(self) -> None:
        """A server dropping TCP fires websocket_error; the client gets Close 1001."""
        events = Events()
        proxy, server, client, peer = await self.setup(events)
        peer.drop()
        closed = await client.wait_closed()
        self.assertEqual(closed.code, 1001)
        self.assertIn("server closed the connection", closed.reason)
        await wait_until(lambda: "websocket_error" in events.names)
        self.assertIn("server", events.flows[0].error.msg)

    async def test_flow_kill(self) -> None:
        """flow.kill() in websocket_message drops both connections and fires websocket_error."""

        class KillFlow:
            def websocket_message(self, flow: Any) -> None:
                flow.kill()

        events = Events()
        proxy, server, client, peer = await self.setup(KillFlow(), events)
        client.send_text("x")
        await client.wait_closed()
        await peer.wait_closed()
        self.assertEqual(peer.received, [])
        await wait_until(lambda: "websocket_error" in events.names)

    async def test_hook_holds_only_its_connection(self) -> None:
        """A websocket_message hook's Deferred holds its own connection; another keeps flowing."""
        gate: Deferred = Deferred()

        class Hold:
            def websocket_message(self, flow: Any) -> Any:
                if flow.websocket.messages[-1].content == b"wait":
                    return gate
                return None

        proxy, server, client, peer = await self.setup(Hold())
        other = await connect_websocket(self, server.url("/other"), proxy=proxy)
        client.send_text("wait")
        client.send_text("after")
        other.send_text("free")
        self.assertEqual((await other.next_message()).payload, b"free")
        await sleep(0.05)
        self.assertEqual(peer.received, [])
        gate.callback(None)
        self.assertEqual((await client.next_message()).payload, b"wait")
        self.assertEqual((await client.next_message()).payload, b"after")

    async def test_handshake_headers(self) -> None:
        """websocket_handshake may change the handshake request the server receives."""

        class Header:
            def websocket_handshake(self, flow: Any) -> None:
                flow.request.headers["X-Via-Proxy"] = "1"

        server = await start_websocket_server(self)
        proxy = await start_proxy(self, Header())
        await connect_websocket(self, server.url("/h"), proxy=proxy)
        peer = await server.next_connection()
        self.assertEqual(peer.request.headers.get("x-via-proxy"), "1")

    async def test_option_off(self) -> None:
        """With websocket=false the upgraded connection is relayed raw, without WebSocket events."""
        events = Events()
        proxy, server, client, peer = await self.setup(events, websocket=False)
        client.send_text("raw")
        self.assertEqual((await client.next_message()).payload, b"raw")
        await client.close()
        self.assertEqual(events.names, ["requestheaders", "request", "response"])
        self.assertEqual(events.seen, [])


class WebSocketFaultTests(unittest.TestCase):
    """
    Invalid frames, silent peers, absolute-form handshakes.
    """

    async def test_invalid_frame(self) -> None:
        """An invalid frame from the client: Close 1002 to it, 1001 to the server, websocket_error."""
        events = Events()
        proxy, server, client, peer = await raw_setup(self, events)
        client.send(b"\x83\x80abcd")  # reserved opcode 3
        data = await client.wait_closed()
        self.assertEqual(data[:1], b"\x88")
        self.assertEqual(data[2:4], b"\x03\xea")  # 1002
        closed = await peer.wait_closed()
        self.assertEqual(closed.code, 1001)
        await wait_until(lambda: "websocket_error" in events.names)
        self.assertIn("client sent an invalid frame", events.flows[0].error.msg)

    async def test_message_over_body_size_limit(self) -> None:
        """A fragmented message growing past body_size_limit: Close 1009 to its sender, websocket_error."""
        events = Events()
        server = await start_websocket_server(self)
        proxy = await start_proxy(self, events, body_size_limit="4k")
        client = await raw_handshake(self, proxy, server.port)
        peer = await server.next_connection()
        client.received.clear()
        # Unfinished binary frames (FIN clear), 1 KiB each, masked with a zero key.
        frame = b"\x02\xfe\x04\x00\x00\x00\x00\x00" + b"x" * 1024
        continuation = b"\x00\xfe\x04\x00\x00\x00\x00\x00" + b"x" * 1024
        client.send(frame + continuation * 8)
        data = await client.wait_closed()
        self.assertEqual(data[:1], b"\x88")
        self.assertEqual(data[2:4], (1009).to_bytes(2, "big"))
        await wait_until(lambda: "websocket_error" in events.names)
        self.assertIn("too large", events.flows[0].error.msg)
        await peer.wait_closed()

    async def test_close_handshake_timeout(self) -> None:
        """A server that never answers the Close: websocket_error after read_timeout, the client is answered."""
        events = Events()
        factory = listen_silent_server(self)
        proxy = await start_proxy(self, events, read_timeout=0.3)
        # autobahn's own close timeout (batched, so it may fire early) must
        # not beat the proxy's.
        client = await connect_websocket(
            self, f"ws://127.0.0.1:{factory.port_number}/", proxy=proxy, closeHandshakeTimeout=5
        )
        closed = await client.close(1000, "bye")
        self.assertEqual(closed.code, 1001)
        await wait_until(lambda: "websocket_error" in events.names)
        self.assertIn("did not answer the close handshake", events.flows[0].error.msg)
        await wait_until(lambda: not factory.connections)
        self.assertEqual(factory.connections, [])


class SecureWebSocketTests(unittest.TestCase):
    """
    wss through CONNECT and TLS interception.
    """

    async def test_wss(self) -> None:
        """A wss connection is intercepted: messages, compression and close work as for ws."""
        ca = TestCA.shared()
        cert, key = ca.issue(["localhost", "127.0.0.1"])
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        tls = ssl.PrivateCertificate.loadPEM(key_pem + pem_of(cert)).options()
        events = Events()
        server = await start_websocket_server(self, tls=tls, compression=True)
        proxy = await start_proxy(
            self, events, confdir=self.mktemp(), ssl_verify_upstream_trusted_ca=ca.cert_path(self)
        )
        proxy_ca = pem_of(certstore_for(proxy.master).ca_cert)
        client = await connect_websocket(
            self, server.url("/secure", host="localhost"), proxy=proxy, trust_root=proxy_ca,
            compression=True,
        )
        peer = await server.next_connection()
        client.send_text("over tls " * 100)
        self.assertEqual((await client.next_message()).payload, b"over tls " * 100)
        client.send_binary(os.urandom(300000))
        self.assertEqual(len((await client.next_message()).payload), 300000)
        closed = await client.close(4000, "done")
        self.assertTrue(closed.was_clean)
        self.assertEqual((await peer.wait_closed()).code, 4000)
        await wait_until(lambda: "websocket_end" in events.names)
        flow = events.flows[0]
        self.assertEqual(flow.request.scheme, "https")
        self.assertEqual(len(flow.websocket.messages), 4)


class ReverseWebSocketTests(unittest.TestCase):
    """
    ws in reverse mode.
    """

    async def test_reverse(self) -> None:
        """A client talking to the proxy in reverse mode reaches the server's WebSocket."""
        events = Events()
        server = await start_websocket_server(self)
        proxy = await start_proxy(self, events, mode=f"reverse:http://127.0.0.1:{server.port}")
        client = await connect_websocket(self, f"ws://127.0.0.1:{proxy.port_number}/rev")
        client.send_text("reversed")
        self.assertEqual((await client.next_message()).payload, b"reversed")
        await client.close()
        await wait_until(lambda: "websocket_end" in events.names)
        self.assertEqual(events.seen[0], (True, True, b"reversed"))


class WebSocketExampleTests(unittest.TestCase):
    """
    examples/websocket_rewrite.py, loaded as a script.
    """

    async def test_websocket_rewrite_example(self) -> None:
        """The example rewrites client text, drops "drop me" messages and answers "ping proxy"."""
        from addons.script import ScriptLoader

        path = os.path.abspath(os.path.join(
            os.path.dirname(__file__), os.pardir, os.pardir, "examples", "websocket_rewrite.py"))
        server = await start_websocket_server(self)
        proxy = await start_proxy(self, ScriptLoader(), scripts=[path])
        client = await connect_websocket(self, server.url("/"), proxy=proxy)
        peer = await server.next_connection()
        client.send_text("say hello")
        self.assertEqual((await client.next_message()).payload, b"say HELLO")
        client.send_text("please drop me")
        client.send_text("ping proxy")
        self.assertEqual((await client.next_message()).payload, b"pong from proxy")
        client.send_binary(b"last")
        self.assertEqual((await client.next_message()).payload, b"last")
        self.assertEqual([r.payload for r in peer.received], [b"say HELLO", b"last"])
        self.assertTrue((await client.close()).was_clean)
