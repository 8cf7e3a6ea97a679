# -*- test-case-name: tests.e2e.test_tcp -*-
"""
End-to-end tests of the raw TCP layer (issue #7, point 1): CONNECT tunnels
to real TCP servers on 127.0.0.1, relayed as raw TCP by C{tcp_hosts} or
because their bytes are neither TLS nor HTTP, with the C{tcp_*} events:
half-closes, resets and kills, and what comes while an async C{tcp_start}
runs.
"""

from __future__ import annotations

import hashlib
import os
import socket
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface import implementer

from interceptor.layers.relay import RelayLayer
from interceptor.layers.tcp import TcpLayer
from interceptor.model.tcp import TCPFlow, TCPMessage
from interceptor.testing import LogRecorder, start_proxy
from tests.e2e.peers import (
    AllEvents,
    HeldHook,
    WebServer,
    advance,
    delivered,
    read_by_peer,
    sleep,
    stable,
    unused_port,
    wait_until,
)
from tests.e2e.tcppeers import TcpClient, TcpServer, connect_tunnel, echo_once


class TcpEvents:
    """
    Records the TCP events (and serverconnect), with a copy of the newest
    message at each C{tcp_message}.
    """

    def __init__(self) -> None:
        self.events: list = []
        self.seen: list[tuple[bool, bytes]] = []
        self.flows: list[TCPFlow] = []

    def tcp_start(self, flow):
        self.events.append("tcp_start")
        self.flows.append(flow)

    def tcp_message(self, flow):
        message = flow.messages[-1]
        self.events.append("tcp_message")
        self.seen.append((message.from_client, bytes(message.content)))

    def tcp_end(self, flow):
        self.events.append("tcp_end")

    def tcp_error(self, flow):
        self.events.append("tcp_error")

    def serverconnect(self, server_conn):
        self.events.append("serverconnect")

    def names(self, *keep: str) -> list:
        """
        The recorded event names, only those in C{keep} if given.
        """
        return [e for e in self.events if not keep or e in keep]


class Rewrite:
    """
    Rewrites client chunks (b"ping" -> a longer b"PONG..." ) and server
    chunks (appends b"!"), and drops client chunks containing b"drop".
    """

    def tcp_message(self, flow):
        message = flow.messages[-1]
        if message.from_client:
            if b"drop" in message.content:
                message.kill()
            message.content = message.content.replace(b"ping", b"PONG-PONG-PONG")
        else:
            message.content = message.content + b"!"


@implementer(IHalfCloseableProtocol)
class HalfOpenClient(TcpClient):
    """A TcpClient that stays open for writing after the server's FIN."""

    def readConnectionLost(self) -> None:
        self.eof = True


