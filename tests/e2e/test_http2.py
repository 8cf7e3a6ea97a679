# -*- test-case-name: tests.e2e.test_http2 -*-
"""
End-to-end tests of HTTP/2 (issue #5), with real peers on 127.0.0.1: curl
with C{--http2}, an h2 client through a CONNECT tunnel and an h2 server
(both written with the h2 package, in L{tests.e2e.h2peers}), and an
HTTP/1.1-only TLS server for the translation cases: clients and servers
that behave oddly (pushes, informational responses, CONTINUATION, tiny
windows, GOAWAY), flow control, and TLS interception around h2.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess

from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from interceptor.model.http import Response
from interceptor.testing import start_proxy
from tests.e2e.h2peers import (
    H2ProxyClient,
    H2Response,
    H2Server,
    TestPKI,
    TlsHttp1Server,
    bounded,
    echo_handler,
    proxy_ca_path,
)
from tests.e2e.peers import RawServer, Recorder, WebServer, curl, pattern, sleep, stable, wait_until
from tests.e2e.tlspeers import tunnel_tls

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "examples")

HTTP_EVENTS = ["requestheaders", "request", "responseheaders", "response"]


def _curl_skip_reason():
    """
    Why the curl tests cannot run here, or None.
    """
    if shutil.which("curl") is None:
        return "curl is not installed"
    try:
        version = subprocess.run(["curl", "--version"], capture_output=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return f"curl --version failed: {e}"
    if b"HTTP2" not in version:
        return "this curl has no HTTP/2 support (no HTTP2 feature in curl --version)"
    return None


CURL_SKIP = _curl_skip_reason()


def needs_curl(method):
    """
    Skip C{method} when curl with HTTP/2 is missing.
    """
    if CURL_SKIP:
        method.skip = CURL_SKIP
    return method


def path_handler(stream):
    """
    Answer with the request's path (and the size of its body).
    """
    body = b"%s %d" % (stream.path, len(stream.body))
    stream.respond(200, [(b"content-length", b"%d" % len(body))], body)


def raw_request(client, fields, end=True):
    """
    Open a stream on C{client} with exactly the header block C{fields}
    (no validation by the client's h2 library).
    """
    client.conn.config.validate_outbound_headers = False
    client.conn.config.normalize_outbound_headers = False
    sid = client.conn.get_next_available_stream_id()
    response = client.responses[sid] = H2Response(sid)
    client.sent[sid] = 0
    client.conn.send_headers(sid, fields, end_stream=end)
    client.flush()
    return response


def base_fields(client, method="GET", path="/"):
    host, port = client.address
    return [
        (b":method", method.encode()),
        (b":scheme", b"https"),
        (b":authority", f"{host}:{port}".encode()),
        (b":path", path.encode()),
    ]


class _Base(unittest.TestCase):
    """
    Common set-up: a test CA, and helpers starting servers and a proxy that
    trusts them.
    """

    timeout = 15

    def setUp(self):
        self.pki = TestPKI(self.mktemp())

    async def proxy(self, *addons, **options):
        """
        A proxy trusting the test CA, with its own confdir.
        """
        options.setdefault("read_timeout", 5.0)
        return await start_proxy(
            self, *addons, confdir=self.mktemp(), ssl_verify_upstream_trusted_ca=self.pki.ca_path, **options
        )

    async def h2_server(self, handler=echo_handler, **kw):
        """
        An h2-only server using the test CA.
        """
        return await H2Server.start(self, self.pki, handler, **kw)

    async def client(self, proxy, port, **kw):
        """
        An h2 client tunnelled through C{proxy} to C{127.0.0.1:port}.
        """
        return await H2ProxyClient.connect(self, proxy, port, **kw)

    def assert_events(self, recorder, flows, events=HTTP_EVENTS):
        """
        Each flow of C{recorder} had exactly C{events}, in order.
        """
        for flow in flows:
            self.assertEqual(recorder.flow_events(flow), events, flow)

    def assert_once_each(self, recorder, flow, events=HTTP_EVENTS):
        """
        C{flow} had each of C{events} exactly once.
        """
        got = recorder.flow_events(flow)
        self.assertEqual(sorted(got), sorted(events), got)


class CurlHttp2Tests(_Base):
    """
    curl --http2 through the proxy to an h2 server.
    """

    skip = CURL_SKIP

    async def test_curl_http2_two_requests_one_connection(self):
        """curl --http2 gets two answers over h2 on one connection; each flow has the four events once, as HTTP/2.0."""
        recorder = Recorder()
        proxy = await self.proxy(recorder)
        server = await self.h2_server(path_handler)
        url = f"https://127.0.0.1:{server.port}"
        second = self.mktemp()
        result = await curl(
            self, "--http2", "-x", proxy.url, "--cacert", proxy_ca_path(proxy),
            "-w", "%{json}\n", url + "/one", "-o", second, url + "/two?x=1", timeout=8,
        )
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.info.get("http_version"), "2")
        self.assertEqual(result.status, 200)
        with open(second, "rb") as f:
            self.assertEqual(f.read(), b"/two?x=1 0")
        self.assertEqual(result.body, b"/one 0")
        flows = recorder.flows()
        self.assertEqual(len(flows), 2)
        self.assert_events(recorder, flows)
        self.assertEqual([f.request.http_version for f in flows], ["HTTP/2.0"] * 2)
        self.assertEqual([f.request.path for f in flows], ["/one", "/two?x=1"])
        self.assertEqual(len(server.connections), 1)
        self.assertEqual(server.connections[0].negotiated, b"h2")

    async def test_example_http2_protocols_script(self):
        """examples/http2_protocols.py tells an h2 client that both sides spoke HTTP/2.0."""
        from addons.script import ScriptLoader

        path = os.path.abspath(os.path.join(EXAMPLES, "http2_protocols.py"))
        proxy = await self.proxy(ScriptLoader(), scripts=[path])
        server = await self.h2_server(path_handler)
        result = await curl(
            self, "--http2", "-x", proxy.url, "--cacert", proxy_ca_path(proxy),
            f"https://127.0.0.1:{server.port}/", timeout=8,
        )
        self.assertEqual(result.code, 0, result.stderr)
        head = result.heads[-1]
        self.assertEqual(head.header(b"x-client-http-version"), b"HTTP/2.0")
        self.assertEqual(head.header(b"x-server-http-version"), b"HTTP/2.0")


class H2ClientTests(_Base):
    """
    An h2 client through the proxy to an h2 server.
    """

    async def test_request_and_events(self):
        """A POST on one stream reaches the server with its pseudo-headers and body; the flow has the four events as HTTP/2.0."""
        recorder = Recorder()
        proxy = await self.proxy(recorder)
        server = await self.h2_server()
        client = await self.client(proxy, server.port)
        self.assertEqual(client.negotiated, b"h2")
        response = await bounded(
            client.request("POST", "/submit?a=1", [(b"x-test", b"yes")], body=b"hello h2").done
        )
        self.assertEqual(response.status, 200, response.body)
        echoed = json.loads(bytes(response.body))
        headers = [tuple(h) for h in echoed["headers"]]
        self.assertIn((":method", "POST"), headers)
        self.assertIn((":path", "/submit?a=1"), headers)
        self.assertIn((":authority", f"127.0.0.1:{server.port}"), headers)
        self.assertIn(("x-test", "yes"), headers)
        self.assertEqual(echoed["body"], "hello h2")
        [flow] = recorder.flows()
        self.assert_events(recorder, [flow])
        self.assertEqual(flow.request.http_version, "HTTP/2.0")
        self.assertEqual(flow.response.http_version, "HTTP/2.0")
        self.assertEqual(flow.request.content, b"hello h2")
        self.assertEqual(flow.response.status_code, 200)

    async def test_hundred_concurrent_streams(self):
        """100 concurrent streams on one client connection all succeed over one upstream connection; each flow is seen once with the four events."""
        recorder = Recorder()
        proxy = await self.proxy(recorder)
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        responses = []
        for i in range(100):
            if i % 2:
                responses.append(client.request("POST", f"/s{i}", body=pattern(i * 100)))
            else:
                responses.append(client.request("GET", f"/s{i}"))
        await bounded(DeferredList([r.done for r in responses]), 10)
        for i, response in enumerate(responses):
            self.assertEqual(response.status, 200, (i, response.reset_code))
            self.assertEqual(bytes(response.body), b"/s%d %d" % (i, i * 100 if i % 2 else 0))
        flows = recorder.flows()
        self.assertEqual(len(flows), 100)
        self.assertEqual(sorted(f.request.path for f in flows), sorted(f"/s{i}" for i in range(100)))
        self.assert_events(recorder, flows)
        self.assertEqual(len(server.connections), 1)
        self.assertEqual(len(server.streams), 100)

    async def test_upstream_max_concurrent_streams_respected(self):
        """With the server allowing 5 concurrent streams, 30 concurrent client streams still all get their answer."""
        held = []
        proxy = await self.proxy()
        server = await self.h2_server(held.append, settings={SettingCodes.MAX_CONCURRENT_STREAMS: 5})
        client = await self.client(proxy, server.port)
        self.assertTrue(await wait_until(lambda: server.connections and server.connections[0].settings_applied))
        responses = [client.request("GET", f"/c{i}") for i in range(30)]
        # Five streams at a time reach the server (more would be a protocol
        # error there); each answered five let five more in.
        for _ in range(6):
            self.assertTrue(await wait_until(lambda: len(held) == 5))
            for stream in held:
                path_handler(stream)
            held.clear()
        await bounded(DeferredList([r.done for r in responses]), 8)
        self.assertEqual(
            [(r.status, bytes(r.body)) for r in responses],
            [(200, b"/c%d 0" % i) for i in range(30)],
        )

    async def test_hook_holding_one_stream_does_not_hold_others(self):
        """A request hook holding one stream's Deferred lets the other streams of the connection finish."""
        gate = Deferred()

        class Hold:
            def request(self, flow):
                if flow.request.path == "/hold":
                    return gate

        proxy = await self.proxy(Hold())
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        held = client.request("GET", "/hold")
        others = [client.request("GET", f"/free{i}") for i in range(5)]
        await bounded(DeferredList([r.done for r in others]))
        self.assertEqual([r.status for r in others], [200] * 5)
        self.assertFalse(held.done.called)
        self.assertEqual([s.path for s in server.streams if s.path == b"/hold"], [])
        gate.callback(None)
        await bounded(held.done)
        self.assertEqual((held.status, bytes(held.body)), (200, b"/hold 0"))

    async def test_response_trailers_pass_through(self):
        """Trailers the server sends after the body reach the client."""
        def handler(stream):
            stream.respond(200, [], b"body", trailers=[(b"grpc-status", b"0"), (b"x-checksum", b"abc")])

        proxy = await self.proxy()
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port)
        response = await bounded(client.request("GET", "/t").done)
        self.assertEqual((response.status, bytes(response.body)), (200, b"body"))
        self.assertEqual(response.trailers, [(b"grpc-status", b"0"), (b"x-checksum", b"abc")])

    async def test_request_trailers_pass_through(self):
        """Trailers the client sends after the request body reach the server."""
        proxy = await self.proxy()
        server = await self.h2_server()
        client = await self.client(proxy, server.port)
        response = await bounded(
            client.request(
                "POST", "/t", [(b"te", b"trailers")], body=b"data", trailers=[(b"x-request-trailer", b"1")]
            ).done
        )
        self.assertEqual(response.status, 200)
        [stream] = server.streams
        self.assertEqual(bytes(stream.body), b"data")
        self.assertEqual(stream.trailers, [(b"x-request-trailer", b"1")])

    async def test_server_push_refused(self):
        """The proxy disables server push toward the server (SETTINGS_ENABLE_PUSH=0) and never pushes to the client."""
        proxy = await self.proxy()
        server = await self.h2_server()
        client = await self.client(proxy, server.port)
        response = await bounded(client.request("GET", "/").done)
        self.assertEqual(response.status, 200)
        self.assertEqual(server.connections[0].conn.remote_settings.enable_push, 0)
        self.assertEqual(client.pushes, [])


