# -*- test-case-name: tests.e2e.test_streaming -*-
"""
End-to-end tests of body streaming and size limits (issue #3, point 4):
the options stream_large_bodies and body_size_limit, and addons setting
message.stream to True or to a chunk transform.
"""

from __future__ import annotations

from twisted.trial import unittest

from interceptor.testing import start_proxy
from tests.e2e.peers import (
    RawClient,
    RawServer,
    Recorder,
    WebServer,
    agent_request,
    curl,
    http_response,
    parse_responses,
    pattern,
    proxy_agent,
)

BIG = 200_000


def echo_size(conn, request):
    """
    Answer with the size of the request body.
    """
    conn.write(http_response(200, b"%d" % len(request.body)))


class StreamLargeBodiesTests(unittest.TestCase):
    """
    Bodies larger than stream_large_bodies stream through.
    """

    timeout = 20

    async def test_large_response_with_length_streams(self):
        """A 200k response with Content-Length over stream_large_bodies=1k streams through whole; response.stream is set."""
        seen = {}

        class Watch:
            def response(self, flow):
                seen["stream"] = flow.response.stream
                seen["raw"] = flow.response.raw_content

        proxy = await start_proxy(self, Watch(), stream_large_bodies="1k", read_timeout=2.0)
        web = await WebServer.start(self)
        agent = proxy_agent(self, proxy)
        response, body = await agent_request(self, agent, b"GET", web.url(f"/bytes?n={BIG}"))
        self.assertEqual(response.code, 200)
        self.assertEqual(body, pattern(BIG))
        self.assertTrue(seen["stream"])
        self.assertFalse(seen["raw"])

    async def test_large_chunked_response_streams(self):
        """A 200k chunked response without length streams once over the limit and arrives whole."""
        seen = {}

        class Watch:
            def response(self, flow):
                seen["stream"] = flow.response.stream

        proxy = await start_proxy(self, Watch(), stream_large_bodies="1k", read_timeout=2.0)
        web = await WebServer.start(self)
        result = await curl(self, "-x", proxy.url, web.url("/chunked?parts=50&size=4000"))
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.body, pattern(BIG))
        self.assertTrue(seen["stream"])

    async def test_small_response_buffered(self):
        """A response under stream_large_bodies is buffered: the response hook sees its content."""
        seen = {}

        class Watch:
            def response(self, flow):
                seen["stream"] = flow.response.stream
                seen["content"] = flow.response.content

        proxy = await start_proxy(self, Watch(), stream_large_bodies="1k", read_timeout=2.0)
        web = await WebServer.start(self)
        result = await curl(self, "-x", proxy.url, web.url("/bytes?n=500"))
        self.assertEqual(result.body, pattern(500))
        self.assertFalse(seen["stream"])
        self.assertEqual(seen["content"], pattern(500))

    async def test_large_request_streams(self):
        """A 200k request body over stream_large_bodies streams to the server whole; request.stream is set."""
        seen = {}

        class Watch:
            def request(self, flow):
                seen["stream"] = flow.request.stream

        proxy = await start_proxy(self, Watch(), stream_large_bodies="1k", read_timeout=2.0)
        server = await RawServer.start(self, echo_size)
        agent = proxy_agent(self, proxy)
        response, body = await agent_request(
            self, agent, b"POST", server.url("/up"), body=pattern(BIG)
        )
        self.assertEqual(body, b"%d" % BIG)
        self.assertEqual(server.requests[0].body, pattern(BIG))
        self.assertTrue(seen["stream"])

    async def test_keep_alive_after_streamed_response(self):
        """After a streamed response the same client connection serves the next request."""
        proxy = await start_proxy(self, stream_large_bodies="1k", read_timeout=2.0)
        server = await RawServer.start(
            self, lambda c, r: c.write(http_response(200, pattern(BIG if r.target == b"/big" else 10)))
        )
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/big").encode())
        await client.wait_responses(1)
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/small").encode())
        big, small = await client.wait_responses(2)
        self.assertEqual(big.body, pattern(BIG))
        self.assertEqual(small.body, pattern(10))


class BodySizeLimitTests(unittest.TestCase):
    """
    Bodies over body_size_limit are refused with a clear error.
    """

    timeout = 20

    async def test_request_over_limit_413(self):
        """A request body with Content-Length over body_size_limit gets 413; the server is not contacted."""
        recorder = Recorder()
        proxy = await start_proxy(self, recorder, body_size_limit="10k", read_timeout=2.0)
        server = await RawServer.start(self, echo_size)
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(pattern(20000))
        result = await curl(self, "-x", proxy.url, "--data-binary", "@" + path, server.url("/"))
        self.assertEqual(result.status, 413)
        self.assertIn(b"10240", result.body)
        self.assertEqual(server.requests, [])
        self.assertEqual(recorder.count("error"), 1)

    async def test_chunked_request_over_limit_413(self):
        """A chunked request body growing over body_size_limit gets 413 and the connection closes."""
        proxy = await start_proxy(self, body_size_limit="10k", read_timeout=2.0)
        server = await RawServer.start(self, echo_size)
        client = await RawClient.connect(self, proxy.port_number)
        chunk = pattern(4000)
        client.send(
            b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            % server.url("/").encode()
            + b"".join(b"fa0\r\n" + chunk + b"\r\n" for _ in range(5))
            + b"0\r\n\r\n"
        )
        data = await client.wait_closed(3)
        [response] = parse_responses(data)
        self.assertEqual(response.status, 413)
        self.assertEqual(server.requests, [])

    async def test_response_over_limit_502(self):
        """A response with Content-Length over body_size_limit becomes a 502 saying so; error fires."""
        recorder = Recorder()
        proxy = await start_proxy(self, recorder, body_size_limit="10k", read_timeout=2.0)
        web = await WebServer.start(self)
        result = await curl(self, "-x", proxy.url, web.url("/bytes?n=20000"))
        self.assertEqual(result.status, 502)
        self.assertIn(b"exceeds", result.body)
        [flow] = recorder.flows()
        self.assertEqual(recorder.flow_events(flow)[-1], "error")
        self.assertIn("exceeds", flow.error.msg)

    async def test_chunked_response_over_limit_502(self):
        """A chunked response growing over body_size_limit becomes a 502 saying so."""
        proxy = await start_proxy(self, body_size_limit="10k", read_timeout=2.0)
        web = await WebServer.start(self)
        result = await curl(self, "-x", proxy.url, web.url("/chunked?parts=10&size=2000"))
        self.assertEqual(result.status, 502)
        self.assertIn(b"exceeds", result.body)

    async def test_under_limit_passes(self):
        """Bodies under body_size_limit go through both ways."""
        proxy = await start_proxy(self, body_size_limit="10k", read_timeout=2.0)
        server = await RawServer.start(self, lambda c, r: c.write(http_response(200, r.body)))
        agent = proxy_agent(self, proxy)
        response, body = await agent_request(self, agent, b"POST", server.url("/"), body=pattern(9000))
        self.assertEqual(body, pattern(9000))


