# -*- test-case-name: tests.e2e.test_http1 -*-
"""
End-to-end tests of the HTTP/1.x regular proxy mode (issue #3, point 1):
real clients (curl, twisted.web's ProxyAgent, a raw TCP client) through a
proxy running in-process, to real servers on 127.0.0.1; upgrades over TLS,
and the upstream connections paired with a client.  Then the edge cases
and the event guarantees: trailers, Expect, pipelining behind closing
servers, slow and failing hooks, limits at their boundaries, odd framing,
bytes kept as sent.
"""

from __future__ import annotations

import json
import os

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest

from interceptor.model.http import Response
from interceptor.testing import start_proxy
from tests.e2e.peers import (
    HeldHook,
    LoopbackServer,
    RawClient,
    RawServer,
    Recorder,
    WebServer,
    agent_request,
    curl,
    delivered,
    http_response,
    ok_handler,
    parse_responses,
    pattern,
    proxy_agent,
    sleep,
    wait_until,
)
from tests.e2e.tlspeers import HttpsServer, TestCA, _server_context, _ServerCreator


def path_handler(conn, request):
    """
    Answer every request with its own target as the body.
    """
    conn.write(http_response(200, b"you asked for " + request.target))


class RegularModeClientsTests(unittest.TestCase):
    """
    Real clients configured with the proxy reach real servers.
    """

    timeout = 20

    async def test_curl_absolute_form(self):
        """curl -x sends absolute-form requests; the server gets origin-form and the response comes back."""
        proxy = await start_proxy(self, read_timeout=2.0)
        web = await WebServer.start(self)
        result = await curl(self, "-x", proxy.url, web.url("/echo?x=1"))
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.status, 200)
        echoed = json.loads(result.body)
        self.assertEqual(echoed["method"], "GET")
        self.assertEqual(echoed["uri"], "/echo?x=1")
        headers = {n.lower(): v for n, v in echoed["headers"]}
        self.assertEqual(headers["host"], f"127.0.0.1:{web.port}")
        self.assertNotIn("proxy-connection", headers)

    async def test_http_proxy_environment(self):
        """curl configured through the http_proxy environment variable goes through the proxy."""
        recorder = Recorder()
        proxy = await start_proxy(self, recorder, read_timeout=2.0)
        web = await WebServer.start(self)
        result = await curl(self, web.url("/bytes?n=100"), env={"http_proxy": proxy.url})
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.status, 200)
        self.assertEqual(result.body, pattern(100))
        self.assertEqual(recorder.count("response"), 1)

    async def test_agent_keep_alive_reuses_upstream(self):
        """Three requests on one kept-alive client connection use one client and one upstream connection."""
        recorder = Recorder()
        proxy = await start_proxy(self, recorder, read_timeout=2.0)
        web = await WebServer.start(self)
        agent = proxy_agent(self, proxy, persistent=True)
        for i in range(3):
            response, body = await agent_request(self, agent, b"GET", web.url(f"/echo?i={i}"))
            self.assertEqual(response.code, 200)
            self.assertEqual(json.loads(body)["uri"], f"/echo?i={i}")
        self.assertEqual(recorder.count("clientconnect"), 1)
        self.assertEqual(recorder.count("serverconnect"), 1)
        self.assertEqual(len(web.connections), 1)

    async def test_raw_keep_alive_reuses_upstream(self):
        """Sequential keep-alive requests from one raw client reach the server over one connection."""
        proxy = await start_proxy(self, read_timeout=2.0)
        server = await RawServer.start(self, path_handler)
        client = await RawClient.connect(self, proxy.port_number)
        for i in range(3):
            client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url(f"/{i}").encode())
            responses = await client.wait_responses(i + 1)
            self.assertEqual(responses[i].body, b"you asked for /%d" % i)
        self.assertFalse(client.closed)
        self.assertEqual(len(server.connections), 1)
        self.assertEqual([r.target for r in server.requests], [b"/0", b"/1", b"/2"])

    async def test_keep_alive_to_two_servers(self):
        """One client connection asking two servers in turn reaches each; every answer comes back."""
        recorder = Recorder()
        proxy = await start_proxy(self, recorder, read_timeout=2.0)
        one = await RawServer.start(self, lambda c, r: c.write(http_response(200, b"one")))
        two = await RawServer.start(self, lambda c, r: c.write(http_response(200, b"two")))
        client = await RawClient.connect(self, proxy.port_number)
        for i, server in enumerate((one, two, one)):
            client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/").encode())
            await client.wait_responses(i + 1)
        bodies = [r.body for r in parse_responses(bytes(client.received))]
        self.assertEqual(bodies, [b"one", b"two", b"one"])
        self.assertEqual(len(one.requests), 2)
        self.assertEqual(len(two.requests), 1)
        self.assertEqual(recorder.count("clientconnect"), 1)

    async def test_upstream_closes_idle_connection(self):
        """When the server closes its idle keep-alive connection, the next request opens a new one."""
        proxy = await start_proxy(self, read_timeout=2.0)
        closing = []

        def handler(conn, request):
            conn.write(http_response(200, b"served " + request.target))
            closing.append(reactor.callLater(0.05, conn.close))

        server = await RawServer.start(self, handler)
        self.addCleanup(lambda: [c.cancel() for c in closing if c.active()])
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/1").encode())
        await client.wait_responses(1)
        self.assertTrue(await wait_until(lambda: server.connections[0].closed))
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/2").encode())
        first, second = await client.wait_responses(2)
        self.assertEqual(second.status, 200)
        self.assertEqual(second.body, b"served /2")
        self.assertEqual(len(server.connections), 2)

    async def test_agent_post_content_length_body(self):
        """A POST body with Content-Length reaches the server intact."""
        proxy = await start_proxy(self, read_timeout=2.0)
        web = await WebServer.start(self)
        agent = proxy_agent(self, proxy)
        body = pattern(5000)
        response, data = await agent_request(
            self, agent, b"POST", web.url("/echo"), body=body, headers={b"Content-Type": b"x/y"}
        )
        self.assertEqual(response.code, 200)
        echoed = json.loads(data)
        self.assertEqual(echoed["method"], "POST")
        self.assertEqual(echoed["body"].encode("latin-1"), body)

    async def test_curl_chunked_request_body(self):
        """A chunked request body from curl reaches the server whole and correctly framed."""
        proxy = await start_proxy(self, read_timeout=2.0)
        server = await RawServer.start(self, path_handler)
        path = os.path.join(self.mktemp())
        with open(path, "wb") as f:
            f.write(pattern(3000))
        result = await curl(
            self, "-x", proxy.url, "-H", "Transfer-Encoding: chunked",
            "--data-binary", "@" + path, server.url("/upload"),
        )
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.status, 200)
        [request] = server.requests
        self.assertEqual(request.method, b"POST")
        self.assertEqual(request.body, pattern(3000))

    async def test_chunked_response(self):
        """A chunked response arrives whole at curl and as valid chunked framing at a raw client."""
        proxy = await start_proxy(self, read_timeout=2.0)

        def chunked(conn, request):
            conn.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n"
            )

        server = await RawServer.start(self, chunked)
        result = await curl(self, "-x", proxy.url, server.url("/c"))
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.body, b"hello world!")
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/c").encode())
        [response] = await client.wait_responses(1)
        self.assertEqual(response.status, 200)
        self.assertEqual(response.body, b"hello world!")

    async def test_web_chunked_response(self):
        """A twisted.web resource writing in pieces (chunked) reaches the Agent whole."""
        proxy = await start_proxy(self, read_timeout=2.0)
        web = await WebServer.start(self)
        agent = proxy_agent(self, proxy)
        response, body = await agent_request(
            self, agent, b"GET", web.url("/chunked?parts=5&size=1000")
        )
        self.assertEqual(response.code, 200)
        self.assertEqual(body, pattern(5000))

    async def test_close_delimited_response(self):
        """A response delimited by the server closing arrives whole, and the client learns where it ends."""
        proxy = await start_proxy(self, read_timeout=2.0)

        def close_delimited(conn, request):
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + pattern(20000))
            conn.close()

        server = await RawServer.start(self, close_delimited)
        result = await curl(self, "-x", proxy.url, server.url("/"))
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.body, pattern(20000))
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/").encode())
        [response] = await client.wait_responses(1)
        self.assertEqual(response.status, 200)
        self.assertEqual(response.body, pattern(20000))
        if response.framing == "close":
            self.assertTrue(client.closed)

    async def test_head_with_content_length(self):
        """A HEAD response with Content-Length has no body, and the next request on the connection works."""
        proxy = await start_proxy(self, read_timeout=2.0)

        def handler(conn, request):
            if request.method == b"HEAD":
                conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: x/y\r\n\r\n")
            else:
                conn.write(http_response(200, b"after head"))

        server = await RawServer.start(self, handler)
        client = await RawClient.connect(self, proxy.port_number)
        url = server.url("/h").encode()
        client.send(b"HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n" % url)
        await client.wait_responses(1, methods=(b"HEAD",))
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % url)
        head, get = await client.wait_responses(2, methods=(b"HEAD", b"GET"))
        self.assertEqual(head.status, 200)
        self.assertEqual(head.header(b"content-length"), b"1000")
        self.assertEqual(head.body, b"")
        self.assertEqual(get.body, b"after head")
        self.assertEqual(len(server.connections), 1)

    async def test_curl_head(self):
        """curl -I through the proxy gets the HEAD response's headers and returns promptly."""
        proxy = await start_proxy(self, read_timeout=2.0)
        web = await WebServer.start(self)
        result = await curl(self, "-x", proxy.url, "-I", web.url("/bytes?n=1234"), timeout=5)
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.status, 200)
        self.assertEqual(result.heads[-1].header(b"content-length"), b"1234")
        self.assertLess(float(result.info.get("time_total", 99)), 2.0)

    async def test_204_and_304_without_body(self):
        """204 and 304 responses carry no body, and the connection goes on to the next request."""
        proxy = await start_proxy(self, read_timeout=2.0)

        def handler(conn, request):
            if request.target == b"/204":
                conn.write(b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n")
            elif request.target == b"/304":
                conn.write(b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 50\r\n\r\n")
            else:
                conn.write(http_response(200, b"last"))

        server = await RawServer.start(self, handler)
        client = await RawClient.connect(self, proxy.port_number)
        for i, path in enumerate((b"/204", b"/304", b"/ok")):
            client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url(path.decode()).encode())
            await client.wait_responses(i + 1)
        r204, r304, ok = parse_responses(bytes(client.received))
        self.assertEqual((r204.status, r204.body), (204, b""))
        self.assertEqual((r304.status, r304.body), (304, b""))
        self.assertEqual(r304.header(b"content-length"), b"50")
        self.assertEqual((ok.status, ok.body), (200, b"last"))
        self.assertIsNone(r204.header(b"transfer-encoding"))
        self.assertEqual(len(server.connections), 1)

    async def test_expect_100_continue_raw(self):
        """Expect: 100-continue gets a 100 Continue before the body is sent, then the final response."""
        proxy = await start_proxy(self, read_timeout=2.0)
        server = await RawServer.start(self, lambda c, r: c.write(http_response(200, b"got " + r.body)))
        client = await RawClient.connect(self, proxy.port_number)
        client.send(
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
            % server.url("/up").encode()
        )
        await client.wait_for(lambda data: b"\r\n\r\n" in data, timeout=2)
        self.assertTrue(bytes(client.received).startswith(b"HTTP/1.1 100 "), bytes(client.received))
        client.send(b"hello")
        responses = await client.wait_responses(1)
        self.assertEqual([r.status for r in responses], [100, 200])
        self.assertEqual(responses[-1].body, b"got hello")
        [request] = server.requests
        self.assertIsNone(request.header(b"expect"))
        self.assertEqual(request.body, b"hello")

    async def test_expect_100_continue_curl(self):
        """curl sending Expect: 100-continue gets its 100 and its response without waiting a second."""
        proxy = await start_proxy(self, read_timeout=2.0)
        web = await WebServer.start(self)
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(pattern(4000))
        result = await curl(
            self, "-x", proxy.url, "-H", "Expect: 100-continue", "--expect100-timeout", "3",
            "--data-binary", "@" + path, web.url("/echo"),
        )
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual([h.status for h in result.heads], [100, 200])
        self.assertEqual(json.loads(result.body)["body"].encode("latin-1"), pattern(4000))
        self.assertLess(float(result.info.get("time_total", 99)), 2.5)

    async def test_http10_client_chunked_upstream(self):
        """An HTTP/1.0 client never gets chunked framing, even when the server sends chunks."""
        proxy = await start_proxy(self, read_timeout=2.0)

        def chunked(conn, request):
            conn.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )

        server = await RawServer.start(self, chunked)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET %s HTTP/1.0\r\n\r\n" % server.url("/10").encode())
        data = await client.wait_closed(3)
        [response] = parse_responses(data)
        self.assertEqual(response.status, 200)
        self.assertIsNone(response.header(b"transfer-encoding"))
        self.assertEqual(response.body, b"hello world")
        self.assertEqual(server.requests[0].version, b"HTTP/1.0")

    async def test_http10_client_web_server(self):
        """An HTTP/1.0 client gets a twisted.web response whole and the connection closed after it."""
        proxy = await start_proxy(self, read_timeout=2.0)
        web = await WebServer.start(self)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET %s HTTP/1.0\r\n\r\n" % web.url("/chunked?parts=4&size=100").encode())
        data = await client.wait_closed(3)
        [response] = parse_responses(data)
        self.assertEqual(response.status, 200)
        self.assertNotEqual(response.framing, "chunked")
        self.assertEqual(response.body, pattern(400))

    async def test_http10_keep_alive(self):
        """An HTTP/1.0 client asking for keep-alive keeps its connection for a second request."""
        proxy = await start_proxy(self, read_timeout=2.0)
        server = await RawServer.start(self, path_handler)
        client = await RawClient.connect(self, proxy.port_number)
        for i in range(2):
            client.send(
                b"GET %s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % server.url(f"/{i}").encode()
            )
            responses = await client.wait_responses(i + 1)
        self.assertEqual([r.body for r in responses], [b"you asked for /0", b"you asked for /1"])
        self.assertEqual(responses[0].header(b"connection").lower(), b"keep-alive")
        self.assertFalse(client.closed)

    async def test_pipelined_requests_answered_in_order(self):
        """Three pipelined requests, the first one slow, are answered in the order they were sent."""
        proxy = await start_proxy(self, read_timeout=2.0)
        pending = []

        def handler(conn, request):
            body = b"answer to " + request.target
            if request.target == b"/slow":
                pending.append(reactor.callLater(0.3, conn.write, http_response(200, body)))
            else:
                conn.write(http_response(200, body))

        server = await RawServer.start(self, handler)
        self.addCleanup(lambda: [c.cancel() for c in pending if c.active()])
        client = await RawClient.connect(self, proxy.port_number)
        client.send(
            b"".join(
                b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url(p).encode()
                for p in ("/slow", "/a", "/b")
            )
        )
        responses = await client.wait_responses(3, timeout=4)
        self.assertEqual(
            [r.body for r in responses],
            [b"answer to /slow", b"answer to /a", b"answer to /b"],
        )

    async def test_origin_form_rejected(self):
        """An origin-form request gets a clear 400 and the connection is closed; no server is contacted."""
        recorder = Recorder()
        proxy = await start_proxy(self, recorder, read_timeout=2.0)
        server = await RawServer.start(self, path_handler)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % server.port)
        data = await client.wait_closed(3)
        [response] = parse_responses(data)
        self.assertEqual(response.status, 400)
        self.assertIn(b"absolute-form", response.body)
        self.assertEqual(server.connections, [])
        self.assertEqual(recorder.count("serverconnect"), 0)


