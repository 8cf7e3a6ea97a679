"""
Translation between an HTTP/1.1 side and an HTTP/2 side keeps working for
streamed bodies and keeps backpressure: an HTTP/2 peer is paced through
its window by what the HTTP/1 side takes, so a slow reader or a server
that does not read never makes the proxy buffer a whole body.  An
HTTP/1.1 client connection can move from an HTTP/1.1 server to an h2 one.
"""

from twisted.internet.defer import ensureDeferred

from tests.e2e.h2peers import proxy_ca_path
from tests.e2e.peers import RawClient, RawServer, curl, stable, wait_until
from tests.e2e.tlspeers import HttpsServer, TestCA
from tests.e2e.test_http2 import _Base, path_handler

BIG = 64 * 1024 * 1024


def _big(size: int):
    def handler(stream):
        stream.respond(200, [(b"content-length", b"%d" % size)], b"b" * size)

    return handler


class Http1ClientToH2ServerTests(_Base):
    """
    curl --http1.1 through the proxy (http2_translate) to an h2-only server.
    """

    async def _curl(self, proxy, server, path, *extra):
        return await curl(
            self, "--http1.1", *extra, "-x", proxy.url, "--cacert", proxy_ca_path(proxy),
            f"https://127.0.0.1:{server.port}{path}", timeout=8,
        )

    async def test_streamed_response(self):
        """An 8 MiB response over stream_large_bodies arrives whole over HTTP/1.1."""
        proxy = await self.proxy(http2_translate=True, stream_large_bodies="64k")
        server = await self.h2_server(_big(8 << 20))
        result = await self._curl(proxy, server, "/big")
        self.assertEqual((result.code, result.status, len(result.body)), (0, 200, 8 << 20))

    async def test_connection_close(self):
        """A request with Connection: close is answered and the connection closed cleanly."""
        proxy = await self.proxy(http2_translate=True)
        server = await self.h2_server(path_handler)
        result = await self._curl(proxy, server, "/c", "-H", "Connection: close")
        self.assertEqual((result.code, result.status, result.body), (0, 200, b"/c 0"))

    async def test_slow_reader_paces_server(self):
        """A client reading 200 KB/s for 2 s: the server sends no more than windows and buffers allow."""
        proxy = await self.proxy(http2_translate=True, stream_large_bodies="64k")
        server = await self.h2_server(_big(BIG))
        await self._curl(proxy, server, "/big", "--limit-rate", "200k", "--max-time", "2")
        self.assertLess(server.streams[0].sent, 16 << 20)

    async def test_upload_to_server_not_reading(self):
        """A streamed upload to a server that opens no window: the proxy holds about one window of it."""
        proxy = await self.proxy(http2_translate=True, stream_large_bodies="64k", read_timeout=10.0)
        server = await self.h2_server(path_handler, auto_ack=False)
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"u" * BIG)
        upload = ensureDeferred(self._curl(proxy, server, "/up", "--max-time", "5", "--data-binary", "@" + path))
        self.assertTrue(await wait_until(lambda: server.streams, 5.0))
        (root,) = list(proxy.master.factories[0].connections)
        upstream = root.layer.inner.upstream

        def pending():
            return [up.out.size for up in upstream.streams.values()]

        # The upload stops where the windows and buffers hold it.
        await stable(pending)
        self.assertEqual(len(pending()), 1)
        self.assertLess(pending()[0], 4 << 20)
        await proxy.stop()
        await upload


class H2ClientToHttp1ServerTests(_Base):
    """
    An h2 client whose stream an addon re-targets to a plain HTTP/1.1 server.
    """

    async def test_upload_to_server_not_reading(self):
        """The client's window stays closed while the HTTP/1.1 server reads nothing: it cannot send it all."""
        stuck = await RawServer.start(
            self, lambda conn, request: None, on_connect=lambda conn: conn.transport.pauseProducing()
        )

        class Retarget:
            def requestheaders(self, flow):
                flow.request.scheme = "http"
                flow.request.port = stuck.port

        proxy = await self.proxy(Retarget(), stream_large_bodies="64k", read_timeout=10.0)
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        upload = client.request("POST", "/up", headers=[(b"content-length", b"%d" % BIG)], body=b"u" * BIG)
        self.assertTrue(await wait_until(lambda: stuck.connections))
        # The upload stops where the windows and buffers hold it.
        self.assertLess(await stable(lambda: client.sent[upload.stream_id]), 32 << 20)


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
