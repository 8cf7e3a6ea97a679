# -*- test-case-name: tests.e2e.test_websocket -*-
"""
End-to-end tests of WebSocket interception (issue #6): autobahn's Twisted
client and server on loopback, the proxy between them (CONNECT, as
autobahn's client uses a proxy; wss through TLS interception).
"""

from __future__ import annotations

import os
from typing import Any

from cryptography.hazmat.primitives import serialization
from twisted.internet import ssl
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial import unittest

from interceptor.model.websocket import inject
from interceptor.testing import connect_websocket, start_proxy, start_websocket_server
from interceptor.tls.contexts import certstore_for
from tests.e2e.peers import AllEvents, RawClient, advance, delivered, sleep, wait_until
from tests.e2e.tlspeers import TestCA, pem_of
from tests.e2e.wspeers import (
    close_code,
    listen_scripted,
    listen_silent_server,
    masked,
    parse_frames,
    raw_handshake,
    raw_setup,
    relay_setup,
    scripted_setup,
    unmasked,
    ws_101,
)


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


async def refuse_growing_message(testcase: unittest.TestCase, **options: str) -> tuple[bytes, Any]:
    """
    A client sends a fragmented binary message growing past the proxy's
    limit (C{options}): it gets Close 1009 (the frame's bytes are returned,
    with the flow once websocket_error fired), and the server is closed.
    """
    events = Events()
    server = await start_websocket_server(testcase)
    proxy = await start_proxy(testcase, events, **options)
    client = await raw_handshake(testcase, proxy, server.port)
    peer = await server.next_connection()
    client.received.clear()
    # Unfinished binary frames (FIN clear), 1 KiB each, masked with a zero key.
    frame = b"\x02\xfe\x04\x00\x00\x00\x00\x00" + b"x" * 1024
    continuation = b"\x00\xfe\x04\x00\x00\x00\x00\x00" + b"x" * 1024
    client.send(frame + continuation * 8)
    data = await client.wait_closed()
    testcase.assertEqual(data[:1], b"\x88")
    testcase.assertEqual(data[2:4], (1009).to_bytes(2, "big"))
    await wait_until(lambda: "websocket_error" in events.names)
    await peer.wait_closed()
    return data, events.flows[0]


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
        proxy, client, conn = await scripted_setup(self, events)
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
        proxy, client, conn = await scripted_setup(self, events)
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
        data, flow = await refuse_growing_message(self, body_size_limit="4k")
        self.assertIn("too large", flow.error.msg)

    async def test_close_handshake_timeout(self) -> None:
        """A server that never answers the Close: websocket_error after read_timeout, the client is answered."""
        events = Events()
        factory = listen_silent_server(self)
        clock = Clock()
        proxy = await start_proxy(self, events, read_timeout=0.3, clock=clock)
        # autobahn's own close timeout (batched, so it may fire early) must
        # not beat the proxy's.
        client = await connect_websocket(
            self, f"ws://127.0.0.1:{factory.port_number}/", proxy=proxy, closeHandshakeTimeout=5
        )
        closing = client.close(1000, "bye")

        def frames_at_server():
            return parse_frames(factory.connections[0].buffer.partition(b"\r\n\r\n")[2])

        # The server has the Close, and never answers it.
        self.assertTrue(await wait_until(lambda: frames_at_server()))
        await advance(clock, 0.2, 0.1)
        self.assertNotIn("websocket_error", events.names)
        await advance(clock, 0.1)
        closed = await closing
        self.assertEqual(closed.code, 1001)
        await wait_until(lambda: "websocket_error" in events.names)
        self.assertIn("did not answer the close handshake", events.flows[0].error.msg)
        await wait_until(lambda: not factory.connections)
        self.assertEqual(factory.connections, [])

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
        proxy, client, server = await scripted_setup(self, events)
        server.transport.write(unmasked(0x88, (1006).to_bytes(2, "big")))
        await wait_until(lambda: events.count("websocket_error") or events.count("websocket_end"))
        data = await client.wait_for(lambda d: len(parse_frames(d)) >= 1)
        self.assertEqual([(f, close_code(p)) for f, m, p in parse_frames(data)], [(0x88, 1001)])
        self.assertEqual(events.count("websocket_error"), 1)
        # The server got a 1002 close.
        await wait_until(lambda: len(parse_frames(bytes(server.after))) >= 1)
        frames = parse_frames(bytes(server.after))
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
        proxy, client, server = await scripted_setup(self, events)
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

    async def assert_refused_over_2k(self, frames: bytes, what: str) -> None:
        """
        With body_size_limit=2k, the client's C{frames} get only a close
        frame with 1009 (message too big).
        """
        proxy, server, client, peer = await raw_setup(self, AllEvents(), body_size_limit="2k")
        client.send(frames)
        data = await client.wait_for(lambda d: len(parse_frames(d)) >= 1)
        self.assertEqual([(f, close_code(p)) for f, m, p in parse_frames(data)], [(0x88, 1009)],
                         f"{what} passed a 2048-byte body_size_limit")

    async def test_text_limit_counts_bytes_not_characters(self) -> None:
        """body_size_limit bounds a text message in bytes: 1000 x U+20AC (3000 bytes) is over 2k."""
        text = "\u20ac" * 1000
        await self.assert_refused_over_2k(masked(0x81, text.encode("utf-8")),
                                          "a 3000-byte text message")

    async def test_fragmented_text_limit_counts_bytes(self) -> None:
        """The same in two fragments: 2 x 500 x U+20AC (3000 bytes) is over 2k."""
        part = ("\u20ac" * 500).encode("utf-8")
        await self.assert_refused_over_2k(masked(0x01, part) + masked(0x80, part),
                                          "a 3000-byte fragmented text message")

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


class WebSocketHandshakeTests(unittest.TestCase):
    """
    The handshake: frames in the same write as it or before the 101,
    refused and odd upgrades, extensions, responseheaders on the 101.
    """

    timeout = 20

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
        heads = []
        factory = listen_scripted(self, lambda conn, head: heads.append((conn, head)))
        proxy = await start_proxy(self, events)
        client = await RawClient.connect(self, proxy.port_number)
        port = factory.port
        client.send(
            b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n" % (port, port))
        # The handshake is at the server, which has not answered yet.
        self.assertTrue(await wait_until(lambda: heads))
        client.send(masked(0x81, b"early"))
        self.assertTrue(await wait_until(lambda: delivered(client.transport)))
        ws_101(*heads[0])
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


class WebSocketEventTests(unittest.TestCase):
    """
    The events of a WebSocket flow: each once and in order, also when a
    peer drops while a hook is pending.
    """

    timeout = 20

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