class AddonStreamTests(unittest.TestCase):
    """
    Addons choose streaming per message in requestheaders/responseheaders.
    """

    timeout = 20

    async def test_response_stream_true(self):
        """response.stream = True set in responseheaders streams the body unchanged; response sees stream set."""
        seen = {}

        class Stream:
            def responseheaders(self, flow):
                flow.response.stream = True

            def response(self, flow):
                seen["stream"] = flow.response.stream

        proxy = await start_proxy(self, Stream(), read_timeout=2.0)
        web = await WebServer.start(self)
        result = await curl(self, "-x", proxy.url, web.url("/bytes?n=50000"))
        self.assertEqual(result.body, pattern(50000))
        self.assertIs(seen["stream"], True)

    async def test_response_stream_transform(self):
        """response.stream = bytes.upper set in responseheaders transforms every chunk the client gets."""

        class Upper:
            def responseheaders(self, flow):
                flow.response.stream = bytes.upper

        proxy = await start_proxy(self, Upper(), read_timeout=2.0)
        web = await WebServer.start(self)
        result = await curl(self, "-x", proxy.url, web.url("/chunked?parts=20&size=1000"))
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.body, pattern(20000).upper())
        result = await curl(self, "-x", proxy.url, web.url("/bytes?n=30000"))
        self.assertEqual(result.body, pattern(30000).upper())

    async def test_request_stream_true(self):
        """request.stream = True set in requestheaders streams the request body to the server unchanged."""
        seen = {}

        class Stream:
            def requestheaders(self, flow):
                flow.request.stream = True

            def request(self, flow):
                seen["stream"] = flow.request.stream

        proxy = await start_proxy(self, Stream(), read_timeout=2.0)
        server = await RawServer.start(self, echo_size)
        agent = proxy_agent(self, proxy)
        response, body = await agent_request(self, agent, b"PUT", server.url("/"), body=pattern(50000))
        self.assertEqual(body, b"50000")
        self.assertEqual(server.requests[0].body, pattern(50000))
        self.assertIs(seen["stream"], True)

    async def test_request_stream_transform(self):
        """request.stream = bytes.upper set in requestheaders transforms the body the server gets."""

        class Upper:
            def requestheaders(self, flow):
                flow.request.stream = bytes.upper

        proxy = await start_proxy(self, Upper(), read_timeout=2.0)
        server = await RawServer.start(self, echo_size)
        client = await RawClient.connect(self, proxy.port_number)
        body = pattern(30000)
        client.send(
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % (server.url("/").encode(), len(body)) + body
        )
        [response] = await client.wait_responses(1)
        self.assertEqual(response.body, b"30000")
        self.assertEqual(server.requests[0].body, body.upper())


class UnframedRequestBodyTests(unittest.TestCase):
    """
    Request bodies without a Content-Length follow the same size options.
    """

    timeout = 20

    async def test_chunked_request_streams_past_the_threshold(self):
        """A chunked upload that grows past stream_large_bodies is streamed; request.stream is set."""
        seen = {}

        class Watch:
            def request(self, flow):
                seen["stream"] = flow.request.stream

        proxy = await start_proxy(self, Watch(), stream_large_bodies="10k", read_timeout=2.0)
        server = await RawServer.start(self, echo_size)
        client = await RawClient.connect(self, proxy.port_number)
        body = pattern(BIG)
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[i:i + 4096] for i in range(0, BIG, 4096)))
        client.send(b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % server.url("/up").encode() + chunks + b"0\r\n\r\n")
        [response] = await client.wait_responses(1, timeout=5)
        self.assertEqual(response.body, b"%d" % BIG)
        self.assertEqual(server.requests[0].body, body)
        self.assertTrue(seen["stream"])

    async def test_pipelined_rejection_waits_its_turn(self):
        """A pipelined request over body_size_limit gets its 413 after the response before it."""
        proxy = await start_proxy(self, body_size_limit="1k", read_timeout=2.0)
        server = await RawServer.start(self, echo_size)
        client = await RawClient.connect(self, proxy.port_number)
        big = b"5000\r\n" + b"x" * 0x5000 + b"\r\n0\r\n\r\n"
        client.send(
            b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/first").encode()
            + b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % server.url("/big").encode()
            + big
        )
        responses = await client.wait_responses(2, timeout=5)
        self.assertEqual([r.status for r in responses], [200, 413])
        self.assertEqual(len(server.requests), 1)
