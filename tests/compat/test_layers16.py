# -*- test-case-name: tests.compat.test_layers16 -*-
"""
mitmproxy-style scripts run through C{twistd interceptor --addon} against
loopback servers (issue #16): trailers an addon adds go out with one
framing, reverse mode's Host as mitmproxy 12 shows it to addons, and the
WSGI app addon (L{interceptor.addons.wsgiapp.WSGIApp}).

The scripts are our own, written with the API of mitmproxy's examples
(C{http-trailers.py}, C{dns_spoofing.py}, C{wsgi_flask_app.py}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.protocol import ClientFactory
from twisted.trial import unittest

from tests.e2e.h2peers import H2cClient, H2Response, bounded
from tests.scriptfiles import write_script as script
from tests.e2e.peers import (
    RawClient,
    RawServer,
    curl,
    http_response,
    twistd_proxy,
    wait_until,
)

try:
    import flask
except ImportError:
    flask = None

TRAILER = [(b"x-my-injected-trailer-header", b"foobar")]

# As mitmproxy's http-trailers.py: HTTP/1.1 messages are made chunked by
# the script, HTTP/2 ones only get the trailers.
TRAILERS_SCRIPT = """
from interceptor.http import Headers


def request(flow):
    if flow.request.path == "/inject_trailers":
        if flow.request.is_http10 or not flow.request.content:
            return
        if flow.request.is_http11:
            flow.request.headers["transfer-encoding"] = "chunked"
        flow.request.headers["trailer"] = "x-my-injected-trailer-header"
        flow.request.trailers = Headers([(b"x-my-injected-trailer-header", b"foobar")])


def response(flow):
    if flow.request.path == "/inject_trailers":
        if flow.request.is_http10:
            return
        if flow.request.is_http11:
            if not flow.response.content:
                return
            flow.response.headers["transfer-encoding"] = "chunked"
        flow.response.headers["trailer"] = "x-my-injected-trailer-header"
        flow.response.trailers = Headers([(b"x-my-injected-trailer-header", b"foobar")])
"""

# Trailers added before the body, to a response the script streams.
STREAMED_TRAILERS_SCRIPT = """
from interceptor.http import Headers


def responseheaders(flow):
    flow.response.stream = True
    flow.response.trailers = Headers([(b"x-my-injected-trailer-header", b"foobar")])
"""

# As mitmproxy's dns_spoofing.py (run with keep_host_header): the Host the
# client sent names the server the request goes to.
REROUTE_SCRIPT = """
import re

parse_host_header = re.compile(r"^(?P<host>[^:]+|\\[.+\\])(?::(?P<port>\\d+))?$")
seen = []


class Rerouter:
    def requestheaders(self, flow):
        seen.append(("requestheaders", flow.request.host_header, flow.request.host, flow.request.port))

    def request(self, flow):
        seen.append(("request", flow.request.host_header, flow.request.host, flow.request.port))
        port = 80
        host_header = flow.request.host_header
        m = parse_host_header.match(host_header)
        if m:
            host_header = m.group("host").strip("[]")
            if m.group("port"):
                port = int(m.group("port"))
        flow.request.host_header = host_header
        flow.request.host = host_header
        flow.request.port = port

    def response(self, flow):
        flow.response.headers["x-seen"] = repr(seen.pop(0)) + " " + repr(seen.pop(0))


addons = [Rerouter()]
"""

# Trailers on an HTTP/1.0 request, which cannot carry them.
HTTP10_TRAILERS_SCRIPT = """
from interceptor.http import Headers


def request(flow):
    flow.request.headers["transfer-encoding"] = "chunked"
    flow.request.trailers = Headers([(b"x-my-injected-trailer-header", b"foobar")])
"""

# What requestheaders and request see of the target, in a response header.
SEEN_SCRIPT = """
seen = []


def requestheaders(flow):
    seen.append(("requestheaders", flow.request.host_header, flow.request.host, flow.request.port))


def request(flow):
    seen.append(("request", flow.request.host_header, flow.request.host, flow.request.port))


def response(flow):
    flow.response.headers["x-seen"] = repr(seen.pop(0)) + " " + repr(seen.pop(0))
"""

WSGI_SCRIPT = """
from interceptor.addons import {module}


