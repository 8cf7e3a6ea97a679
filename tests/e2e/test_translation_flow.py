"""
Translation between an HTTP/1.1 side and an HTTP/2 side keeps working for
streamed bodies and keeps backpressure: an HTTP/2 peer is paced through
its window by what the HTTP/1 side takes, so a slow reader or a server
that does not read never makes the proxy buffer a whole body.  An
HTTP/1.1 client connection can move from an HTTP/1.1 server to an h2 one.
Framing translated both ways: trailers, chunked uploads, HEAD, 1xx, 204 and
304, close-delimited bodies, GOAWAY and reconnects.
"""

import os

from twisted.internet.defer import DeferredList, ensureDeferred

from tests.e2e.h2peers import bounded, proxy_ca_path
from tests.e2e.peers import RawClient, RawServer, Recorder, curl, pattern, stable, wait_until
from tests.e2e.tlspeers import HttpsServer, TestCA
from tests.e2e.test_http2 import CURL_SKIP, _Base, path_handler

BIG = 64 * 1024 * 1024


def _big(size: int):
    def handler(stream):
        stream.respond(200, [(b"content-length", b"%d" % size)], b"b" * size)

    return handler


class Http1ClientToH2ServerTests(_Base):
    """
    curl --http1.1 through the proxy (http2_translate) to an h2-only server.
    """

    timeout = 30

    async def _curl(self, proxy, server, path, *extra):
        return await curl(
            self, "--http1.1", *extra, "-x", proxy.url, "--cacert", proxy_ca_path(proxy),
            f"https://127.0.0.1:{server.port}{path}", timeout=8,
        )

    async def _curl_two(self, proxy, server, first, second):
        """
        The bodies of two requests that one curl makes on one connection.
        """
        url = f"https://127.0.0.1:{server.port}"
        path = os.path.abspath(self.mktemp())
        result = await curl(
            self, "--http1.1", "-x", proxy.url, "--cacert", proxy_ca_path(proxy),
            url + first, "-o", path, url + second, timeout=8,
        )
        self.assertEqual(result.code, 0, result.stderr)
        with open(path, "rb") as f:
            return result.body, f.read()

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

    async def test_http1_client_h2_server_reconnect_after_goaway(self):
        """curl --http1.1 sends two requests on one tunnel; the h2-only server ends its connection after the first: the second gets a new h2 connection and a 200."""
        if CURL_SKIP:
            raise self.skipTest(CURL_SKIP)

        def handler(stream):
            path_handler(stream)
            if stream.path == b"/one":
                stream.protocol.goaway(last_stream_id=stream.stream_id)
                stream.protocol.transport.loseConnection()

        proxy = await self.proxy(http2_translate=True)
        server = await self.h2_server(handler)
        first, second = await self._curl_two(proxy, server, "/one", "/two")
        self.assertEqual((first, second), (b"/one 0", b"/two 0"))
        self.assertEqual([c.negotiated for c in server.connections], [b"h2", b"h2"])

    async def test_http1_client_h2_server_bodiless(self):
        """HTTP/1.1 client to an h2 server: HEAD (with Content-Length), 204 and 304 responses on one keep-alive connection, then a GET."""
        if CURL_SKIP:
            raise self.skipTest(CURL_SKIP)

        def handler(stream):
            path = stream.path
            if path == b"/204":
                stream.respond(204, [])
            elif path == b"/304":
                stream.respond(304, [(b"etag", b'"x"')])
            elif stream.header(b":method") == b"HEAD":
                stream.respond(200, [(b"content-length", b"1000")])
            else:
                path_handler(stream)

        recorder = Recorder()
        proxy = await self.proxy(recorder, http2_translate=True)
        server = await self.h2_server(handler)
        url = f"https://127.0.0.1:{server.port}"
        outs = [os.path.abspath(self.mktemp()) for _ in range(3)]
        result = await curl(
            self, "--http1.1", "-x", proxy.url, "--cacert", proxy_ca_path(proxy),
            "-I", url + "/head",
            timeout=8,
        )
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.status, 200)
        self.assertEqual(result.heads[-1].header(b"content-length"), b"1000")
        result = await curl(
            self, "--http1.1", "-x", proxy.url, "--cacert", proxy_ca_path(proxy),
            url + "/204", "-o", outs[0], url + "/304", "-o", outs[1], url + "/after",
            timeout=8,
        )
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual([h.status for h in result.heads][-3:], [204, 304, 200])
        with open(outs[1], "rb") as f:
            self.assertEqual(f.read(), b"/after 0")
        self.assertEqual(len(server.connections), 2)

    async def test_http1_client_h2_server_response_trailers(self):
        """HTTP/1.1 client to an h2 server sending trailers: the body arrives intact and the connection stays usable."""
        if CURL_SKIP:
            raise self.skipTest(CURL_SKIP)

        def handler(stream):
            stream.respond(200, [], b"trailed", trailers=[(b"x-sum", b"1")])

        proxy = await self.proxy(http2_translate=True)
        server = await self.h2_server(handler)
        first, second = await self._curl_two(proxy, server, "/a", "/b")
        self.assertEqual((first, second), (b"trailed", b"trailed"))

    async def test_http1_client_chunked_upload_to_h2(self):
        """curl --http1.1 chunked upload to an h2-only server: the server gets the whole body, no transfer-encoding header."""
        if CURL_SKIP:
            raise self.skipTest(CURL_SKIP)
        body = pattern(200_000)
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(body)
        proxy = await self.proxy(http2_translate=True)
        server = await self.h2_server(path_handler)
        result = await curl(
            self, "--http1.1", "-x", proxy.url, "--cacert", proxy_ca_path(proxy),
            "-H", "Transfer-Encoding: chunked", "--data-binary", "@" + path,
            f"https://127.0.0.1:{server.port}/chunked", timeout=8,
        )
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual((result.status, result.body), (200, b"/chunked %d" % len(body)))
        [stream] = server.streams
        self.assertIsNone(stream.header(b"transfer-encoding"))
        self.assertTrue(bytes(stream.body) == body)

    async def test_http1_client_h2_server_streamed_download(self):
        """HTTP/1.1 client, h2 server, a 2 MB streamed response with stream_large_bodies: intact."""
        if CURL_SKIP:
            raise self.skipTest(CURL_SKIP)
        size = 2_000_000

        def handler(stream):
            stream.respond(200, [(b"content-length", b"%d" % size)], pattern(size))

        proxy = await self.proxy(http2_translate=True, stream_large_bodies="100k")
        server = await self.h2_server(handler)
        result = await curl(
            self, "--http1.1", "-x", proxy.url, "--cacert", proxy_ca_path(proxy),
            f"https://127.0.0.1:{server.port}/dl", timeout=8,
        )
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.status, 200)
        self.assertTrue(result.body == pattern(size))


