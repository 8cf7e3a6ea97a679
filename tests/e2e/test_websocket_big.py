# -*- test-case-name: tests.e2e.test_websocket_big -*-
"""
End-to-end tests of the WebSocket relay's fast path for big whole frames
(L{interceptor.model.wsframes}): without permessage-deflate, an unfragmented
TEXT or BINARY frame of at least L{BIG} bytes skips wsproto, is kept as it
came, and is forwarded as-is unless an addon changed it.

Peers are autobahn's Twisted client and server, or raw sockets sending
exact frame bytes, all on 127.0.0.1 through a real proxy.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Optional

from twisted.internet.defer import Deferred
from twisted.trial import unittest

from interceptor.testing import start_proxy, start_websocket_server
from interceptor.model.websocket import Opcode, inject
from interceptor.model.wsframes import BIG
from tests.e2e.peers import sleep, wait_until
from tests.e2e.test_websocket import Events, refuse_growing_message
from tests.e2e.wspeers import (
    close_code,
    listen_silent_server,
    masked,
    parse_frames,
    raw_handshake,
    raw_setup,
    relay_setup,
    unmasked,
)

KIB = 1024


def digest(data: Any) -> tuple[int, str]:
    """
    The length and a hash of C{data} (str as UTF-8): compared instead of
    the payloads themselves, so that a failure reports quickly and briefly
    (unittest's diff of 100 KiB values takes minutes).
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    return len(data), hashlib.sha256(data).hexdigest()[:16]


def took_fast_path(message: Any) -> bool:
    """
    Whether C{message} was kept as its frame (the big-frame path) rather
    than reassembled by wsproto.  An internal peek: it makes these tests
    fail if big frames silently stop taking the path they are about.  (The
    frame itself is dropped once the content is read; its header length
    stays.)
    """
    return message._header_length > 0


class _Recorder:
    """
    An addon keeping each message object without reading its content.
    """

    def __init__(self) -> None:
        self.flows: list[Any] = []
        self.messages: list[Any] = []
        self.errors: list[Any] = []

    def websocket_start(self, flow: Any) -> None:
        """Record."""
        self.flows.append(flow)

    def websocket_message(self, flow: Any) -> None:
        """Record, without touching content."""
        self.messages.append(flow.websocket.messages[-1])

    def websocket_error(self, flow: Any) -> None:
        """Record."""
        self.errors.append(flow.error)


class BigFrameRelayTests(unittest.TestCase):
    """
    Big messages between autobahn peers, through the proxy.
    """

    timeout = 60

    async def setup(self, *addons: Any, **options: Any) -> tuple:
        return await relay_setup(self, "/big", *addons, **options)

    async def test_modify_binary_both_ways(self) -> None:
        """
        An addon's change to a big BINARY message from either side is what
        the peer receives (autobahn's server rejects unmasked frames and its
        client rejects masked ones, so both rebuilt frames are well masked).
        """

        class Append:
            def __init__(self) -> None:
                self.messages: list[Any] = []

            def websocket_message(self, flow: Any) -> None:
                message = flow.websocket.messages[-1]
                self.messages.append(message)
                message.content = message.content + (b"<C>" if message.from_client else b"<S>")

        append = Append()
        proxy, server, client, peer = await self.setup(append)
        payload = os.urandom(200 * KIB)
        client.send_binary(payload)
        got = await peer.next_message(timeout=10)
        self.assertEqual((len(got.payload), got.is_binary, got.frames),
                         (len(payload) + 3, True, 1))
        self.assertEqual(digest(got.payload), digest(payload + b"<C>"))
        echoed = await client.next_message(timeout=10)
        self.assertEqual((len(echoed.payload), echoed.is_binary, echoed.frames),
                         (len(payload) + 6, True, 1))
        self.assertEqual(digest(echoed.payload), digest(payload + b"<C><S>"))
        self.assertEqual([(m.from_client, took_fast_path(m)) for m in append.messages],
                         [(True, True), (False, True)])
        # The connection is still healthy afterwards.
        client.send_text("small")
        self.assertEqual((await client.next_message()).payload, b"small<C><S>")
        closed = await client.close(1000, "bye")
        self.assertTrue(closed.was_clean)

    async def test_modify_across_the_threshold(self) -> None:
        """
        A big message replaced by a small one, and a small one replaced by a
        big one, reach the peer as replaced.
        """
        big = os.urandom(100 * KIB)

        class Swap:
            def websocket_message(self, flow: Any) -> None:
                message = flow.websocket.messages[-1]
                if not message.from_client:
                    return
                if len(message.content) >= BIG:
                    message.content = b"tiny"
                elif message.content == b"grow":
                    message.content = big

        proxy, server, client, peer = await self.setup(Swap())
        client.send_binary(os.urandom(150 * KIB))
        self.assertEqual((await peer.next_message()).payload, b"tiny")
        self.assertEqual((await client.next_message()).payload, b"tiny")
        client.send_binary(b"grow")
        got = await peer.next_message()
        self.assertEqual((len(got.payload), got.is_binary), (len(big), True))
        self.assertEqual(digest(got.payload), digest(big))
        got = await client.next_message()
        self.assertEqual(digest(got.payload), digest(big))

    async def test_read_only_addon(self) -> None:
        """
        An addon that reads a big message's content without changing it:
        the peers receive the identical payload, in one frame.
        """

        class Read:
            def __init__(self) -> None:
                self.seen: list[tuple[bool, bytes]] = []

            def websocket_message(self, flow: Any) -> None:
                message = flow.websocket.messages[-1]
                self.seen.append((message.from_client, message.content))

        read = Read()
        proxy, server, client, peer = await self.setup(read)
        payload = os.urandom(200 * KIB)
        client.send_binary(payload)
        got = await peer.next_message(timeout=10)
        self.assertEqual((got.is_binary, got.frames), (True, 1))
        self.assertEqual(digest(got.payload), digest(payload))
        echoed = await client.next_message(timeout=10)
        self.assertEqual(digest(echoed.payload), digest(payload))
        self.assertEqual([(c, len(p)) for c, p in read.seen],
                         [(True, len(payload)), (False, len(payload))])
        self.assertEqual(digest(read.seen[0][1]), digest(payload))
        self.assertEqual(digest(read.seen[1][1]), digest(payload))

    async def test_addon_never_reads(self) -> None:
        """
        An addon that never reads content: the peers receive the identical
        payload, and the kept messages' content (read only afterwards, even
        after the connection closed) is the payload.
        """
        recorder = _Recorder()
        proxy, server, client, peer = await self.setup(recorder)
        payload = os.urandom(200 * KIB)
        client.send_binary(payload)
        got = await peer.next_message(timeout=10)
        self.assertEqual(digest(got.payload), digest(payload))
        echoed = await client.next_message(timeout=10)
        self.assertEqual(digest(echoed.payload), digest(payload))
        self.assertTrue((await client.close()).was_clean)
        messages = recorder.flows[0].websocket.messages
        self.assertEqual(len(messages), 2)
        self.assertEqual([(m.from_client, m.is_text, took_fast_path(m)) for m in messages],
                         [(True, False, True), (False, False, True)])
        # The client's frame was masked, the server's was not: both unmask right.
        self.assertEqual(digest(messages[-2].content), digest(payload))
        self.assertEqual(digest(messages[-1].content), digest(payload))

    async def test_no_message_hook(self) -> None:
        """
        Without any websocket_message hook, big messages in both
        directions are relayed unchanged and kept in the history.
        """
        events: list[Any] = []

        class Start:
            def websocket_start(self, flow: Any) -> None:
                events.append(flow)

        proxy, server, client, peer = await self.setup(Start())
        payloads = [os.urandom(BIG), os.urandom(BIG + 1), os.urandom(300 * KIB)]
        for payload in payloads:
            client.send_binary(payload)
        for payload in payloads:
            self.assertEqual(digest((await peer.next_message(timeout=10)).payload), digest(payload))
        for payload in payloads:
            self.assertEqual(digest((await client.next_message(timeout=10)).payload),
                             digest(payload))
        messages = events[0].websocket.messages
        # The two directions interleave; each is in order.
        for from_client in (True, False):
            kept = [m for m in messages if m.from_client is from_client]
            self.assertEqual([digest(m.content) for m in kept], [digest(p) for p in payloads])

    async def test_big_text(self) -> None:
        """
        A big TEXT message of non-ASCII text: the hook sees is_text and the
        text; a change to message.text reaches the peer.
        """
        text = "é" * 50000

        class Text:
            def __init__(self) -> None:
                self.seen: list[tuple[bool, bool, str]] = []
                self.messages: list[Any] = []

            def websocket_message(self, flow: Any) -> None:
                message = flow.websocket.messages[-1]
                self.messages.append(message)
                self.seen.append((message.from_client, message.is_text, message.text))
                if message.from_client:
                    message.text = message.text + "✓"
                else:
                    message.text = message.text.upper()

        hook = Text()
        proxy, server, client, peer = await self.setup(hook)
        self.assertEqual(len(text.encode("utf-8")), 100000)
        client.send_text(text)
        got = await peer.next_message(timeout=10)
        self.assertEqual((got.is_binary, got.frames), (False, 1))
        self.assertEqual(digest(got.payload.decode("utf-8")), digest(text + "✓"))
        echoed = await client.next_message(timeout=10)
        self.assertFalse(echoed.is_binary)
        self.assertEqual(digest(echoed.payload.decode("utf-8")), digest("É" * 50000 + "✓"))
        self.assertEqual([(c, t, digest(x)) for c, t, x in hook.seen],
                         [(True, True, digest(text)), (False, True, digest(text + "✓"))])
        self.assertEqual([took_fast_path(m) for m in hook.messages], [True, True])

    async def test_type_changed(self) -> None:
        """
        A hook that turns an unchanged big TEXT message into BINARY: the
        peer gets a BINARY message with the same bytes (not the original
        frame).
        """
        text = "t" * (100 * KIB)

        class Retype:
            def websocket_message(self, flow: Any) -> None:
                message = flow.websocket.messages[-1]
                if message.from_client:
                    message.type = Opcode.BINARY

        proxy, server, client, peer = await self.setup(Retype())
        client.send_text(text)
        got = await peer.next_message(timeout=10)
        self.assertTrue(got.is_binary)
        self.assertEqual(digest(got.payload), digest(text.encode()))

    async def test_invalid_utf8_set_by_hook(self) -> None:
        """
        A hook setting content that is not UTF-8 on a big TEXT message: the
        peer gets valid text (U+FFFD for the bad bytes, as on the small-message
        path) instead of a frame it must reject.
        """

        class Garble:
            def websocket_message(self, flow: Any) -> None:
                message = flow.websocket.messages[-1]
                if message.from_client:
                    message.content = b"\xff" + b"a" * (100 * KIB)

        proxy, server, client, peer = await self.setup(Garble())
        client.send_text("x" * (100 * KIB))
        got = await peer.next_message(timeout=10)
        self.assertFalse(got.is_binary)
        self.assertEqual(digest(got.payload), digest("\ufffd".encode() + b"a" * (100 * KIB)))

    async def test_big_text_unchanged(self) -> None:
        """
        A big TEXT message nobody changes arrives identical both ways, and
        the events record it as text.
        """
        events = Events()
        proxy, server, client, peer = await self.setup(events)
        text = "ünïcödé ✓ " * 10000
        client.send_text(text)
        self.assertEqual(digest((await peer.next_message()).payload), digest(text))
        echoed = await client.next_message()
        self.assertEqual((digest(echoed.payload), echoed.is_binary), (digest(text), False))
        self.assertEqual([(c, t, digest(x)) for c, t, x in events.seen],
                         [(True, True, digest(text)), (False, True, digest(text))])

    async def test_kill(self) -> None:
        """
        A killed big message never reaches its peer (in either direction);
        the next small message does.
        """

        class Kill:
            def websocket_message(self, flow: Any) -> None:
                message = flow.websocket.messages[-1]
                if len(message.content) >= BIG:
                    message.kill()

        events = Events()
        proxy, server, client, peer = await self.setup(Kill(), events)
        client.send_binary(os.urandom(200 * KIB))
        client.send_text("next")
        self.assertEqual((await peer.next_message()).payload, b"next")
        self.assertEqual((await client.next_message()).payload, b"next")
        self.assertEqual([digest(r.payload) for r in peer.received], [digest(b"next")])
        peer.echo = False
        peer.send_binary(os.urandom(200 * KIB))
        peer.send_binary(b"after")
        self.assertEqual((await client.next_message()).payload, b"after")
        self.assertEqual([digest(r.payload) for r in client.received],
                         [digest(b"next"), digest(b"after")])
        messages = events.flows[0].websocket.messages
        self.assertEqual([(m.from_client, m.dropped) for m in messages],
                         [(True, True), (True, False), (False, False), (False, True),
                          (False, False)])

    async def test_hook_holds_big_message(self) -> None:
        """
        A hook holding a big message holds the messages behind it too; once
        released, they arrive in order.
        """
        gate: Deferred = Deferred()

        class Hold:
            def websocket_message(self, flow: Any) -> Any:
                message = flow.websocket.messages[-1]
                if message.from_client and len(message.content) >= BIG:
                    return gate
                return None

        proxy, server, client, peer = await self.setup(Hold())
        payload = os.urandom(128 * KIB)
        client.send_binary(payload)
        client.send_text("behind")
        await sleep(0.1)
        self.assertEqual(len(peer.received), 0)
        gate.callback(None)
        first, second = await peer.next_message(), await peer.next_message()
        self.assertEqual(digest(first.payload), digest(payload))
        self.assertEqual(second.payload, b"behind")

    async def test_inject_big(self) -> None:
        """
        inject() of big messages sends well-framed messages both ways.
        """
        events = Events()
        proxy, server, client, peer = await self.setup(events)
        peer.echo = False
        flow = events.flows[0]
        to_client = os.urandom(100 * KIB)
        to_server = "ß" * 40000
        inject(flow, True, to_client, is_text=False)
        inject(flow, False, to_server)
        got = await client.next_message()
        self.assertEqual((len(got.payload), got.is_binary), (len(to_client), True))
        self.assertEqual(digest(got.payload), digest(to_client))
        got = await peer.next_message()
        self.assertEqual((digest(got.payload), got.is_binary), (digest(to_server), False))

    async def test_fragmented_big_message(self) -> None:
        """
        A message in big fragments (FIN clear on the first) is not taken
        whole: wsproto relays it in the same frames.
        """
        recorder = _Recorder()
        proxy, server, client, peer = await self.setup(recorder)
        payload = os.urandom(200 * KIB)
        client.send_binary(payload, fragment_size=70000)
        got = await peer.next_message()
        self.assertEqual(got.frames, 3)
        self.assertEqual(digest(got.payload), digest(payload))
        got = await client.next_message()
        self.assertEqual(digest(got.payload), digest(payload))
        self.assertFalse(took_fast_path(recorder.messages[0]))

    async def test_compression(self) -> None:
        """
        With permessage-deflate, big messages (compressible or not) still
        round-trip correctly, through wsproto; changes still apply.
        """

        class Append:
            def websocket_message(self, flow: Any) -> None:
                message = flow.websocket.messages[-1]
                if not message.from_client and not message.is_text:
                    message.content = message.content + b"!"

        events = Events()
        proxy, server, client, peer = await self.setup(Append(), events, compression=True)
        self.assertTrue(client.websocket_extensions_in_use)
        self.assertTrue(peer.websocket_extensions_in_use)
        payload = os.urandom(200 * KIB)
        client.send_binary(payload)
        got = await peer.next_message(timeout=10)
        self.assertEqual(len(got.payload), len(payload))
        self.assertEqual(digest(got.payload), digest(payload))
        echoed = await client.next_message(timeout=10)
        self.assertEqual(digest(echoed.payload), digest(payload + b"!"))
        text = "squeeze " * 25600
        client.send_text(text)
        self.assertEqual(digest((await peer.next_message()).payload), digest(text))
        self.assertEqual(digest((await client.next_message()).payload), digest(text))
        messages = events.flows[0].websocket.messages
        self.assertEqual([took_fast_path(m) for m in messages], [False] * 4)
        self.assertEqual(digest(messages[0].content), digest(payload))
        self.assertIn("permessage-deflate", events.flows[0].websocket.extensions)
        self.assertTrue((await client.close()).was_clean)

    async def test_server_invalid_utf8(self) -> None:
        """
        A big TEXT message of invalid UTF-8 from the server: Close 1007 to
        the server, 1001 to the client, websocket_error.
        """
        events = Events()
        proxy, server, client, peer = await self.setup(events)
        peer.sendMessage(b"a" * 70000 + b"\xff\xfe", False)
        closed = await client.wait_closed()
        self.assertEqual(closed.code, 1001)
        on_server = await peer.wait_closed()
        self.assertEqual(on_server.code, 1007)
        await wait_until(lambda: "websocket_error" in events.names)
        self.assertIn("invalid UTF-8", events.flows[0].error.msg)
        self.assertIn("server", events.flows[0].error.msg)
        self.assertEqual(len(client.received), 0)


class BigFrameRawTests(unittest.TestCase):
    """
    Exact frame bytes from a raw client (and a raw server).
    """

    timeout = 60

    async def assert_rejected(self, client: Any, peer: Any, events: Any, code: int,
                              server_code: Optional[int] = 1001) -> str:
        """
        The proxy closed the client with one unmasked Close frame of
        C{code}, the server with C{server_code} (unless None), fired
        C{websocket_error}, and forwarded nothing; the error message.
        """
        data = await client.wait_closed()
        self.assertEqual([(f, m, close_code(p)) for f, m, p in parse_frames(data)],
                         [(0x88, False, code)], data[:200])
        if server_code is not None:
            self.assertEqual((await peer.wait_closed()).code, server_code)
        await wait_until(lambda: "websocket_error" in events.names)
        self.assertEqual(len(peer.received), 0)
        return events.flows[0].error.msg

    async def test_order_in_one_write(self) -> None:
        """
        Small text, big binary, ping, small text in one write: the server
        gets the messages in order, the client gets the echoes and the pong
        in order.
        """
        events = Events()
        proxy, server, client, peer = await raw_setup(self, events)
        payload = os.urandom(100 * KIB)
        client.send(
            masked(0x81, b"first") + masked(0x82, payload) + masked(0x89, b"ping!")
            + masked(0x81, b"last")
        )
        got = [await peer.next_message(), await peer.next_message(), await peer.next_message()]
        self.assertEqual([(digest(g.payload), g.is_binary) for g in got],
                         [(digest(b"first"), False), (digest(payload), True),
                          (digest(b"last"), False)])
        await client.wait_for(lambda data: len(parse_frames(data)) >= 4)
        frames = parse_frames(bytes(client.received))
        self.assertEqual([(f, m, digest(p)) for f, m, p in frames],
                         [(0x81, False, digest(b"first")), (0x82, False, digest(payload)),
                          (0x8A, False, digest(b"ping!")), (0x81, False, digest(b"last"))])
        self.assertEqual([s[:2] for s in events.seen],
                         [(True, True), (True, False), (True, True),
                          (False, True), (False, False), (False, True)])
        self.assertEqual([digest(s[2]) for s in events.seen if s[0]],
                         [digest(b"first"), digest(payload), digest(b"last")])
        self.assertTrue(took_fast_path(events.flows[0].websocket.messages[1]))

    async def test_invalid_utf8(self) -> None:
        """
        Invalid UTF-8 in a big masked TEXT frame: Close 1007 to the client,
        1001 to the server, websocket_error saying "invalid UTF-8".
        """
        events = Events()
        proxy, server, client, peer = await raw_setup(self, events)
        client.send(masked(0x81, "é".encode() * 40000 + b"\xff" + b"z" * 100))
        error = await self.assert_rejected(client, peer, events, 1007)
        self.assertIn("invalid UTF-8", error)
        self.assertIn("client", error)
        self.assertEqual(len(events.seen), 0)

    async def test_over_body_size_limit(self) -> None:
        """
        One big BINARY frame larger than body_size_limit: Close 1009 to the
        client, 1001 to the server, "too large" in the error.
        """
        events = Events()
        proxy, server, client, peer = await raw_setup(self, events, body_size_limit="100k")
        client.send(masked(0x82, os.urandom(200 * KIB)))
        self.assertIn("too large", await self.assert_rejected(client, peer, events, 1009))

    async def test_over_body_size_limit_in_one_read(self) -> None:
        """
        A small frame over body_size_limit arriving in one read (wsproto's
        one-event path): Close 1009 to the client, "too large" in the error.
        """
        events = Events()
        proxy, server, client, peer = await raw_setup(self, events, body_size_limit="1k")
        client.send(masked(0x82, b"z" * (10 * KIB)))
        error = await self.assert_rejected(client, peer, events, 1009, server_code=None)
        self.assertIn("too large", error)

    async def test_under_body_size_limit(self) -> None:
        """
        A big frame within body_size_limit still takes the fast path and
        arrives whole.
        """
        events = Events()
        proxy, server, client, peer = await raw_setup(self, events, body_size_limit="100k")
        payload = os.urandom(100 * KIB)  # exactly the limit
        client.send(masked(0x82, payload))
        got = await peer.next_message()
        self.assertEqual(digest(got.payload), digest(payload))
        await client.wait_for(lambda data: len(parse_frames(data)) >= 1)
        self.assertEqual([(f, m, digest(p)) for f, m, p in parse_frames(bytes(client.received))],
                         [(0x82, False, digest(payload))])
        self.assertTrue(took_fast_path(events.flows[0].websocket.messages[0]))
        self.assertNotIn("websocket_error", events.names)

    async def test_cut_awkwardly(self) -> None:
        """
        Big frames (and small ones between) sent in pieces cut inside the
        header, inside the masking key and everywhere in the payload: the
        server receives every message whole and in order.
        """
        events = Events()
        proxy, server, client, peer = await raw_setup(self, events, echo=False)
        big1, big2 = os.urandom(100 * KIB), os.urandom(BIG)
        stream = (masked(0x82, big1) + masked(0x81, b"between") + masked(0x82, big2)
                  + masked(0x81, b"end"))
        pieces = [stream[:3], stream[3:12]]
        pieces += [stream[i : i + 1000] for i in range(12, len(stream), 1000)]
        for piece in pieces:
            client.send(piece)
            await sleep(0.001)
        got = [await peer.next_message(timeout=10) for _ in range(4)]
        self.assertEqual([(len(g.payload), g.is_binary) for g in got],
                         [(len(big1), True), (7, False), (len(big2), True), (3, False)])
        self.assertEqual(digest(got[0].payload), digest(big1))
        self.assertEqual(got[1].payload, b"between")
        self.assertEqual(digest(got[2].payload), digest(big2))
        self.assertEqual(got[3].payload, b"end")
        messages = events.flows[0].websocket.messages
        self.assertEqual([took_fast_path(m) for m in messages], [True, False, True, False])

    async def test_unmasked_big_frame_from_client(self) -> None:
        """
        An unmasked big frame from the client is invalid: Close 1002 to it,
        1001 to the server.
        """
        events = Events()
        proxy, server, client, peer = await raw_setup(self, events)
        client.send(unmasked(0x82, b"u" * 100000))
        error = await self.assert_rejected(client, peer, events, 1002)
        self.assertIn("client sent an invalid frame", error)

    async def test_reserved_bit_big_frame(self) -> None:
        """
        A big frame with RSV1 set while no extension was negotiated is
        invalid: Close 1002 to the client.
        """
        events = Events()
        proxy, server, client, peer = await raw_setup(self, events)
        client.send(masked(0xC2, b"r" * 100000))
        await self.assert_rejected(client, peer, events, 1002)

    async def test_original_frame_forwarded(self) -> None:
        """
        Between raw peers: an unchanged big frame reaches the server
        byte-identical (same masking key); a changed one is masked anew; a
        big frame from the server reaches the client as it was sent.
        """
        factory = listen_silent_server(self)

        class Change:
            def websocket_message(self, flow: Any) -> None:
                message = flow.websocket.messages[-1]
                if message.from_client and message.content.startswith(b"CHANGE"):
                    message.content = message.content[6:] + b"+"

        proxy = await start_proxy(self, Change())
        client = await raw_handshake(self, proxy, factory.port_number)
        self.assertTrue(bytes(client.received).startswith(b"HTTP/1.1 101"))
        client.received.clear()
        await wait_until(lambda: factory.connections)
        server = factory.connections[0]

        def to_server() -> bytes:
            return server.buffer.split(b"\r\n\r\n", 1)[1]

        payload = os.urandom(100 * KIB)
        original = masked(0x82, payload, key=b"\x01\x02\x03\x04")
        client.send(original)
        await wait_until(lambda: len(to_server()) >= len(original))
        self.assertEqual(digest(to_server()), digest(original))
        client.send(masked(0x82, b"CHANGE" + payload, key=b"\x00\x00\x00\x00"))
        await wait_until(lambda: len(parse_frames(to_server())) >= 2)
        frames = parse_frames(to_server())
        self.assertEqual(len(frames), 2)
        first, is_masked, got = frames[1]
        self.assertEqual((first, is_masked), (0x82, True))
        self.assertEqual(digest(got), digest(payload + b"+"))
        from_server = unmasked(0x82, payload)
        # Cut inside the extended length, then in uneven pieces.
        pieces = [from_server[:5]] + [from_server[i : i + 7777]
                                      for i in range(5, len(from_server), 7777)]
        for piece in pieces:
            server.transport.write(piece)
            await sleep(0.001)
        await client.wait_for(lambda data: len(data) >= len(from_server))
        self.assertEqual(digest(bytes(client.received)), digest(from_server))

    async def test_masked_big_frame_from_server(self) -> None:
        """
        A masked big frame from the server is invalid: Close 1002 to the
        server, 1001 to the client, websocket_error.
        """
        factory = listen_silent_server(self)
        events = Events()
        proxy = await start_proxy(self, events)
        client = await raw_handshake(self, proxy, factory.port_number)
        client.received.clear()
        await wait_until(lambda: factory.connections)
        server = factory.connections[0]
        server.buffer = b""
        server.transport.write(masked(0x82, b"m" * 100000))
        await client.wait_for(lambda data: len(parse_frames(data)) >= 1)
        frames = parse_frames(bytes(client.received))
        self.assertEqual([(f, m, close_code(p)) for f, m, p in frames], [(0x88, False, 1001)])
        await wait_until(lambda: len(parse_frames(server.buffer)) >= 1)
        frames = parse_frames(server.buffer)
        self.assertEqual([(f, m, close_code(p)) for f, m, p in frames], [(0x88, True, 1002)])
        await wait_until(lambda: "websocket_error" in events.names)
        self.assertIn("server sent an invalid frame", events.flows[0].error.msg)
        self.assertEqual(len(events.seen), 0)


class MessageLimitTests(unittest.TestCase):
    """
    websocket_max_message_size bounds a message by default (one 100 MiB
    message once took the proxy to 518 MiB of RSS), with a reason a user
    can act on in the flow's error and the log.
    """

    timeout = 20

    def test_default(self) -> None:
        from interceptor.core.options import proxy_options

        self.assertEqual(proxy_options().websocket_max_message_size, "64m")

    async def test_over_the_limit(self) -> None:
        data, flow = await refuse_growing_message(self, websocket_max_message_size="4k")
        self.assertIn(b"websocket_max_message_size", data)
        self.assertIn("websocket_max_message_size (4096 bytes)", flow.error.msg)

    async def test_body_size_limit_when_smaller(self) -> None:
        events = Events()
        server = await start_websocket_server(self)
        proxy = await start_proxy(self, events, websocket_max_message_size="8k",
                                  body_size_limit="2k")
        client = await raw_handshake(self, proxy, server.port)
        await server.next_connection()
        client.send(b"\x82\xfe\x0c\x00\x00\x00\x00\x00" + b"x" * 3072)
        data = await client.wait_closed()
        self.assertIn(b"body_size_limit", data)