class ResetAndGoawayTests(_Base):
    """
    Stream resets, GOAWAY and connection errors.
    """

    async def test_client_reset_stream(self):
        """A client RST_STREAM fires error for that flow only, resets the upstream stream, and the other streams go on."""
        recorder = Recorder()
        arrived = Deferred()

        def on_headers(stream):
            if stream.path == b"/slow" and not arrived.called:
                arrived.callback(stream)

        def handler(stream):
            if stream.path != b"/slow":
                path_handler(stream)

        reset_seen = Deferred()
        proxy = await self.proxy(recorder)
        server = await self.h2_server(
            handler, on_headers=on_headers, on_reset=lambda s: reset_seen.callback(s) if not reset_seen.called else None
        )
        client = await self.client(proxy, server.port)
        slow = client.request("GET", "/slow")
        upstream_stream = await bounded(arrived)
        client.reset(slow.stream_id, ErrorCodes.CANCEL)
        reset_stream = await bounded(reset_seen)
        self.assertIs(reset_stream, upstream_stream)
        self.assertEqual(reset_stream.reset_code, ErrorCodes.CANCEL)
        fast = await bounded(client.request("GET", "/fast").done)
        self.assertEqual((fast.status, bytes(fast.body)), (200, b"/fast 0"))
        self.assertTrue(await wait_until(lambda: recorder.count("error") >= 1))
        slow_flow, fast_flow = recorder.flows()
        self.assertEqual(slow_flow.request.path, "/slow")
        self.assertEqual(recorder.flow_events(slow_flow), ["requestheaders", "request", "error"])
        self.assertIsNotNone(slow_flow.error)
        self.assert_events(recorder, [fast_flow])
        self.assertEqual(recorder.count("error"), 1)

    async def test_server_reset_stream(self):
        """A server RST_STREAM before the response fires error for that flow only and answers the client 502 (or resets)."""
        recorder = Recorder()

        def handler(stream):
            if stream.path == b"/bad":
                stream.reset(ErrorCodes.INTERNAL_ERROR)
            else:
                path_handler(stream)

        proxy = await self.proxy(recorder)
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port)
        bad = client.request("GET", "/bad")
        good = client.request("GET", "/good")
        await bounded(DeferredList([bad.done, good.done]))
        self.assertTrue(bad.status == 502 or bad.reset_code is not None, (bad.status, bad.reset_code))
        self.assertEqual((good.status, bytes(good.body)), (200, b"/good 0"))
        self.assertTrue(await wait_until(lambda: recorder.count("error") >= 1))
        bad_flow = next(f for f in recorder.flows() if f.request.path == "/bad")
        self.assertEqual(recorder.flow_events(bad_flow), ["requestheaders", "request", "error"])
        self.assertEqual(recorder.count("error"), 1)
        self.assertEqual(recorder.count("response"), 1)

    async def test_server_connection_lost_fails_inflight_streams(self):
        """The server dropping its connection mid-stream fires error and answers 502 (or resets); the client connection stays open."""
        recorder = Recorder()
        proxy = await self.proxy(recorder)
        server = await self.h2_server(lambda s: s.protocol.transport.abortConnection())
        client = await self.client(proxy, server.port)
        response = await bounded(client.request("GET", "/dropped").done)
        self.assertTrue(response.status == 502 or response.reset_code is not None, (response.status, response.reset_code))
        self.assertTrue(await wait_until(lambda: recorder.count("error") == 1))
        [flow] = recorder.flows()
        self.assertEqual(recorder.flow_events(flow), ["requestheaders", "request", "error"])
        self.assertFalse(client.closed)

    async def test_client_reset_on_translated_stream(self):
        """A client RST_STREAM on a stream translated to HTTP/1.1 fires error and closes that HTTP/1.1 connection."""
        recorder = Recorder()
        raw = await RawServer.start(self, lambda conn, request: None)

        class Retarget:
            def request(self, flow):
                flow.request.scheme = "http"
                flow.request.port = raw.port

        proxy = await self.proxy(Retarget(), recorder)
        server = await self.h2_server()
        client = await self.client(proxy, server.port)
        pending = client.request("GET", "/pending")
        self.assertTrue(await wait_until(lambda: len(raw.requests) == 1))
        client.reset(pending.stream_id)
        await bounded(raw.connections[0].lost)
        self.assertTrue(await wait_until(lambda: recorder.count("error") == 1))
        [flow] = recorder.flows()
        self.assertEqual(recorder.flow_events(flow), ["requestheaders", "request", "error"])
        self.assertFalse(client.closed)

    async def test_client_goaway_closes_cleanly(self):
        """A client GOAWAY with a stream in flight fires error for that flow and closes both connections."""
        recorder = Recorder()
        arrived = Deferred()
        proxy = await self.proxy(recorder)
        server = await self.h2_server(lambda s: None, on_headers=lambda s: arrived.callback(s))
        client = await self.client(proxy, server.port)
        client.request("GET", "/pending")
        await bounded(arrived)
        client.goaway()
        await bounded(client.lost)
        await bounded(server.connections[0].lost)
        self.assertTrue(await wait_until(lambda: recorder.count("error") == 1))
        [flow] = recorder.flows()
        self.assertEqual(recorder.flow_events(flow), ["requestheaders", "request", "error"])

    async def test_client_protocol_error_goaway(self):
        """Garbage frames from the client get GOAWAY(PROTOCOL_ERROR) and the connection is closed."""
        proxy = await self.proxy()
        server = await self.h2_server()
        client = await self.client(proxy, server.port)
        response = await bounded(client.request("GET", "/ok").done)
        self.assertEqual(response.status, 200)
        # A DATA frame on stream 0 is a connection error (RFC 9113 6.1).
        client.transport.write(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
        await bounded(client.lost)
        self.assertIsNotNone(client.terminated)
        self.assertEqual(client.terminated.error_code, ErrorCodes.PROTOCOL_ERROR)

    async def test_server_goaway_retries_later_streams(self):
        """A server GOAWAY answers the streams up to its last stream id; a later GET it did not process goes again on a new connection (it used to fail with a 502)."""
        recorder = Recorder()
        streams = []

        def handler(stream):
            streams.append(stream)
            if stream.protocol is not streams[0].protocol:
                path_handler(stream)
            elif len(streams) == 2:
                first = streams[0]
                first.respond(200, [], b"first")
                first.protocol.goaway(last_stream_id=first.stream_id)

        proxy = await self.proxy(recorder)
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port)
        one = client.request("GET", "/one")
        await sleep(0.1)
        two = client.request("GET", "/two")
        await bounded(DeferredList([one.done, two.done]))
        self.assertEqual((one.status, bytes(one.body)), (200, b"first"))
        self.assertEqual((two.status, bytes(two.body)), (200, b"/two 0"))
        self.assertEqual(len(server.connections), 2)
        self.assertTrue(await wait_until(lambda: recorder.count("response") == 2))
        self.assertEqual(recorder.count("error"), 0)
        self.assertFalse(client.closed)

    async def test_new_stream_after_server_goaway(self):
        """After the h2 server sent GOAWAY, a new stream on the same client connection is served over a new connection."""
        def handler(stream):
            path_handler(stream)
            if stream.path == b"/first":
                stream.protocol.goaway(last_stream_id=stream.stream_id)
                stream.protocol.transport.loseConnection()

        proxy = await self.proxy()
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port)
        first = await bounded(client.request("GET", "/first").done)
        self.assertEqual(first.status, 200)
        await bounded(server.connections[0].lost)
        second = await bounded(client.request("GET", "/second").done)
        self.assertEqual((second.status, bytes(second.body)), (200, b"/second 0"))
        self.assertEqual(len(server.connections), 2)
        self.assertEqual(server.connections[1].negotiated, b"h2")