def app(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("the app failed")
    if environ["PATH_INFO"] == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (b"x" * 1024 for _ in range(100))
    body = "{{}} {{}} {{}} {{}} {{!r}}".format(
        environ["REQUEST_METHOD"], environ["PATH_INFO"], environ["QUERY_STRING"],
        environ["SERVER_PORT"], environ["wsgi.input"].read(),
    ).encode()
    start_response("201 Made", [("Content-Type", "text/plain"), ("X-App", "plain")])
    return [body]


addons = [{module}.WSGIApp(app, "127.0.0.1", {port})]
"""

FLASK_SCRIPT = """
from flask import Flask, request
from interceptor.addons import wsgiapp

app = Flask("proxapp")


@app.route("/")
def hello_world():
    return "Hello World!"


@app.route("/echo", methods=["POST"])
def echo():
    return {"got": request.get_data(as_text=True), "host": request.host}


addons = [wsgiapp.WSGIApp(app, "proxapp", 80)]
"""


async def h2c_request(
    testcase: unittest.TestCase, proxy_port: int, server_port: int, *args: Any, **kw: Any
) -> H2Response:
    """
    One request over HTTP/2 with prior knowledge, straight to the proxy at
    C{proxy_port}, naming 127.0.0.1:C{server_port} in its C{:authority}.
    """
    client = H2cClient(("127.0.0.1", server_port), "", (b"h2",), True)
    factory = ClientFactory.forProtocol(lambda: client)
    factory.noisy = False
    client.connector = reactor.connectTCP("127.0.0.1", proxy_port, factory, timeout=5)
    testcase.addCleanup(client.close)
    await bounded(client.ready)
    return await bounded(client.request(*args, **kw).done)


def answer_ok(conn: Any, request: Any) -> None:
    conn.write(http_response(200, b"hello"))


class TrailersTests(unittest.TestCase):
    """
    Trailers added by an addon travel after a chunked body to HTTP/1.1
    peers (without the server's Content-Length), and as a trailer block to
    HTTP/2 ones.
    """

    timeout = 30

    async def start(self, text: str, *args: str) -> tuple[int, RawServer]:
        server = await RawServer.start(self, answer_ok)
        port, _, _ = await twistd_proxy(self, "--addon", script(self, text), *args)
        return port, server

    async def exchange(self, port: int, raw: bytes) -> Any:
        client = await RawClient.connect(self, port)
        client.send(raw)
        (response,) = await client.wait_responses(1)
        return response

    async def test_response_to_http11_client(self) -> None:
        """
        The script makes the response chunked and adds a trailer: the client
        gets chunked framing only, the body and the trailer.
        """
        port, server = await self.start(TRAILERS_SCRIPT)
        response = await self.exchange(
            port,
            b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 2\r\n\r\nhi"
            % (server.url("/inject_trailers").encode(), server.port),
        )
        self.assertEqual(response.framing, "chunked")
        self.assertIsNone(response.header(b"content-length"), response.head)
        self.assertEqual(response.body, b"hello")
        self.assertEqual(response.trailers, TRAILER)

    async def test_request_upstream(self) -> None:
        """
        The script makes the request chunked with a trailer: the server gets
        it chunked, without Content-Length, with the trailer.
        """
        port, server = await self.start(TRAILERS_SCRIPT)
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", "-d", "hello",
                            server.url("/inject_trailers"))
        self.assertEqual(result.status, 200)
        (request,) = server.requests
        self.assertIsNone(request.header(b"content-length"), request.head)
        self.assertTrue(request.chunked, request.head)
        self.assertEqual((request.body, request.trailers), (b"hello", TRAILER))

    async def test_http10_request_keeps_its_length(self) -> None:
        """
        An HTTP/1.0 request made chunked by an addon goes on with a
        Content-Length: that version has no chunked framing.
        """
        port, server = await self.start(HTTP10_TRAILERS_SCRIPT)
        await curl(self, "-0", "-x", f"http://127.0.0.1:{port}", "-d", "hello",
                   server.url("/inject_trailers"))
        self.assertTrue(await wait_until(lambda: len(server.requests) == 1))
        (request,) = server.requests
        self.assertEqual(request.header(b"content-length"), b"5", request.head)
        self.assertIsNone(request.header(b"transfer-encoding"), request.head)
        self.assertEqual(request.body, b"hello")

    async def test_streamed_response(self) -> None:
        """
        Trailers set in C{responseheaders} on a streamed response with a
        Content-Length: the body goes chunked, and the trailers after it.
        """
        port, server = await self.start(STREAMED_TRAILERS_SCRIPT)
        response = await self.exchange(
            port, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/s").encode())
        self.assertEqual(response.framing, "chunked")
        self.assertIsNone(response.header(b"content-length"), response.head)
        self.assertEqual((response.body, response.trailers), (b"hello", TRAILER))

    async def test_response_to_h2_client(self) -> None:
        """
        Over HTTP/2 the same script's trailers are a trailer block; no
        connection-specific header is sent, and any Content-Length matches
        the body.
        """
        port, server = await self.start(TRAILERS_SCRIPT)
        response = await h2c_request(self, port, server.port, "POST", "/inject_trailers", body=b"hi")
        self.assertEqual((response.status, bytes(response.body)), (200, b"hello"))
        self.assertEqual(response.trailers, TRAILER)
        self.assertIsNone(response.header(b"transfer-encoding"))
        self.assertIn(response.header(b"content-length"), (None, b"5"))
        (request,) = server.requests
        self.assertEqual((request.body, request.trailers), (b"hi", TRAILER))
        self.assertIsNone(request.header(b"content-length"), request.head)


class ReverseHostTests(unittest.TestCase):
    """
    Reverse mode as mitmproxy 12 has it: C{request.host}/C{port} are the
    target's; the Host header is the target's unless C{keep_host_header},
    which leaves the client's for addons to read (C{dns_spoofing.py}).
    """

    timeout = 30

    async def rerouting_proxy(self) -> tuple[int, RawServer, RawServer]:
        """
        A reverse proxy with C{keep_host_header} running the rerouting
        script: its port, its target, and another server to name in Host.
        """
        target = await RawServer.start(self, answer_ok)
        named = await RawServer.start(self, answer_ok)
        port, _, _ = await twistd_proxy(
            self, "--mode", f"reverse:http://127.0.0.1:{target.port}",
            "--set", "keep_host_header=true", "--addon", script(self, REROUTE_SCRIPT))
        return port, target, named

    def assertSeen(self, result: Any, host_header: str, port: int) -> None:
        """
        Both request hooks saw C{host_header} and the target 127.0.0.1:C{port}
        (the scripts' C{x-seen} response header).
        """
        self.assertEqual(
            result.heads[-1].header(b"x-seen").decode(),
            repr(("requestheaders", host_header, "127.0.0.1", port)) + " "
            + repr(("request", host_header, "127.0.0.1", port)),
        )

    async def test_keep_host_header_reroutes(self) -> None:
        """
        With C{keep_host_header}, C{requestheaders} and C{request} see the
        client's Host and the target's host and port; the script sends the
        request to the server the Host names, with that Host.
        """
        port, target, named = await self.rerouting_proxy()
        result = await curl(self, "-H", f"Host: 127.0.0.1:{named.port}",
                            f"http://127.0.0.1:{port}/path")
        self.assertEqual((result.status, result.body), (200, b"hello"))
        self.assertEqual(target.requests, [])
        (request,) = named.requests
        # (Setting host and port after host_header names them both in Host.)
        self.assertEqual(
            (request.target, request.header(b"host")), (b"/path", f"127.0.0.1:{named.port}".encode()))
        client_host = f"127.0.0.1:{named.port}"
        self.assertSeen(result, client_host, target.port)

    async def test_default_rewrites_host(self) -> None:
        """
        Without C{keep_host_header} the addons already see the target's Host
        (as in mitmproxy 12), and the target gets it.
        """
        target = await RawServer.start(self, answer_ok)
        port, _, _ = await twistd_proxy(
            self, "--mode", f"reverse:http://127.0.0.1:{target.port}",
            "--addon", script(self, SEEN_SCRIPT))
        result = await curl(self, "-H", "Host: example.org", f"http://127.0.0.1:{port}/p")
        self.assertEqual(result.status, 200)
        (request,) = target.requests
        self.assertEqual(request.header(b"host"), f"127.0.0.1:{target.port}".encode())
        expected = f"127.0.0.1:{target.port}"
        self.assertSeen(result, expected, target.port)

    async def test_keep_host_header_h2_client(self) -> None:
        """
        An HTTP/2 client's C{:authority} is its Host: kept, the addons read
        it as C{host_header} and the script reroutes by it.
        """
        port, target, named = await self.rerouting_proxy()
        response = await h2c_request(self, port, named.port, "GET", "/h2")
        self.assertEqual((response.status, bytes(response.body)), (200, b"hello"))
        self.assertEqual(target.requests, [])
        self.assertEqual([r.target for r in named.requests], [b"/h2"])


class WSGIAppTests(unittest.TestCase):
    """
    C{WSGIApp(app, host, port)} answers the requests to that host and port
    with the app, through Twisted's WSGI container; no server is contacted.
    """

    timeout = 30

    async def start(self, module: str = "wsgiapp", *args: str) -> tuple[int, RawServer]:
        # The app takes a real server's address: had the proxy contacted
        # it, the server would have seen the request.
        server = await RawServer.start(self, answer_ok)
        text = WSGI_SCRIPT.format(module=module, port=server.port)
        port, _, protocol = await twistd_proxy(self, "--addon", script(self, text), *args)
        self.output = protocol
        return port, server

    async def test_plain_wsgi_callable(self) -> None:
        """
        Method, path (unquoted), query, port and body reach the app; its
        status, headers and body come back; the server sees nothing.
        """
        port, server = await self.start()
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", "-d", "hi",
                            server.url("/a%20b/c?x=1"))
        self.assertEqual(result.status, 201)
        self.assertEqual(result.heads[-1].reason, b"Made")
        self.assertEqual(result.heads[-1].header(b"x-app"), b"plain")
        self.assertEqual(result.body, f"POST /a b/c x=1 {server.port} b'hi'".encode())
        self.assertEqual(server.connections, [])

    async def test_asgiapp_alias(self) -> None:
        """
        mitmproxy 12 scripts import C{WSGIApp} from C{addons.asgiapp}.
        """
        port, server = await self.start("asgiapp")
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", server.url("/x"))
        self.assertEqual((result.status, result.body), (201, f"GET /x  {server.port} b''".encode()))
        self.assertEqual(server.connections, [])

    async def test_other_hosts_pass(self) -> None:
        """
        A request to another port of the same host goes to its server.
        """
        port, server = await self.start()
        other = await RawServer.start(self, answer_ok)
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", other.url("/x"))
        self.assertEqual((result.status, result.body), (200, b"hello"))
        self.assertEqual(len(other.requests), 1)

    async def test_app_error_is_a_500(self) -> None:
        """
        An app that raises answers 500, its error is logged, and the proxy
        goes on serving.
        """
        port, server = await self.start()
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", server.url("/boom"))
        self.assertEqual(result.status, 500)
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", server.url("/fine"))
        self.assertEqual(result.status, 201)
        self.assertTrue(await wait_until(lambda: b"the app failed" in self.output.output))
        self.assertIn(b"WSGI application error", self.output.output)

    async def test_body_size_limit(self) -> None:
        """
        An app's body beyond C{body_size_limit} is cut off: a 502 naming
        the option.
        """
        port, server = await self.start("wsgiapp", "--set", "body_size_limit=10k")
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", server.url("/big"))
        self.assertEqual(result.status, 502)
        self.assertIn(b"body_size_limit", result.body)
        self.assertEqual(server.connections, [])

    async def test_h2_client(self) -> None:
        """
        An HTTP/2 client gets the app's answer too.
        """
        port, server = await self.start()
        response = await h2c_request(self, port, server.port, "GET", "/h2?q")
        self.assertEqual(response.status, 201)
        self.assertEqual(bytes(response.body), f"GET /h2 q {server.port} b''".encode())
        self.assertEqual(server.connections, [])

    async def test_flask_app(self) -> None:
        """
        A Flask app at the virtual host C{proxapp}, port 80 (mitmproxy's
        wsgi_flask_app.py): no DNS lookup, no server.
        """
        if flask is None:
            raise unittest.SkipTest("flask is not installed")
        port, _, _ = await twistd_proxy(self, "--addon", script(self, FLASK_SCRIPT))
        proxy = f"http://127.0.0.1:{port}"
        result = await curl(self, "-x", proxy, "http://proxapp/")
        self.assertEqual((result.status, result.body), (200, b"Hello World!"))
        result = await curl(self, "-x", proxy, "-d", "ping", "http://proxapp/echo")
        self.assertEqual(result.status, 200)
        self.assertEqual(result.heads[-1].header(b"content-type"), b"application/json")
        self.assertIn(b'"got":"ping"', result.body.replace(b" ", b""))
        result = await curl(self, "-x", proxy, "http://proxapp/missing")
        self.assertEqual(result.status, 404)
