"""
flow.copy() on live flows (HTTP over TLS, TCP, WebSocket), and bytes,
EOF and client loss while an async tcp_start runs.
"""

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial import unittest

from interceptor.testing import start_proxy
from tests.e2e.peers import RawClient, sleep, wait_until
from tests.e2e.tcppeers import TcpServer, connect_tunnel
from tests.e2e.tlspeers import HttpsServer, TestCA
from tests.e2e.test_http2 import _Base


class CopyLiveFlowTests(_Base):
    async def _go(self, hook, https):
        results = []

        class Copier:
            pass

        def do(flow):
            try:
                c = flow.copy()
                results.append(("ok", c.live, c.id != flow.id))
            except Exception as e:  # noqa
                results.append(("raised", repr(e)[:300]))

        setattr(Copier, hook, lambda self, flow: do(flow))
        if https:
            server = await HttpsServer.start(self, TestCA.shared(), names=("127.0.0.1",))
            url = b"https://127.0.0.1:%d/hello" % server.port
        else:
            server = await HttpsServer.start(self, TestCA.shared(), names=("127.0.0.1",))
            url = b"https://127.0.0.1:%d/hello" % server.port
        proxy = await start_proxy(self, Copier(), ssl_insecure=True)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET " + url + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        await client.wait_responses(1, timeout=4.0)
        return results

    async def test_copy_in_response_tls_upstream(self):
        results = await self._go("response", True)
        self.assertEqual(results, [("ok", False, True)])

    async def test_copy_in_request(self):
        results = await self._go("request", True)
        self.assertEqual(results, [("ok", False, True)])

    async def test_copy_tcp_flow_in_tcp_message(self):
        results = []

        class Copier:
            def tcp_message(self, flow):
                try:
                    flow.copy()
                    results.append("ok")
                except Exception as e:  # noqa
                    results.append(repr(e)[:300])

        proxy = await start_proxy(self, Copier())
        server = await TcpServer.start(self, "echo")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"\x00hello")
        await client.wait_for(lambda d: b"hello" in d, timeout=3)
        self.assertEqual(set(results), {"ok"})


class TcpStartReplayTests(unittest.TestCase):
    """
    A TCP tunnel whose tcp_start hook takes 0.3 s.
    """

    def _slow(self, events, delay=0.3):
        class Slow:
            def tcp_start(self, flow):
                events.append("tcp_start")
                d = Deferred()
                reactor.callLater(delay, lambda: (events.append("tcp_start done"), d.callback(None)))
                return d

            def tcp_message(self, flow):
                events.append("tcp_message")

            def tcp_end(self, flow):
                events.append("tcp_end")

            def tcp_error(self, flow):
                events.append("tcp_error")

        return Slow()

    async def _half_close_during_tcp_start(self, **options):
        proxy = await start_proxy(self, self._slow([]), **options)
        server = await TcpServer.start(self, "count")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"\x00" + b"x" * 999)
        client.shut_write()
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
        events = []
        proxy = await start_proxy(self, self._slow(events))
        server = await TcpServer.start(self, "echo")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"\x00hello")
        await sleep(0.05)
        client.transport.loseConnection()
        await sleep(0.8)
        # The flow's last event must be tcp_end/tcp_error, after tcp_start is done
        self.assertIn(events[-1], ("tcp_end", "tcp_error"), events)
        self.assertLess(events.index("tcp_start done"), events.index(events[-1]), events)


class CopyLiveWebSocketFlowTests(unittest.TestCase):
    async def test_copy_in_websocket_message(self):
        from tests.e2e.test_websocket import raw_setup
        results = []

        class Copier:
            def websocket_message(self, flow):
                try:
                    c = flow.copy()
                    results.append(("ok", c.websocket.live))
                except Exception as e:  # noqa
                    results.append(("raised", repr(e)[:300]))

        proxy, server, client, peer = await raw_setup(self, Copier())
        # a masked text frame "hi"
        client.send(b"\x81\x82\x00\x00\x00\x00hi")
        await wait_until(lambda: results, 3)
        # (One event per direction: the server echoes the message.)
        self.assertTrue(results)
        self.assertEqual(set(results), {("ok", False)})