class FlowControlTests(_Base):
    """
    Windows are respected on both sides: a slow reader slows its writer.
    """

    SIZE = 8 * 1024 * 1024
    BOUND = 4 * 1024 * 1024

    async def test_slow_client_bounds_response_buffering(self):
        """A client that does not open its window holds back a streamed 8 MiB response: the server sends far less until it reads."""
        body = pattern(self.SIZE)
        server_stream = []

        def handler(stream):
            server_stream.append(stream)
            stream.respond(200, [(b"content-length", b"%d" % len(body))], body)

        proxy = await self.proxy(stream_large_bodies="64k")
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port, auto_ack=False)
        response = client.request("GET", "/big")
        self.assertTrue(await wait_until(lambda: bool(server_stream), 3))
        # The response stops where the windows and buffers hold it.
        self.assertLess(await stable(lambda: server_stream[0].sent), self.BOUND)
        self.assertLess(len(response.body), 128 * 1024)
        client.acknowledge(response.stream_id)
        await bounded(response.done, 10)
        self.assertEqual(response.status, 200)
        self.assertEqual(len(response.body), self.SIZE)
        self.assertTrue(bytes(response.body) == body)

    async def test_slow_server_bounds_request_buffering(self):
        """A server that does not open its window holds back a streamed 8 MiB upload: the client sends far less until it reads."""
        arrived = []
        proxy = await self.proxy(stream_large_bodies="64k")
        server = await self.h2_server(path_handler, on_headers=arrived.append, auto_ack=False)
        client = await self.client(proxy, server.port)
        body = pattern(self.SIZE)
        response = client.request("POST", "/upload", [(b"content-length", b"%d" % len(body))], body=body)
        self.assertTrue(await wait_until(lambda: bool(arrived), 3))
        # The upload stops where the windows and buffers hold it.
        self.assertLess(await stable(lambda: client.sent[response.stream_id]), self.BOUND)
        server.auto_ack = True
        arrived[0].acknowledge()
        await bounded(response.done, 10)
        self.assertEqual((response.status, bytes(response.body)), (200, b"/upload %d" % self.SIZE))
        self.assertTrue(bytes(arrived[0].body) == body)

    async def test_client_not_reading_socket_bounds_buffering(self):
        """A client granting 2 GiB windows but reading nothing from its socket still holds the server back."""
        size = 96 * 1024 * 1024
        chunk = b"b" * (1 << 20)

        def handler(stream):
            stream.respond(200, [(b"content-length", b"%d" % size)], end=False)
            for _ in range(size // len(chunk)):
                stream.send(chunk)
            stream.send(b"", end=True)

        proxy = await self.proxy(stream_large_bodies="64k")
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port)
        client.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        client.conn.increment_flow_control_window(2**31 - 1 - 65535)
        client.flush()
        # h2 applies our settings once the proxy has acknowledged them.
        self.assertTrue(await wait_until(lambda: client.conn.local_settings.initial_window_size == 2**31 - 1))
        client.transport.pauseProducing()
        client.request("GET", "/big")
        self.assertTrue(await wait_until(lambda: server.streams))
        # The response stops where the proxy's buffers hold it.
        self.assertLess(await stable(lambda: server.streams[0].sent), 32 * 1024 * 1024)


