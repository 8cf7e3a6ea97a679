"""
read_timeout blames only the peer the proxy is waiting for.  A client
that stops reading a big response for longer than read_timeout holds the
server back, but the server is not silent: the exchange goes on when the
client reads again.  A server waiting for a slowly streamed upload is not
silent either, and a client whose upload the server does not take is not
the one timed out.

The peers are real; the proxy's timers run on a Clock the tests advance
once the transfer has stopped where the test holds it.
"""

from twisted.internet.task import Clock
from twisted.trial import unittest

from interceptor.testing import start_proxy
from tests.e2e.peers import RawClient, RawServer, WebServer, advance, pattern, stable, unsent, wait_until

BIG = 24 * 1024 * 1024


class Errors:
    """
    An addon recording the flows of C{error} events.
    """

    def __init__(self) -> None:
        self.flows = []

    def error(self, flow) -> None:
        self.flows.append(flow)

    def messages(self) -> list:
        """
        The error messages so far.
        """
        return [flow.error.msg for flow in self.flows]


def _post_head(url: str, length: int) -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (url.encode(), length)


class SlowReaderTests(unittest.TestCase):
    """
    A client pauses reading a 24 MiB response for 3 s; read_timeout is 1 s.
    """

    async def _pause_then_read(self, *addons, **options) -> None:
        errors = Errors()
        clock = Clock()
        proxy = await start_proxy(self, errors, *addons, read_timeout=1.0, clock=clock, **options)
        web = await WebServer.start(self)
        client = await RawClient.connect(self, proxy.port_number)
        client.transport.pauseProducing()
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % web.url(f"/bytes?n={BIG}").encode())
        # The proxy has filled the client's socket and holds the server back.
        self.assertTrue(await wait_until(lambda: web.connections and unsent(web.connections[0].transport)))
        await stable(lambda: unsent(web.connections[0].transport))
        await advance(clock, 3.0)
        self.assertEqual(errors.messages(), [])
        client.transport.resumeProducing()
        (response,) = await client.wait_responses(1, timeout=20)
        self.assertEqual(response.body, pattern(BIG))
        self.assertEqual(errors.messages(), [])

    async def test_relayed_body(self):
        """A body relayed socket to socket (stream_large_bodies) arrives whole."""
        await self._pause_then_read(stream_large_bodies="64k")

    async def test_transformed_body(self):
        """A body streamed through a chunk transform (Twisted's write path) arrives whole."""

        class Same:
            def responseheaders(self, flow):
                flow.response.stream = lambda chunk: chunk

        await self._pause_then_read(Same())


class SlowUploadTests(unittest.TestCase):
    """
    Streamed uploads with read_timeout at 1 s.
    """

    async def test_server_waits_for_slow_upload(self):
        """The client sends its body over 3 s in pieces 0.6 s apart: the server answers it."""
        errors = Errors()
        clock = Clock()
        proxy = await start_proxy(self, errors, read_timeout=1.0, stream_large_bodies="64k", clock=clock)
        web = await WebServer.start(self)
        client = await RawClient.connect(self, proxy.port_number)
        piece = b"x" * 100_000
        client.send(_post_head(web.url("/echo"), 5 * len(piece)))
        # The proxy sends the head on at once (the body is streamed).
        self.assertTrue(await wait_until(lambda: web.connections and web.connections[0].received))
        upstream = web.connections[0]
        head = upstream.received
        for i in range(5):
            client.send(piece)
            # The server has the piece: both sides now wait for the client.
            self.assertTrue(await wait_until(lambda: upstream.received == head + (i + 1) * len(piece)))
            await advance(clock, 0.6, 0.15)
        (response,) = await client.wait_responses(1, timeout=10)
        self.assertEqual(response.status, 200)
        self.assertEqual(errors.messages(), [])

    async def test_server_not_reading_upload(self):
        """A server that takes none of the body gets the timeout (504), not the client (408)."""
        errors = Errors()
        clock = Clock()
        proxy = await start_proxy(self, errors, read_timeout=1.0, stream_large_bodies="64k", clock=clock)
        stuck = await RawServer.start(
            self, lambda conn, request: None, on_connect=lambda conn: conn.transport.pauseProducing()
        )
        client = await RawClient.connect(self, proxy.port_number)
        total = 64 * 1024 * 1024
        piece = b"u" * (4 * 1024 * 1024)
        client.send(_post_head(stuck.url("/"), total))
        for _ in range(total // len(piece)):
            client.send(piece)
        # The server's socket is full, then the proxy's: the upload stops.
        await stable(lambda: unsent(client.transport))
        self.assertEqual(errors.flows, [])
        await advance(clock, 1.0)
        received = await client.wait_for(lambda data: b"\r\n\r\n" in data, timeout=10)
        self.assertTrue(received.startswith(b"HTTP/1.1 504 "), received[:200])
        self.assertEqual(len(errors.flows), 1)
        self.assertIn("read timeout", errors.flows[0].error.msg)
