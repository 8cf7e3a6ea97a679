# -*- test-case-name: tests.e2e.test_http1_faults -*-
"""
End-to-end tests of faults and bad input (issue #3, point 5): malformed
client bytes, silent clients, and upstreams that refuse, reset, send
garbage or stay silent.  Every fault ends with a clear status (or a closed
connection), never a hang, and is followed by a normal request that
succeeds.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial import unittest

from interceptor.testing import start_proxy
from tests.e2e.peers import (
    RawClient,
    RawServer,
    Recorder,
    curl,
    http_response,
    ok_handler,
    advance,
    parse_responses,
    pattern,
    read_by_peer,
    sleep,
    unused_port,
    wait_until,
)


class _Base(unittest.TestCase):
    timeout = 20

    async def start(self, **options):
        """
        A proxy with a Recorder, and a well-behaved server for follow-ups;
        its timers run on C{self.clock}.
        """
        self.recorder = Recorder()
        self.clock = Clock()
        options.setdefault("read_timeout", 1.0)
        options.setdefault("connect_timeout", 2.0)
        self.proxy = await start_proxy(self, self.recorder, clock=self.clock, **options)
        self.good = await RawServer.start(self, ok_handler)
        return self.proxy

    async def send_raw(self, data: bytes, timeout: float = 3.0, then=None) -> tuple:
        """
        Send C{data} on a new connection and wait for the proxy to close it
        (after C{await then(client)}, if given).

        @return: (the responses, the raw bytes).
        """
        client = await RawClient.connect(self, self.proxy.port_number)
        client.send(data)
        if then is not None:
            await then(client)
        received = await client.wait_closed(timeout)
        return parse_responses(received), received

    async def silent_client(self, client) -> None:
        """
        Once the proxy has read all the client sent, a second less than
        read_timeout passes without a word; then the rest of it.
        """
        self.assertTrue(await wait_until(lambda: read_by_peer(client.transport)))
        await advance(self.clock, 0.75)
        self.assertEqual((client.received, self.recorder.count("error")), (bytearray(), 0))
        await advance(self.clock, 0.25)

    async def assert_still_serving(self) -> None:
        """
        A normal request through the proxy still succeeds.
        """
        result = await curl(self, "-x", self.proxy.url, self.good.url("/after"), timeout=5)
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual((result.status, result.body), (200, b"ok"))

    def assert_no_traceback(self, data: bytes) -> None:
        """
        Nothing the client got looks like a Python traceback.
        """
        self.assertNotIn(b"Traceback", data)
        self.assertNotIn(b'File "', data)


class MalformedClientInputTests(_Base):
    """
    Malformed requests get a 4xx and a closed connection.
    """

    async def _rejected(self, data: bytes, status: int = 400) -> bytes:
        await self.start()
        responses, raw = await self.send_raw(data)
        self.assertEqual([r.status for r in responses], [status], raw)
        self.assertEqual(responses[0].header(b"connection"), b"close")
        self.assert_no_traceback(raw)
        self.assertEqual(self.good.connections, [])
        await self.assert_still_serving()
        return responses[0].body

    async def test_malformed_request_line(self):
        """A request line that is not HTTP gets 400 and the connection closes."""
        await self._rejected(b"THIS IS NOT HTTP\r\n\r\n")

    async def test_request_line_missing_version(self):
        """A request line without an HTTP version gets 400 and the connection closes."""
        await self._rejected(b"GET http://127.0.0.1:1/\r\nHost: x\r\n\r\n")

    async def test_binary_garbage(self):
        """Binary garbage instead of a request gets 400 and the connection closes."""
        await self._rejected(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(64)) + b"\r\n\r\n")

    async def test_bad_header_line(self):
        """A header line without a colon gets 400 and the connection closes."""
        await self._rejected(b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")

    async def test_space_before_colon(self):
        """A header name followed by whitespace before the colon gets 400 (RFC 9112 5.1)."""
        await self._rejected(b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost : x\r\n\r\n")

    async def test_conflicting_content_length_and_transfer_encoding(self):
        """A request with both Content-Length and chunked Transfer-Encoding gets 400 and the connection closes."""
        await self.start()
        responses, raw = await self.send_raw(
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n" % self.good.url("/").encode()
        )
        self.assertEqual([r.status for r in responses], [400], raw)
        self.assertEqual(self.good.requests, [])
        await self.assert_still_serving()

    async def test_duplicate_different_content_length(self):
        """A request with two different Content-Length values gets 400 and the connection closes."""
        await self.start()
        responses, raw = await self.send_raw(
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
            % self.good.url("/").encode()
        )
        self.assertEqual([r.status for r in responses], [400], raw)
        self.assertEqual(self.good.requests, [])
        await self.assert_still_serving()

    async def test_invalid_content_length(self):
        """A non-numeric Content-Length gets 400 and the connection closes."""
        await self._rejected(b"POST http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")

    async def test_oversized_header_block(self):
        """A header block over max_header_size gets 431 and the connection closes."""
        await self.start(max_header_size=4096)
        data = (
            b"GET %s HTTP/1.1\r\nHost: x\r\n" % self.good.url("/").encode()
            + b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 100) for i in range(80))
            + b"\r\n"
        )
        responses, raw = await self.send_raw(data)
        self.assertEqual([r.status for r in responses], [431], raw)
        self.assertEqual(self.good.requests, [])
        await self.assert_still_serving()

    async def test_oversized_header_block_in_small_writes(self):
        """A header block over max_header_size sent in small writes spread over time gets 431."""
        await self.start(max_header_size=4096)
        client = await RawClient.connect(self, self.proxy.port_number)
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n" % self.good.url("/").encode())
        for i in range(12):
            if client.closed:
                break
            client.send(b"".join(b"X-Filler-%d-%d: %s\r\n" % (i, j, b"a" * 100) for j in range(5)))
            await sleep(0.02)
        if not client.closed:
            client.send(b"\r\n")
        raw = await client.wait_closed(3)
        self.assertEqual([r.status for r in parse_responses(raw)], [431], raw)
        await self.assert_still_serving()

    async def test_origin_form_rejected(self):
        """An origin-form request gets a 400 that explains absolute-form is expected."""
        body = await self._rejected(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        self.assertIn(b"absolute-form", body)

    async def test_bad_request_after_good_one(self):
        """A malformed request pipelined after a good one: the good one is answered, then a 400, then close."""
        await self.start()
        responses, raw = await self.send_raw(
            b"GET %s HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP AT ALL\r\n\r\n" % self.good.url("/").encode()
        )
        self.assertEqual([r.status for r in responses], [200, 400], raw)


class SilentClientTests(_Base):
    """
    A client that stops sending mid-request gets 408 after read_timeout.
    """

    async def test_silent_in_head(self):
        """A client silent in the middle of its request head gets 408 and the connection closes."""
        await self.start(read_timeout=1.0)
        responses, raw = await self.send_raw(
            b"GET %s HTTP/1.1\r\nHost: x\r\n" % self.good.url("/").encode(), then=self.silent_client
        )
        self.assertEqual([r.status for r in responses], [408], raw)
        self.assertEqual(self.good.requests, [])
        await self.assert_still_serving()

    async def test_silent_in_body(self):
        """A client silent in the middle of its request body gets 408 and the connection closes."""
        await self.start(read_timeout=1.0)
        responses, raw = await self.send_raw(
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a part"
            % self.good.url("/").encode(),
            then=self.silent_client,
        )
        self.assertEqual([r.status for r in responses], [408], raw)
        self.assertEqual(self.good.requests, [])
        await self.assert_still_serving()

    async def test_idle_keep_alive_connection_closed(self):
        """An idle keep-alive client connection is closed after idle_timeout without any response."""
        await self.start(idle_timeout=1.0)
        client = await RawClient.connect(self, self.proxy.port_number)
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.good.url("/").encode())
        await client.wait_responses(1)
        await advance(self.clock, 0.75)
        self.assertFalse(client.closed)
        await advance(self.clock, 0.25)
        raw = await client.wait_closed()
        self.assertEqual([r.status for r in parse_responses(raw)], [200])

    async def test_client_disconnects_mid_request(self):
        """A client closing in the middle of its body fires error and the proxy keeps serving."""
        await self.start()
        client = await RawClient.connect(self, self.proxy.port_number)
        client.send(
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npart"
            % self.good.url("/").encode()
        )
        self.assertTrue(await wait_until(lambda: self.recorder.count("requestheaders") == 1, 2))
        client.transport.loseConnection()
        self.assertTrue(await wait_until(lambda: self.recorder.count("error") == 1, 2))
        await self.assert_still_serving()


class UpstreamFaultTests(_Base):
    """
    Upstream failures give the client a 502/504 saying why and fire error.
    """

    async def _fault(self, handler, status: int, words: tuple, silent=None, **options) -> bytes:
        """
        Send a request for C{handler} to answer; C{await silent()}, if
        given, once the request has been sent on.
        """
        await self.start(**options)
        bad = await RawServer.start(self, handler)

        async def then(client):
            if silent is not None:
                self.assertTrue(await wait_until(lambda: bad.requests))
                await silent()

        responses, raw = await self.send_raw(
            b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % bad.url("/fault").encode(), timeout=5, then=then
        )
        self.assertEqual([r.status for r in responses], [status], raw)
        body = responses[0].body
        for word in words:
            self.assertIn(word, body.lower())
        self.assert_no_traceback(raw)
        [flow] = self.recorder.flows()
        self.assertEqual(self.recorder.flow_events(flow)[-1], "error")
        self.assertTrue(flow.error.msg)
        self.assertIn(flow.error.msg.encode(), body)
        await self.assert_still_serving()
        return body

    async def test_refused(self):
        """An upstream that refuses the connection gives 502 naming the address."""
        await self.start()
        port = await unused_port()
        responses, raw = await self.send_raw(
            b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n\r\n" % port
        )
        self.assertEqual([r.status for r in responses], [502], raw)
        self.assertIn(b"127.0.0.1:%d" % port, responses[0].body)
        self.assertEqual(self.recorder.count("error"), 1)
        await self.assert_still_serving()

    async def test_reset_before_response(self):
        """An upstream resetting the connection before responding gives 502."""
        await self._fault(lambda c, r: c.abort(), 502, (b"closed",))

    async def test_close_before_response(self):
        """An upstream closing the connection before responding gives 502."""
        await self._fault(lambda c, r: c.close(), 502, (b"closed",))

    async def test_reset_mid_body(self):
        """An upstream resetting in the middle of a Content-Length body gives 502."""

        def handler(conn, request):
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + pattern(100))
            reactor.callLater(0.1, conn.abort)

        await self._fault(handler, 502, (b"closed",))

    async def test_reset_mid_chunked_body(self):
        """An upstream resetting in the middle of a chunked body gives 502."""

        def handler(conn, request):
            conn.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            reactor.callLater(0.1, conn.abort)

        await self._fault(handler, 502, (b"closed",))

    async def test_garbage_response(self):
        """An upstream answering with garbage gives 502 saying the response was invalid."""
        await self._fault(
            lambda c, r: c.write(b"SSH-2.0-OpenSSH_9.0\r\nthis is not http\r\n\r\n"),
            502, (b"invalid",),
        )

    async def test_garbage_status_code(self):
        """An upstream answering with a non-numeric status gives 502."""
        await self._fault(
            lambda c, r: c.write(b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n"),
            502, (b"invalid",),
        )

    async def test_silent_upstream(self):
        """An upstream that accepts but never answers gives 504 after read_timeout."""

        async def silent():
            await advance(self.clock, 0.75)
            self.assertEqual(self.recorder.count("error"), 0)
            await advance(self.clock, 0.25)

        await self._fault(lambda c, r: None, 504, (b"read timeout",), silent, read_timeout=1.0)

    async def test_silent_upstream_mid_body(self):
        """An upstream that goes silent in the middle of its body gives 504 after read_timeout."""

        async def silent():
            # The head and the three bytes arrived together.
            self.assertTrue(await wait_until(lambda: self.recorder.count("responseheaders")))
            await advance(self.clock, 0.75)
            self.assertEqual(self.recorder.count("error"), 0)
            await advance(self.clock, 0.25)

        await self._fault(
            lambda c, r: c.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"),
            504, (b"read timeout",), silent, read_timeout=1.0,
        )

    async def test_reset_mid_streamed_body(self):
        """An upstream resetting in the middle of a streamed body aborts the client connection and fires error."""
        await self.start(stream_large_bodies="1k")

        def handler(conn, request):
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + pattern(5000))
            reactor.callLater(0.2, conn.abort)

        bad = await RawServer.start(self, handler)
        client = await RawClient.connect(self, self.proxy.port_number)
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % bad.url("/").encode())
        raw = await client.wait_closed(4)
        [response] = parse_responses(raw)
        self.assertEqual(response.status, 200)
        self.assertFalse(response.complete)
        self.assertTrue(await wait_until(lambda: self.recorder.count("error") == 1, 2))
        await self.assert_still_serving()

    async def test_keep_alive_client_after_upstream_fault(self):
        """A client whose request hit a broken upstream can make a new connection and be served."""
        await self.start()
        bad = await RawServer.start(self, lambda c, r: c.abort())
        for _ in range(3):
            responses, _ = await self.send_raw(
                b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % bad.url("/").encode()
            )
            self.assertEqual([r.status for r in responses], [502])
        await self.assert_still_serving()


class ReviewFindingTests(_Base):
    """
    Faults found in review: a server must not be able to steer the proxy
    into cleartext, a tunnel, or unbounded memory.
    """

    _fault = UpstreamFaultTests._fault

    async def test_unsolicited_101_is_invalid(self):
        """A 101 to a request that did not ask to upgrade is a 502, not a raw tunnel."""

        def handler(conn, request):
            conn.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nraw")

        body = await self._fault(handler, 502, (b"did not ask to upgrade",))
        self.assertNotIn(b"raw", body)

    async def test_oversized_response_head(self):
        """A response head over max_header_size is a 502 and the proxy does not keep it."""

        def handler(conn, request):
            conn.write(b"HTTP/1.1 200 OK\r\n" + b"X-A: " + b"a" * 200 + b"\r\n" * 1)
            for _ in range(60):
                conn.write(b"X-B: " + b"b" * 200 + b"\r\n")

        await self._fault(handler, 502, (b"header block exceeds",), max_header_size=4096)

    async def test_oversized_head_response_head(self):
        """The head of a response to HEAD is bounded too."""
        await self.start(max_header_size=4096)

        def handler(conn, request):
            conn.write(b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-B: %s\r\n" % (b"b" * 200) for _ in range(60)))

        bad = await RawServer.start(self, handler)
        responses, raw = await self.send_raw(
            b"HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n" % bad.url("/").encode(), timeout=5
        )
        self.assertEqual([r.status for r in responses], [502], raw)
        await self.assert_still_serving()

    async def test_https_request_never_reuses_a_plain_connection(self):
        """After http://h:p/ on a keep-alive connection, https://h:p/ opens a new (TLS) connection."""
        await self.start()
        connections = []

        def handler(conn, request):
            connections.append(conn)
            conn.write(http_response(200, b"plain"))

        plain = await RawServer.start(self, handler)
        client = await RawClient.connect(self, self.proxy.port_number)
        client.send(b"GET http://127.0.0.1:%d/a HTTP/1.1\r\nHost: x\r\n\r\n" % plain.port)
        client.send(b"GET https://127.0.0.1:%d/b HTTP/1.1\r\nHost: x\r\n\r\n" % plain.port)
        # A second connection gets the ClientHello; the handshake then
        # times out (read_timeout).
        self.assertTrue(await wait_until(lambda: len(plain.connections) == 2 and plain.connections[1].received))
        await advance(self.clock, 1.0)
        first, second = await client.wait_responses(2, timeout=5)
        self.assertEqual((first.status, first.body), (200, b"plain"))
        # The plain server cannot speak TLS: the https request fails (the
        # handshake times out) instead of travelling in cleartext over the
        # first connection.
        self.assertIn(second.status, (502, 504))
        self.assertEqual(len(plain.requests), 1)
