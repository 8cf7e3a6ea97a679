"""
Connections paired and unpaired, timers and hooks around them: a replaced
TLS upstream really closes (and gives back a client read it paused), an
HTTP/1 client moves from a TLS HTTP/1.1 server to an h2 server, the h2 idle
timeout counts from the last stream's end, an async responseheaders hook
on a 101 from a TLS server keeps the server's first bytes, tcp_start runs
before connecting even when the tunnel already has bytes.
"""

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.trial import unittest

from interceptor.testing import start_proxy
from tests.e2e.h2peers import bounded
from tests.e2e.peers import LoopbackServer, RawClient, advance, sleep, wait_until
from tests.e2e.test_http2 import _Base, path_handler
from tests.e2e.tcppeers import TcpServer, connect_tunnel
from tests.e2e.tlspeers import HttpsServer, TestCA, _server_context, _ServerCreator


class IdleAfterLongStreamTests(_Base):
    """
    Finding: the h2 client idle watchdog counts from the client's last
    frame, not from the end of the last stream.
    """

    async def test_goaway_not_sent_right_after_a_long_stream(self):
        """A stream that lasted longer than idle_timeout: the connection must stay idle_timeout after it ends."""
        clock = Clock()
        proxy = await self.proxy(idle_timeout=2.0, read_timeout=4.0, clock=clock)
        waiting = []
        server = await self.h2_server(waiting.append)
        client = await self.client(proxy, server.port)
        request = client.request("GET", "/slow")
        self.assertTrue(await wait_until(lambda: waiting))
        # The server answers 3 s later.
        await advance(clock, 3.0)
        path_handler(waiting[0])
        first = await bounded(request.done)
        self.assertEqual(first.status, 200)
        # 1.5 s after the stream ended: less than idle_timeout (2 s).
        await advance(clock, 1.5)
        self.assertIsNone(client.terminated, "GOAWAY sent %s s after the stream ended" % 1.5)
        self.assertFalse(client.closed)
        # 2 s after: it is idle now.
        await advance(clock, 0.5)
        self.assertTrue(await wait_until(lambda: client.closed))
        self.assertIsNotNone(client.terminated)


class _UpgradeThenData(Protocol):
    def __init__(self):
        self.buf = b""
        self.closed = False
        self.lost = Deferred()

    def dataReceived(self, data):
        self.buf += data
        if b"\r\n\r\n" in self.buf and not getattr(self, "answered", False):
            self.answered = True
            # Two writes: two TLS records, normally in one TCP segment.
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n"
            )
            self.transport.write(b"x" * 40000 + b"hello-from-server")
            if getattr(self, "close_after", False):
                self.transport.loseConnection()

    def connectionLost(self, reason=None):
        self.closed = True
        self.lost.callback(None)


class _TlsUpgradeServer(LoopbackServer):
    def __init__(self, testcase):
        super().__init__()
        ca = TestCA.shared()
        cert, key = ca.issue(["127.0.0.1"])
        factory = Factory.forProtocol(self._build)
        self._listen(testcase, factory, tls=_ServerCreator(_server_context(cert, key, ca.cert, (b"http/1.1",))))

    close_after = False

    def _build(self):
        p = _UpgradeThenData()
        p.close_after = self.close_after
        self.connections.append(p)
        return p


class _SlowResponseHeaders:
    def responseheaders(self, flow):
        d = Deferred()
        reactor.callLater(0.2, d.callback, None)
        return d


class UpgradeOverTlsTests(unittest.TestCase):
    timeout = 15

    async def test_async_responseheaders_on_101_keeps_server_bytes(self):
        """101 from a TLS server, then bytes in another record; an async responseheaders hook must not lose them."""
        server = _TlsUpgradeServer(self)
        proxy = await start_proxy(self, _SlowResponseHeaders(), confdir=self.mktemp(), ssl_insecure=True)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(
            b"GET https://127.0.0.1:%d/up HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            b"Connection: Upgrade\r\nUpgrade: foo\r\n\r\n" % (server.port, server.port)
        )
        data = await client.wait_for(lambda d: b"hello-from-server" in d, 4.0)
        self.assertIn(b" 101 ", data.split(b"\r\n", 1)[0] + b" ", data)
        self.assertIn(b"hello-from-server", data)

    async def test_server_closes_during_async_hook(self):
        """The TLS server sends 101, its last bytes and closes while the hook runs: the client gets all of it, then the close."""
        server = _TlsUpgradeServer(self)
        server.close_after = True
        proxy = await start_proxy(self, _SlowResponseHeaders(), confdir=self.mktemp(), ssl_insecure=True)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(
            b"GET https://127.0.0.1:%d/up HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            b"Connection: Upgrade\r\nUpgrade: foo\r\n\r\n" % (server.port, server.port)
        )
        data = await client.wait_closed(4.0)
        self.assertTrue(data.startswith(b"HTTP/1.1 101 "), data[:100])
        self.assertTrue(data.endswith(b"hello-from-server"), data[-100:])

    async def test_control_without_hook(self):
        """(Control: the same exchange without the hook works.)"""
        server = _TlsUpgradeServer(self)
        proxy = await start_proxy(self, confdir=self.mktemp(), ssl_insecure=True)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(
            b"GET https://127.0.0.1:%d/up HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            b"Connection: Upgrade\r\nUpgrade: foo\r\n\r\n" % (server.port, server.port)
        )
        data = await client.wait_for(lambda d: b"hello-from-server" in d, 4.0)
        self.assertIn(b"hello-from-server", data)