class TranslationTests(_Base):
    """
    h2 on one side, HTTP/1.1 on the other, headers mapped per RFC 9113.
    """

    async def test_h2_client_retargeted_to_http1_tls_server(self):
        """An h2 stream re-targeted by an addon to an HTTP/1.1-only TLS server is translated both ways."""
        h1 = await TlsHttp1Server.start(self, self.pki)
        recorder = Recorder()

        class Retarget:
            def request(self, flow):
                flow.request.port = h1.port

        proxy = await self.proxy(Retarget(), recorder)
        server = await self.h2_server()
        client = await self.client(proxy, server.port)
        response = await bounded(
            client.request(
                "POST", "/x?y=1",
                [(b"cookie", b"a=1"), (b"cookie", b"b=2"), (b"x-test", b"1"), (b"te", b"trailers")],
                body=b"payload",
            ).done
        )
        self.assertEqual(response.status, 200, response.body)
        echoed = json.loads(bytes(response.body))
        self.assertEqual((echoed["method"], echoed["uri"], echoed["version"]), ("POST", "/x?y=1", "HTTP/1.1"))
        headers = dict((n, v) for n, v in echoed["headers"])
        self.assertEqual(headers.get("host"), f"127.0.0.1:{h1.port}")
        self.assertEqual(headers.get("cookie"), "a=1; b=2")
        self.assertEqual(headers.get("x-test"), "1")
        self.assertFalse([n for n in headers if n.startswith(":")])
        self.assertEqual(echoed["body"], "payload")
        names = response.header_names()
        for name in (b"connection", b"keep-alive", b"transfer-encoding"):
            self.assertNotIn(name, names)
        self.assertEqual(response.header(b"content-type"), b"application/json")
        self.assertEqual(h1.alpn_offers, [[b"http/1.1"]])
        self.assertEqual(h1.server_names, [None])  # no SNI for an IP address (RFC 6066)
        self.assertEqual(server.streams, [])
        [flow] = recorder.flows()
        self.assertEqual(flow.request.http_version, "HTTP/2.0")
        self.assertEqual(flow.response.http_version, "HTTP/1.1")
        self.assert_events(recorder, [flow])

    async def test_h2_client_retargeted_to_plain_http1_server(self):
        """An h2 stream re-targeted to a plain-HTTP HTTP/1.1 server gets the answer over h2."""
        web = await WebServer.start(self)

        class Retarget:
            def request(self, flow):
                flow.request.scheme = "http"
                flow.request.port = web.port

        proxy = await self.proxy(Retarget())
        server = await self.h2_server()
        client = await self.client(proxy, server.port)
        response = await bounded(client.request("GET", "/echo", [(b"x-test", b"2")]).done)
        self.assertEqual(response.status, 200, response.body)
        echoed = json.loads(bytes(response.body))
        self.assertEqual((echoed["method"], echoed["uri"], echoed["version"]), ("GET", "/echo", "HTTP/1.1"))
        headers = {n.lower(): v for n, v in echoed["headers"]}
        self.assertEqual(headers.get("host"), f"127.0.0.1:{web.port}")
        self.assertEqual(headers.get("x-test"), "2")

    @needs_curl
    async def test_h2_client_to_http1_only_server_mirrors_http11(self):
        """Without http2_translate, a client offering h2 to an HTTP/1.1-only server negotiates http/1.1 and is served."""
        h1 = await TlsHttp1Server.start(self, self.pki)
        recorder = Recorder()
        proxy = await self.proxy(recorder)
        result = await curl(
            self, "--http2", "-x", proxy.url, "--cacert", proxy_ca_path(proxy),
            f"https://127.0.0.1:{h1.port}/m", timeout=8,
        )
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual((result.status, result.info.get("http_version")), (200, "1.1"))
        [flow] = recorder.flows()
        self.assertEqual(flow.request.http_version, "HTTP/1.1")

    async def test_h2_client_to_http1_only_server_translated(self):
        """With http2_translate, an h2 client to an HTTP/1.1-only server keeps h2 and the proxy speaks HTTP/1.1 upstream."""
        h1 = await TlsHttp1Server.start(self, self.pki)
        recorder = Recorder()
        proxy = await self.proxy(recorder, http2_translate=True)
        client = await self.client(proxy, h1.port)
        self.assertEqual(client.negotiated, b"h2")
        responses = [client.request("GET", f"/t{i}") for i in range(3)]
        await bounded(DeferredList([r.done for r in responses]))
        for i, response in enumerate(responses):
            self.assertEqual(response.status, 200, response.body)
            echoed = json.loads(bytes(response.body))
            self.assertEqual((echoed["uri"], echoed["version"]), (f"/t{i}", "HTTP/1.1"))
        flows = recorder.flows()
        self.assertEqual([f.request.http_version for f in flows], ["HTTP/2.0"] * 3)
        self.assert_events(recorder, flows)

    async def test_streamed_upload_translated_to_http1(self):
        """A streamed h2 upload to an HTTP/1.1-only server: Content-Length kept when sent, else chunked; a transform applies."""

        class Stream:
            def requestheaders(self, flow):
                flow.request.stream = (lambda data: data.upper()) if flow.request.path == "/t" else True

        h1 = await TlsHttp1Server.start(self, self.pki)
        proxy = await self.proxy(Stream(), http2_translate=True)
        client = await self.client(proxy, h1.port)
        body = b"abc" * 20_000
        cases = [("/cl", [(b"content-length", b"%d" % len(body))], body),
                 ("/chunked", [], body), ("/t", [], body.upper())]
        for path, headers, expected in cases:
            response = await bounded(client.request("POST", path, headers, body=body).done, 10)
            self.assertEqual(response.status, 200, response.body)
            echoed = json.loads(bytes(response.body))
            sent = dict(echoed["headers"])
            self.assertEqual(echoed["body"].encode("latin-1"), expected, path)
            if headers:
                self.assertEqual((sent.get("content-length"), sent.get("transfer-encoding")),
                                 (str(len(body)), None), path)
            else:
                self.assertEqual(sent.get("transfer-encoding"), "chunked", path)

    @needs_curl
    async def test_http1_client_to_h2_only_server(self):
        """An HTTP/1.1 client (curl --http1.1) through the proxy to an h2-only server is translated to h2 upstream."""
        recorder = Recorder()
        proxy = await self.proxy(recorder, http2_translate=True)
        server = await self.h2_server(path_handler)
        result = await curl(
            self, "--http1.1", "-x", proxy.url, "--cacert", proxy_ca_path(proxy),
            f"https://127.0.0.1:{server.port}/h1", timeout=5,
        )
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual((result.status, result.body), (200, b"/h1 0"))
        self.assertEqual(result.info.get("http_version"), "1.1")
        self.assertEqual(server.connections[0].negotiated, b"h2")
        [stream] = server.streams
        self.assertEqual(stream.header(b":authority"), f"127.0.0.1:{server.port}".encode())
        self.assertIsNone(stream.header(b"host"))
        self.assertIsNone(stream.header(b"proxy-connection"))
        [flow] = recorder.flows()
        self.assertEqual(flow.request.http_version, "HTTP/1.1")
        self.assert_events(recorder, [flow])


