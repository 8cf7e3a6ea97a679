# -*- test-case-name: tests.e2e.test_flowmodel -*-
"""
End-to-end tests of the flow model as hooks see it (issue #3, point 2):
request attributes, re-targeting, made responses and transparent content
encodings, copies of live flows, with real clients and servers on
127.0.0.1.
"""

from __future__ import annotations

import gzip
import json
import zlib

import brotli
import zstandard
from twisted.trial import unittest

from interceptor.model.http import Response
from interceptor.testing import start_proxy
from tests.e2e.peers import (
    RawClient,
    RawServer,
    WebServer,
    curl,
    http_response,
    ok_handler,
    proxy_agent,
    agent_request,
    wait_until,
)
from tests.e2e.tcppeers import TcpServer, connect_tunnel
from tests.e2e.tlspeers import HttpsServer, TestCA
from tests.e2e.wspeers import raw_setup

ENCODERS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}

DECODERS = {
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
    "br": brotli.decompress,
    "zstd": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
}


class RequestAttributesTests(unittest.TestCase):
    """
    The request's attributes hold what the client sent.
    """

    timeout = 15

    async def test_request_attributes_in_request_hook(self):
        """A request hook sees method, URL parts, version, headers, body views, query, cookies and form."""
        seen = {}

        class Inspect:
            def requestheaders(self, flow):
                seen["raw_at_headers"] = flow.request.raw_content

            def request(self, flow):
                r = flow.request
                seen.update(
                    method=r.method, scheme=r.scheme, host=r.host, port=r.port, path=r.path,
                    authority=r.authority, http_version=r.http_version,
                    user_agent=r.headers["user-agent"], content=r.content,
                    raw_content=r.raw_content, text=r.text, url=r.url, pretty_url=r.pretty_url,
                    query=list(r.query.items(multi=True)),
                    cookies=list(r.cookies.items(multi=True)),
                    form=list(r.urlencoded_form.items(multi=True)),
                    timestamps=(r.timestamp_start, r.timestamp_end),
                    client=flow.client_conn.address, flow_id=flow.id,
                )

        proxy = await start_proxy(self, Inspect(), read_timeout=2.0)
        web = await WebServer.start(self)
        result = await curl(
            self, "-x", proxy.url, "-A", "e2e-agent", "-b", "session=abc; theme=dark",
            "--data", "name=J%C3%BCrgen&x=1&x=2", web.url("/echo/path?a=1&b=two&a=3"),
        )
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.status, 200)
        self.assertIsNone(seen["raw_at_headers"])
        self.assertEqual(seen["method"], "POST")
        self.assertEqual(seen["scheme"], "http")
        self.assertEqual(seen["host"], "127.0.0.1")
        self.assertEqual(seen["port"], web.port)
        self.assertEqual(seen["path"], "/echo/path?a=1&b=two&a=3")
        self.assertEqual(seen["authority"], f"127.0.0.1:{web.port}")
        self.assertEqual(seen["http_version"], "HTTP/1.1")
        self.assertEqual(seen["user_agent"], "e2e-agent")
        self.assertEqual(seen["raw_content"], b"name=J%C3%BCrgen&x=1&x=2")
        self.assertEqual(seen["content"], b"name=J%C3%BCrgen&x=1&x=2")
        self.assertEqual(seen["text"], "name=J%C3%BCrgen&x=1&x=2")
        self.assertEqual(seen["url"], web.url("/echo/path?a=1&b=two&a=3"))
        self.assertEqual(seen["pretty_url"], web.url("/echo/path?a=1&b=two&a=3"))
        self.assertEqual(seen["query"], [("a", "1"), ("b", "two"), ("a", "3")])
        self.assertEqual(seen["cookies"], [("session", "abc"), ("theme", "dark")])
        self.assertEqual(seen["form"], [("name", "Jürgen"), ("x", "1"), ("x", "2")])
        start, end = seen["timestamps"]
        self.assertIsNotNone(start)
        self.assertIsNotNone(end)
        self.assertLessEqual(start, end)
        self.assertEqual(seen["client"][0], "127.0.0.1")
        self.assertTrue(seen["flow_id"])

    async def test_response_attributes_in_response_hook(self):
        """A response hook sees status, reason, version, headers, body views and timestamps."""
        seen = {}

        class Inspect:
            def response(self, flow):
                r = flow.response
                seen.update(
                    status=r.status_code, reason=r.reason, version=r.http_version,
                    ctype=r.headers["content-type"], content=r.content, text=r.text,
                    timestamps=(r.timestamp_start, r.timestamp_end),
                    server=flow.server_conn.address if flow.server_conn else None,
                )

        proxy = await start_proxy(self, Inspect(), read_timeout=2.0)
        server = await RawServer.start(
            self,
            lambda c, r: c.write(
                http_response(201, "grüße".encode("latin-1"),
                              [(b"Content-Type", b"text/plain; charset=latin-1")], b"Made It")
            ),
        )
        result = await curl(self, "-x", proxy.url, server.url("/r"))
        self.assertEqual(result.status, 201)
        self.assertEqual(seen["status"], 201)
        self.assertEqual(seen["reason"], "Made It")
        self.assertEqual(seen["version"], "HTTP/1.1")
        self.assertEqual(seen["ctype"], "text/plain; charset=latin-1")
        self.assertEqual(seen["text"], "grüße")
        self.assertEqual(seen["server"], ("127.0.0.1", server.port))
        start, end = seen["timestamps"]
        self.assertIsNotNone(start)
        self.assertIsNotNone(end)
        self.assertLessEqual(start, end)