class TcpHostsTests(unittest.TestCase):
    """
    Tunnels whose destination matches C{tcp_hosts} are relayed as raw TCP
    with the TCP events.
    """

    timeout = 20

    async def test_echo_events_and_messages(self):
        """An echo server behind tcp_hosts: tcp_start, one tcp_message per chunk each way, tcp_end on a clean close."""
        events = TcpEvents()
        proxy = await start_proxy(self, events, tcp_hosts=[r"^127\.0\.0\.1:"])
        server = await TcpServer.start(self, "echo")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"hello")
        await client.wait_for(lambda d: d == b"hello")
        client.send(b"world")
        await client.wait_for(lambda d: d == b"helloworld")
        client.shut_write()
        await client.wait_closed()
        self.assertTrue(await wait_until(lambda: "tcp_end" in events.events))
        self.assertEqual(
            events.seen,
            [(True, b"hello"), (False, b"hello"), (True, b"world"), (False, b"world")],
        )
        self.assertEqual(events.names()[:2], ["tcp_start", "serverconnect"])
        self.assertEqual(events.names()[-1], "tcp_end")
        [flow] = events.flows
        self.assertIsInstance(flow.messages[0], TCPMessage)
        self.assertEqual([m.from_client for m in flow.messages], [True, False, True, False])
        self.assertTrue(all(m.timestamp > 0 for m in flow.messages))
        self.assertEqual(flow.server_conn.address, ("127.0.0.1", server.port))
        self.assertIsNone(flow.error)
        self.assertFalse(flow.live)

    async def test_modification_changes_length(self):
        """A hook's new content (longer than the original) is what the peer receives, both ways; a killed chunk is dropped."""
        proxy = await start_proxy(self, Rewrite(), tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "echo")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"ping")
        await client.wait_for(lambda d: d.endswith(b"!"))
        self.assertEqual(bytes(server.connections[0].received), b"PONG-PONG-PONG")
        self.assertEqual(bytes(client.received), b"PONG-PONG-PONG!")
        client.send(b"please drop this")
        self.assertTrue(await wait_until(lambda: read_by_peer(client.transport)))
        client.send(b"x")
        await client.wait_for(lambda d: d.endswith(b"x!"))
        self.assertEqual(bytes(server.connections[0].received), b"PONG-PONG-PONGx")

    async def test_async_hook_keeps_order(self):
        """A tcp_message hook returning a Deferred holds its chunk; later chunks follow it, in order."""
        releases: list[Deferred] = []

        class Slow:
            def tcp_message(self, flow):
                message = flow.messages[-1]
                if message.from_client and message.content.startswith(b"slow"):
                    d: Deferred = Deferred()
                    releases.append(d)
                    return d
                return None

        proxy = await start_proxy(self, Slow(), tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "count")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"slow-first;")
        self.assertTrue(await wait_until(lambda: len(releases) == 1))
        client.send(b"second;")
        await sleep(0.1)
        self.assertEqual(bytes(server.connections[0].received), b"")
        releases[0].callback(None)
        self.assertTrue(await wait_until(lambda: len(server.connections[0].received) == 18))
        self.assertEqual(bytes(server.connections[0].received), b"slow-first;second;")
        client.shut_write()
        data = await client.wait_closed()
        self.assertEqual(data, b"got 18 bytes")

    async def test_server_speaks_first(self):
        """With eager connections the server is reached at once, so a server greeting reaches a client that has sent nothing."""
        events = TcpEvents()
        proxy = await start_proxy(self, events, tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "banner")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        data = await client.wait_for(lambda d: d.endswith(b"\r\n"))
        self.assertEqual(data, b"220 hello from the server\r\n")
        self.assertEqual(events.seen, [(False, b"220 hello from the server\r\n")])

    async def test_silent_client_gets_a_server_that_speaks_first(self):
        """Without tcp_hosts, a tunnel whose client says nothing becomes raw TCP after read_timeout."""
        events = TcpEvents()
        clock = Clock()
        proxy = await start_proxy(self, events, read_timeout=0.5, clock=clock)
        server = await TcpServer.start(self, "banner")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        await advance(clock, 0.4, 0.1)
        self.assertEqual(events.events, [])
        await advance(clock, 0.1)
        data = await client.wait_for(lambda d: d.endswith(b"\r\n"))
        self.assertEqual(data, b"220 hello from the server\r\n")

    async def test_method_split_across_reads_is_http(self):
        """A tunnelled request whose method arrives alone ("GET", then the rest) is still parsed as HTTP."""
        seen = []

        class Watch:
            def request(self, flow):
                seen.append(flow.request.path)

        proxy = await start_proxy(self, Watch(), read_timeout=2.0)
        web = await WebServer.start(self)
        client = await connect_tunnel(self, proxy.port_number, web.port)
        client.send(b"GET")
        self.assertTrue(await wait_until(lambda: read_by_peer(client.transport)))
        client.send(b" /bytes?n=5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = await client.wait_closed()
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:100])
        self.assertEqual(seen, ["/bytes?n=5"])

    async def test_partial_client_hello_times_out(self):
        """A tunnel that starts a TLS ClientHello and stops is closed after read_timeout."""
        clock = Clock()
        proxy = await start_proxy(self, read_timeout=0.5, clock=clock)
        server = await TcpServer.start(self, "echo")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"\x16\x03\x01\x02\x00\x01")
        self.assertTrue(await wait_until(lambda: read_by_peer(client.transport)))
        await advance(clock, 0.4, 0.1)
        self.assertFalse(client.closed)
        await advance(clock, 0.1)
        await client.wait_closed(timeout=3)

    async def test_half_close_is_relayed(self):
        """The client's half-close reaches the server, which still answers on the other half; then tcp_end."""
        events = TcpEvents()
        proxy = await start_proxy(self, events, tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "count")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"a" * 1000)
        self.assertTrue(await wait_until(lambda: len(server.connections[0].received) == 1000))
        client.shut_write()
        data = await client.wait_closed()
        self.assertEqual(data, b"got 1000 bytes")
        self.assertTrue(server.connections[0].eof)
        self.assertTrue(await wait_until(lambda: "tcp_end" in events.events))
        self.assertNotIn("tcp_error", events.events)

    async def test_half_close_without_hooks(self):
        """With no addon watching, the relay still passes the half-close and the answer."""
        proxy = await start_proxy(self, tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "count")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"b" * 5000)
        self.assertTrue(await wait_until(lambda: len(server.connections[0].received) == 5000))
        client.shut_write()
        self.assertEqual(await client.wait_closed(), b"got 5000 bytes")

    async def test_reset_is_tcp_error(self):
        """A server resetting the connection fires tcp_error with flow.error, and the client is dropped."""
        events = TcpEvents()
        proxy = await start_proxy(self, events, tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "reset")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"boom")
        await client.wait_closed()
        self.assertTrue(await wait_until(lambda: "tcp_error" in events.events))
        self.assertNotIn("tcp_end", events.events)
        [flow] = events.flows
        self.assertIsNotNone(flow.error)
        self.assertIn("server", flow.error.msg)

    async def test_connect_refused_is_tcp_error(self):
        """A destination nobody listens on fires tcp_error naming the failure, and closes the client."""
        events = TcpEvents()
        proxy = await start_proxy(self, events, tcp_hosts=["127.0.0.1"], connect_timeout=3.0)
        port = await unused_port()
        client = await connect_tunnel(self, proxy.port_number, port)
        await client.wait_closed()
        self.assertTrue(await wait_until(lambda: "tcp_error" in events.events))
        [flow] = events.flows
        self.assertIn(f"Cannot connect to 127.0.0.1:{port}", flow.error.msg)

    async def test_flow_kill_closes_both(self):
        """flow.kill() in tcp_message drops both connections and fires tcp_error."""
        events = TcpEvents()

        class Killer:
            def tcp_message(self, flow):
                if b"kill" in flow.messages[-1].content:
                    flow.kill()

        proxy = await start_proxy(self, Killer(), events, tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "echo")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"kill")
        await client.wait_closed()
        self.assertTrue(await wait_until(lambda: server.connections[0].closed))
        self.assertEqual(bytes(server.connections[0].received), b"")
        self.assertTrue(await wait_until(lambda: "tcp_error" in events.events))
        self.assertEqual(events.flows[0].error.msg, "Connection killed.")

    async def test_backpressure_slow_reader(self):
        """A client that stops reading makes the proxy stop reading the server: the server cannot push 200 MB into the proxy."""
        total = 200 * 1024 * 1024
        proxy = await start_proxy(self, tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "flood", flood_bytes=total)
        client = await TcpClient.connect(self, proxy.port_number)
        client.send(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % server.port)
        await client.wait_for(lambda d: b"\r\n\r\n" in d)
        client.count_only = True
        client.transport.pauseProducing()
        self.assertTrue(await wait_until(lambda: server.connections))
        [conn] = server.connections
        # The flood stops where the buffers hold it.
        self.assertLess(await stable(lambda: conn.sent), 48 * 1024 * 1024)
        [root] = list(proxy.master.factories[0].connections)
        buffered = len(root.transport.dataBuffer) + sum(len(b) for b in root.transport._tempDataBuffer)
        self.assertLess(buffered, 16 * 1024 * 1024)
        client.transport.resumeProducing()
        await client.wait_closed(30)
        received = client.count + len(client.received)
        self.assertEqual(received - len(b"HTTP/1.1 200 Connection established\r\n\r\n"), total)

    async def test_lazy_connects_on_first_bytes(self):
        """With connection_strategy=lazy the server is reached only when the client sends something."""
        events = TcpEvents()
        proxy = await start_proxy(
            self, events, tcp_hosts=["127.0.0.1"], connection_strategy="lazy"
        )
        server = await TcpServer.start(self, "echo")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        await sleep(0.3)
        self.assertEqual(server.connections, [])
        self.assertNotIn("serverconnect", events.events)
        client.send(b"hi")
        await client.wait_for(lambda d: d == b"hi")
        self.assertEqual(len(server.connections), 1)
        self.assertEqual(events.names("serverconnect"), ["serverconnect"])