class HeaderFidelityTests(unittest.TestCase):
    """
    Header order and the case of header names are kept as sent.
    """

    timeout = 15

    async def test_request_header_order_and_case(self):
        """The server receives the client's header fields in the same order and case."""
        proxy = await start_proxy(self, read_timeout=2.0)
        server = await RawServer.start(self, path_handler)
        fields = [
            (b"Host", b"127.0.0.1:%d" % server.port),
            (b"X-Zeta", b"1"),
            (b"x-alpha", b"2"),
            (b"X-MiXeD-CaSe", b"3"),
            (b"X-Dup", b"a"),
            (b"accept", b"*/*"),
            (b"X-Dup", b"b"),
            (b"USER-AGENT", b"raw"),
        ]
        client = await RawClient.connect(self, proxy.port_number)
        client.send(
            b"GET %s HTTP/1.1\r\n" % server.url("/order").encode()
            + b"".join(b"%s: %s\r\n" % f for f in fields)
            + b"\r\n"
        )
        await client.wait_responses(1)
        [request] = server.requests
        self.assertEqual(request.head.split(b"\r\n")[0], b"GET /order HTTP/1.1")
        self.assertEqual(request.headers, fields)

    async def test_response_header_order_and_case(self):
        """The client receives the server's header fields in the same order and case."""
        proxy = await start_proxy(self, read_timeout=2.0)
        fields = [
            (b"x-lower", b"1"),
            (b"X-UPPER", b"2"),
            (b"Set-Cookie", b"a=1"),
            (b"content-TYPE", b"text/plain"),
            (b"Set-Cookie", b"b=2"),
            (b"content-length", b"5"),
            (b"X-Last", b"z"),
        ]

        def handler(conn, request):
            conn.write(
                b"HTTP/1.1 200 Fine Thanks\r\n"
                + b"".join(b"%s: %s\r\n" % f for f in fields)
                + b"\r\nhello"
            )

        server = await RawServer.start(self, handler)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/").encode())
        [response] = await client.wait_responses(1)
        self.assertEqual(response.reason, b"Fine Thanks")
        self.assertEqual(response.headers, fields)
        self.assertEqual(response.body, b"hello")


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


