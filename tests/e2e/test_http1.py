# -*- test-case-name: tests.e2e.test_http1 -*-
"""
End-to-end tests of the HTTP/1.x regular proxy mode (issue #3, point 1):
real clients (curl, twisted.web's ProxyAgent, a raw TCP client) through a
proxy running in-process, to real servers on 127.0.0.1; upgrades over TLS,
and the upstream connections paired with a client.
"""

from __future__ import annotations

import json
import os

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest

from interceptor.testing import start_proxy
from tests.e2e.peers import (
    LoopbackServer,
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
        await sleep(0.3)
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
