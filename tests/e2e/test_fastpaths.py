# -*- test-case-name: tests.e2e.test_fastpaths -*-
"""
End to end with the fast paths switched off by a proxy's option
C{fast_paths=false}: an intercepted HTTPS exchange runs on Twisted's own
TLS factory and protocol on both sides; with the option on (the default)
the same exchange runs on L{FastTLSProtocol}s.
"""

from __future__ import annotations

from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol

from interceptor.transport import connect, fast
from interceptor.transport.fast.fasttls import FastTLSProtocol
from tests.e2e.peers import curl
from tests.e2e.test_tls import TlsTestCase, responses
from tests.e2e.tlspeers import HttpsServer

ENVIRONMENT_OFF = (
    None if fast.from_environment() else "the fast paths are off in this process (INTERCEPTOR_FAST_PATHS=0)"
)


class _Seen:
    """
    An addon noting, at each request, the client side's TLS protocol of
    every connection to the proxy.
    """

    def __init__(self) -> None:
        self.proxy = None
        self.client_tls: list = []

    def request(self, flow) -> None:
        for root in self.proxy.master.factories[0].connections:
            tls = getattr(root.layer, "tls", None)
            if tls is not None:
                self.client_tls.append(tls)


class TlsProtocolTests(TlsTestCase):
    """
    Which TLS protocol an intercepted HTTPS exchange runs on.
    """

    async def _exchange(self, **options) -> tuple:
        seen = _Seen()
        upstream_factories: list = []
        original = connect.tls_factory

        def recording(*args):
            factory = original(*args)
            upstream_factories.append(factory)
            return factory

        self.patch(connect, "tls_factory", recording)
        seen.proxy = proxy = await self.proxy(seen, **options)
        server = await HttpsServer.start(self, self.ca)
        result = await curl(self, "-x", proxy.url, "--cacert", self.proxy_ca,
                            server.url("/hello"), server.url("/echo"))
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual([h.status for h in responses(result)], [200, 200])
        self.assertEqual(len(seen.client_tls), 2)
        self.assertEqual(len(upstream_factories), 1)
        return seen.client_tls, upstream_factories[0]

    async def test_off(self) -> None:
        """fast_paths=false: Twisted's own TLS factory and protocol toward the server and the client."""
        client_tls, upstream = await self._exchange(fast_paths=False)
        for tls in client_tls:
            self.assertIsInstance(tls, TLSMemoryBIOProtocol)
            self.assertNotIsInstance(tls, FastTLSProtocol)
        self.assertIs(type(upstream), TLSMemoryBIOFactory)
        self.assertFalse(issubclass(upstream.protocol, FastTLSProtocol))
        self.assertFalse(fast.enabled())

    async def test_on(self) -> None:
        """By default: FastTLSProtocols on both sides."""
        if ENVIRONMENT_OFF:
            raise self.skipTest(ENVIRONMENT_OFF)
        client_tls, upstream = await self._exchange()
        for tls in client_tls:
            self.assertIsInstance(tls, FastTLSProtocol)
        self.assertTrue(issubclass(upstream.protocol, FastTLSProtocol))
        self.assertTrue(fast.enabled())
