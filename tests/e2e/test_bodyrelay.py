"""
Streamed bodies relayed unchanged between plain TCP sockets go socket to
socket through a L{BodyRelay}: the bytes arrive whole and in order,
keep-alive goes on after them, a slow reader is not buffered for, and a
transform still sees every byte (no direct relay then).
"""

from twisted.trial import unittest

from interceptor.transport import fast
from interceptor.transport.fast import bodyrelay
from interceptor.testing import start_proxy
from tests.e2e.peers import RawClient, WebServer, curl, pattern, stable, wait_until

SIZE = 3 * 1024 * 1024

ENVIRONMENT_OFF = (
    None if fast.from_environment() else "the fast paths are off in this process (INTERCEPTOR_FAST_PATHS=0)"
)


class _Counting:
    """
    Counts the BodyRelay objects started during a test.
    """

    def __init__(self, testcase: unittest.TestCase) -> None:
        self.started = 0
        original = bodyrelay.BodyRelay.start

        def start(relay: bodyrelay.BodyRelay) -> None:
            self.started += 1
            original(relay)

        testcase.patch(bodyrelay.BodyRelay, "start", start)


class BodyRelayTests(unittest.TestCase):
    """
    End-to-end: curl and a raw client through the proxy to a twisted.web server.
    """

    async def test_large_streamed_body_is_relayed_whole(self):
        """A 3 MiB streamed response is moved by a BodyRelay and arrives byte for byte."""
        if ENVIRONMENT_OFF:
            raise unittest.SkipTest(ENVIRONMENT_OFF)
        counting = _Counting(self)
        proxy = await start_proxy(self, stream_large_bodies="64k", read_timeout=5.0)
        web = await WebServer.start(self)
        result = await curl(self, "-x", proxy.url, web.url(f"/bytes?n={SIZE}"), timeout=10)
        self.assertEqual(result.status, 200)
        self.assertEqual(result.body, pattern(SIZE))
        self.assertEqual(counting.started, 1)

    async def test_fast_paths_off(self):
        """With fast_paths=false the same body arrives whole through Twisted's reads: no BodyRelay."""
        counting = _Counting(self)
        proxy = await start_proxy(self, stream_large_bodies="64k", read_timeout=5.0, fast_paths=False)
        web = await WebServer.start(self)
        result = await curl(self, "-x", proxy.url, web.url(f"/bytes?n={SIZE}"), timeout=10)
        self.assertEqual(result.status, 200)
        self.assertEqual(result.body, pattern(SIZE))
        self.assertEqual(counting.started, 0)

    async def test_keep_alive_after_relay(self):
        """After a relayed body the same client connection carries another request."""
        proxy = await start_proxy(self, stream_large_bodies="64k", read_timeout=5.0)
        web = await WebServer.start(self)
        client = await RawClient.connect(self, proxy.port_number)
        for n in (SIZE, 100):
            client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % web.url(f"/bytes?n={n}").encode())
        first, second = await client.wait_responses(2, timeout=10)
        self.assertEqual(first.body, pattern(SIZE))
        self.assertEqual(second.body, pattern(100))

    async def test_slow_reader_is_not_buffered(self):
        """A client that does not read holds the upstream back: the proxy's own buffers stay small."""
        if ENVIRONMENT_OFF:
            raise unittest.SkipTest(ENVIRONMENT_OFF)
        proxy = await start_proxy(self, stream_large_bodies="64k", read_timeout=5.0)
        web = await WebServer.start(self)
        big = 32 * 1024 * 1024
        client = await RawClient.connect(self, proxy.port_number)
        client.transport.pauseProducing()
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % web.url(f"/bytes?n={big}").encode())
        (layer_owner,) = list(proxy.master.factories[0].connections)
        self.assertTrue(await wait_until(lambda: layer_owner.layer.upstream is not None))
        upstream = layer_owner.layer.upstream
        self.assertTrue(await wait_until(lambda: upstream._counted_body.relay is not None),
                        "the body is not being relayed directly")
        relay = upstream._counted_body.relay
        # The transfer stops where the client holds it back.
        await stable(lambda: relay.left)
        # Far less than the body has left the server: the kernel buffers and
        # the relay's one buffer hold what the client has not read.
        self.assertGreater(relay.left, big // 2)
        client.transport.resumeProducing()
        received = await client.wait_for(lambda data: len(data) > big, timeout=20)
        self.assertTrue(received.endswith(pattern(big)[-1000:]))

    async def test_transform_bypasses_direct_relay(self):
        """A chunk-transforming stream sees every byte: no BodyRelay is used."""
        counting = _Counting(self)

        class Upper:
            def responseheaders(self, flow):
                flow.response.stream = bytes.upper

        proxy = await start_proxy(self, Upper(), read_timeout=5.0)
        web = await WebServer.start(self)
        result = await curl(self, "-x", proxy.url, web.url(f"/bytes?n={SIZE}"), timeout=10)
        self.assertEqual(result.body, pattern(SIZE).upper())
        self.assertEqual(counting.started, 0)
