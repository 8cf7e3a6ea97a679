"""
Edge cases of HTTPS interception and HTTP/2, end to end with real peers on
127.0.0.1 (h2 client and server from L{tests.e2e.h2peers}, curl, raw TCP
peers): chunk transforms, resets and early answers per stream, odd server
and client behaviour, translation both ways, TLS corner cases.  Each test
is bounded in time.
"""

from __future__ import annotations

import json
import os
import socket
import ssl

from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.threads import deferToThread

from interceptor.model.http import Response
from interceptor.testing import start_proxy
from tests.e2e.h2peers import (
    H2Response,
    TlsHttp1Server,
    bounded,
    proxy_ca_path,
)
from tests.e2e.peers import RawServer, Recorder, curl, pattern, sleep, stable, wait_until
from tests.e2e.tlspeers import tunnel_tls
from tests.e2e.test_http2 import CURL_SKIP, HTTP_EVENTS, _Base, path_handler


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


def a_doubler(data):
    """A chunk transform whose total output does not depend on chunking."""
    return data.replace(b"a", b"aa")


class _ProbeBase(_Base):
    """
    L{_Base} with a longer timeout and an event check.
    """

    timeout = 30

    def assert_once_each(self, recorder, flow, events=HTTP_EVENTS):
        """
        C{flow} had each of C{events} exactly once.
        """
        got = recorder.flow_events(flow)
        self.assertEqual(sorted(got), sorted(events), got)


# -- streamed bodies and chunk transforms over h2 ---------------------------------


class TransformTests(_ProbeBase):
    """
    C{flow.request.stream} / C{flow.response.stream} transforms on h2 paths.
    """

    async def test_h2_response_transform_returning_list(self):
        """A response transform may return an iterable of bytes (StreamSetting); the h2 client gets the joined output."""
        body = pattern(100_000)

        class Stream:
            def responseheaders(self, flow):
                flow.response.stream = lambda data: [data.upper()]

        def handler(stream):
            stream.respond(200, [], body)

        proxy = await self.proxy(Stream())
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port)
        response = await bounded(client.request("GET", "/l").done, 8)
        self.assertEqual(response.status, 200)
        self.assertIsNone(response.reset_code)
        self.assertTrue(bytes(response.body) == body.upper())

    async def test_h2_request_transform_returning_generator(self):
        """A request transform returning a generator of bytes is applied to a streamed h2 upload to an h2 server."""
        body = pattern(50_000)

        class Stream:
            def requestheaders(self, flow):
                def gen(data):
                    yield data.upper()

                flow.request.stream = gen

        proxy = await self.proxy(Stream())
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        response = await bounded(client.request("POST", "/g", body=body).done, 8)
        self.assertEqual((response.status, bytes(response.body)), (200, b"/g %d" % len(body)))
        [stream] = server.streams
        self.assertTrue(bytes(stream.body) == body.upper())

    async def test_h2_response_transform_changing_length(self):
        """A length-changing response transform on a Content-Length response: the h2 client gets the whole transformed body (as HTTP/1 clients do, chunked)."""
        body = b"abc" * 30_000
        expected = a_doubler(body)

        class Stream:
            def responseheaders(self, flow):
                flow.response.stream = a_doubler

        def handler(stream):
            stream.respond(200, [(b"content-length", b"%d" % len(body))], body)

        proxy = await self.proxy(Stream())
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port)
        response = await bounded(client.request("GET", "/x").done, 8)
        self.assertIsNone(client.protocol_error)
        self.assertEqual(response.status, 200)
        self.assertEqual(len(response.body), len(expected))
        self.assertTrue(bytes(response.body) == expected)

    async def test_h2_upload_transform_changing_length_to_h2(self):
        """A length-changing transform on a streamed h2 upload with Content-Length reaches an h2 server whole."""
        body = b"abc" * 20_000
        expected = a_doubler(body)

        class Stream:
            def requestheaders(self, flow):
                flow.request.stream = a_doubler

        proxy = await self.proxy(Stream())
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        response = await bounded(
            client.request("POST", "/u", [(b"content-length", b"%d" % len(body))], body=body).done, 8
        )
        self.assertEqual((response.status, bytes(response.body)), (200, b"/u %d" % len(expected)))
        self.assertEqual(server.errors, [])

    async def test_h2_upload_transform_changing_length_to_http1(self):
        """A length-changing transform on a streamed h2 upload with Content-Length, translated to an HTTP/1.1 server: the server gets exactly the transformed body."""
        body = b"abc" * 20_000
        expected = a_doubler(body)

        class Stream:
            def requestheaders(self, flow):
                flow.request.stream = a_doubler

        h1 = await TlsHttp1Server.start(self, self.pki)
        proxy = await self.proxy(Stream(), http2_translate=True)
        client = await self.client(proxy, h1.port)
        self.assertEqual(client.negotiated, b"h2")
        response = await bounded(
            client.request("POST", "/t", [(b"content-length", b"%d" % len(body))], body=body).done, 8
        )
        self.assertEqual(response.status, 200, response.body)
        echoed = json.loads(bytes(response.body))
        self.assertEqual(len(echoed["body"]), len(expected))
        self.assertTrue(echoed["body"].encode("latin-1") == expected)

    async def test_http1_upload_transform_changing_length_to_h2(self):
        """curl --http1.1 uploads with Content-Length through a length-changing transform to an h2-only server (translation): the server gets the transformed body."""
        if CURL_SKIP:
            raise self.skipTest(CURL_SKIP)
        body = b"abc" * 20_000
        expected = a_doubler(body)

        class Stream:
            def requestheaders(self, flow):
                flow.request.stream = a_doubler

        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(body)
        proxy = await self.proxy(Stream(), http2_translate=True)
        server = await self.h2_server(path_handler)
        result = await curl(
            self, "--http1.1", "-x", proxy.url, "--cacert", proxy_ca_path(proxy),
            "--data-binary", "@" + path, f"https://127.0.0.1:{server.port}/h1up", timeout=8,
        )
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual((result.status, result.body), (200, b"/h1up %d" % len(expected)))
        self.assertEqual(server.errors, [])


