# -*- test-case-name: tests.e2e.test_http2_streams -*-
"""
The streams of an HTTP/2 connection through the proxy, end to end with the
h2 peers of L{tests.e2e.h2peers}: chunk transforms on h2 paths, client
resets and early server answers per stream, hooks that hold or kill one
stream, and what each leaves to the connection and its other streams.
"""

from __future__ import annotations

import json
import os

from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList

from interceptor.model.http import Response
from tests.e2e.h2peers import (
    TlsHttp1Server,
    bounded,
    proxy_ca_path,
)
from tests.e2e.peers import Recorder, curl, pattern, sleep, stable, wait_until
from tests.e2e.test_http2 import CURL_SKIP, _Base, path_handler


def a_doubler(data):
    """A chunk transform whose total output does not depend on chunking."""
    return data.replace(b"a", b"aa")


class TransformTests(_Base):
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


class StreamLifecycleTests(_Base):
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
        self.assertTrue(await wait_until(lambda: server.connections and server.connections[0].settings_applied))
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