class TcpLifecycleTests(unittest.TestCase):
    """
    A relayed connection's life: half-closes, resets, kills and EOFs
    while hooks are pending, with each event once.
    """

    timeout = 30

    async def test_connect_failure_logged(self):
        """
        A tunnel whose server cannot be reached logs why, at debug (the
        line used to read "(client): ()"; the dumper's tcp_error line is
        the one a user sees).
        """
        recorder = LogRecorder()
        port = await unused_port()
        proxy = await start_proxy(self, recorder, tcp_hosts=["127.0.0.1"])
        client = await TcpClient.connect(self, proxy.port_number)
        client.send(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\nhello" % port)
        await wait_until(lambda: "Cannot connect" in recorder.text("debug"))
        self.assertIn(f"Cannot connect to 127.0.0.1:{port}: Connection was refused", recorder.text("debug"))

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
        await echo_once(self, proxy.port_number, b"hello")
        await wait_until(lambda: ends)
        [flow] = ends
        self.assertEqual(b"".join(m.content for m in flow.messages if m.from_client), b"hello",
                         "flow.messages is empty for an addon handling only tcp_end")

    async def test_history_bounded_by_tcp_history_size(self) -> None:
        """
        Past tcp_history_size, flow.messages drops its oldest messages (down
        to half the size; the newest stays): a long connection watched by an
        addon (the flow output's tcp_message) keeps bounded memory.
        """
        ends: list = []
        sizes: list = []

        class Watch:
            def tcp_message(self, flow: Any) -> None:
                sizes.append(sum(len(m.content) for m in flow.messages))

            def tcp_end(self, flow: Any) -> None:
                ends.append(flow)

        proxy = await start_proxy(self, Watch(), tcp_hosts=["127.0.0.1"], tcp_history_size="1k")
        server = await TcpServer.start(self, "echo")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        for i in range(20):
            chunk = b"%02d" % i * 100
            client.send(chunk)
            await client.wait_for(lambda d, n=(i + 1) * 200: len(d) >= n)
        client.shut_write()
        await client.wait_closed()
        await wait_until(lambda: ends)
        [flow] = ends
        self.assertLessEqual(max(sizes), 1024)
        self.assertLessEqual(sum(len(m.content) for m in flow.messages), 1024)
        self.assertEqual(flow.messages[-1].content, b"19" * 100)
        self.assertIn(b"18" * 100, [m.content for m in flow.messages])

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

        slow = HeldHook("tcp_message")
        proxy = await start_proxy(self, slow, tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "count")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"a" * 3000)
        client.shut_write()
        # The EOF is at the proxy while the hook holds the first chunk.
        self.assertTrue(await wait_until(lambda: slow.pending and delivered(client.transport)))
        while not client.closed:
            if slow.pending:
                slow.release()
            self.assertTrue(await wait_until(lambda: slow.pending or client.closed))
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
        self.assertTrue(await wait_until(lambda: read_by_peer(client.transport)))
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