class Http2OptionTests(_Base):
    """
    The http2 option.
    """

    @needs_curl
    async def test_http2_off_offers_only_http11(self):
        """With http2=false, a client offering h2 gets http/1.1 and the server is offered http/1.1 only."""
        h1 = await TlsHttp1Server.start(self, self.pki, alpn=(b"h2", b"http/1.1"))
        recorder = Recorder()
        proxy = await self.proxy(recorder, http2=False)
        result = await curl(
            self, "--http2", "-x", proxy.url, "--cacert", proxy_ca_path(proxy),
            f"https://127.0.0.1:{h1.port}/off", timeout=8,
        )
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual((result.status, result.info.get("http_version")), (200, "1.1"))
        self.assertEqual(h1.alpn_offers, [[b"http/1.1"]])
        [flow] = recorder.flows()
        self.assertEqual(flow.request.http_version, "HTTP/1.1")


class AddonTests(_Base):
    """
    Addons work on h2 flows as on HTTP/1 flows.
    """

    async def test_early_response_in_request(self):
        """A response set in the request hook answers the h2 client without contacting the server."""
        class Answer:
            def request(self, flow):
                flow.response = Response.make(201, b"early", {"x-early": "1"})

        recorder = Recorder()
        proxy = await self.proxy(Answer(), recorder)
        server = await self.h2_server()
        client = await self.client(proxy, server.port)
        response = await bounded(client.request("POST", "/e", body=b"abc").done)
        self.assertEqual((response.status, bytes(response.body)), (201, b"early"))
        self.assertEqual(response.header(b"x-early"), b"1")
        self.assertEqual(server.streams, [])
        [flow] = recorder.flows()
        self.assertEqual(recorder.flow_events(flow), ["requestheaders", "request", "response"])

    async def test_early_response_in_requestheaders(self):
        """A response set in the requestheaders hook answers the h2 client once its request body is read."""
        class Answer:
            def requestheaders(self, flow):
                flow.response = Response.make(403, b"no")

        proxy = await self.proxy(Answer())
        server = await self.h2_server()
        client = await self.client(proxy, server.port)
        response = await bounded(client.request("POST", "/e", body=b"x" * 1000).done)
        self.assertEqual((response.status, bytes(response.body)), (403, b"no"))
        self.assertEqual(server.streams, [])

    async def test_kill_resets_only_that_stream(self):
        """flow.kill() in the request hook resets that stream, fires error, and leaves the other streams alone."""
        class Kill:
            def request(self, flow):
                if flow.request.path == "/kill":
                    flow.kill()

        recorder = Recorder()
        proxy = await self.proxy(Kill(), recorder)
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        killed = client.request("GET", "/kill")
        alive = client.request("GET", "/alive")
        await bounded(DeferredList([killed.done, alive.done]))
        self.assertIsNotNone(killed.reset_code)
        self.assertEqual(killed.status, 0)
        self.assertEqual((alive.status, bytes(alive.body)), (200, b"/alive 0"))
        self.assertEqual([s.path for s in server.streams], [b"/alive"])
        self.assertTrue(await wait_until(lambda: recorder.count("error") == 1))
        flow = next(f for f in recorder.flows() if f.request.path == "/kill")
        self.assertEqual(recorder.flow_events(flow), ["requestheaders", "request", "error"])
        self.assertTrue(flow.killed)
        self.assertFalse(client.closed)

    async def test_body_modification(self):
        """Request and response bodies changed by hooks reach the server and the client, with matching lengths."""
        class Modify:
            def request(self, flow):
                flow.request.content = flow.request.content.upper() + b"!"

            def response(self, flow):
                flow.response.content = b"<" + flow.response.content + b">"

        proxy = await self.proxy(Modify())
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        response = await bounded(
            client.request("POST", "/m", [(b"content-length", b"5")], body=b"hello").done
        )
        self.assertEqual((response.status, bytes(response.body)), (200, b"</m 6>"))
        self.assertEqual(response.header(b"content-length"), b"6")
        [stream] = server.streams
        self.assertEqual(bytes(stream.body), b"HELLO!")
        self.assertEqual(stream.header(b"content-length"), b"6")

    async def test_large_buffered_bodies(self):
        """A 4 MiB upload and a 4 MiB response, buffered (not streamed), cross h2 on both sides intact."""
        size = 4 * 1024 * 1024

        def handler(stream):
            stream.respond(200, [(b"content-length", b"%d" % size)], pattern(size)[::-1])

        proxy = await self.proxy()
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port)
        response = await bounded(
            client.request("POST", "/big", [(b"content-length", b"%d" % size)],
                           body=pattern(size)).done, 20
        )
        self.assertEqual(response.status, 200)
        self.assertTrue(bytes(response.body) == pattern(size)[::-1])
        [stream] = server.streams
        self.assertTrue(bytes(stream.body) == pattern(size))

    async def test_streamed_bodies_with_transform(self):
        """stream_large_bodies streams a large h2 upload and download through; a response.stream transform applies."""
        size = 300_000
        seen = {}

        class Watch:
            def responseheaders(self, flow):
                flow.response.stream = lambda data: data.upper()

            def response(self, flow):
                seen["stream"] = flow.response.stream

        def handler(stream):
            body = pattern(size)
            stream.respond(200, [(b"content-length", b"%d" % size)], body)

        proxy = await self.proxy(Watch(), stream_large_bodies="16k")
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port)
        upload = pattern(size)
        response = await bounded(
            client.request("POST", "/s", [(b"content-length", b"%d" % size)], body=upload).done, 10
        )
        self.assertEqual(response.status, 200)
        self.assertTrue(bytes(response.body) == pattern(size).upper())
        self.assertTrue(callable(seen.get("stream")))
        [stream] = server.streams
        self.assertEqual(len(stream.body), size)
        self.assertTrue(bytes(stream.body) == upload)


