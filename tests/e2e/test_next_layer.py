# -*- test-case-name: tests.e2e.test_next_layer -*-
"""
End-to-end tests of the C{next_layer} event (issue #7, point 2): the
proxy asks before each layer switch, with its candidate, and uses the
layer an addon returns (or sets as C{layer.layer}).
"""

from __future__ import annotations

import json

from twisted.trial import unittest

from interceptor.layers.http1 import Http1Layer
from interceptor.layers.relay import RelayLayer
from interceptor.layers.tcp import TcpLayer
from interceptor.layers.tls import TlsLayer
from interceptor.testing import start_proxy
from tests.e2e.peers import Recorder, WebServer, curl, wait_until
from tests.e2e.tcppeers import TcpServer, connect_tunnel
from tests.e2e.test_tcp import TcpEvents
from tests.e2e.tlspeers import HttpsServer, TestCA


class Candidates:
    """
    Records the candidate layer types.
    """

    def __init__(self) -> None:
        self.types: list[type] = []

    def next_layer(self, layer):
        self.types.append(type(layer))


class NextLayerTests(unittest.TestCase):
    """
    next_layer fires with the proxy's candidate; an addon's choice wins.
    """

    timeout = 20

    async def test_candidates_in_order(self):
        """A CONNECT tunnel carrying HTTP: next_layer sees Http1Layer for the connection, then Http1Layer for the tunnel."""
        candidates = Candidates()
        proxy = await start_proxy(self, candidates)
        web = await WebServer.start(self)
        result = await curl(self, "-x", proxy.url, "--proxytunnel", web.url("/echo"))
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)
        self.assertEqual(candidates.types, [Http1Layer, Http1Layer])

    async def test_return_tcp_layer_for_http_tunnel(self):
        """An addon returning TcpLayer makes an HTTP tunnel a raw TCP relay: tcp events, no HTTP events."""
        events = TcpEvents()
        recorder = Recorder()

        class ForceTcp:
            def next_layer(self, layer):
                if isinstance(layer, Http1Layer) and layer.target is not None:
                    return TcpLayer(layer.root, layer.root.tunnel_address)
                return None

        proxy = await start_proxy(self, ForceTcp(), events, recorder)
        web = await WebServer.start(self)
        result = await curl(self, "-x", proxy.url, "--proxytunnel", web.url("/echo"))
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)
        self.assertEqual(json.loads(result.body)["uri"], "/echo")
        self.assertEqual(recorder.count("request"), 0)
        self.assertTrue(await wait_until(lambda: "tcp_end" in events.events or "tcp_error" in events.events))
        self.assertTrue(events.seen[0][1].startswith(b"GET /echo HTTP/1.1"))

    async def test_set_layer_attribute(self):
        """Setting layer.layer instead of returning works the same (here: TcpLayer for a tunnel with undetected bytes stays TcpLayer)."""
        chosen = []

        class SetIt:
            def next_layer(self, layer):
                if isinstance(layer, TcpLayer):
                    layer.layer = RelayLayer(layer.root, layer.address)
                    chosen.append(layer.layer)

        proxy = await start_proxy(self, SetIt())
        server = await TcpServer.start(self, "echo")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"\x01raw")
        await client.wait_for(lambda d: d == b"\x01raw")
        [root] = list(proxy.master.factories[0].connections)
        self.assertIs(root.layer, chosen[0])

    async def test_skip_tls_interception(self):
        """An addon replacing TlsLayer by RelayLayer passes TLS through: the client sees the server's own certificate."""
        ca = TestCA.shared()
        server = await HttpsServer.start(self, ca)
        candidates = Candidates()

        class SkipTls:
            def next_layer(self, layer):
                if isinstance(layer, TlsLayer):
                    return RelayLayer(layer.root, layer.address)
                return None

        proxy = await start_proxy(self, candidates, SkipTls(), confdir=self.mktemp())
        result = await curl(
            self, "-x", proxy.url, "--cacert", ca.cert_path(self), server.url("/hello", "127.0.0.1")
        )
        self.assertEqual((result.code, result.status, result.body), (0, 200, b"hello world"), result.stderr)
        self.assertEqual(candidates.types, [Http1Layer, TlsLayer])

    async def test_async_hook_choice(self):
        """A next_layer hook answering through a Deferred holds the bytes until it decides."""
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        class Later:
            def next_layer(self, layer):
                if isinstance(layer, TcpLayer):
                    return deferLater(reactor, 0.2, lambda: RelayLayer(layer.root, layer.address))
                return None

        proxy = await start_proxy(self, Later(), tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "echo")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"early")
        await client.wait_for(lambda d: d == b"early")
        [root] = list(proxy.master.factories[0].connections)
        self.assertIsInstance(root.layer, RelayLayer)