class HeldTcpStart(HeldHook):
    """
    An addon whose C{tcp_start} waits until the test calls L{release};
    it records the TCP events (and C{"tcp_start done"} when released) and
    the C{serverconnect}s.
    """

    def __init__(self) -> None:
        super().__init__("tcp_start")
        self.events: list[str] = []
        self.connects: list[Any] = []

    def _hold(self, flow: Any) -> Deferred:
        self.events.append("tcp_start")
        return super()._hold(flow)

    def release(self, value: Any = None, kill: bool = False) -> None:
        """
        Let the oldest held C{tcp_start} finish (killing its flow first).
        """
        if kill:
            self.flows[len(self.flows) - len(self.pending)].kill()
        self.events.append("tcp_start done")
        super().release(value)

    def tcp_message(self, flow: Any) -> None:
        self.events.append("tcp_message")

    def tcp_end(self, flow: Any) -> None:
        self.events.append("tcp_end")

    def tcp_error(self, flow: Any) -> None:
        self.events.append("tcp_error")

    def serverconnect(self, server_conn: Any) -> None:
        self.connects.append(server_conn)


class TcpStartTests(unittest.TestCase):
    """
    What happens while an async C{tcp_start} runs: nothing reaches the
    server before it is done, and bytes, EOFs and client losses that come
    meanwhile are handled after it, in order.
    """

    timeout = 15

    async def _start(self, behaviour: str = "echo", **options: Any) -> tuple:
        """
        A proxy with a L{HeldTcpStart}, a L{TcpServer}, and a raw-TCP tunnel
        to it whose first bytes have started tcp_start.
        """
        hook = HeldTcpStart()
        proxy = await start_proxy(self, hook, **options)
        server = await TcpServer.start(self, behaviour)
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"\x00hello raw tcp")
        # Those bytes are neither TLS nor HTTP: tcp_start runs once they are in.
        self.assertTrue(await wait_until(lambda: hook.pending))
        return hook, server, client

    async def test_async_kill_in_tcp_start_with_first_bytes(self):
        """tcp_start kills the flow after a while: the server must never be contacted."""
        hook, server, client = await self._start()
        # A proxy that did not wait for tcp_start would connect now.
        await sleep(0.05)
        self.assertEqual(hook.connects, [], "serverconnect fired before tcp_start was done")
        hook.release(kill=True)
        self.assertTrue(await wait_until(lambda: client.closed))
        await sleep(0.05)
        self.assertEqual(hook.connects, [], "serverconnect fired for a flow killed in tcp_start")
        self.assertEqual(server.connections, [], "a flow killed in tcp_start still connected to the server")

    async def test_tcp_message_after_async_tcp_start(self):
        """Bytes that arrive while an async tcp_start runs: tcp_message fires after it, and they reach the server."""
        hook, server, client = await self._start()
        await sleep(0.05)
        hook.release()
        received = await client.wait_for(lambda data: b"hello raw tcp" in data, timeout=3)
        self.assertIn(b"hello raw tcp", received)
        self.assertEqual(hook.events[:3], ["tcp_start", "tcp_start done", "tcp_message"])

    async def _half_close_during_tcp_start(self, **options):
        hook, server, client = await self._start("count", **options)
        client.send(b"x" * 986)
        client.shut_write()
        # The rest of the bytes and the FIN come while tcp_start runs.
        await sleep(0.05)
        hook.release()
        data = await client.wait_closed(timeout=4)
        self.assertIn(b"got 1000 bytes", data)

    async def test_data_then_half_close_during_tcp_start(self):
        """1000 bytes and a FIN while tcp_start runs: the server gets them all, then the EOF."""
        await self._half_close_during_tcp_start()

    async def test_data_then_half_close_during_tcp_start_lazy(self):
        """The same with connection_strategy=lazy."""
        await self._half_close_during_tcp_start(connection_strategy="lazy")

    async def test_data_then_abort_during_tcp_start_event_order(self):
        """The client leaves while tcp_start runs: the flow ends with tcp_end/tcp_error, after tcp_start."""
        hook, server, client = await self._start()
        client.transport.loseConnection()
        await sleep(0.05)
        hook.release()
        self.assertTrue(await wait_until(lambda: hook.events[-1] in ("tcp_end", "tcp_error")))
        # The flow's last event must be tcp_end/tcp_error, after tcp_start is done
        events = hook.events
        self.assertLess(events.index("tcp_start done"), events.index(events[-1]), events)