class ServerBehaviourTests(_Base):
    """
    What h2 servers may do.
    """

    async def test_informational_response_then_final(self):
        """A 103 Early Hints before the 200: the client gets the 200 and its body; four events once."""
        recorder = Recorder()

        def handler(stream):
            conn = stream.protocol.conn
            conn.send_headers(stream.stream_id, [(b":status", b"103"), (b"link", b"</a.css>; rel=preload")])
            stream.protocol.flush()
            stream.respond(200, [(b"content-length", b"2")], b"ok")

        proxy = await self.proxy(recorder)
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port)
        r = await bounded(client.request("GET", "/hints").done)
        self.assertEqual((r.status, bytes(r.body)), (200, b"ok"))
        [flow] = recorder.flows()
        self.assert_events(recorder, [flow])
        self.assertEqual(flow.response.status_code, 200)

    async def test_response_without_status(self):
        """A response header block without :status: 502 (or reset) and one error for the flow, no crash."""
        recorder = Recorder()

        def handler(stream):
            conn = stream.protocol.conn
            conn.config.validate_outbound_headers = False
            conn.send_headers(stream.stream_id, [(b"x-no-status", b"1")], end_stream=True)
            stream.protocol.flush()

        proxy = await self.proxy(recorder)
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port)
        r = await bounded(client.request("GET", "/nostatus").done)
        self.assertTrue(r.status == 502 or r.reset_code is not None, (r.status, r.reset_code))
        self.assertTrue(await wait_until(lambda: recorder.count("error") == 1))
        self.assertEqual(recorder.count("response"), 0)
        self.assertFalse(client.closed)

    async def test_server_push_promise_refused(self):
        """A server that sends PUSH_PROMISE although the proxy disabled push: a connection error upstream (RFC 9113 8.4), so 502 or a reset; no crash, no hang, the client never sees a push."""
        from hyperframe.frame import PushPromiseFrame

        recorder = Recorder()

        def handler(stream):
            conn = stream.protocol.conn
            frame = PushPromiseFrame(stream.stream_id)
            frame.promised_stream_id = 2
            frame.flags.add("END_HEADERS")
            frame.data = conn.encoder.encode([
                (b":method", b"GET"), (b":scheme", b"https"),
                (b":authority", b"127.0.0.1"), (b":path", b"/pushed"),
            ])
            stream.protocol.transport.write(frame.serialize())
            stream.respond(200, [(b"content-length", b"2")], b"ok")

        proxy = await self.proxy(recorder)
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port)
        r = await bounded(client.request("GET", "/p").done)
        self.assertEqual(client.pushes, [])
        self.assertTrue(r.status in (200, 502) or r.reset_code is not None, (r.status, r.reset_code))
        self.assertTrue(await wait_until(lambda: recorder.count("response") + recorder.count("error") == 1))
        self.assertFalse(client.closed)

    async def test_server_closes_tcp_without_goaway_then_new_stream(self):
        """The server drops its TCP connection after answering (no GOAWAY); the next stream gets a new upstream connection."""
        def handler(stream):
            path_handler(stream)
            if stream.path == b"/1":
                reactor.callLater(0.05, stream.protocol.transport.loseConnection)

        proxy = await self.proxy()
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port)
        first = await bounded(client.request("GET", "/1").done)
        self.assertEqual(first.status, 200)
        self.assertTrue(await wait_until(lambda: server.connections[0].closed))
        await sleep(0.1)
        second = await bounded(client.request("GET", "/2").done)
        self.assertEqual((second.status, bytes(second.body)), (200, b"/2 0"))
        self.assertEqual(len(server.connections), 2)
        self.assertEqual(server.connections[1].negotiated, b"h2")

    async def test_server_stream_limit_one(self):
        """A server allowing one concurrent stream: 10 client streams, some with bodies, all answered in turn."""
        proxy = await self.proxy()
        server = await self.h2_server(path_handler, settings={SettingCodes.MAX_CONCURRENT_STREAMS: 1})
        client = await self.client(proxy, server.port)
        await sleep(0.1)
        responses = [client.request("POST", f"/o{i}", body=b"z" * (i * 1000)) for i in range(10)]
        await bounded(DeferredList([r.done for r in responses]), 8)
        self.assertEqual(
            [(r.status, bytes(r.body)) for r in responses],
            [(200, b"/o%d %d" % (i, i * 1000)) for i in range(10)],
        )

    async def test_huge_response_headers(self):
        """A 30 KB response header (HEADERS + CONTINUATION) reaches the h2 client intact."""
        value = b"v" * 30_000

        def handler(stream):
            stream.respond(200, [(b"x-huge", value), (b"content-length", b"2")], b"ok")

        proxy = await self.proxy()
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port)
        r = await bounded(client.request("GET", "/h").done)
        self.assertEqual((r.status, bytes(r.body)), (200, b"ok"))
        self.assertEqual(r.header(b"x-huge"), value)

    async def test_gzip_response_modified(self):
        """A gzip-encoded h2 response changed by a response hook: the client gets the new content, encoded consistently."""
        import gzip

        original = b"hello world " * 100

        class Modify:
            def response(self, flow):
                flow.response.content = flow.response.content.replace(b"world", b"there")

        def handler(stream):
            data = gzip.compress(original)
            stream.respond(200, [(b"content-encoding", b"gzip"),
                                 (b"content-length", b"%d" % len(data))], data)

        proxy = await self.proxy(Modify())
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port)
        r = await bounded(client.request("GET", "/gz").done)
        self.assertEqual(r.status, 200)
        body = bytes(r.body)
        if r.header(b"content-encoding") == b"gzip":
            body = gzip.decompress(body)
        self.assertEqual(body, original.replace(b"world", b"there"))
        self.assertEqual(int(r.header(b"content-length")), len(r.body))