class H2ClientToHttp1ServerTests(_Base):
    """
    An h2 client whose stream an addon re-targets to a plain HTTP/1.1 server.
    """

    timeout = 30

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

    async def _retargeted_h2_client(self, raw_handler, recorder=None):
        raw = await RawServer.start(self, raw_handler)

        class Retarget:
            def request(self, flow):
                flow.request.scheme = "http"
                flow.request.port = raw.port

        addons = [Retarget()] + ([recorder] if recorder is not None else [])
        proxy = await self.proxy(*addons)
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        return raw, client

    async def test_h2_client_http1_server_head(self):
        """h2 HEAD translated to an HTTP/1.1 server answering with Content-Length and no body: 200, no body, stream ends."""
        def answer(conn, request):
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")

        raw, client = await self._retargeted_h2_client(answer)
        r = await bounded(client.request("HEAD", "/h").done)
        self.assertEqual((r.status, bytes(r.body)), (200, b""))
        self.assertEqual(r.header(b"content-length"), b"1234")

    async def test_h2_client_http1_server_304_and_204(self):
        """h2 client, HTTP/1.1 server answering 304 (with Content-Length) and 204: both end cleanly without a body."""
        def answer(conn, request):
            if request.target == b"/304":
                conn.write(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\nETag: \"e\"\r\n\r\n")
            else:
                conn.write(b"HTTP/1.1 204 No Content\r\n\r\n")

        raw, client = await self._retargeted_h2_client(answer)
        a = client.request("GET", "/304")
        b = client.request("GET", "/204")
        await bounded(DeferredList([a.done, b.done]))
        self.assertEqual((a.status, bytes(a.body)), (304, b""))
        self.assertEqual((b.status, bytes(b.body)), (204, b""))
        self.assertIsNone(client.protocol_error)

    async def test_h2_client_http1_server_100_continue_then_200(self):
        """An HTTP/1.1 server sending 100 Continue then 200 to a translated h2 stream: the client gets the 200 and body."""
        def answer(conn, request):
            conn.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes")

        recorder = Recorder()
        raw, client = await self._retargeted_h2_client(answer, recorder)
        r = await bounded(client.request("POST", "/c", body=b"data").done)
        self.assertEqual((r.status, bytes(r.body)), (200, b"yes"))
        [flow] = recorder.flows()
        self.assert_events(recorder, [flow])

    async def test_h2_client_http1_server_close_delimited(self):
        """An HTTP/1.1 server with a close-delimited body to a translated h2 stream: whole body, stream ended, response event once."""
        def answer(conn, request):
            conn.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"c" * 70_000)
            conn.close()

        recorder = Recorder()
        raw, client = await self._retargeted_h2_client(answer, recorder)
        r = await bounded(client.request("GET", "/close").done)
        self.assertEqual((r.status, len(r.body)), (200, 70_000))
        self.assertIsNone(r.reset_code)
        self.assertTrue(await wait_until(lambda: recorder.count("response") == 1))
        [flow] = recorder.flows()
        self.assert_events(recorder, [flow])

    async def test_h2_client_http1_server_chunked_trailers(self):
        """An HTTP/1.1 chunked response with trailers to a translated h2 stream: body intact."""
        def answer(conn, request):
            conn.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-t\r\n\r\n"
                       b"5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n")

        raw, client = await self._retargeted_h2_client(answer)
        r = await bounded(client.request("GET", "/ct").done)
        self.assertEqual((r.status, bytes(r.body)), (200, b"hello"))
        self.assertNotIn(b"transfer-encoding", r.header_names())


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