# -- stream life cycle --------------------------------------------------------------


class StreamLifecycleTests(_ProbeBase):
    """
    Resets, early answers and event guarantees per h2 stream.
    """

    async def _early_answer(self, recorder, settings=None):
        class Stream:
            def requestheaders(self, flow):
                flow.request.stream = flow.request.path == "/early"

        def on_headers(stream):
            if stream.path == b"/early":
                stream.respond(200, [(b"content-length", b"5")], b"early")

        proxy = await self.proxy(Stream(), recorder)
        server = await self.h2_server(
            lambda s: None if s.path == b"/early" else path_handler(s),
            on_headers=on_headers, settings=settings)
        client = await self.client(proxy, server.port)
        await sleep(0.1)  # the proxy has the server's SETTINGS
        response = client.request("POST", "/early", body=b"first part", end=False)
        await bounded(response.done)
        self.assertEqual((response.status, bytes(response.body)), (200, b"early"))
        client.send_body(response.stream_id, b"rest", end=True)
        await sleep(0.2)
        return server, client

    async def test_early_server_response_during_streamed_upload_events(self):
        """The server answers a streamed upload before its end; the client then finishes it: the flow fires each of the four events once (request too), no error."""
        recorder = Recorder()
        server, client = await self._early_answer(recorder)
        again = await bounded(client.request("GET", "/again").done)
        self.assertEqual(again.status, 200, bytes(again.body))
        self.assertTrue(await wait_until(lambda: recorder.count("response") == 2))
        flow = next(f for f in recorder.flows() if f.request.path == "/early")
        self.assert_once_each(recorder, flow)
        self.assertIsNone(flow.error)

    async def test_early_server_response_frees_upstream_stream_slot(self):
        """After an early server response to a streamed upload (server allows 1 concurrent stream), the upstream stream is ended or reset, so the next request on the connection is served."""
        recorder = Recorder()
        server, client = await self._early_answer(recorder, {SettingCodes.MAX_CONCURRENT_STREAMS: 1})
        again = await bounded(client.request("GET", "/again").done)
        self.assertEqual((again.status, bytes(again.body)), (200, b"/again 0"))

    async def test_streamed_request_without_body(self):
        """flow.request.stream = True on an h2 GET whose HEADERS carry END_STREAM: 200, request fires once, and the upstream connection keeps working for the next streams."""
        recorder = Recorder()

        class Stream:
            def requestheaders(self, flow):
                flow.request.stream = True

        proxy = await self.proxy(Stream(), recorder)
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        first = await bounded(client.request("GET", "/a").done)
        second = await bounded(client.request("GET", "/b").done)
        self.assertEqual((first.status, bytes(first.body)), (200, b"/a 0"), bytes(first.body))
        self.assertEqual((second.status, bytes(second.body)), (200, b"/b 0"), bytes(second.body))
        self.assertEqual(len(server.connections), 1)
        flows = recorder.flows()
        self.assert_events(recorder, flows)

    async def test_client_resets_stalled_streams_do_not_starve_connection(self):
        """Client resets of streams whose big streamed responses it never read leave the shared upstream connection usable (its window is not leaked)."""
        size = 3 * 1024 * 1024

        def handler(stream):
            if stream.path == b"/big":
                stream.respond(200, [(b"content-length", b"%d" % size)], pattern(size))
            else:
                path_handler(stream)

        proxy = await self.proxy(stream_large_bodies="16k")
        server = await self.h2_server(handler)
        client = await self.client(proxy, server.port, auto_ack=False)
        # A large connection window on the client side; streams keep 64 KiB.
        client.conn.increment_flow_control_window(1 << 30)
        client.flush()
        server_conn = None
        # Each stream holds about 2.6 MiB of the 16 MiB connection window
        # (the client's 64 KiB, the proxy's buffer, its 1 MiB stream window):
        # were it not given back on reset, 7 streams would use it up.
        for i in range(20):
            big = client.request("GET", "/big")
            self.assertTrue(await wait_until(lambda: len(server.streams) == i + 1))
            upstream = server.streams[i]
            server_conn = upstream.protocol.conn

            def blocked():
                # The server waits for a window: the client's is used up,
                # then the proxy's buffer.
                return bool(upstream._out) and server_conn.local_flow_control_window(upstream.stream_id) == 0

            self.assertTrue(await wait_until(blocked))
            await stable(lambda: (upstream.sent, blocked()), 0.03)
            client.reset(big.stream_id)
            # The reset reaches the server through the proxy.
            self.assertTrue(await wait_until(lambda: upstream.reset_code is not None))
            if server_conn.outbound_flow_control_window < 65536:
                break
        client.auto_ack = True
        small = client.request("GET", "/small")
        await bounded(small.done, 5)
        self.assertEqual((small.status, bytes(small.body)), (200, b"/small 0"))

    async def test_client_reset_mid_request_body(self):
        """A client RST_STREAM in the middle of a streamed upload: error fires once, the upstream stream is reset, others go on."""
        recorder = Recorder()
        arrived = []

        class Stream:
            def requestheaders(self, flow):
                flow.request.stream = flow.request.path == "/up"

        reset = Deferred()
        proxy = await self.proxy(Stream(), recorder)
        server = await self.h2_server(
            path_handler, on_headers=arrived.append,
            on_reset=lambda s: reset.callback(s) if not reset.called else None,
        )
        client = await self.client(proxy, server.port)
        upload = client.request("POST", "/up", body=b"x" * 1000, end=False)
        self.assertTrue(await wait_until(lambda: arrived and len(arrived[0].body) == 1000))
        client.reset(upload.stream_id)
        stream = await bounded(reset)
        self.assertEqual(stream.path, b"/up")
        other = await bounded(client.request("GET", "/other").done)
        self.assertEqual(other.status, 200, bytes(other.body))
        self.assertTrue(await wait_until(lambda: recorder.count("error") == 1))
        flow = next(f for f in recorder.flows() if f.request.path == "/up")
        events = recorder.flow_events(flow)
        self.assertEqual(events[0], "requestheaders")
        self.assertEqual(events[-1], "error")
        self.assertEqual(events.count("error"), 1)
        await sleep(0.2)
        self.assertEqual(recorder.count("error"), 1)

    async def test_client_reset_mid_buffered_request_body(self):
        """A client RST_STREAM in the middle of a buffered upload: error once, the server never sees the stream."""
        recorder = Recorder()
        proxy = await self.proxy(recorder)
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        upload = client.request("POST", "/up", body=b"x" * 1000, end=False)
        self.assertTrue(await wait_until(lambda: recorder.count("requestheaders") == 1))
        await sleep(0.1)
        client.reset(upload.stream_id)
        self.assertTrue(await wait_until(lambda: recorder.count("error") == 1))
        other = await bounded(client.request("GET", "/other").done)
        self.assertEqual(other.status, 200)
        self.assertEqual([s.path for s in server.streams], [b"/other"])
        [flow, _] = recorder.flows()
        self.assertEqual(recorder.flow_events(flow), ["requestheaders", "error"])

    async def test_client_reset_mid_streamed_response(self):
        """A client RST_STREAM in the middle of a streamed response: error once (no response event), upstream reset with CANCEL."""
        recorder = Recorder()
        reset = Deferred()

        def handler(stream):
            if stream.path == b"/stream":
                stream.respond(200, [], b"x" * 10_000, end=False)
            else:
                path_handler(stream)

        proxy = await self.proxy(recorder, stream_large_bodies="1k")
        server = await self.h2_server(
            handler, on_reset=lambda s: reset.callback(s) if not reset.called else None
        )
        client = await self.client(proxy, server.port)
        r = client.request("GET", "/stream")
        self.assertTrue(await wait_until(lambda: len(r.body) >= 10_000))
        client.reset(r.stream_id)
        stream = await bounded(reset)
        self.assertEqual(stream.reset_code, ErrorCodes.CANCEL)
        self.assertTrue(await wait_until(lambda: recorder.count("error") == 1))
        [flow] = recorder.flows()
        self.assertEqual(
            recorder.flow_events(flow), ["requestheaders", "request", "responseheaders", "error"]
        )
        other = await bounded(client.request("GET", "/other").done)
        self.assertEqual(other.status, 200)

    async def test_client_reset_while_request_hook_pending(self):
        """A client reset while a request hook holds the stream: error once; when the hook returns nothing is sent upstream."""
        gate = Deferred()
        recorder = Recorder()

        class Hold:
            def request(self, flow):
                return gate

        proxy = await self.proxy(recorder, Hold())
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        r = client.request("GET", "/held")
        self.assertTrue(await wait_until(lambda: recorder.count("request") == 1))
        await sleep(0.05)
        client.reset(r.stream_id)
        await sleep(0.1)
        gate.callback(None)
        self.assertTrue(await wait_until(lambda: recorder.count("error") == 1), recorder.names())
        await sleep(0.2)
        self.assertEqual(server.streams, [])
        [flow] = recorder.flows()
        self.assertEqual(recorder.flow_events(flow), ["requestheaders", "request", "error"])

    async def test_client_reset_while_responseheaders_hook_pending(self):
        """A client reset while a slow responseheaders hook holds the stream: error once, no response sent."""
        gate = Deferred()
        recorder = Recorder()

        class Hold:
            def responseheaders(self, flow):
                return gate

        proxy = await self.proxy(recorder, Hold())
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        r = client.request("GET", "/held")
        self.assertTrue(await wait_until(lambda: recorder.count("responseheaders") == 1))
        client.reset(r.stream_id)
        await sleep(0.1)
        gate.callback(None)
        self.assertTrue(await wait_until(lambda: recorder.count("error") == 1), recorder.names())
        await sleep(0.2)
        [flow] = recorder.flows()
        self.assertEqual(
            recorder.flow_events(flow), ["requestheaders", "request", "responseheaders", "error"]
        )
        other = await bounded(client.request("GET", "/o").done)
        self.assertEqual(other.status, 200)

    async def test_kill_in_responseheaders(self):
        """flow.kill() in responseheaders resets that stream only; error fires once."""
        recorder = Recorder()

        class Kill:
            def responseheaders(self, flow):
                if flow.request.path == "/kill":
                    flow.kill()

        proxy = await self.proxy(Kill(), recorder)
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        killed = client.request("GET", "/kill")
        alive = client.request("GET", "/alive")
        await bounded(DeferredList([killed.done, alive.done]))
        self.assertIsNotNone(killed.reset_code)
        self.assertEqual((alive.status, bytes(alive.body)), (200, b"/alive 0"))
        self.assertTrue(await wait_until(lambda: recorder.count("error") == 1))
        flow = next(f for f in recorder.flows() if f.request.path == "/kill")
        self.assertEqual(
            recorder.flow_events(flow), ["requestheaders", "request", "responseheaders", "error"]
        )

    async def test_slow_deferred_hooks_many_streams(self):
        """Hooks returning slow Deferreds on 30 concurrent streams: every stream answered, four events each, in order."""
        recorder = Recorder()

        class Slow:
            def requestheaders(self, flow):
                d = Deferred()
                reactor.callLater(0.02, d.callback, None)
                return d

            def response(self, flow):
                d = Deferred()
                reactor.callLater(0.02, d.callback, None)
                return d

        proxy = await self.proxy(Slow(), recorder)
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        responses = [client.request("POST" if i % 2 else "GET", f"/s{i}", body=b"b" * i if i % 2 else b"")
                     for i in range(30)]
        await bounded(DeferredList([r.done for r in responses]), 8)
        for i, r in enumerate(responses):
            self.assertEqual((r.status, bytes(r.body)), (200, b"/s%d %d" % (i, i if i % 2 else 0)))
        flows = recorder.flows()
        self.assertEqual(len(flows), 30)
        self.assert_events(recorder, flows)

    async def test_early_response_in_requestheaders_streamed_upload(self):
        """A response set in requestheaders on a big streamed upload answers the client; the server is never contacted."""
        class Answer:
            def requestheaders(self, flow):
                flow.request.stream = True
                flow.response = Response.make(403, b"denied")

        recorder = Recorder()
        proxy = await self.proxy(Answer(), recorder)
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        r = client.request("POST", "/big", body=pattern(3_000_000))
        await bounded(r.done, 8)
        self.assertEqual((r.status, bytes(r.body)), (403, b"denied"))
        self.assertEqual(server.streams, [])
        [flow] = recorder.flows()
        self.assertEqual(recorder.flow_events(flow)[-1], "response")