class UpstreamConnectionTests(unittest.TestCase):
    """
    The proxy's connections to servers, paired with a client connection.
    """

    timeout = 15

    async def test_replaced_tls_upstream_is_closed(self):
        """The client's next request goes elsewhere: the proxy closes its first (TLS, HTTP/1.1) upstream connection."""
        first = await HttpsServer.start(self, TestCA.shared(), names=("127.0.0.1",))
        proxy = await start_proxy(self, confdir=self.mktemp(), ssl_insecure=True)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET https://127.0.0.1:%d/hello HTTP/1.1\r\nHost: x\r\n\r\n" % first.port)
        await client.wait_responses(1, timeout=4.0)
        # Next request to a plain-HTTP address: the TLS upstream is close()d.
        client.send(b"GET http://127.0.0.1:1/x HTTP/1.1\r\nHost: x\r\n\r\n")
        await wait_until(lambda: first.connections[0].closed)
        self.assertEqual([c.closed for c in first.connections], [True],
                         "close() on a paired TLS upstream never shuts it down")


_HTTP_EVENTS = ("requestheaders", "request", "responseheaders", "response", "error")


def check_flow_events(testcase, recorder, flow):
    """
    The HTTP events of C{flow} are a valid sequence: requestheaders first,
    each event at most once, exactly one of response/error, nothing after
    error, request before response, responseheaders before response.
    """
    events = recorder.flow_events(flow)
    testcase.assertTrue(events, "no events for flow")
    testcase.assertEqual(events[0], "requestheaders", events)
    for name in _HTTP_EVENTS:
        testcase.assertLessEqual(events.count(name), 1, events)
    testcase.assertEqual(events.count("response") + events.count("error"), 1, events)
    if "error" in events:
        testcase.assertEqual(events[-1], "error", events)
    if "response" in events:
        testcase.assertEqual(events[-1], "response", events)
        testcase.assertIn("request", events, events)
        testcase.assertIn("responseheaders", events, events)
    return events