class RetargetTests(unittest.TestCase):
    """
    Changing the request's URL or host sends it to another real server.
    """

    timeout = 15

    async def test_set_url_retargets(self):
        """Setting request.url in the request hook sends the request to the other server and path."""
        first = await RawServer.start(self, lambda c, r: c.write(http_response(200, b"first")))
        second = await RawServer.start(
            self, lambda c, r: c.write(http_response(200, b"second saw " + r.target))
        )

        class Retarget:
            def request(self, flow):
                flow.request.url = second.url("/moved?q=1")

        proxy = await start_proxy(self, Retarget(), read_timeout=2.0)
        result = await curl(self, "-x", proxy.url, first.url("/original"))
        self.assertEqual(result.body, b"second saw /moved?q=1")
        self.assertEqual(first.connections, [])
        [request] = second.requests
        self.assertEqual(request.header(b"host"), b"127.0.0.1:%d" % second.port)

    async def test_set_host_and_port_retargets(self):
        """Setting request.host and request.port in requestheaders sends the request to the other server."""
        first = await RawServer.start(self, lambda c, r: c.write(http_response(200, b"first")))
        second = await RawServer.start(self, lambda c, r: c.write(http_response(200, b"second")))

        class Retarget:
            def requestheaders(self, flow):
                flow.request.host = "127.0.0.1"
                flow.request.port = second.port

        proxy = await start_proxy(self, Retarget(), read_timeout=2.0)
        agent = proxy_agent(self, proxy)
        response, body = await agent_request(self, agent, b"GET", first.url("/x"))
        self.assertEqual(body, b"second")
        self.assertEqual(first.connections, [])
        self.assertEqual(len(second.requests), 1)

    async def test_response_make_in_response_hook(self):
        """Replacing flow.response with Response.make in the response hook sends the made response."""

        class Replace:
            def response(self, flow):
                flow.response = Response.make(
                    404, b"replaced", {"Content-Type": "text/plain", "X-Made": "1"}
                )

        proxy = await start_proxy(self, Replace(), read_timeout=2.0)
        server = await RawServer.start(self, lambda c, r: c.write(http_response(200, b"orig")))
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/").encode())
        [response] = await client.wait_responses(1)
        self.assertEqual(response.status, 404)
        self.assertEqual(response.body, b"replaced")
        self.assertEqual(response.header(b"x-made"), b"1")
        self.assertEqual(response.header(b"content-length"), b"8")