class SwitchUpstreamTests(_Base):
    """
    An HTTP/1.1 client (regular proxy, absolute-form https URLs) moving from
    an HTTP/1.1 TLS server to another server on the same connection.
    """

    async def _two(self, second_port, translate=True):
        first = await HttpsServer.start(self, TestCA.shared(), names=("127.0.0.1",))
        proxy = await self.proxy(ssl_insecure=True, http2_translate=translate)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET https://127.0.0.1:%d/hello HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                    % (first.port, first.port))
        (r1,) = await client.wait_responses(1, timeout=4.0)
        self.assertEqual(r1.status, 200)
        client.send(b"GET https://127.0.0.1:%d/two HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                    % (second_port, second_port))
        responses = await client.wait_responses(2, timeout=4.0)
        return responses[1]

    async def test_tls_http1_then_h2_server(self):
        """https to an HTTP/1.1 server, then https to an h2 server (http2_translate) on one client connection."""
        import interceptor.transport.flowcontrol as fc
        raised = []
        original = fc.AckValve.__init__

        def init(valve, transport):
            try:
                original(valve, transport)
            except RuntimeError as e:
                raised.append(e)  # (swallowed by the Deferred chain: nothing is logged)
                raise

        self.patch(fc.AckValve, "__init__", init)
        h2 = await self.h2_server(path_handler)
        try:
            r2 = await self._two(h2.port)
        finally:
            self.assertEqual(raised, [], "AckValve could not register on the client transport")
        self.assertEqual(r2.status, 200)

    async def test_control_tls_http1_then_tls_http1(self):
        """(Pre-existing, same cause: https to an HTTP/1.1 server, then https to another HTTP/1.1 server.)"""
        other = await HttpsServer.start(self, TestCA.shared(), names=("127.0.0.1",))
        r2 = await self._two(other.port, translate=False)
        self.assertEqual(r2.status, 404)



class TcpStartBeforeConnectTests(unittest.TestCase):
    timeout = 15

    async def test_async_kill_in_tcp_start_with_first_bytes(self):
        """A tunnel detected as raw TCP (its first bytes are not TLS/HTTP), tcp_start kills after a delay: the server must never be contacted."""
        connects = []
        started = []

        class SlowKill:
            def tcp_start(self, flow):
                d = Deferred()
                started.append((flow, d))
                return d

            def serverconnect(self, server_conn):
                connects.append(server_conn)

        proxy = await start_proxy(self, SlowKill())
        server = await TcpServer.start(self, "echo")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"\x00hello raw tcp")
        # tcp_start runs once those bytes have been seen; a proxy that does
        # not wait for it would connect now.
        self.assertTrue(await wait_until(lambda: started))
        await sleep(0.05)
        self.assertEqual(connects, [], "serverconnect fired before tcp_start was done")
        flow, d = started[0]
        flow.kill()
        d.callback(None)
        self.assertTrue(await wait_until(lambda: client.closed))
        await sleep(0.05)
        self.assertEqual(connects, [], "serverconnect fired for a flow killed in tcp_start")
        self.assertEqual(server.connections, [], "a flow killed in tcp_start still connected to the server")


    async def test_tcp_message_after_async_tcp_start(self):
        """Bytes that arrive while an async tcp_start runs: tcp_message fires after it, and they reach the server."""
        events = []
        started = []

        class Slow:
            def tcp_start(self, flow):
                events.append("tcp_start")
                d = Deferred()
                started.append(d)
                return d

            def tcp_message(self, flow):
                events.append("tcp_message")

        proxy = await start_proxy(self, Slow())
        server = await TcpServer.start(self, "echo")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"\x00hello raw tcp")
        self.assertTrue(await wait_until(lambda: started))
        await sleep(0.05)
        events.append("tcp_start done")
        started[0].callback(None)
        received = await client.wait_for(lambda data: b"hello raw tcp" in data, timeout=3)
        self.assertIn(b"hello raw tcp", received)
        self.assertEqual(events[:3], ["tcp_start", "tcp_start done", "tcp_message"])


class TlsUpstreamCloseTests(_Base):
    async def test_replaced_tls_upstream_is_closed(self):
        """The client's next request goes elsewhere: the proxy closes its first (TLS, HTTP/1.1) upstream connection."""
        first = await HttpsServer.start(self, TestCA.shared(), names=("127.0.0.1",))
        proxy = await self.proxy(ssl_insecure=True)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET https://127.0.0.1:%d/hello HTTP/1.1\r\nHost: x\r\n\r\n" % first.port)
        await client.wait_responses(1, timeout=4.0)
        # Next request to a plain-HTTP address: the TLS upstream is close()d.
        client.send(b"GET http://127.0.0.1:1/x HTTP/1.1\r\nHost: x\r\n\r\n")
        await wait_until(lambda: first.connections[0].closed)
        self.assertEqual([c.closed for c in first.connections], [True],
                         "close() on a paired TLS upstream never shuts it down")