# -- server behaviours ---------------------------------------------------------------


class ServerBehaviourTests(_ProbeBase):
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


# -- client behaviours ------------------------------------------------------------------


class ClientBehaviourTests(_ProbeBase):
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
        await sleep(0.1)
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
        await sleep(0.1)
        r = client.request("GET", "/z")
        await sleep(0.3)
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


# -- translation: HTTP/1 client <-> h2 server, h2 client <-> HTTP/1 server ---------------


class TranslationProbeTests(_ProbeBase):
    """
    http2_translate and re-targeting across protocol versions.
    """

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
        url = f"https://127.0.0.1:{server.port}"
        second = os.path.abspath(self.mktemp())
        result = await curl(
            self, "--http1.1", "-x", proxy.url, "--cacert", proxy_ca_path(proxy),
            url + "/one", "-o", second, url + "/two", timeout=8,
        )
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.body, b"/one 0")
        with open(second, "rb") as f:
            self.assertEqual(f.read(), b"/two 0")
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
        url = f"https://127.0.0.1:{server.port}"
        second = os.path.abspath(self.mktemp())
        result = await curl(
            self, "--http1.1", "-x", proxy.url, "--cacert", proxy_ca_path(proxy),
            url + "/a", "-o", second, url + "/b", timeout=8,
        )
        self.assertEqual(result.code, 0, result.stderr)
        self.assertEqual(result.body, b"trailed")
        with open(second, "rb") as f:
            self.assertEqual(f.read(), b"trailed")

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


# -- TLS ------------------------------------------------------------------------------


class TlsProbeTests(_ProbeBase):
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