class MitmproxyApiTests(unittest.TestCase):
    """
    mitmproxy's multipart_form, json() and copy() in hooks on a real
    exchange: curl -F through the proxy to the echo server.
    """

    timeout = 15

    async def test_multipart_json_and_copy_in_hooks(self):
        """An addon reads and rewrites a multipart form, reads the JSON answer and copies the flow."""
        seen = {}

        class Forms:
            def request(self, flow):
                seen["form"] = list(flow.request.multipart_form.fields)
                flow.request.multipart_form[b"added"] = b"by the proxy"

            def response(self, flow):
                seen["echo"] = flow.response.json()
                copy = flow.copy()
                seen["copy"] = (copy.id != flow.id, copy.live, copy.response.json() == seen["echo"])

        proxy = await start_proxy(self, Forms(), read_timeout=5.0)
        web = await WebServer.start(self)
        upload = self.mktemp()
        with open(upload, "wb") as f:
            f.write(b"file\r\nbody")
        result = await curl(
            self, "-x", proxy.url, "-F", "a=1", "-F", f"f=@{upload}", web.url("/echo")
        )
        self.assertEqual(result.status, 200)
        self.assertEqual(seen["form"], [(b"a", b"1"), (b"f", b"file\r\nbody")])
        body = seen["echo"]["body"]
        self.assertIn('name="added"\r\n\r\nby the proxy\r\n', body)
        self.assertIn("file\r\nbody", body)
        self.assertEqual(seen["copy"], (True, False, True))


class ContentEncodingTests(unittest.TestCase):
    """
    Encoded bodies are decoded for addons and re-encoded when changed.
    """

    timeout = 15

    async def _roundtrip(self, coding: str) -> None:
        original = b"hello world, " * 200
        encoded = ENCODERS[coding](original)

        def handler(conn, request):
            conn.write(
                http_response(200, encoded, [(b"Content-Type", b"text/plain"),
                                             (b"Content-Encoding", coding.encode())])
            )

        seen = {}

        class Modify:
            def response(self, flow):
                seen["content"] = flow.response.content
                flow.response.content = flow.response.content.replace(b"world", b"there")

        proxy = await start_proxy(self, Modify(), read_timeout=2.0)
        server = await RawServer.start(self, handler)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/").encode())
        [response] = await client.wait_responses(1)
        self.assertEqual(seen["content"], original)
        self.assertEqual(response.header(b"content-encoding"), coding.encode())
        self.assertEqual(int(response.header(b"content-length")), len(response.body))
        self.assertEqual(DECODERS[coding](response.body), b"hello there, " * 200)

    async def test_gzip_reencoded(self):
        """A gzip body changed by an addon reaches the client as valid gzip of the new content."""
        await self._roundtrip("gzip")

    async def test_deflate_reencoded(self):
        """A deflate body changed by an addon reaches the client as valid deflate of the new content."""
        await self._roundtrip("deflate")

    async def test_br_reencoded(self):
        """A brotli body changed by an addon reaches the client as valid brotli of the new content."""
        await self._roundtrip("br")

    async def test_zstd_reencoded(self):
        """A zstd body changed by an addon reaches the client as valid zstd of the new content."""
        await self._roundtrip("zstd")

    async def test_gzip_text_with_curl_compressed(self):
        """curl --compressed decodes the re-encoded gzip body an addon changed through response.text."""
        original = "caf\u00e9 au lait " * 50

        def handler(conn, request):
            conn.write(
                http_response(200, gzip.compress(original.encode()),
                              [(b"Content-Type", b"text/plain; charset=utf-8"),
                               (b"Content-Encoding", b"gzip")])
            )

        class Modify:
            def response(self, flow):
                flow.response.text = flow.response.text.upper()

        proxy = await start_proxy(self, Modify(), read_timeout=2.0)
        server = await RawServer.start(self, handler)
        result = await curl(self, "-x", proxy.url, "--compressed", server.url("/"))
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.body.decode("utf-8"), original.upper())

    async def test_request_content_encoded(self):
        """A gzip request body changed by an addon reaches the server as valid gzip of the new content."""

        class Modify:
            def request(self, flow):
                flow.request.content = flow.request.content + b" and more"

        proxy = await start_proxy(self, Modify(), read_timeout=2.0)
        server = await RawServer.start(self, ok_handler)
        body = gzip.compress(b"request body")
        client = await RawClient.connect(self, proxy.port_number)
        client.send(
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
            % (server.url("/").encode(), len(body)) + body
        )
        await client.wait_responses(1)
        [request] = server.requests
        self.assertEqual(int(request.header(b"content-length")), len(request.body))
        self.assertEqual(gzip.decompress(request.body), b"request body and more")

    async def test_agent_json_roundtrip(self):
        """A JSON request body changed by an addon through request.text reaches the server."""

        class Modify:
            def request(self, flow):
                data = json.loads(flow.request.text)
                data["added"] = True
                flow.request.text = json.dumps(data)

        proxy = await start_proxy(self, Modify(), read_timeout=2.0)
        web = await WebServer.start(self)
        agent = proxy_agent(self, proxy)
        response, body = await agent_request(
            self, agent, b"POST", web.url("/echo"), body=b'{"a": 1}',
            headers={b"Content-Type": b"application/json"},
        )
        self.assertEqual(json.loads(json.loads(body)["body"]), {"a": 1, "added": True})