class DetectionTests(unittest.TestCase):
    """
    Tunnelled bytes that are neither TLS nor HTTP go to the TCP layer.
    """

    timeout = 20

    async def test_undetected_bytes_are_tcp(self):
        """Binary bytes in a CONNECT tunnel (no tcp_hosts) are relayed by TcpLayer, with tcp events."""
        events = TcpEvents()
        layers = []

        class Layers:
            def next_layer(self, layer):
                layers.append(type(layer))

        proxy = await start_proxy(self, Layers(), events)
        server = await TcpServer.start(self, "echo")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"\x00\x01\x02binary")
        await client.wait_for(lambda d: d == b"\x00\x01\x02binary")
        self.assertIn(TcpLayer, layers)
        self.assertEqual(events.seen, [(True, b"\x00\x01\x02binary"), (False, b"\x00\x01\x02binary")])

    async def test_relay_layer_fires_no_tcp_events(self):
        """RelayLayer (pass-through) relays the same bytes without any tcp event."""
        events = TcpEvents()

        class ForceRelay:
            def next_layer(self, layer):
                if isinstance(layer, TcpLayer) and not isinstance(layer, RelayLayer):
                    return RelayLayer(layer.root, layer.address)
                return None

        proxy = await start_proxy(self, ForceRelay(), events, tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "count")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"abc")
        self.assertTrue(await wait_until(lambda: len(server.connections[0].received) == 3))
        client.shut_write()
        self.assertEqual(await client.wait_closed(), b"got 3 bytes")
        self.assertEqual(events.names("tcp_start", "tcp_message", "tcp_end", "tcp_error"), [])