class ClientBehaviourTests(_Base):
    """
    What h2 clients may do.
    """

    async def test_ping(self):
        """A client PING is answered with a PING ACK."""
        from h2.events import PingAckReceived

        proxy = await self.proxy()
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        acks = []
        original = client._handle

        def handle(event):
            if isinstance(event, PingAckReceived):
                acks.append(event.ping_data)
            original(event)

        client._handle = handle
        client.conn.ping(b"12345678")
        client.flush()
        self.assertTrue(await wait_until(lambda: acks == [b"12345678"]))

    async def test_tiny_window_small_frames_no_header_table(self):
        """A client with a 100-byte initial window, 16 KiB frames and a 0-byte header table gets a 200 KB response intact."""
        body = pattern(200_000)

        def handler(stream):
            stream.respond(200, [(b"content-length", b"%d" % len(body)), (b"x-a", b"1")], body)

        proxy = await self.proxy()
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port)
        client.conn.update_settings({
            SettingCodes.INITIAL_WINDOW_SIZE: 100,
            SettingCodes.HEADER_TABLE_SIZE: 0,
        })
        client.flush()
        # h2 applies our settings once the proxy has acknowledged them.
        self.assertTrue(await wait_until(lambda: client.conn.local_settings.initial_window_size == 100))
        responses = [client.request("GET", f"/w{i}") for i in range(3)]
        await bounded(DeferredList([r.done for r in responses]), 10)
        for r in responses:
            self.assertEqual(r.status, 200)
            self.assertTrue(bytes(r.body) == body)

    async def test_window_shrunk_mid_response(self):
        """The client shrinks its initial window to 0 mid-response, then reopens it: the response completes."""
        body = pattern(500_000)

        def handler(stream):
            stream.respond(200, [(b"content-length", b"%d" % len(body))], body)

        proxy = await self.proxy()
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port)
        client.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 0})
        client.flush()
        self.assertTrue(await wait_until(lambda: client.conn.local_settings.initial_window_size == 0))
        r = client.request("GET", "/z")
        # The server has sent the whole body to the proxy, which holds it.
        self.assertTrue(await wait_until(lambda: server.streams and server.streams[0].sent == len(body)))
        await sleep(0.05)
        self.assertEqual(len(r.body), 0)
        client.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 65535})
        client.flush()
        await bounded(r.done, 8)
        self.assertEqual(r.status, 200)
        self.assertTrue(bytes(r.body) == body)

    async def test_huge_request_headers_continuation(self):
        """A 30 KB request header (HEADERS + CONTINUATION) reaches the h2 server intact."""
        value = b"q" * 30_000
        proxy = await self.proxy()
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        r = await bounded(client.request("GET", "/big-head", [(b"x-huge", value)]).done)
        self.assertEqual(r.status, 200)
        [stream] = server.streams
        self.assertEqual(stream.header(b"x-huge"), value)

    async def test_request_trailers_without_body(self):
        """A request of headers then trailers only (no DATA) reaches the server with its trailers."""
        proxy = await self.proxy()
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        r = client.request("POST", "/tr", [(b"te", b"trailers")], end=False)
        client.send_body(r.stream_id, b"", end=True, trailers=[(b"x-t", b"1")])
        await bounded(r.done)
        self.assertEqual(r.status, 200)
        [stream] = server.streams
        self.assertEqual(stream.trailers, [(b"x-t", b"1")])

    async def test_priority_frames_ignored(self):
        """PRIORITY frames (and priority info in HEADERS) do not disturb the streams."""
        proxy = await self.proxy()
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        client.conn.prioritize(1, weight=200, depends_on=0, exclusive=False)
        client.conn.prioritize(7, weight=16, depends_on=1, exclusive=True)
        client.flush()
        responses = [client.request("GET", f"/p{i}") for i in range(4)]
        await bounded(DeferredList([r.done for r in responses]))
        self.assertEqual([r.status for r in responses], [200] * 4)

    async def test_connection_header_rejected_not_forwarded(self):
        """A client request with a connection-specific header is rejected (RST or GOAWAY), never forwarded; no crash."""
        recorder = Recorder()
        proxy = await self.proxy(recorder)
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        r = raw_request(client, base_fields(client, path="/conn") + [(b"connection", b"keep-alive")])
        await bounded(r.done)
        self.assertTrue(r.reset_code is not None or client.terminated is not None or client.closed)
        self.assertEqual(server.streams, [])

    async def test_connect_method_over_h2(self):
        """An h2 CONNECT request (RFC 9113 8.5) fails only its own stream; a concurrent GET on the connection succeeds."""
        recorder = Recorder()
        hold = Deferred()

        def handler(stream):
            if stream.path == b"/slow":
                hold.addCallback(lambda _: path_handler(stream))
            else:
                path_handler(stream)

        proxy = await self.proxy(recorder)
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port)
        slow = client.request("GET", "/slow")
        self.assertTrue(await wait_until(lambda: len(server.streams) == 1))
        host, port = client.address
        conn = raw_request(client, [(b":method", b"CONNECT"), (b":authority", f"{host}:{port}".encode())])
        await bounded(conn.done)
        hold.callback(None)
        await bounded(slow.done)
        self.assertEqual((slow.status, bytes(slow.body)), (200, b"/slow 0"), server.errors)
        self.assertTrue(conn.status >= 400 or conn.reset_code is not None, (conn.status, conn.reset_code))

    async def test_many_streams_with_resets_interleaved(self):
        """60 concurrent streams, every third reset by the client right away: the rest all succeed, each flow ends once."""
        recorder = Recorder()
        proxy = await self.proxy(recorder)
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        responses = []
        for i in range(60):
            r = client.request("POST", f"/m{i}", body=b"y" * 100)
            if i % 3 == 0:
                client.reset(r.stream_id)
            responses.append(r)
        kept = [r for i, r in enumerate(responses) if i % 3]
        await bounded(DeferredList([r.done for r in kept]), 8)
        for r in kept:
            self.assertEqual(r.status, 200)
        self.assertTrue(await wait_until(
            lambda: recorder.count("response") + recorder.count("error") == 60))
        for flow in recorder.flows():
            events = recorder.flow_events(flow)
            self.assertEqual(events.count("response") + events.count("error"), 1, events)

    async def test_client_goaway_then_streams_answered(self):
        """GOAWAY(NO_ERROR) from the client after opening streams: streams below last_stream_id are still valid requests (RFC 9113 6.8); no crash."""
        recorder = Recorder()
        proxy = await self.proxy(recorder)
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        responses = [client.request("GET", f"/g{i}") for i in range(3)]
        client.goaway()
        await bounded(DeferredList([r.done for r in responses]))
        self.assertTrue(await wait_until(
            lambda: recorder.count("response") + recorder.count("error") == 3))