class LiveFlowCopyTests(unittest.TestCase):
    """
    flow.copy() in the hooks of live flows (HTTP over TLS, TCP, WebSocket):
    a copy that is not live, with its own id.
    """

    timeout = 15

    async def _go(self, hook):
        """
        The results of copying the flow in C{hook} of a request to an
        HTTPS server.
        """
        results = []

        class Copier:
            pass

        def do(flow):
            try:
                c = flow.copy()
                results.append(("ok", c.live, c.id != flow.id))
            except Exception as e:  # noqa
                results.append(("raised", repr(e)[:300]))

        setattr(Copier, hook, lambda self, flow: do(flow))
        server = await HttpsServer.start(self, TestCA.shared(), names=("127.0.0.1",))
        url = b"https://127.0.0.1:%d/hello" % server.port
        proxy = await start_proxy(self, Copier(), confdir=self.mktemp(), ssl_insecure=True)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET " + url + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        await client.wait_responses(1, timeout=4.0)
        return results

    async def test_copy_in_response_tls_upstream(self):
        results = await self._go("response")
        self.assertEqual(results, [("ok", False, True)])

    async def test_copy_in_request(self):
        results = await self._go("request")
        self.assertEqual(results, [("ok", False, True)])

    async def test_copy_tcp_flow_in_tcp_message(self):
        results = []

        class Copier:
            def tcp_message(self, flow):
                try:
                    flow.copy()
                    results.append("ok")
                except Exception as e:  # noqa
                    results.append(repr(e)[:300])

        proxy = await start_proxy(self, Copier())
        server = await TcpServer.start(self, "echo")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"\x00hello")
        await client.wait_for(lambda d: b"hello" in d, timeout=3)
        self.assertEqual(set(results), {"ok"})

    async def test_copy_in_websocket_message(self):
        results = []

        class Copier:
            def websocket_message(self, flow):
                try:
                    c = flow.copy()
                    results.append(("ok", c.websocket.live))
                except Exception as e:  # noqa
                    results.append(("raised", repr(e)[:300]))

        proxy, server, client, peer = await raw_setup(self, Copier())
        # a masked text frame "hi"
        client.send(b"\x81\x82\x00\x00\x00\x00hi")
        await wait_until(lambda: results, 3)
        # (One event per direction: the server echoes the message.)
        self.assertTrue(results)
        self.assertEqual(set(results), {("ok", False)})