class TcpExamplesTests(unittest.TestCase):
    """
    examples/tcp_rewrite.py and examples/tcp_next_layer.py, loaded as
    scripts the way users load them.
    """

    timeout = 20

    def example(self, name: str) -> str:
        """
        The absolute path of an example script.
        """
        import os

        return os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "examples", name))

    async def test_tcp_rewrite_example(self):
        """tcp_rewrite.py replaces ping by PONG! (a longer chunk) toward the server and logs the end."""
        from addons.script import ScriptLoader
        from interceptor.testing import LogRecorder

        recorder = LogRecorder()
        proxy = await start_proxy(
            self, ScriptLoader(), recorder, scripts=[self.example("tcp_rewrite.py")],
            tcp_hosts=["127.0.0.1"],
        )
        server = await TcpServer.start(self, "count")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"ping ping")
        self.assertTrue(await wait_until(lambda: len(server.connections[0].received) == 11))
        self.assertEqual(bytes(server.connections[0].received), b"PONG! PONG!")
        client.shut_write()
        self.assertEqual(await client.wait_closed(), b"got 11 bytes")
        self.assertTrue(await wait_until(lambda: "closed after 2 messages" in recorder.text()))

    async def test_tcp_next_layer_example(self):
        """tcp_next_layer.py makes an HTTP tunnel to a listed port a raw TCP relay."""
        from addons.script import ScriptLoader

        events = TcpEvents()
        server = await TcpServer.start(self, "echo")
        proxy = await start_proxy(self, ScriptLoader(), events, scripts=[self.example("tcp_next_layer.py")])
        proxy.master.options.set(f"raw_tcp_ports={server.port}")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"GET / HTTP/1.1\r\n\r\n")
        await client.wait_for(lambda d: d == b"GET / HTTP/1.1\r\n\r\n")
        self.assertEqual(events.seen[0], (True, b"GET / HTTP/1.1\r\n\r\n"))