class _Base(unittest.TestCase):
    """
    A proxy with a L{Recorder} after the given addons, and raw clients.
    """

    timeout = 20

    async def proxy_with(self, *addons, **options):
        """
        Start the proxy (short timeouts) with C{addons} and a recorder.
        """
        self.recorder = Recorder()
        options.setdefault("read_timeout", 2.0)
        options.setdefault("connect_timeout", 2.0)
        self.proxy = await start_proxy(self, *addons, self.recorder, **options)
        return self.proxy

    async def client(self):
        """
        A raw client connected to the proxy.
        """
        return await RawClient.connect(self, self.proxy.port_number)


class TrailerTests(_Base):
    """
    Chunked trailers are not header fields of the message head.
    """

    async def test_request_trailers_not_promoted_to_headers(self):
        """Trailers of a buffered chunked request must not show up as header fields of the forwarded head."""
        await self.proxy_with()
        server = await RawServer.start(self, ok_handler)
        client = await self.client()
        client.send(
            b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\nX-Trailer: t\r\nX-Other: o\r\n\r\n" % server.url("/t").encode()
        )
        [response] = await client.wait_responses(1)
        self.assertEqual(response.status, 200)
        [request] = server.requests
        self.assertEqual(request.body, b"abc")
        self.assertIsNone(request.header(b"x-trailer"), request.head)
        self.assertIsNone(request.header(b"x-other"), request.head)
        [flow] = self.recorder.flows()
        self.assertNotIn("x-trailer", flow.request.headers)

    async def test_response_trailers_not_promoted_to_headers(self):
        """Trailers of a buffered chunked response must not show up as header fields of the head sent to the client."""
        await self.proxy_with()

        def handler(conn, request):
            conn.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"
            )

        server = await RawServer.start(self, handler)
        client = await self.client()
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/t").encode())
        [response] = await client.wait_responses(1)
        self.assertEqual((response.status, response.body), (200, b"abc"))
        self.assertIsNone(response.header(b"x-trailer"), response.head)
        [flow] = self.recorder.flows()
        self.assertNotIn("x-trailer", flow.response.headers)