class H2InterceptionTlsTests(_Base):
    """
    TLS interception edge cases.
    """

    async def test_tls12_only_client_to_h2_server(self):
        """A TLS 1.2-only client offering h2 and http/1.1 to an h2 server: TLS 1.2, h2 negotiated via the proxy; an HTTP/1.1 request fallback works when it offers http/1.1 only."""
        proxy = await self.proxy()
        server = await self.h2_server(path_handler)
        ca = proxy_ca_path(proxy)
        result = await tunnel_tls(
            proxy.port_number, "127.0.0.1", server.port, ca, None, ["http/1.1"],
            b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", tls_max=ssl.TLSVersion.TLSv1_2,
        )
        self.assertEqual(result.version, "TLSv1.2")
        self.assertIn(result.alpn, ("http/1.1", None))
        # The h2-only server cannot speak HTTP/1.1: the proxy must answer (502) rather than hang.
        self.assertTrue(result.response.startswith(b"HTTP/1.1 "), result.response[:200])

    async def test_client_without_sni_hostname_target(self):
        """A client sending no SNI through a CONNECT to localhost: the proxy uses the CONNECT host, the request succeeds."""
        h1 = await TlsHttp1Server.start(self, self.pki)
        proxy = await self.proxy()
        ca = proxy_ca_path(proxy)
        result = await tunnel_tls(
            proxy.port_number, "localhost", h1.port, ca, None, ["http/1.1"],
            b"GET /nosni HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        self.assertTrue(result.response.startswith(b"HTTP/1.1 200"), result.response[:300])
        self.assertEqual(h1.server_names, [b"localhost"])

    async def test_sni_is_ip_address(self):
        """A client sending an IP address as SNI (non-conforming but common): the proxy does not crash and does not send an IP SNI upstream."""
        h1 = await TlsHttp1Server.start(self, self.pki)
        proxy = await self.proxy()
        ca = proxy_ca_path(proxy)

        def run():
            raw = socket.create_connection(("127.0.0.1", proxy.port_number), timeout=5)
            try:
                raw.sendall(f"CONNECT 127.0.0.1:{h1.port} HTTP/1.1\r\n\r\n".encode())
                head = b""
                while b"\r\n\r\n" not in head:
                    head += raw.recv(1)
                from OpenSSL import SSL as O
                import select
                ctx = O.Context(O.TLS_CLIENT_METHOD)
                ctx.load_verify_locations(ca)
                ctx.set_verify(O.VERIFY_PEER, lambda *a: bool(a[-1]))
                ctx.set_alpn_protos([b"http/1.1"])
                c = O.Connection(ctx, raw)
                c.set_tlsext_host_name(b"127.0.0.1")
                c.set_connect_state()
                while True:
                    try:
                        c.do_handshake()
                        break
                    except O.WantReadError:
                        if not select.select([raw], [], [], 5)[0]:
                            raise TimeoutError("handshake")
                c.sendall(b"GET /ipsni HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    try:
                        chunk = c.recv(65536)
                    except O.WantReadError:
                        if not select.select([raw], [], [], 5)[0]:
                            break
                        continue
                    except (O.ZeroReturnError, O.SysCallError):
                        break
                    if not chunk:
                        break
                    data += chunk
                return data
            finally:
                raw.close()

        data = await bounded(deferToThread(run), 10)
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:300])
        self.assertEqual(h1.server_names, [None])

    async def test_client_aborts_mid_handshake(self):
        """A client that sends a ClientHello then drops the connection: the upstream connection is closed too, no error logged."""
        server = await self.h2_server(path_handler)
        recorder = Recorder()
        proxy = await self.proxy(recorder)

        def run():
            raw = socket.create_connection(("127.0.0.1", proxy.port_number), timeout=5)
            raw.sendall(f"CONNECT 127.0.0.1:{server.port} HTTP/1.1\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += raw.recv(1)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            obj = ctx.wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_hostname="localhost")
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            raw.sendall(out.read())
            raw.close()

        await bounded(deferToThread(run), 10)
        self.assertTrue(await wait_until(lambda: len(server.connections) >= 1, 3))
        self.assertTrue(await wait_until(lambda: all(c.closed for c in server.connections), 4))

    async def test_h2_client_bad_upstream_cert(self):
        """An h2 client (curl --http2) to a server whose certificate the proxy does not trust: 502 naming the reason and one error event."""
        if CURL_SKIP:
            raise self.skipTest(CURL_SKIP)
        recorder = Recorder()
        server = await self.h2_server(path_handler)
        proxy = await start_proxy(self, recorder, confdir=self.mktemp(), read_timeout=5.0)
        result = await curl(
            self, "--http2", "-x", proxy.url, "--cacert", proxy_ca_path(proxy),
            f"https://127.0.0.1:{server.port}/bad", timeout=8,
        )
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.status, 502)
        self.assertIn(b"unknown issuer", result.body)
        self.assertTrue(await wait_until(lambda: recorder.count("error") == 1))

    async def test_h2_only_client_bad_upstream_cert(self):
        """An h2-only client (ALPN h2 alone) to a server the proxy does not trust: the client still gets h2 and a 502 on its stream, not a protocol mismatch."""
        recorder = Recorder()
        server = await self.h2_server(path_handler)
        proxy = await start_proxy(self, recorder, confdir=self.mktemp(), read_timeout=5.0)
        client = await self.client(proxy, server.port, alpn=(b"h2",))
        self.assertEqual(client.negotiated, b"h2")
        r = await bounded(client.request("GET", "/bad").done)
        self.assertEqual(r.status, 502)
        self.assertIn(b"unknown issuer", bytes(r.body))

    async def test_ignore_hosts_passthrough_h2(self):
        """ignore_hosts passes an h2 client through undecrypted: it sees the server's own certificate and speaks h2 to it; no HTTP events."""
        recorder = Recorder()
        proxy = await self.proxy(recorder, ignore_hosts=[r"^127\.0\.0\.1:"])
        server = await self.h2_server(path_handler)
        from tests.e2e.h2peers import H2ProxyClient

        client = H2ProxyClient(("127.0.0.1", server.port), self.pki.ca_path, [b"h2"], True)
        from twisted.internet.protocol import ClientFactory

        factory = ClientFactory.forProtocol(lambda: client)
        reactor.connectTCP("127.0.0.1", proxy.port_number, factory, timeout=5)
        self.addCleanup(client.close)
        await bounded(client.ready)
        self.assertEqual(client.negotiated, b"h2")
        r = await bounded(client.request("GET", "/pt").done)
        self.assertEqual((r.status, bytes(r.body)), (200, b"/pt 0"))
        self.assertEqual(recorder.count("request"), 0)

    async def test_plain_http_in_connect_tunnel_to_h2_server_port(self):
        """Plain HTTP sent into a CONNECT tunnel: answered over HTTP/1.1 (not TLS), no crash."""
        web = await RawServer.start(self, lambda conn, req: conn.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain"))
        proxy = await self.proxy()

        def run():
            raw = socket.create_connection(("127.0.0.1", proxy.port_number), timeout=5)
            try:
                raw.sendall(f"CONNECT 127.0.0.1:{web.port} HTTP/1.1\r\n\r\n".encode())
                head = b""
                while b"\r\n\r\n" not in head:
                    head += raw.recv(1)
                raw.sendall(b"GET /p HTTP/1.1\r\nHost: x\r\n\r\n")
                data = b""
                while b"plain" not in data:
                    chunk = raw.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                return data
            finally:
                raw.close()

        data = await bounded(deferToThread(run), 10)
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data)