class AsyncHookTests(_Base):
    """
    Hooks returning Deferreds that fire late.
    """

    async def _client_gone(self, client):
        """
        Close C{client} and wait until the proxy has let the connection go
        (every event of its flows has fired then).
        """
        client.transport.loseConnection()
        self.assertTrue(await wait_until(lambda: not self.proxy.master.factories[0].connections))

    async def test_async_response_hook_with_connection_close_upstream(self):
        """A slow response hook must not turn a complete 'Connection: close' response into a 502."""
        slow = HeldHook("response")
        await self.proxy_with(slow)

        def handler(conn, request):
            conn.write(http_response(200, b"ok", [(b"Connection", b"close")]))
            conn.close()

        server = await RawServer.start(self, handler)
        client = await self.client()
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/c").encode())
        # The server has closed while the hook runs.
        self.assertTrue(await wait_until(lambda: slow.pending and server.connections[0].closed))
        slow.release()
        data = await client.wait_closed(4)
        self.assertTrue(await wait_until(lambda: not self.proxy.master.factories[0].connections))
        [response] = parse_responses(data)
        self.assertEqual((response.status, response.body), (200, b"ok"), data)
        [flow] = self.recorder.flows()
        self.assertIsNone(flow.error)
        self.assertEqual(check_flow_events(self, self.recorder, flow)[-1], "response")

    async def test_async_response_hook_with_http10_server(self):
        """A slow response hook and an HTTP/1.0 server (closes after each response) still gives the 200."""
        slow = HeldHook("response")
        await self.proxy_with(slow)

        def handler(conn, request):
            conn.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            closing = reactor.callLater(0.05, conn.close)
            self.addCleanup(lambda: closing.active() and closing.cancel())

        server = await RawServer.start(self, handler)
        client = await self.client()
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/c").encode())
        # The connection to the server is closed while the hook runs (by
        # the proxy: an HTTP/1.0 response without keep-alive is the last).
        self.assertTrue(await wait_until(lambda: slow.pending and server.connections[0].closed))
        slow.release()
        responses = await client.wait_responses(1, timeout=4)
        await self._client_gone(client)
        self.assertEqual([(r.status, r.body) for r in responses], [(200, b"ok")])
        [flow] = self.recorder.flows()
        self.assertIsNone(flow.error)

    async def test_async_responseheaders_hook_keeps_body_size_limit(self):
        """body_size_limit still applies to a chunked response that arrived whole while a responseheaders hook waited."""
        slow = HeldHook("responseheaders")
        await self.proxy_with(slow, body_size_limit="10")

        def handler(conn, request):
            body = pattern(40)
            conn.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
                % (len(body), body)
            )

        server = await RawServer.start(self, handler)
        client = await self.client()
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/big").encode())
        self.assertTrue(await wait_until(lambda: slow.pending and delivered(server.connections[0].transport)))
        slow.release()
        [response] = await client.wait_responses(1, timeout=3)
        self.assertEqual(response.status, 502, response.head + response.body)

    async def test_no_event_after_error_when_client_leaves_during_slow_hook(self):
        """A client leaving while an earlier addon's request hook waits: later addons see no request after error."""
        slow = HeldHook("request")
        await self.proxy_with(slow)
        server = await RawServer.start(self, ok_handler)
        client = await self.client()
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/s").encode())
        self.assertTrue(await wait_until(lambda: slow.pending))
        await client.abort()
        # The hook finishes after the client has gone: the recorder, after
        # it, must not get request after error.
        slow.release()
        self.assertTrue(await wait_until(lambda: self.recorder.count("error") == 1))
        await sleep(0.01)
        [flow] = self.recorder.flows()
        events = self.recorder.flow_events(flow)
        self.assertEqual(events[-1], "error", events)

    async def test_failing_deferred_hook_does_not_stall_flow(self):
        """A requestheaders hook whose Deferred fails late is logged, and the flow carries on to a 200."""
        failing = HeldHook("requestheaders")
        await self.proxy_with(failing)
        server = await RawServer.start(self, ok_handler)
        client = await self.client()
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/f").encode())
        self.assertTrue(await wait_until(lambda: failing.pending))
        failing.fail(RuntimeError("boom"))
        [response] = await client.wait_responses(1)
        self.assertEqual((response.status, response.body), (200, b"ok"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class LimitEventTests(_Base):
    """
    Body limits and the event sequence.
    """

    async def test_chunked_request_over_limit_no_request_after_error(self):
        """A chunked request over body_size_limit sent at once: 413, and the flow gets error and no request event after it."""
        await self.proxy_with(body_size_limit="10")
        server = await RawServer.start(self, ok_handler)
        client = await self.client()
        body = pattern(20)
        client.send(
            b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
            % (server.url("/big").encode(), len(body), body)
        )
        data = await client.wait_closed(3)
        self.assertEqual([r.status for r in parse_responses(data)], [413])
        await sleep(0.1)
        [flow] = self.recorder.flows()
        check_flow_events(self, self.recorder, flow)
        self.assertEqual(server.requests, [])

    async def test_early_response_and_request_over_limit(self):
        """flow.response set in requestheaders and a chunked body over the limit: the body is read only to be dropped (no limit applies to it), the addon's response goes out once, and only once an event ends the flow."""

        class Answer:
            def requestheaders(self, flow):
                flow.response = Response.make(200, b"early")

        await self.proxy_with(Answer(), body_size_limit="10")
        client = await self.client()
        body = pattern(20)
        client.send(
            b"POST http://127.0.0.1:1/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        )
        data = await client.wait_for(lambda d: b"\r\n\r\n" in d, 3)
        await sleep(0.2)
        data = bytes(client.received)
        self.assertEqual(len(parse_responses(data)), 1, data)
        self.assertIn(b"early", data)
        [flow] = self.recorder.flows()
        self.assertEqual(self.recorder.flow_events(flow), ["requestheaders", "response"])


class ExpectTests(_Base):
    """
    Expect: 100-continue corner cases.
    """

    async def test_expect_with_response_from_requestheaders(self):
        """Expect: 100-continue and an addon answering in requestheaders: the client gets 100 or the answer, without sending the body first."""

        class Answer:
            def requestheaders(self, flow):
                flow.response = Response.make(403, b"denied")

        await self.proxy_with(Answer(), read_timeout=5.0)
        client = await self.client()
        client.send(
            b"POST http://127.0.0.1:1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        try:
            data = await client.wait_for(lambda d: b"\r\n\r\n" in d, 2)
        except Exception:
            data = bytes(client.received)
        self.assertIn(b"\r\n\r\n", data, "client waiting for 100 Continue got nothing")
        if data.startswith(b"HTTP/1.1 100"):
            client.send(b"hello")
        responses = await client.wait_responses(1, timeout=2)
        self.assertEqual(responses[-1].status, 403)

    async def test_expect_from_http10_client_ignored(self):
        """RFC 9110 10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored: no 100 sent."""
        await self.proxy_with()
        server = await RawServer.start(self, lambda c, r: c.write(http_response(200, b"got " + r.body)))
        client = await self.client()
        client.send(
            b"POST %s HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello"
            % server.url("/x").encode()
        )
        data = await client.wait_closed(3)
        responses = parse_responses(data)
        self.assertEqual([r.status for r in responses], [200], data)
        self.assertEqual(responses[0].body, b"got hello")


class AbsoluteFormTests(_Base):
    """
    Absolute-form request targets.
    """

    async def test_uppercase_scheme(self):
        """RFC 3986: the scheme is case-insensitive; HTTP://host/ is proxied like http://host/."""
        await self.proxy_with()
        server = await RawServer.start(self, ok_handler)
        client = await self.client()
        client.send(b"GET HTTP://127.0.0.1:%d/up HTTP/1.1\r\nHost: x\r\n\r\n" % server.port)
        [response] = await client.wait_responses(1)
        self.assertEqual((response.status, response.body), (200, b"ok"), response.body)
        self.assertEqual(server.requests[0].target, b"/up")

    async def test_query_without_path(self):
        """http://host:port?x=1 goes out as GET /?x=1."""
        await self.proxy_with()
        server = await RawServer.start(self, ok_handler)
        client = await self.client()
        client.send(b"GET http://127.0.0.1:%d?x=1 HTTP/1.1\r\nHost: x\r\n\r\n" % server.port)
        [response] = await client.wait_responses(1)
        self.assertEqual(response.status, 200)
        self.assertEqual(server.requests[0].target, b"/?x=1")

    async def test_no_path_and_fragment(self):
        """http://host:port goes out as GET /, and a fragment is not sent."""
        await self.proxy_with()
        server = await RawServer.start(self, ok_handler)
        client = await self.client()
        client.send(b"GET http://127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % server.port)
        client.send(b"GET http://127.0.0.1:%d/a?b=c#frag HTTP/1.1\r\nHost: x\r\n\r\n" % server.port)
        responses = await client.wait_responses(2)
        self.assertEqual([r.status for r in responses], [200, 200])
        self.assertEqual([r.target for r in server.requests], [b"/", b"/a?b=c"])

    async def test_userinfo_stripped(self):
        """http://user:pw@host:port/p reaches host:port with target /p."""
        await self.proxy_with()
        server = await RawServer.start(self, ok_handler)
        client = await self.client()
        client.send(b"GET http://user:pw@127.0.0.1:%d/p HTTP/1.1\r\nHost: x\r\n\r\n" % server.port)
        [response] = await client.wait_responses(1)
        self.assertEqual(response.status, 200)
        self.assertEqual(server.requests[0].target, b"/p")

    async def test_ipv6_literal_parsed(self):
        """http://[::1]:8080/x has host ::1 and port 8080 (answered by an addon; nothing connects)."""
        seen = {}

        class Answer:
            def requestheaders(self, flow):
                seen["host"], seen["port"], seen["path"] = (
                    flow.request.host, flow.request.port, flow.request.path)
                flow.response = Response.make(200, b"hi")

        await self.proxy_with(Answer())
        client = await self.client()
        client.send(b"GET http://[::1]:8080/x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n")
        [response] = await client.wait_responses(1)
        self.assertEqual(response.status, 200)
        self.assertEqual(seen, {"host": "::1", "port": 8080, "path": "/x"})


class ResponseFramingTests(_Base):
    """
    Odd framing from the server.
    """

    async def test_transfer_encoding_without_chunked(self):
        """A close-delimited 'Transfer-Encoding: gzip' response must not reach the client with both Transfer-Encoding and Content-Length."""
        await self.proxy_with()

        def handler(conn, request):
            conn.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc")
            conn.close()

        server = await RawServer.start(self, handler)
        client = await self.client()
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/g").encode())
        data = await client.wait_for(lambda d: b"abc" in d, 3)
        [response] = parse_responses(data)
        te = response.header(b"transfer-encoding")
        cl = response.header(b"content-length")
        self.assertFalse(te is not None and cl is not None, response.head)

    async def test_early_hints_then_response(self):
        """A 103 Early Hints before the 200 does not disturb the exchange."""
        await self.proxy_with()

        def handler(conn, request):
            conn.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
            conn.write(http_response(200, b"final"))

        server = await RawServer.start(self, handler)
        client = await self.client()
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/h").encode())
        responses = await client.wait_responses(1)
        self.assertEqual((responses[-1].status, responses[-1].body), (200, b"final"))
        [flow] = self.recorder.flows()
        self.assertEqual(flow.response.status_code, 200)
        check_flow_events(self, self.recorder, flow)


class PipelineTests(_Base):
    """
    Pipelined requests mixed with bodies, closes and errors.
    """

    async def test_pipelined_after_http10_server(self):
        """Two pipelined requests to an HTTP/1.0 server (no keep-alive): both get their 200."""
        await self.proxy_with()

        def handler(conn, request):
            conn.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            conn.close()

        server = await RawServer.start(self, handler)
        client = await self.client()
        url = server.url("/p").encode()
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\nGET %s HTTP/1.1\r\nHost: x\r\n\r\n" % (url, url))
        responses = await client.wait_responses(2, timeout=3)
        self.assertEqual([(r.status, r.body) for r in responses], [(200, b"ok"), (200, b"ok")],
                         [r.body for r in responses])

    async def test_pipelined_behind_connection_close_request(self):
        """A request pipelined behind 'Connection: close' is not answered, and gets no error for a flow never announced."""
        await self.proxy_with()
        server = await RawServer.start(self, ok_handler)
        client = await self.client()
        url = server.url("/p").encode()
        client.send(
            b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % (url, url)
        )
        data = await client.wait_closed(3)
        self.assertEqual([r.status for r in parse_responses(data)], [200])
        await sleep(0.1)
        for flow in self.recorder.flows():
            check_flow_events(self, self.recorder, flow)

    async def test_pipelined_mixed_bodies_in_tiny_pieces(self):
        """GET, chunked POST with extensions and trailers, Content-Length POST, HEAD: pipelined, sent 3 bytes at a time."""
        await self.proxy_with()

        def handler(conn, request):
            conn.write(http_response(200, b"%s %s [%s]" % (request.method, request.target, request.body)))

        server = await RawServer.start(self, handler)
        client = await self.client()
        base = b"http://127.0.0.1:%d" % server.port
        data = (
            b"GET %s/a HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST %s/b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;name=value\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n"
            b"POST %s/c HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nwxyz"
            b"HEAD %s/d HTTP/1.1\r\nHost: x\r\n\r\n"
        ) % (base, base, base, base)
        for i in range(0, len(data), 3):
            client.send(data[i:i + 3])
            await sleep(0.001)
        responses = await client.wait_responses(4, methods=(b"GET", b"POST", b"POST", b"HEAD"), timeout=6)
        self.assertEqual(
            [r.body for r in responses],
            [b"GET /a []", b"POST /b [abcde]", b"POST /c [wxyz]", b""],
        )
        self.assertEqual(responses[3].status, 200)
        self.assertEqual(len(server.connections), 1)
        for flow in self.recorder.flows():
            check_flow_events(self, self.recorder, flow)

    async def test_pipelined_early_answer_then_upstream(self):
        """Pipelined: an addon answers the first (with a body) itself, the second goes upstream."""

        class Answer:
            def request(self, flow):
                if flow.request.path == "/local":
                    flow.response = Response.make(201, b"local")

        await self.proxy_with(Answer())
        server = await RawServer.start(self, ok_handler)
        client = await self.client()
        client.send(
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % (server.url("/local").encode(), server.url("/up").encode())
        )
        responses = await client.wait_responses(2)
        self.assertEqual([(r.status, r.body) for r in responses], [(201, b"local"), (200, b"ok")])
        self.assertEqual([r.target for r in server.requests], [b"/up"])


class BodilessTests(_Base):
    """
    HEAD/204/304 with framing headers from the server, then keep-alive reuse.
    """

    async def _two(self, method, first):
        await self.proxy_with()
        answers = [first, http_response(200, b"second")]

        def handler(conn, request):
            conn.write(answers.pop(0))

        server = await RawServer.start(self, handler)
        client = await self.client()
        client.send(b"%s %s HTTP/1.1\r\nHost: x\r\n\r\n" % (method, server.url("/1").encode()))
        await client.wait_responses(1, methods=(method,))
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/2").encode())
        responses = await client.wait_responses(2, methods=(method, b"GET"))
        self.assertEqual(responses[1].body, b"second")
        self.assertEqual(len(server.connections), 1)
        return responses

    async def test_head_with_transfer_encoding_chunked(self):
        """A HEAD answered with Transfer-Encoding: chunked and no body; the connection is reused."""
        responses = await self._two(b"HEAD", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        self.assertEqual(responses[0].header(b"transfer-encoding"), b"chunked")

    async def test_204_with_content_length(self):
        """A 204 with a Content-Length (invalid but seen) and no body; the next response is intact."""
        await self._two(b"GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n")

    async def test_304_with_transfer_encoding(self):
        """A 304 with Transfer-Encoding: chunked and no body; the next response is intact."""
        await self._two(b"GET", b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n")

    async def test_304_with_large_content_length(self):
        """A 304 carrying the representation's large Content-Length; the next response is intact."""
        await self._two(b"GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5000000\r\n\r\n")

    async def test_head_with_large_content_length_then_get(self):
        """A HEAD whose Content-Length is large (1 MB), then a GET whose body arrives after its head."""
        await self.proxy_with()

        def handler(conn, request):
            if request.method == b"HEAD":
                conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
            else:
                conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n")
                reactor.callLater(0.05, conn.write, b"second")

        server = await RawServer.start(self, handler)
        client = await self.client()
        client.send(b"HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/1").encode())
        await client.wait_responses(1, methods=(b"HEAD",))
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/2").encode())
        responses = await client.wait_responses(2, methods=(b"HEAD", b"GET"))
        self.assertEqual(responses[1].body, b"second")
        await sleep(0.1)

    async def test_head_with_async_responseheaders(self):
        """A HEAD with a slow responseheaders hook: the head arrives and the flow completes."""

        slow = HeldHook("responseheaders")
        await self.proxy_with(slow)
        server = await RawServer.start(self, lambda c, r: c.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"))
        client = await self.client()
        client.send(b"HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/1").encode())
        self.assertTrue(await wait_until(lambda: slow.pending))
        slow.release()
        [response] = await client.wait_responses(1, methods=(b"HEAD",))
        self.assertEqual(response.header(b"content-length"), b"10")
        [flow] = self.recorder.flows()
        check_flow_events(self, self.recorder, flow)


class LimitBoundaryTests(_Base):
    """
    body_size_limit and stream_large_bodies exactly at the limit.
    """

    async def _post(self, body, chunked=False, **options):
        await self.proxy_with(**options)
        server = await RawServer.start(self, lambda c, r: c.write(http_response(200, b"%d" % len(r.body))))
        client = await self.client()
        url = server.url("/u").encode()
        if chunked:
            client.send(b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
                        % (url, len(body), body))
        else:
            client.send(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (url, len(body), body))
        [response] = await client.wait_responses(1)
        return response

    async def test_request_length_at_limit(self):
        """A request body of exactly body_size_limit bytes (Content-Length) passes."""
        response = await self._post(pattern(100), body_size_limit="100")
        self.assertEqual((response.status, response.body), (200, b"100"))

    async def test_request_chunked_at_limit(self):
        """A chunked request body of exactly body_size_limit bytes passes."""
        response = await self._post(pattern(100), chunked=True, body_size_limit="100")
        self.assertEqual((response.status, response.body), (200, b"100"))

    async def test_request_length_over_limit(self):
        """One byte over body_size_limit gets 413."""
        response = await self._post(pattern(101), body_size_limit="100")
        self.assertEqual(response.status, 413)

    async def _get(self, body, chunked=False, **options):
        seen = {}

        class Look:
            def response(self, flow):
                seen["stream"] = bool(flow.response.stream)

        await self.proxy_with(Look(), **options)

        def handler(conn, request):
            if chunked:
                conn.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
                           % (len(body), body))
            else:
                conn.write(http_response(200, body))

        server = await RawServer.start(self, handler)
        client = await self.client()
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/d").encode())
        [response] = await client.wait_responses(1)
        return response, seen

    async def test_response_length_at_limit(self):
        """A response body of exactly body_size_limit bytes passes."""
        response, _ = await self._get(pattern(100), body_size_limit="100")
        self.assertEqual((response.status, response.body), (200, pattern(100)))

    async def test_response_chunked_at_limit(self):
        """A chunked response of exactly body_size_limit bytes passes."""
        response, _ = await self._get(pattern(100), chunked=True, body_size_limit="100")
        self.assertEqual((response.status, response.body), (200, pattern(100)))

    async def test_response_chunked_over_limit(self):
        """A chunked response one byte over body_size_limit gets 502."""
        response, _ = await self._get(pattern(101), chunked=True, body_size_limit="100")
        self.assertEqual(response.status, 502)

    async def test_stream_at_threshold_buffered(self):
        """A response of exactly stream_large_bodies bytes is buffered; one more byte streams."""
        response, seen = await self._get(pattern(100), stream_large_bodies="100")
        self.assertEqual((response.body, seen), (pattern(100), {"stream": False}))

    async def test_stream_over_threshold_streamed(self):
        """A response of stream_large_bodies + 1 bytes is streamed, and arrives whole."""
        response, seen = await self._get(pattern(101), stream_large_bodies="100")
        self.assertEqual((response.body, seen), (pattern(101), {"stream": True}))

    async def test_stream_chunked_over_threshold(self):
        """A chunked response over stream_large_bodies arriving at once is streamed, and arrives whole."""
        response, seen = await self._get(pattern(150), chunked=True, stream_large_bodies="100")
        self.assertEqual(response.body, pattern(150))


class ConnectionEventTests(_Base):
    """
    serverconnect/serverdisconnect/clientdisconnect balance.
    """

    async def test_disconnect_events_once(self):
        """Keep-alive requests to two servers, one closing: serverconnect and serverdisconnect pair up, one clientdisconnect."""
        await self.proxy_with()

        def closing(conn, request):
            conn.write(http_response(200, b"bye", [(b"Connection", b"close")]))
            conn.close()

        a = await RawServer.start(self, ok_handler)
        b = await RawServer.start(self, closing)
        # The server's Connection: close is passed on, so the client
        # connection ends after /2 and after /4.
        first = await self.client()
        for i, url in enumerate((a.url("/1"), b.url("/2"))):
            first.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % url.encode())
            await first.wait_responses(i + 1)
        await first.wait_closed(3)
        second = await self.client()
        for i, url in enumerate((a.url("/3"), b.url("/4"))):
            second.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % url.encode())
            await second.wait_responses(i + 1)
        await second.wait_closed(3)
        self.assertTrue(await wait_until(lambda: self.recorder.count("clientdisconnect") == 2))
        await sleep(0.2)
        self.assertEqual(self.recorder.count("clientdisconnect"), 2)
        self.assertEqual(self.recorder.count("clientconnect"), 2)
        connects = [arg for name, arg in self.recorder.events if name == "serverconnect"]
        disconnects = [arg for name, arg in self.recorder.events if name == "serverdisconnect"]
        self.assertEqual(len(connects), 4)
        self.assertEqual(sorted(map(id, connects)), sorted(map(id, disconnects)))
        for flow in self.recorder.flows():
            self.assertEqual(check_flow_events(self, self.recorder, flow)[-1], "response")


class WireFidelityTests(_Base):
    """
    Bytes on the wire are passed on as they were.
    """

    async def test_reason_phrase_bytes_kept(self):
        """A reason phrase with an obs-text byte (0xE9) reaches the client as the same byte."""
        await self.proxy_with()
        server = await RawServer.start(
            self, lambda c, r: c.write(b"HTTP/1.1 200 Caf\xe9 OK\r\nContent-Length: 2\r\n\r\nok"))
        client = await self.client()
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/r").encode())
        [response] = await client.wait_responses(1)
        self.assertEqual(response.head.split(b"\r\n")[0], b"HTTP/1.1 200 Caf\xe9 OK")

    async def test_header_value_bytes_kept_both_ways(self):
        """obs-text bytes in header values and odd name case survive both directions."""
        await self.proxy_with()
        server = await RawServer.start(
            self, lambda c, r: c.write(http_response(200, b"ok", [(b"x-MiXeD", b"caf\xe9 \xff")])))
        client = await self.client()
        client.send(b"GET %s HTTP/1.1\r\nhOsT: x\r\nX-Odd: caf\xe9 \xff\r\n\r\n" % server.url("/r").encode())
        [response] = await client.wait_responses(1)
        self.assertIn(b"\r\nx-MiXeD: caf\xe9 \xff\r\n", response.head)
        self.assertIn(b"\r\nX-Odd: caf\xe9 \xff\r\n", server.requests[0].head)
        self.assertIn(b"\r\nhOsT: x\r\n", server.requests[0].head)

    async def test_non_utf8_path_kept(self):
        """A request target with a non-UTF-8 byte and odd escapes goes upstream byte for byte."""
        await self.proxy_with()
        server = await RawServer.start(self, ok_handler)
        client = await self.client()
        client.send(b"GET http://127.0.0.1:%d/a%%2Fb/\xe9?q=%%zz&x HTTP/1.1\r\nHost: x\r\n\r\n" % server.port)
        responses = await client.wait_responses(1)
        if responses[0].status == 200:
            self.assertEqual(server.requests[0].target, b"/a%2Fb/\xe9?q=%zz&x")

    async def test_http10_client_with_stream_transform(self):
        """An HTTP/1.0 request whose body an addon transforms while streaming is not sent as HTTP/1.0 + chunked."""

        class Upper:
            def requestheaders(self, flow):
                flow.request.stream = lambda data: data.upper()

        await self.proxy_with(Upper())
        server = await RawServer.start(self, lambda c, r: c.write(http_response(200, r.body)))
        client = await self.client()
        client.send(b"POST %s HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello" % server.url("/u").encode())
        data = await client.wait_closed(3)
        [response] = parse_responses(data)
        self.assertEqual(response.body, b"HELLO")
        [request] = server.requests
        self.assertFalse(
            request.version == b"HTTP/1.0" and request.header(b"transfer-encoding") is not None,
            request.head,
        )


class MoreEventTests(_Base):
    """
    More event-sequence probes.
    """

    async def test_pipelined_burst(self):
        """Thirty pipelined GETs sent at once are all answered, in order, each flow complete."""
        await self.proxy_with()
        server = await RawServer.start(self, lambda c, r: c.write(http_response(200, r.target)))
        client = await self.client()
        client.send(b"".join(
            b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url(f"/{i}").encode() for i in range(30)))
        responses = await client.wait_responses(30, timeout=6)
        self.assertEqual([r.body for r in responses], [b"/%d" % i for i in range(30)])
        flows = self.recorder.flows()
        self.assertEqual(len(flows), 30)
        for flow in flows:
            check_flow_events(self, self.recorder, flow)

    async def test_bad_pipelined_body_behind_slow_request(self):
        """A pipelined request with a broken chunked body behind a slow one: 200 then 400; no error for a flow never announced."""
        await self.proxy_with()
        waiting = []
        server = await RawServer.start(self, lambda conn, request: waiting.append(conn))
        client = await self.client()
        client.send(
            b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
            % (server.url("/slow").encode(), server.url("/bad").encode())
        )
        # The server answers once the broken request is at the proxy too.
        self.assertTrue(await wait_until(lambda: waiting and delivered(client.transport)))
        waiting[0].write(http_response(200, b"slow"))
        data = await client.wait_closed(3)
        self.assertEqual([r.status for r in parse_responses(data)], [200, 400])
        self.assertTrue(await wait_until(lambda: not self.proxy.master.factories[0].connections))
        for flow in self.recorder.flows():
            check_flow_events(self, self.recorder, flow)

    async def test_client_leaves_mid_response_body(self):
        """The client leaving in the middle of a response body: the flow ends with error; serverdisconnect once."""
        await self.proxy_with()

        def handler(conn, request):
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")

        server = await RawServer.start(self, handler)
        client = await self.client()
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/m").encode())
        await wait_until(lambda: self.recorder.count("responseheaders") == 1)
        await client.abort()
        self.assertTrue(await wait_until(lambda: self.recorder.count("serverdisconnect") == 1))
        await sleep(0.1)
        [flow] = self.recorder.flows()
        self.assertEqual(check_flow_events(self, self.recorder, flow)[-1], "error")
        self.assertEqual(self.recorder.count("serverdisconnect"), 1)
        self.assertEqual(self.recorder.count("clientdisconnect"), 1)

    async def test_upstream_reset_mid_head(self):
        """The server resetting in the middle of the response head: 502, error, nothing else."""
        await self.proxy_with()

        def handler(conn, request):
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Le")
            reactor.callLater(0.05, conn.abort)

        server = await RawServer.start(self, handler)
        client = await self.client()
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/m").encode())
        data = await client.wait_closed(3)
        self.assertEqual([r.status for r in parse_responses(data)], [502])
        [flow] = self.recorder.flows()
        self.assertEqual(check_flow_events(self, self.recorder, flow),
                         ["requestheaders", "request", "error"])

    async def test_streamed_upload_early_final_response(self):
        """A streamed upload the server refuses early (413 + close after the head): the client gets the 413."""
        await self.proxy_with(stream_large_bodies="10")

        def on_head(conn, request):
            conn.write(http_response(413, b"too big", [(b"Connection", b"close")]))
            conn.close()

        server = await RawServer.start(self, lambda c, r: None, on_head=on_head)
        client = await self.client()
        client.send(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" % server.url("/up").encode()
                    + pattern(1000))
        data = await client.wait_for(lambda d: b"too big" in d, 3)
        [response] = parse_responses(data)
        self.assertEqual(response.status, 413)
        await sleep(0.2)
        [flow] = self.recorder.flows()
        events = self.recorder.flow_events(flow)
        # The request never completed, so no "request" event is acceptable.
        self.assertEqual([e for e in events if e != "request"],
                         ["requestheaders", "responseheaders", "response"], events)

    async def test_kill_in_async_requestheaders_with_body_pending(self):
        """A flow killed by a Deferred-returning requestheaders hook while its body arrives: dropped, error once."""

        slow = HeldHook("requestheaders")
        await self.proxy_with(slow)
        server = await RawServer.start(self, ok_handler)
        client = await self.client()
        client.send(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234" % server.url("/k").encode())
        self.assertTrue(await wait_until(lambda: slow.pending))
        client.send(b"56789")
        self.assertTrue(await wait_until(lambda: delivered(client.transport)))
        slow.flows[0].kill()
        slow.release()
        data = await client.wait_closed(3)
        self.assertEqual(data, b"")
        [flow] = self.recorder.flows()
        self.assertEqual(check_flow_events(self, self.recorder, flow)[-1], "error")
        self.assertEqual(server.requests, [])


class TinyPieceTests(_Base):
    """
    A server writing its response a few bytes at a time.
    """

    async def test_chunked_response_with_extensions_in_tiny_pieces(self):
        """A chunked response with chunk extensions and a trailer, written 2 bytes at a time, arrives whole."""
        await self.proxy_with()
        raw = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;a=b\r\nhello\r\n1;c\r\n \r\n5\r\nworld\r\n0;end\r\n\r\n")
        calls = []

        def handler(conn, request):
            for i in range(0, len(raw), 2):
                calls.append(reactor.callLater(0.002 * i, conn.write, raw[i:i + 2]))

        server = await RawServer.start(self, handler)
        self.addCleanup(lambda: [c.cancel() for c in calls if c.active()])
        client = await self.client()
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/t").encode())
        [response] = await client.wait_responses(1, timeout=4)
        self.assertEqual((response.status, response.body), (200, b"hello world"))
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/t").encode())
        responses = await client.wait_responses(2, timeout=4)
        self.assertEqual(responses[1].body, b"hello world")
        self.assertEqual(len(server.connections), 1)
